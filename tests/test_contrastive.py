"""Lecture 004's CLIP trained from scratch: zero-shot on pairs never seen together, text-to-patch maps."""

import numpy as np
import pytest

from kcourse import cli
from kcourse.tasks import contrastive


@pytest.fixture(scope="module")
def made(lab_run):
    return lab_run("contrastive", "--quick").run  # 4,000 captioned pairs, 6 epochs (the lectures notebook's run)


def test_the_tiny_clip_names_pairs_it_never_saw_together_and_the_supervised_classifier_cannot(made):
    """004:26: no label, only captions; the 9 held-out pairs are named from their prompts among 45 (chance 2.2%)."""
    scores = made.metrics["zero-shot"]
    assert scores["zero-shot held out"] > 0.25 > 10 / len(contrastive.PAIRS), scores  # above ten times chance
    assert scores["supervised held out"] == 0.0  # no output for a pair it has no label for
    answer = next(a["answer"] for a in made.answers() if a["tag"] == "004:26")
    assert f"{scores['zero-shot held out']:.1%} of their" in answer and "chance 2.2%" in answer
    held = made.outputs["held"]
    assert held.sum() == scores["held-out images"] and set(np.unique(made.outputs["true"][held])) == {
        contrastive.PAIRS.index(p) for p in contrastive.HELD_OUT}


def test_the_text_to_patch_map_peaks_on_the_digit_named(made):
    """004:30: "a seven" against each patch finds the half where the seven is, though no caption said where."""
    scores = made.metrics["zero-shot"]
    assert scores["map on the digit"] > 0.7, scores
    maps = made.outputs["maps"]
    assert maps.shape == (len(made.outputs["x_held"]), 2, 3, 6)  # the 12 x 24 canvas in 4 x 4 patches
    assert contrastive.found_where(maps) == scores["map on the digit"]
    assert "patch_maps.png" in next(a["answer"] for a in made.answers() if a["tag"] == "004:30")


def test_the_saved_tiny_clip_reloads_to_the_same_logits(made):
    import keras

    import kcourse.models  # noqa: F401 (registers the loss and the layers)

    x, digits = made.outputs["x_held"][:8], made.outputs["digits_held"][:8]
    inputs = {"image": x, "text": contrastive.tokenize([contrastive.caption(a, b) for a, b in digits])}
    loaded = keras.saving.load_model(made.file("tiny-clip.keras"))
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), made.outputs["model"].predict(inputs, verbose=0), atol=1e-5)


def test_the_loss_is_the_symmetric_cross_entropy_and_repeated_captions_share_their_target():
    import keras

    from kcourse.models import contrastive_loss

    rng = np.random.default_rng(0)
    logits, ids = rng.standard_normal((4, 4)).astype("float32"), np.array([7, 3, 7, 1])

    def cross_entropy(z, target):
        z = z - z.max(axis=1, keepdims=True)
        return -(target * (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))).sum(axis=1)

    same = (ids[:, None] == ids[None, :]).astype("float32")
    target = same / same.sum(axis=1, keepdims=True)  # the two captions 7 share: 1/2 each
    expected = (cross_entropy(logits, target) + cross_entropy(logits.T, target)) / 2
    got = keras.ops.convert_to_numpy(contrastive_loss(ids, logits))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    distinct = keras.ops.convert_to_numpy(contrastive_loss(np.arange(4), logits))
    np.testing.assert_allclose(distinct, (cross_entropy(logits, np.eye(4)) + cross_entropy(logits.T, np.eye(4))) / 2, rtol=1e-5)


def test_captions_and_pairs():
    assert contrastive.caption(3, 7) == "a three and a seven" and contrastive.caption(7) == "a seven"
    assert len(contrastive.PAIRS) == 45 and len(contrastive.HELD_OUT) == 9 and len(contrastive.SEEN) == 36
    assert {d for p in contrastive.SEEN for d in p} == set(range(10))  # every digit is seen, in other pairs
    ids = contrastive.tokenize(["a three and a seven", "a one"])
    assert ids.shape == (2, contrastive.MAX_LEN) and ids[1, 2:].tolist() == [0, 0, 0]
    assert contrastive.pair_index(np.array([[7, 3], [3, 7]])).tolist() == [contrastive.PAIRS.index((3, 7))] * 2
    with pytest.raises(cli.LabError, match="'a dog'"):
        contrastive.tokenize(["a dog"])
