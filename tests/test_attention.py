"""TP4 step 3 by experiment: the scale keeps the softmax alive, the mask makes padding harmless, heads are slices."""

import pytest

from kcourse.tasks import attention
from tests.test_notebooks import ATTENTION


@pytest.fixture(scope="module")
def made(lab_run):
    """The lab on 1,500 sentences, 3 epochs, one block of width 32 (d_k 16): the classifier learns the task."""
    return lab_run("attention", *ATTENTION).run


def test_without_the_scale_the_initial_entropy_falls_as_d_k_grows():
    rows = attention.scale_table(d_ks=(8, 32, 128), length=16)
    unscaled = [r for r in rows if not r["scaled"]]
    scaled = [r for r in rows if r["scaled"]]
    entropy = [r["entropy"] for r in unscaled]
    assert entropy[0] > entropy[1] > entropy[2], entropy
    assert unscaled[-1]["largest weight"] > 0.5 > scaled[-1]["largest weight"]  # one key takes most of the weight
    jacobian = [r["jacobian norm"] for r in unscaled]  # the gradient that reaches the scores vanishes
    assert jacobian[0] > jacobian[1] > jacobian[2] and jacobian[2] < 0.75 * scaled[-1]["jacobian norm"], jacobian
    assert max(r["entropy"] for r in scaled) - min(r["entropy"] for r in scaled) < 0.3  # the scale keeps it put


def test_the_masked_output_does_not_change_with_padding_the_unmasked_does(made):
    rows, accuracy = made.metrics["padding"], made.metrics["padding accuracy"]  # the lab's 256 validation sentences
    largest = {s: max(r["largest |d logit|"] for r in rows if r["setting"] == s) for s in accuracy}
    assert largest["right, masked"] < 1e-4, largest
    assert largest["right, no mask"] > 100 * largest["right, masked"] and largest["left, masked"] > 1e-2, largest
    assert accuracy["right, masked"] >= 0.85 and accuracy["right, masked"] > accuracy["left, masked"] + 0.1, accuracy


def test_the_causal_mask_hides_the_future():
    rows = {(r["mask"], r["positions"].split()[-1]): r["largest |d output|"] for r in attention.causal_check(length=8, changed=5)}
    assert rows[("causal", "(before)")] == 0.0  # exactly: the earlier positions never see the changed token
    assert rows[("causal", "on)")] > 1e-2 and rows[("none", "(before)")] > 1e-2


def test_one_sliced_projection_equals_separate_heads():
    heads = attention.heads_as_slices(d_model=32, n_heads=4)
    assert heads["largest difference"] < 1e-5
    assert heads["fused weights"] == heads["separate weights"] == 4 * 32 * 32


def test_the_report_answers_with_the_runs_numbers(made):
    answers = {a["tag"]: a["answer"] for a in made.answers()}
    assert set(answers) == {"001:15", "001:16", "001:3", "000:12"} and all(answers.values())
    assert f"{made.metrics['heads']['fused weights']:,}" in answers["000:12"]
    assert {"scale.png", "padding.png", "scale.csv", "padding.csv", "causal.csv", "heads.csv"} <= {p.name for p in made.path.iterdir()}
