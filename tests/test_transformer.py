"""TP4 steps 3-4: the tiny Transformer learns the European-country task; its attention maps; its weight count."""

import csv

import numpy as np
import pytest

from kcourse import cli, parameters, text
from kcourse.models import build_classifier
from kcourse.tasks import transformer


@pytest.fixture(scope="module")
def made(lab_run):
    """The lab on 2,000 sentences, 5 epochs, a one-block model of width 32: it learns the task."""
    return lab_run("transformer", "--quick", "--sentences", "2000", "--epochs", "5", "--d-model", "32", "--layers", "1",
                   "--learning-rate", "3e-3", "--batch-size", "32", "--models", "sinusoidal", "scratch").run


@pytest.fixture(scope="module")
def trained(made):
    run = made
    data = run.outputs["data"]
    return run.fitted["sinusoidal"].model, data.vocab, data.corpus, data


def test_data_has_cls_first_and_right_padding():
    data = transformer.load_data(200, seed=0, max_len=32)
    x, vocab = data.x_train, data.vocab
    assert x.shape == (160, 32) and data.x_val.shape == (40, 32) and x.dtype == np.int32
    assert (x[:, 0] == vocab.cls_id).all()
    lengths = (x != vocab.pad_id).sum(1)
    assert all((row[n:] == vocab.pad_id).all() for row, n in zip(x, lengths))
    assert set(np.unique(data.y_train)) == {0, 1}
    # the validation sentences are the ones encoded in x_val, in order
    np.testing.assert_array_equal(vocab.encode_batch(data.val_sentences, 32), data.x_val)


def test_transformer_learns_the_task_well_above_the_majority_rate(trained):
    model, _, _, data = trained
    scores = transformer.evaluate(model, data)
    accuracy, majority = scores["val accuracy"], scores["majority rate"]
    assert 0.5 <= majority < 0.8  # both classes are common: "always the commoner one" is a weak baseline
    assert accuracy >= 0.95 and accuracy - majority >= 0.15, (accuracy, majority)


def test_the_default_reads_word2vec_vectors_trained_first_and_keeps_them_frozen(made):
    """001:21: no --embeddings, so word2vec runs first on the training sentences; its table stays bit-identical."""
    run = made
    rows = {r["model"]: r for r in run.rows}
    vectors, vocab = text.load_embeddings(run.file("embeddings.npz"))
    model = run.fitted["sinusoidal"].model
    assert vocab.itos == run.outputs["data"].vocab.itos and vectors.shape == (len(vocab), transformer.EMBEDDING_DIM)
    np.testing.assert_array_equal(model.embed.embeddings.numpy(), vectors)  # frozen: not one bit moved
    assert not model.embed.trainable and rows["sinusoidal"]["table unchanged"] is True
    assert rows["sinusoidal"]["total params"] - rows["sinusoidal"]["trainable params"] == vectors.size
    assert run.fitted["scratch"].model.embed.trainable and rows["scratch"]["embeddings"] == "learnt from scratch"
    assert "word2vec" in run.fitted and run.fitted["word2vec"].history["loss"][-1] < run.fitted["word2vec"].history["loss"][0]
    answer = {a["tag"]: a["answer"] for a in run.answers()}["001:21"]
    assert f"{rows['sinusoidal']['trainable params']:,} trainable" in answer and f"{rows['scratch']['val accuracy']:.3f}" in answer


def test_cls_gives_zero_attention_to_padding(trained):
    model, vocab, _, _ = trained
    ids, tokens, _, maps = transformer.attention(model, vocab, list(transformer.SENTENCES))
    for layer_maps in maps:  # (N, H, L, L)
        for k, toks in enumerate(tokens):
            n = len(toks)
            np.testing.assert_array_equal(layer_maps[k, :, 0, n:], 0.0)
            np.testing.assert_allclose(layer_maps[k, :, 0, :n].sum(-1), 1.0, rtol=1e-5)


def _capital(sentence):
    capitals = {d["capital"] for d in text.COUNTRIES.values()}
    return next(w.strip(text.PUNCTUATION) for w in sentence.split() if w.strip(text.PUNCTUATION) in capitals)


