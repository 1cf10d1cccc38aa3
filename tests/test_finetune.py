"""TP3 part II: the ResNet fine-tuning lab, on generated photos and a tiny local preset."""

import contextlib
import csv
import io
import json

import numpy as np
import pytest

from kcourse import cli, images
from kcourse.tasks import finetune
from tests.test_images import make_folder

SIZE = 32  # model input; images are loaded at 36 and randomly cropped


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A two-stack ResNet (89k parameters) saved as a local keras-hub preset."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
    )
    path = tmp_path_factory.mktemp("preset") / "tiny_resnet"
    backbone.save_to_preset(str(path))
    return path, backbone.get_weights()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("photos") / "data", n=4)
    return root, images.load_image_folder(root, image_size=SIZE)


def test_local_preset_loads_its_weights(tiny_preset):
    path, saved = tiny_preset
    backbone, weights = finetune.load_backbone(str(path))
    assert weights == "pretrained"
    assert len(backbone.get_weights()) == len(saved)
    for loaded, expected in zip(backbone.get_weights(), saved):
        np.testing.assert_array_equal(loaded, expected)
    random_backbone, weights = finetune.load_backbone(str(path), pretrained=False)
    assert weights == "random" and random_backbone.count_params() == backbone.count_params()
    assert not np.array_equal(random_backbone.get_weights()[0], saved[0])


def test_missing_local_preset_is_a_one_line_error(tmp_path):
    with pytest.raises(cli.LabError, match="not a keras-hub preset folder") as error:
        finetune.load_backbone(str(tmp_path / "nope"))
    assert "save_to_preset" in str(error.value)


def _fit_one_step(tiny_preset, photos, freeze_how):
    import keras

    path, _ = tiny_preset
    _, data = photos
    backbone, _ = finetune.load_backbone(str(path))
    model = finetune.build_model(backbone, 2, data.x_train.shape[1], images.augmentation(SIZE), freeze_how, learning_rate=0.1)
    before_backbone = {w.path: keras.ops.convert_to_numpy(w).copy() for w in backbone.weights}
    before_head = keras.ops.convert_to_numpy(model.get_layer("head").kernel).copy()
    model.fit(data.x_train, data.y_train, batch_size=len(data.x_train), epochs=1, verbose=0)
    after_backbone = {w.path: keras.ops.convert_to_numpy(w) for w in backbone.weights}
    changed = {name for name in before_backbone if not np.array_equal(before_backbone[name], after_backbone[name])}
    head_changed = not np.array_equal(before_head, keras.ops.convert_to_numpy(model.get_layer("head").kernel))
    return model, changed, head_changed


def test_frozen_features_are_bit_identical_after_a_fit_step(tiny_preset, photos):
    model, changed, head_changed = _fit_one_step(tiny_preset, photos, "features")
    assert changed == set(), f"frozen weights moved: {sorted(changed)}"  # kernels, gamma, beta and moving stats
    assert head_changed
    trainable, total = finetune.parameter_counts(model)
    assert trainable == 16 * 2 + 2 and total > 80_000  # only the head: 16 features -> 2 logits


def test_all_but_head_leaves_only_the_head_trainable(tiny_preset):
    backbone, _ = finetune.load_backbone(str(tiny_preset[0]))
    model = finetune.build_model(backbone, 3, 36, images.augmentation(SIZE), "all-but-head")
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]
    assert not backbone.trainable and all(not layer.trainable for layer in backbone.layers)


def test_without_freezing_the_backbone_and_batchnorm_statistics_move(tiny_preset, photos):
    _, changed, head_changed = _fit_one_step(tiny_preset, photos, "none")
    assert head_changed
    assert any("moving_mean" in name for name in changed), sorted(changed)  # BatchNorm in training mode
    assert any(name.endswith("kernel") for name in changed), sorted(changed)


def test_freeze_features_follows_the_course_loop(tiny_preset):
    from keras import layers

    backbone, _ = finetune.load_backbone(str(tiny_preset[0]))
    finetune.freeze(backbone, "features")
    kinds = {type(layer).__name__: layer.trainable for layer in backbone.layers if layer.weights}
    assert kinds == {"Conv2D": False, "BatchNormalization": False}
    assert all(not layer.trainable for layer in backbone.layers if isinstance(layer, layers.BatchNormalization))
    finetune.freeze(backbone, "none")
    assert all(layer.trainable for layer in backbone.layers)
    with pytest.raises(cli.LabError, match="--freeze 'everything'"):
        finetune.freeze(backbone, "everything")


@pytest.mark.offline
def test_offline_preset_says_so_and_builds_resnet18_from_scratch(capsys):
    backbone, weights = finetune.load_backbone("resnet_18_imagenet")
    assert weights == "random"
    assert backbone.count_params() == 11_186_112  # keras-hub's ResNet18, as the preset
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("offline: could not download the keras-hub preset resnet_18_imagenet")
    assert "--preset path/to/folder, saved with save_to_preset" in lines[0]
    assert lines[0].endswith("using ResNet18 with random weights (from scratch) instead")


@pytest.mark.offline
def test_offline_data_says_so_and_uses_the_embedded_photos(capsys):
    data = finetune.load_data(image_size=SIZE, quick=True)
    assert data.class_names == ["china", "flower"]
    assert data.x_train.shape[1:] == (36, 36, 3)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "offline: could not download the Hymenoptera ants/bees photos; using an embedded two-class set "
        "(random crops of scikit-learn's two sample photos, china.jpg vs flower.jpg) instead"
    ]


def test_compare_quick_writes_its_table_and_figures(tiny_preset, photos, tmp_path, backend):
    root, _ = photos
    out = tmp_path / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        run = finetune.main(
            ["--compare", "--quick", "--data-dir", str(root), "--preset", str(tiny_preset[0]),
             "--image-size", str(SIZE), "--batch-size", "4", "--out", str(out)]
        )
    files = {p.name for p in run.path.iterdir()}
    expected = {
        "config.json", "metrics.json", "summary.csv", "augmentation.png", "learning_curves.png",
        "history_scratch.csv", "history_fine-tuned.csv", "history_frozen.csv",
    }
    assert expected <= files, expected - files
    with open(run.file("summary.csv")) as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["scratch", "fine-tuned", "frozen"]
    assert [rows[m]["weights"] for m in rows] == ["random", "pretrained", "pretrained"]
    assert rows["frozen"]["freeze"] == "features" and int(rows["frozen"]["trainable params"]) == 34
    assert int(rows["scratch"]["trainable params"]) == int(rows["fine-tuned"]["trainable params"]) > 80_000
    for row in rows.values():
        assert 0 <= float(row["val accuracy"]) <= 1 and 0 <= float(row["macro F1"]) <= 1
        assert float(row["s / epoch"]) > 0 and row["device"]
    config = json.loads(run.file("config.json").read_text())
    assert config["backend"] == backend and config["classes"] == ["ants", "bees"] and config["image_size"] == SIZE
    for png in ("augmentation.png", "learning_curves.png"):
        assert run.file(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "scratch" in stdout.getvalue() and f"run folder: {out}" in stdout.getvalue()


def test_bad_data_dir_is_a_one_line_error(tmp_path):
    from tests.test_cli import run_python

    (tmp_path / "ants").mkdir()
    result = run_python("-m", "kcourse.tasks.finetune", "--data-dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}: only one class folder (ants)"), lines
    assert "expected" in lines[0]
