"""The TP4 review: the shortcuts carry the gradient to the first block; GELU, LayerNorm and the residuals as options."""

import numpy as np
import pytest

from kcourse import datasets
from kcourse.tasks import blocks
from tests.test_notebooks import BLOCKS


@pytest.fixture(scope="module")
def sentences():
    return datasets.sentences(200, seed=0, max_len=32)


def deep_gradients(data, **variant):
    from kcourse.models import build_classifier

    model = build_classifier(data.vocab, 32, d_model=32, n_heads=2, n_layers=8, **variant)
    return blocks.block_gradients(model, data.x_train[:64], data.y_train[:64])


def test_the_shortcuts_carry_the_gradient_to_the_first_of_8_blocks(sentences):
    residual, plain = deep_gradients(sentences), deep_gradients(sentences, residual=False)
    assert len(residual) == len(plain) == 8
    # x + f(x): the first block gets more gradient than the last, and far more so than without the shortcut
    ratio, plain_ratio = residual[0] / residual[-1], plain[0] / plain[-1]
    assert ratio > 2 and ratio > 1.5 * plain_ratio, (residual, plain)


def test_each_variant_changes_one_piece_and_keeps_the_weights(sentences):
    from kcourse.models import build_classifier

    counts = {name: build_classifier(sentences.vocab, 32, d_model=16, n_layers=1, **v).count_params() for name, v in blocks.VARIANTS.items()}
    assert len(set(counts.values())) == 1  # the same weights: only the function changes
    relu = build_classifier(sentences.vocab, 32, d_model=16, n_layers=1, activation="relu")
    assert relu.blocks[0].get_config()["activation"] == "relu"


def test_the_run_answers_both_items_with_its_numbers(lab_run):
    run = lab_run("blocks", *BLOCKS).run
    answers = {a["tag"]: a["answer"] for a in run.answers()}
    assert answers["002:4"] and answers["002:5"]
    plain = next(g for g in run.metrics["gradients"] if g["variant"] == "no-residual")
    assert f"{plain['first']:.3g}" in answers["002:5"]
    assert np.isclose(plain["first"], plain["per block"][0])
    assert {"gradients.png", "activations.png", "gradients.csv"} <= {p.name for p in run.path.iterdir()}
