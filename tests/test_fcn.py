"""TP5 part I: the classifier converted to a fully convolutional network, localisation, receptive fields."""

import csv
import json

import numpy as np
import pytest

from kcourse import cli
from kcourse import receptive_field as rf
from kcourse.models import build_cnn, build_mlp
from kcourse.tasks import fcn


@pytest.fixture(scope="module")
def cnn():
    """The mnist lab's vanilla CNN (random weights), and its FCN."""
    classifier = build_cnn()
    return classifier, fcn.to_fcn(classifier)


def test_converted_fcn_gives_the_classifiers_logits_on_28x28(cnn):
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), dtype="float32")
    for classifier in (cnn[0], fcn.build_model(11), build_mlp()):
        converted = fcn.to_fcn(classifier)
        assert not any(type(layer).__name__ in ("Dense", "Flatten", "Dropout") for layer in converted.layers)
        assert fcn.max_difference(classifier, converted, x) < 1e-5, classifier.name
        assert converted.count_params() == classifier.count_params()  # the same weights and biases, reshaped


def test_on_a_larger_image_a_map_of_logits_every_4_pixels(cnn):
    converted = cnn[1]
    maps = converted(np.zeros((1, 200, 300, 1), "float32"))
    assert tuple(maps.shape) == (1, 44, 69, 10)  # (200 / 4 - 6, 300 / 4 - 6): the 7x7 kernel over a 50x75 trunk map
    rows = rf.receptive_fields(converted, (200, 300))
    assert rows[-1]["output size"] == (44, 69) and rf.receptive_field_of(converted) == (40, 4)
    assert rf.field_centre(converted) == 13.5  # map pixel (i, j) is the 28x28 window at (4i, 4j), centred at 13.5 + 4i
    probe = rf.probe_receptive_field(converted, samples=16)  # 81x81 input: the field fits
    assert probe["field"] == (40, 40)  # not 28: the 'same' paddings look 6 px beyond the window
    assert probe["mask"].sum() == 40 * 40


def test_too_small_an_image_is_a_one_line_error(cnn):
    converted = cnn[1]
    assert fcn.smallest_input(converted) == 28
    fcn.check_size(converted, 28, 28)
    with pytest.raises(cli.LabError, match="a 27x100 image is too small for the FCN.*the smallest image is 28x28"):
        fcn.class_maps(converted, np.zeros((27, 100, 1), "float32"))


def test_canvas_places_seeded_non_overlapping_digits():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 28, 28, 1), dtype="float32"), rng.integers(0, 10, 40)
    canvas, placed = fcn.make_canvas(x, y, (120, 160), digits=5, seed=3)
    again, placed_again = fcn.make_canvas(x, y, (120, 160), digits=5, seed=3)
    assert np.array_equal(canvas, again) and placed == placed_again and canvas.shape == (120, 160, 1)
    for a in placed:
        assert a["y"] == a["top"] + 13.5 and 0 <= a["top"] <= 120 - 28 and 0 <= a["left"] <= 160 - 28  # ink everywhere
        for b in placed:
            if a is not b:
                assert abs(a["top"] - b["top"]) >= 32 or abs(a["left"] - b["left"]) >= 32
    digit = np.zeros((1, 28, 28, 1), "float32")
    digit[0, 2:12, 20:26] = 1.0  # ink off-centre: rows 2..11, columns 20..25
    _, (one,) = fcn.make_canvas(digit, [7], (60, 60), digits=1)
    assert (one["y"] - one["top"], one["x"] - one["left"]) == (6.5, 22.5)  # the centre of the ink, not of the frame
    with pytest.raises(cli.LabError, match="cannot place 30 digits without overlap on a 60x60 canvas"):
        fcn.make_canvas(x, y, (60, 60), digits=30)


