"""Lectures 003-004 by hand: the convolution and max-pooling formulas equal Keras' layers, the output size formula
holds, the border and the lecture's "S = 0", tensors on each backend."""

import numpy as np
import pytest

from kcourse.tasks import convolution


@pytest.fixture(scope="module")
def made(lab_run):
    return lab_run("convolution", "--digits", "50").run


def test_the_hand_convolution_equals_conv2d(made):
    rows = made.metrics["convolutions"]
    assert len(rows) == 18 and {r["padding"] for r in rows} == {"valid", "same"}
    assert max(r["largest difference"] for r in rows) < 1e-5, rows  # every kernel, stride and padding


def test_an_explicit_padding_by_hand_equals_zero_padding_then_conv2d():
    rng = np.random.default_rng(3)
    x, kernel, bias = rng.standard_normal((7, 7, 2)), rng.standard_normal((3, 3, 2, 3)), rng.standard_normal(3)
    mine = convolution.conv2d_by_hand(x, kernel, bias, stride=2, padding=1)
    theirs = convolution.keras_conv(x.astype("float32"), kernel.astype("float32"), bias.astype("float32"), 2, 1)
    assert mine.shape == theirs.shape == (4, 4, 3)  # (7 - 3 + 2) // 2 + 1
    np.testing.assert_allclose(mine, theirs, atol=1e-5)


def test_the_output_size_formula_and_the_border(made):
    sizes = made.metrics["output sizes"]
    assert all(r["formula"] == r["Keras"] for r in sizes), sizes
    b = made.metrics["border"]
    assert (b["valid output"], b["corner seen"], b["interior seen"]) == (26, 1, 9)  # P = 0: the corner counts once
    assert (b["same output"], b["corner real"], b["edge real"]) == (28, 4.0, 6.0)  # 'same': zeros in the border windows
    assert made.metrics["three 3x3 field"] == 7
    assert "value > 0" in made.metrics["stride 0"]  # a stride of 0 is refused


def test_max_pooling_keeps_the_largest_of_each_window_and_damps_a_shift(made):
    p = made.metrics["pooling"]
    assert p["by hand"] == p["keras"] == [[5, 5], [4, 6]] and p["values in"] == 4 * p["values out"]
    shift = made.metrics["shift"]
    assert shift["after 2 max-pools"] < shift["after 1 max-pool"] < shift["input"], shift
    assert convolution.max_pool_by_hand(np.arange(16.0).reshape(4, 4)).tolist() == [[5, 7], [13, 15]]


def test_the_tensors_are_the_backends_own(made, backend):
    rows = {r["object"]: r for r in made.metrics["tensors"]}
    assert rows["scalar"]["Keras shape"] == [] and rows["image batch"]["Keras shape"] == [128, 224, 224, 3]
    assert rows["image batch"]["PyTorch shape"] == [128, 3, 224, 224]  # the lecture's [B, C, H, W]
    assert rows["matrix"]["type"].startswith({"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}[backend])
    speed = made.metrics["python against tensors"]
    assert speed["equal"] and speed["gradient right"]  # the hand-written autograd gives the tensor's dot and d/dw = x


def test_the_report_answers_with_the_runs_numbers(made):
    answers = {a["tag"]: a["answer"] for a in made.answers()}
    worst = max(r["largest difference"] for r in made.metrics["convolutions"])
    assert f"{worst:.1e}" in answers["004:4"] and "8 of 8" in answers["004:7"]
    assert "[[5, 5], [4, 6]]" in answers["004:8"] and made.metrics["tensors"][0]["type"] in answers["003:2"]
