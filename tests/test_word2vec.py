"""TP4 step 2: skip-gram with negative sampling, pairs, negatives, and what the vectors know."""

import contextlib
import io
import json

import numpy as np
import pytest

from kcourse import cli, text
from kcourse.tasks import word2vec


def test_negatives_follow_unigram_to_the_075():
    counts = np.array([0, 0, 0, 1000, 300, 50, 7, 1], "float64")
    p = word2vec.noise_distribution(counts)
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(p, expected)
    draws = word2vec.sample_negatives(p, (200_000,), np.random.default_rng(0))
    freq = np.bincount(draws, minlength=len(p)) / draws.size
    assert freq[:3].sum() == 0  # special tokens are never drawn
    assert np.abs(freq - p).max() < 0.004, (freq, p)  # ~4 standard errors at most
    assert np.abs(freq - counts / counts.sum()).max() > 0.05  # and not the raw unigram


def test_pairs_stay_inside_the_window_and_the_sentence():
    flat = np.array([10, 11, 12, 13, 14, 20, 21], "int32")
    sentence = np.array([0, 0, 0, 0, 0, 1, 1])
    c, x = word2vec.skipgram_pairs(flat, sentence, window=2, shrink_window=False)
    assert len(c) == 2 * (4 + 3) + 2  # 5-word sentence: 14 pairs; 2-word sentence: 2
    pairs = set(zip(c.tolist(), x.tolist()))
    assert (10, 12) in pairs and (12, 10) in pairs and (10, 13) not in pairs
    assert not any((a < 20) != (b < 20) for a, b in pairs)  # never across sentences
    c1, _ = word2vec.skipgram_pairs(flat, sentence, window=1, shrink_window=False)
    shrunk, _ = word2vec.skipgram_pairs(flat, sentence, window=2, rng=np.random.default_rng(0))
    assert len(c1) == 10 and len(c1) <= len(shrunk) <= len(c)


def test_every_epoch_draws_new_pairs_in_the_same_number():
    corpus, tokens, vocab = word2vec.load_corpus(300, seed=0)
    flat, sentence = word2vec.encode_corpus(tokens, vocab)
    counts = np.bincount(flat, minlength=len(vocab)).astype("float64")
    data = word2vec.pair_batches(flat, sentence, counts, batch_size=64, seed=0)
    first = {k: v.copy() for k, v in data.x.items()}
    steps = data.num_batches
    data.on_epoch_end()  # what Keras calls between epochs
    assert data.num_batches == steps and len(data.x["center"]) == len(first["center"])  # Keras reads the count once
    assert (data.x["neg"] != first["neg"]).mean() > 0.5 and (data.x["center"] != first["center"]).mean() > 0.5
    batch = data[steps - 1][0]
    assert set(batch) == {"center", "pos", "neg"} and batch["neg"].shape[1] == 5 and 1 <= len(batch["center"]) <= 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from kcourse import runs

    with contextlib.redirect_stdout(io.StringIO()):
        run = runs.start("word2vec", epochs=5, batch_size=256, out=tmp_path_factory.mktemp("w2v") / "run")  # 3 epochs: 6/10 capitals by u.v on torch
        corpus, tokens, vocab = word2vec.load_corpus(2000, seed=0)
        flat, sentence = word2vec.encode_corpus(tokens, vocab)
        counts = np.bincount(flat, minlength=len(vocab)).astype("float64")
        fitted, figures = word2vec.train(run, "lr0.01", len(vocab), flat, sentence, counts, learning_rate=0.01, verbose=0)
    layer = word2vec.skip_gram_layer(fitted.model)
    u, v = layer.embeddings(normalize=False), layer.output_embeddings()
    return run, vocab, u, v, fitted, figures


def test_loss_goes_down_and_vectors_grow(trained):
    run, vocab, u, _, fitted, figures = trained
    assert fitted.history["loss"][-1] < 0.85 * fitted.history["loss"][0], fitted.history["loss"]
    assert word2vec.mean_norm(u, vocab) > 10 * figures["|u| before"]
    first, last = figures["curve"][:20, 1].mean(), figures["curve"][-20:, 1].mean()  # per-batch losses
    assert last < 0.85 * first and figures["curve"][-1, 0] == pytest.approx(5.0)  # the fixture's 5 epochs


def test_capitals_go_with_their_country_by_u_dot_v(trained):
    _, vocab, u, v, _, _ = trained
    ranking = word2vec.cooccurrence_countries(u, v, vocab)
    own_first = sum(ranking[d["capital"]][0][0] == c for c, d in text.COUNTRIES.items())
    assert own_first >= 8, {cap: r[0][0] for cap, r in ranking.items()}


def test_capitals_nearest_cosine_neighbours_are_capitals(trained):
    _, vocab, u, v, _, _ = trained
    result = word2vec.evaluate(u, v, vocab, probes=["paris"])
    assert result["capital neighbours that are capitals"] >= 0.7, result["neighbours"]
    assert result["family analogies"] >= 4, result["family wrong"]  # of 12


def test_the_saved_model_reloads_with_the_same_vectors(trained):
    import keras

    run, vocab, u, v, fitted, _ = trained
    layer = word2vec.skip_gram_layer(keras.saving.load_model(run.file("lr0.01.keras")))
    np.testing.assert_array_equal(layer.embeddings(normalize=False), u)
    np.testing.assert_array_equal(layer.output_embeddings(), v)
    from kcourse.runs import read_history

    assert read_history(run.file("history_lr0.01.csv")) == {"loss": fitted.history["loss"]} and len(fitted.history["loss"]) == 5


def test_unknown_words_are_lab_errors(trained):
    _, vocab, u, _, _, _ = trained
    with pytest.raises(cli.LabError, match="'atlantis' is not in the vocabulary"):
        word2vec.nearest(u, vocab, "atlantis")
    with pytest.raises(cli.LabError, match="analogy king:queen::emperor:\\? uses 'emperor'"):
        word2vec.analogy(u, vocab, "king", "queen", "emperor")


def test_quick_run_trains_one_variant_per_learning_rate(tmp_path):
    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        run = word2vec.main(["--quick", "--out", str(out), "--learning-rate", "0.01", "0.001"])
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.json", "summary.csv", "loss.png", "projection.png", "embeddings.npz",
            "history_lr0.01.csv", "history_lr0.001.csv", "lr0.01.keras", "lr0.001.keras"} <= files, files
    for png in ("loss.png", "projection.png"):
        assert run.file(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads(run.file("metrics.json").read_text())
    assert metrics["corpus"]["sentences"] == 2000
    fast, slow = metrics["lr0.01"], metrics["lr0.001"]
    assert fast["loss"] < slow["loss"] and fast["|u| after"] > 2 * slow["|u| after"]  # one epoch: the larger rate goes further (x2.6 to x4 by backend)
    assert fast["|u| before"] == slow["|u| before"]  # the same seed, the same start
    vectors, vocab = word2vec.load_embeddings(out / "embeddings.npz")
    assert vectors.shape == (len(vocab), 50) and vocab.itos[:3] == list(text.SPECIALS)


def test_unknown_probe_is_a_one_line_error():
    from tests.test_cli import run_python

    result = run_python("-m", "kcourse.tasks.word2vec", "--quick", "--probe", "atlantis")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 'atlantis' is not in the vocabulary"), lines