def test_background_crops_hold_no_centred_digit():
    x = np.zeros((1, 28, 28, 1), "float32")
    x[0, 4:24, 4:24] = 1.0  # a 20x20 "digit"
    crops = fcn.background_crops(x, 200, seed=0)
    assert crops.shape == (200, 28, 28, 1)
    assert (crops.sum((1, 2, 3)) == 0).mean() > 0.1  # empty paper
    ink = crops.sum((1, 2, 3))
    assert ((ink > 0) & (ink < 20 * 20)).mean() > 0.3  # parts of digits
    assert not any(np.array_equal(crop, x[0]) for crop in crops)  # never the digit centred


def test_detect_and_match_on_known_maps():
    maps = np.full((10, 20, 11), 0.01, "float32")
    maps[2, 3, 7], maps[2, 4, 7] = 0.9, 0.8  # one digit 7, seen twice at adjacent map pixels
    maps[6, 15, 1] = 0.7  # a 1
    maps[8, 10, 10] = 0.99  # background: never detected
    found = fcn.detect(maps, centre=13.5, jump=4, threshold=0.5, radius=14)
    assert [(d["label"], d["y"], d["x"]) for d in found] == [(7, 21.5, 25.5), (1, 37.5, 73.5)]  # the 0.8 suppressed
    placed = [{"label": 7, "y": 20.0, "x": 27.0}, {"label": 1, "y": 60.0, "x": 73.5}, {"label": 3, "y": 5.0, "x": 5.0}]
    assert fcn.match(found, placed, tolerance=8) == (1, 0.5, 1 / 3)  # the 1 is 22.5 px off


def test_bad_model_files_are_one_line_errors(tmp_path):
    import keras

    with pytest.raises(cli.LabError, match="no such file; expected a .keras file the mnist lab saved"):
        fcn.load_classifier(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(cli.LabError, match="not a readable Keras model"):
        fcn.load_classifier(tmp_path / "junk.keras")
    colour = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    colour.save(tmp_path / "colour.keras")
    with pytest.raises(cli.LabError, match=r"got input \(None, 32, 32, 3\), output \(None, 10\); expected input \(None, 28, 28, 1\)"):
        fcn.load_classifier(tmp_path / "colour.keras")
    pooled = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(10, 3), keras.layers.GlobalAveragePooling2D()])
    pooled.save(tmp_path / "pooled.keras")
    with pytest.raises(cli.LabError, match="has no Flatten layer"):
        fcn.load_classifier(tmp_path / "pooled.keras")


@pytest.fixture(scope="module")
def quick_run(lab_run):
    """`python -m kcourse.tasks.fcn --quick` offline, the TP5 notebook's run: both variants, 12,000 digits (+ 6,000
    backgrounds), 3 epochs: enough to find digits."""
    return lab_run("fcn", "--quick").run