def test_swapping_a_capital_moves_the_attention_and_shows_the_capital_shortcut(made, trained, monkeypatch):
    """The label depends on the country only, so the swap keeps it; the model with embeddings learnt from scratch
    also reads the capital (frozen word2vec vectors put the capitals together, and may leave it no such cue).

    Every corpus sentence with a capital names its country too: the capital is a
    redundant cue. A capital swapped for one on the same side of Europe's border
    never changes the prediction; one swapped across it sometimes does.
    """
    _, vocab, corpus, _ = trained
    model = made.fitted["scratch"].model
    rows, same, n = transformer.attention_stability(model, vocab, corpus[:300])
    assert [r["layer"] for r in rows] == [1] and n > 50
    assert rows[0]["TV of [CLS] row"] > 0.005 and rows[0]["mean |dA|"] > 0  # the maps do move

    assert 0.5 < same <= 1.0  # most swaps keep the prediction
    rng = np.random.default_rng(7)  # pairs of this test's own
    pairs = [(s, t) for s in corpus[:600] if (t := transformer.swap_capital(s, rng)) is not None]
    assert all(text.label_from_sentence(s) == text.label_from_sentence(t) for s, t in pairs)  # label-preserving
    _, _, before, _ = transformer.attention(model, vocab, [s for s, _ in pairs])
    _, _, after, _ = transformer.attention(model, vocab, [t for _, t in pairs])
    flipped = before.argmax(-1) != after.argmax(-1)
    european = {text.COUNTRIES[c]["capital"] for c in text.EUROPEAN_COUNTRIES}
    across = np.array([(_capital(s) in european) != (_capital(t) in european) for s, t in pairs])
    assert flipped[~across].mean() <= 0.02 and flipped[across].mean() >= 0.05, (flipped[~across].mean(), flipped[across].mean())

    swapped = transformer.swap_capital("despite debates, tokyo remains the capital of japan", np.random.default_rng(0))
    assert "tokyo" not in swapped and any(d["capital"] in swapped for d in text.COUNTRIES.values())
    # the measure itself: an unchanged sentence moves nothing
    monkeypatch.setattr(transformer, "swap_capital", lambda sentence, rng: sentence)
    rows, same, _ = transformer.attention_stability(model, vocab, corpus[:50])
    assert rows[0]["TV of [CLS] row"] == 0 and rows[0]["mean |dA|"] == 0 and same == 1


@pytest.mark.parametrize("d_model, n_heads, mlp_ratio, pe", [(64, 2, 2.0, "sinusoidal"), (64, 4, 4, "learned"), (48, 3, 1.5, "sinusoidal")])
def test_parameter_formulas_equal_keras_count_params(d_model, n_heads, mlp_ratio, pe):
    rows = parameters.transformer_formulas(d_model, n_heads, mlp_ratio, n_layers=2, vocab_size=100, max_len=16, pe=pe)
    assert [set(r) for r in rows] == [{"part", "formula", "computed", "keras count_params"}] * len(rows)
    for row in rows:
        assert row["computed"] == row["keras count_params"], row
    attention = [r for r in rows if r["part"].startswith("MultiHeadSelfAttention") and "use_bias" not in r["part"]]
    assert {r["computed"] for r in attention} == {4 * d_model**2}  # one head or several: the same weights
    block = next(r for r in rows if r["part"].startswith("EncoderBlock"))
    hidden = int(mlp_ratio * d_model)
    assert block["computed"] == 4 * d_model**2 + 2 * d_model * hidden + hidden + 5 * d_model


def test_too_long_sentence_and_wrong_embeddings_are_lab_errors(trained, tmp_path):
    model, vocab, _, _ = trained
    with pytest.raises(cli.LabError, match="more than the maximum length 32"):
        transformer.attention(model, vocab, ["paris " * 40])
    with pytest.raises(cli.LabError, match="the embeddings have 5 rows but the vocabulary has"):
        build_classifier(vocab, embeddings=np.zeros((5, 50), "float32"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, vectors=np.zeros((5, 50)), words=np.array(vocab.itos))
    with pytest.raises(cli.LabError, match="got vectors \\(5, 50\\)"):
        text.load_embeddings(bad)


@pytest.fixture(scope="module")
def cli_run(lab_run):
    """The TP4 notebook's runs: word2vec, then `--models sinusoidal learned` on its vectors, frozen."""
    from tests.test_notebooks import TRANSFORMER, W2V

    w2v = lab_run("word2vec", *W2V).run
    run = lab_run("transformer", *TRANSFORMER, "--embeddings", str(w2v.file("embeddings.npz"))).run
    vectors, _ = text.load_embeddings(w2v.file("embeddings.npz"))
    return run, {name: fitted.model for name, fitted in run.fitted.items()}, vectors


def test_word2vec_embeddings_stay_frozen_through_the_command_line(cli_run):
    import keras

    run, models, vectors = cli_run
    assert list(models) == ["sinusoidal", "learned"]
    for pe, model in models.items():
        assert not model.embed.trainable and model.proj is not None  # 50 -> d_model 64: a trained projection
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.embed.embeddings), vectors, err_msg=pe)
        assert all("embed" not in w.path for w in model.trainable_weights)


