"""TP5 part 2: the U-Net on simulated shapes: skips matter, any size works, weak supervision runs."""

import csv
import json

import keras
import numpy as np
import pytest

from kcourse import cli, shapes
from kcourse.models import UNet
from kcourse.tasks import unet

# The tiny task: discs on 32x32 images, a U-Net of depth 2 with 8 filters, 5 epochs (seconds on a CPU).
# Without BatchNorm: its running statistics need more steps than a test has (the lab's default has it).
TINY = dict(image_size=32, train_size=256, test_size=48, noise=0.1, classes=("disc",))
TINY_MODEL = dict(depth=2, base_filters=8, learning_rate=3e-3, norm="none")
EPOCHS = 5
UNET_IOU = 0.75  # the U-Net's mean IoU on the tiny task is above this...
SKIP_GAIN = 0.04  # ...and above the no-skip network's by this much


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def tiny():
    train, test = unet.load_data(**TINY, seed=0)
    models, scores = {}, {}
    for kind in ("unet", "no-skip"):
        keras.utils.set_random_seed(0)
        model = unet.build_model(kind, **TINY_MODEL)
        model.fit(train.images, train.masks, epochs=EPOCHS, batch_size=8, verbose=0)
        models[kind], scores[kind] = model, unet.evaluate(model, test)
    return train, test, models, scores


def test_unet_learns_the_tiny_task_and_beats_the_network_without_skips(tiny):
    *_, scores = tiny
    full, plain = scores["unet"]["mean_iou"], scores["no-skip"]["mean_iou"]
    assert full > UNET_IOU, scores
    assert full > plain + SKIP_GAIN, scores  # the skips bring back the edges the poolings lost


def test_a_trained_unet_segments_odd_sizes(tiny):
    _, _, models, scores = tiny
    odd = shapes.simulate(16, (45, 37), noise=TINY["noise"], classes=TINY["classes"], seed=99)
    assert unet.segment(models["unet"], odd.images).shape == (16, 45, 37)
    result = unet.evaluate(models["unet"], odd)
    assert result["mean_iou"] > scores["unet"]["mean_iou"] - 0.1, (result, scores["unet"])


def test_predict_any_size_pads_to_a_multiple_and_crops_back():
    model = UNet(4, depth=3, base_filters=4)
    x = np.random.default_rng(0).random((2, 40, 24, 1)).astype("float32")  # multiples of 8: nothing to pad
    np.testing.assert_allclose(unet.predict_any_size(model, x), to_numpy(model(x)), atol=1e-5)
    for size in [(45, 37), (9, 16)]:
        odd = np.random.default_rng(1).random((1, *size, 1)).astype("float32")
        assert unet.predict_any_size(model, odd).shape == (1, *size, 4)
        padded = np.pad(odd, [(0, 0), (0, -size[0] % 8), (0, -size[1] % 8), (0, 0)], mode="reflect")
        np.testing.assert_allclose(unet.predict_any_size(model, odd), to_numpy(model(padded))[:, : size[0], : size[1]], atol=1e-5)


def test_no_skip_is_the_same_network_less_the_concatenated_channels():
    full, plain = UNet(4, depth=3, base_filters=8), UNet(4, depth=3, base_filters=8, skips=False)
    x = np.zeros((1, 16, 16, 1), "float32")
    assert to_numpy(full(x)).shape == to_numpy(plain(x)).shape == (1, 16, 16, 4)
    # each decoder step's first 3x3 convolution (no bias: BatchNorm) loses the skip's F_i input channels
    lost = sum(3 * 3 * (8 * 2**i) * (8 * 2**i) for i in range(3))
    assert full.count_params() - plain.count_params() == lost
    assert [w.shape for w in full.weights if "conv1" not in w.path] == [w.shape for w in plain.weights if "conv1" not in w.path]