@pytest.mark.offline
def test_quick_run_writes_its_figures_and_the_conversion_is_exact(quick_run):
    run = quick_run
    files = {p.name for p in run.path.iterdir()}
    expected = {"localisation_background.png", "class_maps_background.png", "localisation_cnn.png", "learning_curves.png",
                "cnn.keras", "background.keras", "background_fcn.keras", "receptive_fields.csv", "summary.csv"}
    assert expected <= files, expected - files
    metrics = json.loads(run.file("metrics.json").read_text())
    figures = metrics["background"]
    assert figures["fcn vs classifier"] < 1e-5  # the trained classifier and its conversion
    assert figures["receptive field"] == 40 and figures["probed field"] == [40, 40] and figures["jump"] == 4
    assert figures["placed digits"] == 12 and figures["total params"] == 27_830 + 51  # 2 canvases of 6; the 11th class
    with open(run.file("receptive_fields.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [row["receptive field"] for row in rows] == ["1", "5", "6", "6", "14", "16", "16", "40", "40"]
    assert rows[-1]["output size"] == "(44, 69)"  # the map on a 200x300 canvas
    # the background class cuts the false detections of a CNN that must always name a digit
    assert metrics["background"]["precision"] > metrics["cnn"]["precision"], (metrics["background"], metrics["cnn"])


@pytest.mark.offline
def test_maps_peak_at_the_placed_digits(quick_run):
    import keras

    classifier = keras.saving.load_model(quick_run.file("background.keras"))
    converted = keras.saving.load_model(quick_run.file("background_fcn.keras"))
    data = quick_run.outputs["data"]
    x_test, y_test = data.x_test, data.y_test
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(classifier.predict(x_test, verbose=0)))
    sure = np.flatnonzero((probabilities.argmax(-1) == y_test) & (probabilities.max(-1) > 0.9))
    chosen = [sure[y_test[sure] == c][0] for c in np.unique(y_test[sure])[:4]]  # four digits it knows, four classes
    assert len(chosen) == 4, "the quick classifier is sure of too few classes"
    canvas, placed = fcn.make_canvas(x_test[chosen], y_test[chosen], (140, 224), digits=4, seed=1)
    maps = fcn.class_maps(converted, canvas)
    centre, jump = rf.field_centre(converted), 4
    for label in {p["label"] for p in placed}:  # each class map peaks on a digit of its class
        i, j = np.unravel_index(maps[..., label].argmax(), maps.shape[:2])
        assert any(abs(centre + jump * i - p["y"]) <= 8 and abs(centre + jump * j - p["x"]) <= 8
                   for p in placed if p["label"] == label), (label, i, j, placed)
    figures, _ = fcn.localise(converted, [(canvas, placed)], threshold=0.5, tolerance=8)
    assert figures["recall"] >= 0.75 and figures["precision"] >= 0.5, figures  # a classifier trained for seconds


@pytest.mark.offline
def test_a_cnn_given_back_is_loaded_and_says_so(quick_run, tmp_path, capsys):
    """The README's `--model-file <mnist run>/cnn.keras`: the cnn variant loaded, not trained, its row saying so."""
    run = fcn.main(["--quick", "--model-file", str(quick_run.file("cnn.keras")), "--models", "cnn", "--out", str(tmp_path / "run")])
    assert "cnn: loaded from" in capsys.readouterr().out
    with open(run.file("summary.csv")) as f:
        (row,) = list(csv.DictReader(f))
    assert row["loaded from"] == str(quick_run.file("cnn.keras")) and row["test accuracy"] == str(quick_run.rows[0]["test accuracy"])


def test_sliding_the_classifier_costs_far_more_than_one_fcn_pass_and_mostly_names_the_same_class(quick_run):
    """004:17: every 28x28 window through the classifier against one FCN pass, on the FCN's output grid."""
    s = quick_run.metrics["sliding against fcn"]
    assert s["windows"] == 44 * 69 and s["reach"] == 6  # a 200x300 canvas, 4 px apart; a 40 px field, 6 px beyond
    assert s["sliding MACs"] > 10 * s["fcn MACs"], s  # overlapping windows share their convolutions in one pass
    assert s["same class"] > 0.5, s
    assert s["largest difference"] > 1e-2  # not equal: the 'same' paddings read the neighbours
    if s["blank after conv 1"] == 0:  # blank paper stays 0 after conv 1: equal where the padded band is blank
        assert s["blank around"] > 0.2 and s["difference there"] < 1e-4, s


def test_a_global_pooling_head_classifies_digits_in_images_of_any_size_with_a_background_class(quick_run, cnn):
    """004:19: the FCN with a global max-pooling of its class maps, on digits framed in 42x42 and 56x56 images."""
    from kcourse.tasks import fcn

    sizes = quick_run.metrics["any size"]
    cnn_row = next(r for r in quick_run.rows if r["model"] == "cnn")
    assert sizes["cnn"]["28"] == pytest.approx(cnn_row["test accuracy"], abs=0.02)  # on 28x28, the classifier itself
    assert sizes["background"]["84"] > 0.6 and sizes["background"]["84"] > sizes["cnn"]["84"] + 0.1, sizes  # any size,
    # once the maps can say "background"; without, blank places fire and a larger image has more of them
    head = fcn.global_pooling_classifier(cnn[1])
    assert head(np.zeros((2, 64, 80, 1), "float32")).shape == (2, 10)
    framed = fcn.framed(np.ones((3, 28, 28, 1), "float32"), 40)
    assert framed.shape == (3, 40, 40, 1) and (framed.sum(axis=(1, 2, 3)) == 28 * 28).all()
