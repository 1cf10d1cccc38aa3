"""Lecture 004's degradation problem: the deeper plain CNN trains worse, the residual one does not."""

import pytest

from kcourse.tasks import degradation


@pytest.fixture(scope="module")
def made(lab_run):
    return lab_run("degradation", "--quick").run  # 4,000 digits, 3 epochs, 8 and 20 convolutions


def test_the_deeper_plain_net_trains_worse_and_the_residual_one_does_not(made):
    rows = {r["model"]: r for r in made.rows}
    plain8, plain20, res20 = rows["plain-8"], rows["plain-20"], rows["residual-20"]
    assert plain20["train loss"] > plain8["train loss"] + 0.3, rows  # more layers, a worse fit of the training data
    assert plain20["train loss"] > res20["train loss"] + 0.3, rows  # the shortcuts make depth trainable
    assert plain20["total params"] == res20["total params"]  # an Add has no weights: the same network otherwise


def test_the_gradient_fades_through_plain_layers_not_through_shortcuts(made):
    grad = {r["model"]: r["gradient at the first layer"] for r in made.rows}
    assert grad["plain-20"] < grad["plain-8"] and grad["plain-20"] < 1e-2 * grad["residual-20"], grad
    answer = {a["tag"]: a["answer"] for a in made.answers()}["004:12"]
    assert f"{grad['plain-20']:.1e}" in answer and "The deeper plain net trains worse" in answer
    from kcourse import report

    again = report.Record.read(made.path)  # the folder read back, as `python -m kcourse report` and RESULTS.md do
    assert degradation.degradation(again) == answer


def test_a_residual_block_adds_its_input():
    model = degradation.build_model(2, residual=True)
    assert sum(type(layer).__name__ == "Add" for layer in model.layers) == 1
    assert sum(type(layer).__name__ == "Add" for layer in degradation.build_model(2, residual=False).layers) == 0
