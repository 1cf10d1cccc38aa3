import keras
import numpy as np
import pytest

from kcourse.layers import SkipGram
from layer_checks import jit_compile, run_layer_checks, to_numpy
from layers_reference import load


def _batch(rng, n=8, vocab=20, P=2, K=3):
    return {
        "center": rng.integers(0, vocab, n).astype("int32"),
        "pos": rng.integers(0, vocab, (n, P)).astype("int32"),
        "neg": rng.integers(0, vocab, (n, K)).astype("int32"),
    }


def _training_model(sg, P, K):
    """The lab's wrapper: a functional model whose output is the loss."""
    inputs = {
        "center": keras.Input((), dtype="int32", name="center"),
        "pos": keras.Input((P,), dtype="int32", name="pos"),
        "neg": keras.Input((K,), dtype="int32", name="neg"),
    }
    return keras.Model(inputs, sg(inputs))


def test_layer_checks(tmp_path):
    batch = _batch(np.random.default_rng(0))
    run_layer_checks(SkipGram, dict(vocab_size=20, dim=4), (batch,), (8,), tmp_path)


def test_initialisation_follows_the_course():
    sg = SkipGram(vocab_size=20, dim=4)
    sg.build()
    w_in, w_out = to_numpy(sg.in_embed.embeddings), to_numpy(sg.out_embed.embeddings)
    assert np.all(np.abs(w_in) <= 0.5 / 4) and w_in.std() > 0.04  # uniform: std 0.072
    assert np.all(w_out == 0.0)


def test_loss_matches_numpy_reference():
    case = load("skip_gram")
    sg = SkipGram(vocab_size=12, dim=4)
    sg.build()
    sg.in_embed.embeddings.assign(case["in_embed"])
    sg.out_embed.embeddings.assign(case["out_embed"])
    loss = sg({"center": case["center"], "pos": case["pos"], "neg": case["neg"]})
    np.testing.assert_allclose(to_numpy(loss), case["loss"], rtol=1e-5, atol=1e-5)
    tuple_loss = sg((case["center"], case["pos"], case["neg"]))
    np.testing.assert_allclose(to_numpy(tuple_loss), case["loss"], rtol=1e-5, atol=1e-5)
    assert len(sg.losses) == 1  # the batch mean, registered with add_loss
    np.testing.assert_allclose(to_numpy(sg.losses[0]), case["loss"].mean(), rtol=1e-5)


def test_compile_evaluate_and_fit_without_loss_or_targets():
    case = load("skip_gram")
    sg = SkipGram(vocab_size=12, dim=4, name="skip_gram")
    model = _training_model(sg, P=2, K=4)
    sg.in_embed.embeddings.assign(case["in_embed"])
    sg.out_embed.embeddings.assign(case["out_embed"])
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=jit_compile())
    x = {k: case[k] for k in ("center", "pos", "neg")}
    loss = model.evaluate(x, verbose=0, batch_size=3)
    np.testing.assert_allclose(loss, case["loss"].mean(), rtol=1e-5)
    history = model.fit(x, epochs=5, batch_size=3, verbose=0).history["loss"]
    assert history[-1] < history[0]


def test_embeddings_for_evaluation():
    sg = SkipGram(vocab_size=12, dim=4)
    sg.build()
    raw = to_numpy(sg.in_embed.embeddings)
    np.testing.assert_allclose(sg.embeddings(normalize=False), raw)
    unit = sg.embeddings()
    assert isinstance(unit, np.ndarray) and unit.shape == (12, 4)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5)
    out = sg.output_embeddings()
    assert isinstance(out, np.ndarray) and out.shape == (12, 4) and np.all(out == 0.0)


def test_invalid_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="vocab_size=0"):
        SkipGram(vocab_size=0)


def test_without_negatives_the_loss_is_the_exact_softmax():
    rng = np.random.default_rng(0)
    sg = SkipGram(vocab_size=20, dim=4)
    sg.build()
    sg.out_embed.embeddings.assign(rng.normal(size=(20, 4)).astype("float32"))  # v starts at zero: give it values
    batch = _batch(rng)
    del batch["neg"]
    u, v = to_numpy(sg.in_embed.embeddings)[batch["center"]], to_numpy(sg.out_embed.embeddings)
    logits = u @ v.T
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_p, batch["pos"], -1).sum(-1)
    np.testing.assert_allclose(to_numpy(sg(batch)), expected, rtol=1e-5)
