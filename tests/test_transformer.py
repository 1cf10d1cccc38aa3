"""TP4 steps 3-4: the tiny Transformer learns the European-country task; its attention maps."""

import contextlib
import io

import numpy as np
import pytest

from kcourse import cli, text
from kcourse.tasks import transformer


@pytest.fixture(scope="module")
def trained():
    import keras

    keras.utils.set_random_seed(0)
    data, vocab, corpus = transformer.load_data(2000, seed=0, max_len=32)
    model = transformer.build_model(vocab, max_len=32, d_model=32, n_heads=2, n_layers=1, learning_rate=3e-3)
    history, _ = transformer.train(model, data, epochs=5, batch_size=32, verbose=0)
    return model, vocab, corpus, history.history


def test_data_has_cls_first_and_right_padding():
    ((x, y), (x_val, y_val)), vocab, corpus = transformer.load_data(200, seed=0, max_len=32)
    assert x.shape == (160, 32) and x_val.shape == (40, 32) and x.dtype == np.int32
    assert (x[:, 0] == vocab.cls_id).all()
    lengths = (x != vocab.pad_id).sum(1)
    assert all((row[n:] == vocab.pad_id).all() for row, n in zip(x, lengths))
    assert set(np.unique(y)) == {0, 1}


def test_transformer_learns_the_task(trained):
    _, _, _, history = trained
    assert max(history["val_accuracy"]) >= 0.95, history["val_accuracy"]


def test_cls_gives_zero_attention_to_padding(trained):
    model, vocab, _, _ = trained
    ids, tokens, _, maps = transformer.attention(model, vocab, list(transformer.SENTENCES))
    for layer_maps in maps:  # (N, H, L, L)
        for k, toks in enumerate(tokens):
            n = len(toks)
            np.testing.assert_array_equal(layer_maps[k, :, 0, n:], 0.0)
            np.testing.assert_allclose(layer_maps[k, :, 0, :n].sum(-1), 1.0, rtol=1e-5)


def test_stability_is_measured_per_layer(trained):
    model, vocab, corpus, _ = trained
    rows, same, n = transformer.attention_stability(model, vocab, corpus[:300])
    assert [r["layer"] for r in rows] == [1] and n > 50
    assert 0.0 < rows[0]["TV of [CLS] row"] <= 1.0 and 0.0 < rows[0]["mean |dA|"] < 1.0
    assert 0.0 <= same <= 1.0  # the label stays; whether the prediction does is the lab's finding
    swapped = transformer.swap_capital("despite debates, tokyo remains the capital of japan", np.random.default_rng(0))
    assert "tokyo" not in swapped and any(d["capital"] in swapped for d in text.COUNTRIES.values())


def test_too_long_sentence_and_wrong_embeddings_are_lab_errors(trained, tmp_path):
    model, vocab, _, _ = trained
    with pytest.raises(cli.LabError, match="more than the maximum length 32"):
        transformer.attention(model, vocab, ["paris " * 40])
    with pytest.raises(cli.LabError, match="the embeddings have 5 rows but the vocabulary has"):
        transformer.build_model(vocab, embeddings=np.zeros((5, 50), "float32"))
    from kcourse.tasks.word2vec import load_embeddings

    bad = tmp_path / "bad.npz"
    np.savez(bad, vectors=np.zeros((5, 50)), words=np.array(vocab.itos))
    with pytest.raises(cli.LabError, match="got vectors \\(5, 50\\)"):
        load_embeddings(bad)


def test_quick_run_with_frozen_embeddings_writes_figures(tmp_path):
    vocab = text.Vocabulary.build([text.tokenize(s) for s in text.build_synthetic_corpus(500)])
    path = tmp_path / "embeddings.npz"
    vectors = np.random.default_rng(0).normal(size=(len(vocab), 16)).astype("float32")
    np.savez(path, vectors=vectors, words=np.array(vocab.itos))
    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        run = transformer.main(["--quick", "--out", str(out), "--embeddings", str(path), "--d-model", "16", "--layers", "1"])
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.json", "summary.csv", "history_sinusoidal.csv", "learning_curves.png",
            "attention_1.png", "attention_2.png", "attention_3.png", "stability.csv"} <= files, files
    assert run.file("attention_1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_too_long_sentence_on_the_command_line_stops_before_training(tmp_path):
    with pytest.raises(cli.LabError, match="more than the maximum length 32"):
        transformer.main(["--quick", "--out", str(tmp_path / "run"), "--sentence", "rome " * 40])
    assert not (tmp_path / "run").exists()


def test_missing_embeddings_file_is_a_one_line_error(tmp_path):
    from tests.test_cli import run_python

    missing = tmp_path / "nope.npz"
    result = run_python("-m", "kcourse.tasks.transformer", "--quick", "--embeddings", str(missing))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --embeddings {missing}: no such file"), lines