def test_unet_saves_and_loads_with_equal_outputs(tmp_path):
    model = unet.build_model("no-skip", depth=2, base_filters=4)
    x = np.random.default_rng(0).random((2, 20, 12, 1)).astype("float32")
    model.fit(x, np.zeros((2, 20, 12), "int32"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, UNet) and loaded.skips is False and loaded.depth == 2
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_iou_per_class_by_hand():
    truth = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    predicted = np.array([[0, 1, 1, 1], [2, 2, 3, 0]])
    # background: 1 shared / 3 in either; disc 2/3; square 2/2; triangle 1/2
    np.testing.assert_allclose(unet.iou_per_class(truth, predicted), [1 / 3, 2 / 3, 1.0, 0.5])
    scores = unet.iou_scores(truth, predicted)
    assert scores["mean_iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 + 0.5) / 4) and scores["iou_square"] == 1.0


def test_psnr():
    clean = np.full((2, 8, 8, 1), 0.5)
    assert unet.psnr(clean, clean + 0.1) == pytest.approx(20.0)  # 10 log10(1 / 0.01)


def test_cam_threshold_rule_by_hand():
    cams = np.zeros((1, 2, 3, 3))
    cams[0, 0] = [[1.0, 0.0, 0.0], [0.2, 2.0, 0.0], [0.0, 0.0, 5.0]]  # pixel 0 and 1
    cams[0, 1] = [[0.6, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    labels = np.array([[1.0, 1.0, 0.0]])  # disc and square in the image, not the triangle
    # pixel (0,0): disc 1/1 = 1.0 wins over square 0.6/2; (0,1): square 2/2; (0,2): only the triangle, not held
    # pixel (1,0): disc 0.6 >= 0.5; (1,1): square 0.2/2 = 0.1 < 0.5: background
    np.testing.assert_array_equal(unet.cam_masks(cams, labels, threshold=0.5), [[[1, 2, 0], [1, 0, 0]]])
    assert unet.cam_masks(cams, labels, threshold=0.7).tolist() == [[[1, 2, 0], [0, 0, 0]]]


def test_class_activation_maps_average_to_the_classifier_logits():
    classifier = unet.build_classifier(3, depth=2, base_filters=4)
    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
    cams = unet.class_activation_maps(classifier, x, upsample=False)  # (2, 4, 4, 3): the feature map's size
    assert cams.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(cams.mean((1, 2)), classifier.predict(x, verbose=0), atol=1e-5)
    assert unet.class_activation_maps(classifier, x).shape == (2, 16, 16, 3)


def test_each_weak_supervision_mode_gives_masks(tiny):
    train, *_ = tiny
    boxes = unet.weak_masks("box", train)
    box_iou = unet.iou_scores(train.masks, boxes)["mean_iou"]
    assert 0.5 < box_iou < 0.95, box_iou  # the box: the shape and some background around it
    classifier = unet.build_model("cam-classifier", depth=2, base_filters=4)
    classifier.fit(train.images, train.labels, epochs=1, batch_size=32, verbose=0)
    pseudo = unet.weak_masks("image-labels", train, classifier, threshold=0.5)
    assert pseudo.shape == train.masks.shape and pseudo.dtype == np.int32
    held = np.stack([(pseudo == c).any((1, 2)) for c in (1, 2, 3)], 1)
    assert not (held & (train.labels == 0)).any()  # a CAM mask only uses the classes the image holds
    with pytest.raises(ValueError, match="need the trained classifier"):
        unet.weak_masks("image-labels", train)


@pytest.fixture(scope="module")
def quick_run(lab_run):
    """`python -m kcourse.tasks.unet --quick`: every variant, one epoch (the TP5 notebook's run)."""
    return lab_run("unet", "--quick").run


def test_quick_run_writes_every_figure_and_table(quick_run, backend):
    run = quick_run
    files = {p.name for p in run.path.iterdir()}
    expected = {"config.json", "metrics.json", "summary.csv", "supervision.csv", "learning_curves.png",
                "segmentation.png", "denoising.png", "weak_supervision.png"}
    expected |= {f"{m}.keras" for m in (*unet.MODELS, "cam-classifier")}
    assert expected <= files, expected - files
    config = json.loads(run.file("config.json").read_text())
    assert config["backend"] == backend and config["quick"] is True and config["image_size"] == 32
    with open(run.file("summary.csv")) as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["unet", "no-skip", "denoise", "box", "cam-classifier", "image-labels"]
    assert float(rows["unet"]["target_mean_iou"]) == 1.0 and float(rows["box"]["target_mean_iou"]) < 1.0
    assert float(rows["denoise"]["PSNR noisy"]) == pytest.approx(20 * np.log10(1 / 0.2), abs=0.3)
    with open(run.file("supervision.csv")) as f:
        assert [row["supervision"] for row in csv.DictReader(f)] == ["full masks", "boxes", "image labels"]
    # one metric, one name: the history's mean_iou is the summary's
    assert "val_mean_iou" in run.histories["unet"] and "mean_iou" in rows["unet"]
    metrics = json.loads(run.file("metrics.json").read_text())
    assert set(metrics["unet at 37x29"]) == {"mean_iou", *(f"iou_{c}" for c in shapes.CLASSES)}  # odd sizes, segmented


def test_saved_model_segments_any_size(quick_run, tmp_path, capsys):
    run = unet.main(["--model-file", str(quick_run.file("unet.keras")), "--image-size", "45", "--test-size", "4",
                     "--out", str(tmp_path / "predict")])
    assert "on 4 images of 45x45: mean_iou" in capsys.readouterr().out
    assert run.file("segmentation.png").is_file()
    with pytest.raises(cli.LabError, match="not one of this lab's segmentation U-Nets"):
        unet.main(["--model-file", str(quick_run.file("denoise.keras")), "--out", str(tmp_path / "denoise")])


def test_a_file_that_is_not_a_model_is_a_one_line_error(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("not a model")
    with pytest.raises(cli.LabError, match="--model-file .*notes.keras: not a readable Keras model"):
        unet.load_model(path)


def test_training_sizes_must_be_multiples_of_two_to_the_depth():
    assert unet.check_size(64, 3) == 64
    with pytest.raises(cli.LabError, match=r"--image-size 50 is not a multiple of 2\^depth = 8 \(--depth 3\): train on 48 or 56"):
        unet.check_size(50, 3)
    with pytest.raises(cli.LabError, match="too small"):
        unet.check_size(8, 4)


def test_mean_iou_counts_as_keras_does():
    import keras

    from kcourse.models import MeanIoU

    rng = np.random.default_rng(0)
    truth, logits = rng.integers(0, 4, (3, 9, 7)), rng.normal(size=(3, 9, 7, 4)).astype("float32")
    weights = rng.integers(0, 3, (3, 9, 7)).astype("float32")
    for sample_weight in (None, weights):
        ours, theirs = MeanIoU(4, sparse_y_pred=False), keras.metrics.MeanIoU(4, sparse_y_pred=False)
        for metric in (ours, theirs):
            metric.update_state(truth, logits, sample_weight)
            metric.update_state(truth[:1], logits[:1])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours.total_cm), keras.ops.convert_to_numpy(theirs.total_cm))
        assert float(ours.result()) == pytest.approx(float(theirs.result()))
        predicted = logits.argmax(-1)
        by_hand = unet.iou_scores(np.concatenate([truth, truth[:1]]), np.concatenate([predicted, predicted[:1]]))["mean_iou"]
        if sample_weight is None:
            assert float(ours.result()) == pytest.approx(by_hand, abs=1e-6)