def test_each_saved_model_reloads_with_the_same_predictions(cli_run):
    import keras

    run, models, vectors = cli_run
    ids = np.random.default_rng(1).integers(3, len(vectors), (8, 32)).astype("int32")
    ids[:, 0] = 2  # [CLS]
    ids[:, 20:] = 0  # padding
    for pe, model in models.items():
        loaded = keras.saving.load_model(run.file(f"{pe}.keras"))
        assert loaded.pe == pe and not loaded.embed.trainable
        np.testing.assert_allclose(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.embed.embeddings), vectors)


def test_the_run_reports_the_summary_attention_and_parameter_formulas(cli_run, lab_run):
    run = cli_run[0]
    with open(run.file("summary.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["sinusoidal", "learned"]
    assert {"val accuracy", "majority rate", "s / epoch", "samples / s", "device"} <= set(rows[0])
    with open(run.file("parameters.csv")) as f:
        formulas = list(csv.DictReader(f))
    assert formulas and all(r["computed"] == r["keras count_params"] for r in formulas)
    assert formulas[-1]["keras count_params"] == str(run.metrics["sinusoidal"]["total params"])  # the very model trained
    from tests.test_notebooks import TRANSFORMER, W2V

    stdout = lab_run("transformer", *TRANSFORMER, "--embeddings", str(lab_run("word2vec", *W2V).run.file("embeddings.npz"))).stdout
    assert "4 d^2" in stdout and "TV of the [CLS] row" in stdout
    assert {f"attention_{k}.png" for k in (1, 2, 3)} <= {p.name for p in run.path.iterdir()}  # one per sentence


def test_too_long_sentence_on_the_command_line_stops_before_the_run_folder(tmp_path):
    with pytest.raises(cli.LabError, match="more than the maximum length 32"):
        transformer.main(["--quick", "--out", str(tmp_path / "run"), "--sentence", "rome " * 40])
    assert not (tmp_path / "run").exists()


def test_the_heads_look_at_the_words_the_task_needs_and_never_at_padding(made):
    rows = made.metrics["head roles"]
    assert len(rows) == 2 and all(r["[PAD] share"] == 0 for r in rows)  # the mask: exactly none on [PAD]
    # the label depends on the country: some head prefers countries or capitals, well above their share of the tokens
    assert max(max(r["country"], r["capital"]) for r in rows) > 2, rows
    assert "1.0x" not in {a["tag"]: a["answer"] for a in made.answers()}["001:28"]


def test_a_most_attended_word_that_is_not_the_most_influential_is_found_and_checked(made):
    found = made.metrics["attention vs influence"]
    assert found["examples"] and found["agree"] < 1
    model = made.fitted["sinusoidal"].model
    vocab = made.outputs["data"].vocab
    ex = found["examples"][0]
    assert ex["most attended"] != ex["most influential"] and ex["influence"] > ex["attended word's influence"]
    words = ex["words"]
    k = words.index(ex["most influential"])
    logits, _ = model.logits_and_attention(vocab.encode_batch([ex["sentence"], " ".join(words[:k] + words[k + 1:])], 32))
    c = logits[0].argmax()
    assert logits[0, c] - logits[1, c] == pytest.approx(ex["influence"], abs=1e-4)  # the recorded influence, recomputed


def test_the_queries_and_keys_shown_make_the_attention_maps(made):
    model, vocab = made.fitted["sinusoidal"].model, made.outputs["data"].vocab
    sentence = made.outputs["data"].val_sentences[0]
    qkv, kinds = transformer.queries_keys_values(model, vocab, [sentence])
    n, heads = len(kinds), model.n_heads
    assert kinds[0] == "[CLS]" and qkv["Q"].shape == (n, model.d_model)
    d = model.d_model // heads
    _, _, _, maps = transformer.attention(model, vocab, [sentence])
    for h in range(heads):
        q, k = qkv["Q"][:, h * d:(h + 1) * d], qkv["K"][:, h * d:(h + 1) * d]
        scores = q @ k.T / np.sqrt(d)
        a = np.exp(scores - scores.max(-1, keepdims=True))
        np.testing.assert_allclose(a / a.sum(-1, keepdims=True), maps[0][0, h, :n, :n], atol=1e-5)
    assert 0 < made.metrics["qkv by kind"]["K"] < 1 and "qkv.png" in {p.name for p in made.path.iterdir()}
