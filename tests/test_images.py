"""Image folders, the embedded two-class set and the augmentation pipeline (kcourse.images)."""

import numpy as np
import pytest
from PIL import Image

from kcourse import cli, images

COLORS = {"ants": (200, 40, 40), "bees": (40, 40, 200)}


def write_images(folder, color, n, seed=0):
    """`n` small noisy JPEGs of one colour, of various sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = np.clip(rng.normal(color, 30, (30 + 4 * i, 40, 3)), 0, 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"{i}.jpg")


def make_folder(root, layout="train_val", n=4):
    if layout == "train_val":
        for split in ("train", "val"):
            for name, color in COLORS.items():
                write_images(root / split / name, color, n)
    else:
        for name, color in COLORS.items():
            write_images(root / name, color, n)
    return root


def test_train_val_layout(tmp_path):
    data = images.load_image_folder(make_folder(tmp_path, n=3), image_size=32, crop_margin=0.125)
    assert data.class_names == ["ants", "bees"]
    assert data.x_train.shape == (6, 36, 36, 3) and data.x_val.shape == (6, 36, 36, 3)
    assert data.x_train.dtype == np.float32 and 0 <= data.x_train.min() and data.x_train.max() <= 255
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    # the labels follow the folders: ants are red, bees are blue
    red = data.x_train[..., 0].mean(axis=(1, 2)) > data.x_train[..., 2].mean(axis=(1, 2))
    assert red.tolist() == (data.y_train == 0).tolist()


def test_class_folders_split_per_class(tmp_path):
    data = images.load_image_folder(make_folder(tmp_path, "classes", n=5), image_size=16, val_split=0.4, seed=1)
    assert len(data.x_train) == 6 and len(data.x_val) == 4
    assert sorted(data.y_val.tolist()) == [0, 0, 1, 1]


def test_corrupt_and_non_image_files_are_skipped_with_one_warning(tmp_path, capsys):
    root = make_folder(tmp_path, "classes", n=3)
    (root / "ants" / "notes.txt").write_text("not an image")
    good = (root / "bees" / "0.jpg").read_bytes()
    (root / "bees" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    data = images.load_image_folder(root, image_size=16, val_split=0.34)
    assert len(data.x_train) + len(data.x_val) == 6
    assert sorted(data.skipped) == [str(root / "ants" / "notes.txt"), str(root / "bees" / "truncated.jpg")]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: skipped 2 file(s)"), lines
    assert "notes.txt" in lines[0] and "truncated.jpg" in lines[0]


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(cli.LabError) as error:
        images.load_image_folder(tmp_path / "nowhere")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'nowhere'}: no such folder") and "/train/<class>" in message
    assert "\n" not in message


def test_single_class_is_an_error(tmp_path):
    write_images(tmp_path / "ants", COLORS["ants"], 2)
    with pytest.raises(cli.LabError, match=r"only one class folder \(ants\), need at least two"):
        images.load_image_folder(tmp_path)


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_folder(tmp_path, n=2)
    for path in (root / "val" / "bees").iterdir():
        path.unlink()
    (root / "val" / "bees" / "readme.txt").write_text("nothing here")
    with pytest.raises(cli.LabError) as error:
        images.load_image_folder(root)
    assert str(error.value).startswith(f"{root / 'val' / 'bees'}: no readable images")
    assert "expected" in str(error.value)


def test_val_folder_missing_a_class_is_an_error(tmp_path):
    root = make_folder(tmp_path, n=2)
    for path in (root / "val" / "bees").iterdir():
        path.unlink()
    (root / "val" / "bees").rmdir()
    with pytest.raises(cli.LabError, match="val/bees: no such folder"):
        images.load_image_folder(root)


def test_embedded_two_class_set():
    data = images.embedded_two_class(image_size=32, per_class=10, val_split=0.2)
    assert data.class_names == ["china", "flower"]
    assert data.x_train.shape == (16, 37, 37, 3) and len(data.x_val) == 4
    assert sorted(set(data.y_train.tolist())) == [0, 1] and sorted(data.y_val.tolist()) == [0, 0, 1, 1]
    assert data.x_train.std() > 10  # real photos, not a blank


def test_augmentation_crops_in_training_and_centre_crops_at_inference():
    from keras import ops

    x = np.random.default_rng(0).uniform(0, 255, (4, 36, 36, 3)).astype("float32")
    augment = images.augmentation(32, flip="horizontal", rotation=0.1, contrast=0.2, seed=0, input_size=36)
    inference = ops.convert_to_numpy(augment(x, training=False))
    np.testing.assert_allclose(inference, x[:, 2:34, 2:34], atol=1e-4)
    trained = ops.convert_to_numpy(augment(x, training=True))
    assert trained.shape == (4, 32, 32, 3)
    assert not np.allclose(trained, inference, atol=1.0)
    grid = images.augmented_samples(x[:2], augment, copies=3)
    assert grid.shape == (8, 32, 32, 3) and grid.min() >= 0 and grid.max() <= 1


def test_each_image_gets_its_own_window_of_whole_pixels():
    """The course's RandomCrop: a window per image (torchvision's), a shifted copy of the image inside it."""
    from keras import ops

    x = np.random.default_rng(0).uniform(0, 255, (64, 40, 40, 3)).astype("float32")
    x[:] = x[:1]  # 64 copies of one image: any difference is the window
    crops = ops.convert_to_numpy(images.augmentation(32, flip="none", seed=0, input_size=40)(x, training=True))
    windows = set()
    for crop in crops:
        found = [(i, j) for i in range(9) for j in range(9) if np.array_equal(crop, x[0, i : i + 32, j : j + 32])]
        assert len(found) == 1, "each crop is a window of the image, pixel for pixel"
        windows.add(found[0])
    assert len(windows) > 10  # not one window for the whole batch


def test_a_split_keeps_every_class_on_both_sides(tmp_path):
    """The bug this catches: round(3 * 0.9) = 3 sent a whole class of three images to validation."""
    root = tmp_path / "photos"
    write_images(root / "ants", COLORS["ants"], 3)
    write_images(root / "bees", COLORS["bees"], 8)
    data = images.load_image_folder(root, image_size=16, val_split=0.9)
    assert sorted(set(data.y_train.tolist())) == [0, 1] and sorted(set(data.y_val.tolist())) == [0, 1]
    write_images(tmp_path / "tiny" / "ants", COLORS["ants"], 1)
    write_images(tmp_path / "tiny" / "bees", COLORS["bees"], 3)
    with pytest.raises(cli.LabError, match="class 'ants' has a single image: it cannot be both trained on and held out"):
        images.load_image_folder(tmp_path / "tiny", image_size=16)


def test_the_validation_split_alone_reads_no_training_image(tmp_path, monkeypatch):
    read, real = [], images.read_image
    monkeypatch.setattr(images, "read_image", lambda path, size: read.append(path) or real(path, size))
    data = images.load_image_folder(make_folder(tmp_path, n=3), image_size=16, splits=("val",))
    assert len(data.x_val) == 6 and len(data.x_train) == 0
    assert all("/val/" in str(path) for path in read) and len(read) == 6


def test_bad_augmentation_options_are_errors():
    with pytest.raises(cli.LabError, match="--flip 'diagonal'"):
        images.augmentation(32, flip="diagonal")
    with pytest.raises(cli.LabError, match="--rotation 1.5"):
        images.augmentation(32, rotation=1.5)
