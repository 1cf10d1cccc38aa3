"""Lecture 000's toy tasks: the CNN fails the long-range one that the Transformer passes, and finds the local one."""

import numpy as np
import pytest

from kcourse.tasks import sequences
from tests.test_notebooks import SEQUENCES


@pytest.fixture(scope="module")
def made(lab_run):
    return lab_run("sequences", *SEQUENCES).run


def test_the_tasks_are_what_they_say():
    x, y = sequences.make_task("first-last", 400, 12, seed=3)
    assert x.shape == (400, 13) and (x[:, 0] == sequences.CLS).all() and 0.4 < y.mean() < 0.6
    np.testing.assert_array_equal(x[:, 1] == x[:, -1], y.astype(bool))
    x, y = sequences.make_task("bigram", 400, 12, seed=3)
    a, b = sequences.BIGRAM
    found = ((x[:, 1:-1] == a) & (x[:, 2:] == b)).any(1)
    np.testing.assert_array_equal(found, y.astype(bool))


def test_the_cnn_fails_the_long_range_task_the_transformer_passes(made):
    rows = {(r["kind"], r["task"]): r["val accuracy"] for r in made.rows}
    assert rows[("cnn", "first-last")] < 0.6 and rows[("transformer", "first-last")] > 0.9, rows
    assert rows[("cnn", "bigram")] > 0.9, rows  # a local pattern: the CNN finds it
    assert made.metrics["cnn receptive field"] == 5
    params = {r["kind"]: r["total params"] for r in made.rows}
    assert 0.5 < params["cnn"] / params["transformer"] < 2  # about the same budget
    answer = {a["tag"]: a["answer"] for a in made.answers()}["000:16"]
    assert f"{rows[('transformer', 'first-last')]:.3f}" in answer


def test_the_lstm_meets_the_transformer_on_its_own_task(lab_run):
    run = lab_run("sequences", "--quick", "--tasks", "european", "--models", "lstm", "transformer", "--train-size", "1500").run
    rows = {r["kind"]: r for r in run.rows}
    assert rows["lstm"]["val accuracy"] > 0.85 and rows["transformer"]["val accuracy"] > 0.85, rows  # a keyword task
    assert 0.5 < rows["lstm"]["total params"] / rows["transformer"]["total params"] < 2  # about the same budget
    answer = {a["tag"]: a["answer"] for a in run.answers()}["003:16"]
    assert f"{rows['lstm']['longest quarter']:.3f}" in answer


def test_a_dilated_cnn_of_the_same_weights_sees_the_whole_sequence_and_finds_the_long_range_match(made):
    """000:17: the CNN's second convolution dilated: its field covers [CLS] to the last symbol."""
    run = made
    rows = {r["kind"]: r for r in run.rows if r["task"] == "first-last"}
    assert rows["dilated"]["total params"] == rows["cnn"]["total params"]  # a dilation costs no weight
    fields = run.metrics["receptive fields"]
    assert fields["cnn-16"] == 5 and fields["dilated-16"] == 17  # 3 + 2 x 7: every symbol and [CLS]
    assert rows["dilated"]["val accuracy"] > rows["cnn"]["val accuracy"] + 0.2, rows
    answer = {a["tag"]: a["answer"] for a in run.answers()}["000:17"]
    assert f"{rows['dilated']['val accuracy']:.3f} dilated" in answer
