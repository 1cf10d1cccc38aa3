"""TP4 step 2: skip-gram with negative sampling, pairs, negatives, and what the vectors know."""

import json

import numpy as np
import pytest

from kcourse import cli, text
from kcourse.tasks import word2vec


def test_negatives_follow_unigram_to_the_075():
    counts = np.array([0, 0, 0, 1000, 300, 50, 7, 1], "float64")
    p = word2vec.noise_distribution(counts)
    raw = counts / counts.sum()
    assert p.sum() == pytest.approx(1.0) and (p[:3] == 0).all()
    assert p[3] < raw[3] and p[7] > 2 * raw[7]  # the power 0.75 flattens: the commonest word less, the rarest more
    assert p[3] / p[7] == pytest.approx(177.8, rel=1e-3)  # 1000 times as frequent, 178 times as often drawn
    draws = word2vec.sample_negatives(p, (200_000,), np.random.default_rng(0))
    freq = np.bincount(draws, minlength=len(p)) / draws.size
    assert freq[:3].sum() == 0  # special tokens are never drawn
    assert np.abs(freq - p).max() < 0.004, (freq, p)  # ~4 standard errors at most
    assert np.abs(freq - raw).max() > 0.05  # and not the raw unigram


def test_pairs_stay_inside_the_window_and_the_sentence():
    flat = np.array([10, 11, 12, 13, 14, 20, 21], "int32")
    sentence = np.array([0, 0, 0, 0, 0, 1, 1])
    c, x = word2vec.skipgram_pairs(flat, sentence, window=2, shrink_window=False)
    assert len(c) == 2 * (4 + 3) + 2  # 5-word sentence: 14 pairs; 2-word sentence: 2
    pairs = set(zip(c.tolist(), x.tolist()))
    assert (10, 12) in pairs and (12, 10) in pairs and (10, 13) not in pairs
    assert not any((a < 20) != (b < 20) for a, b in pairs)  # never across sentences
    c1, _ = word2vec.skipgram_pairs(flat, sentence, window=1, shrink_window=False)
    shrunk, _ = word2vec.skipgram_pairs(flat, sentence, window=2, rng=np.random.default_rng(0), shrink_window=True)
    assert len(c1) == 10 and len(c1) <= len(shrunk) <= len(c)


def test_the_handouts_dataset_groups_p_contexts_of_one_centre_with_shared_negatives():
    """001:13: SGDataset's examples, each a centre with P = 2 of its own contexts and K = 5 negatives."""
    flat = np.array([10, 11, 12, 13, 14, 20, 21], "int32")
    sentence = np.array([0, 0, 0, 0, 0, 1, 1])
    centers, contexts = word2vec.skipgram_pairs(flat, sentence, window=2)
    own = {c: set(contexts[centers == c].tolist()) for c in set(centers.tolist())}
    grouped, pos = word2vec.group_by_center(centers, contexts, positives=2, rng=np.random.default_rng(1))
    assert pos.shape == (len(grouped), 2)
    assert sorted(grouped.tolist()) == sorted(c for c, ctx in own.items() for _ in range(-(-int((centers == c).sum()) // 2)))
    assert all(set(p.tolist()) <= own[c] for c, p in zip(grouped.tolist(), pos))  # a centre's own contexts only
    counts = np.bincount(flat, minlength=22).astype("float64")
    x = word2vec.epoch_data(flat, sentence, counts, rng=np.random.default_rng(0))  # the lab's default: P = 2, K = 5
    assert x["pos"].shape == (len(x["center"]), 2) and x["neg"].shape == (len(x["center"]), 5)
    assert len(x["center"]) == 10  # 16 pairs: 10 has 2 (1 example), 11 3 (2), 12 4 (2), 13 3 (2), 14 2, 20 1 and 21 1
    plain = word2vec.epoch_data(flat, sentence, counts, rng=np.random.default_rng(0), positives=1, sample=1e-3)
    assert plain["pos"].shape[1] == 1 and len(plain["center"]) < 16  # one pair per example; subsampling drops tokens


def test_every_epoch_draws_new_pairs_in_the_same_number():
    corpus, tokens, vocab = text.load_corpus(300, seed=0)
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
    assert batch["pos"].shape[1] == 2  # P = 2 contexts per centre, the handout's grouping


W2V = ("--quick", "--epochs", "5", "--batch-size", "128", "--models", "skip-gram", "lr/10")  # the TP4 notebook's run


@pytest.fixture(scope="module")
def quick_run(lab_run):
    """The lab's quick run with both learning rates, 5 epochs of batches of 256 (3 gave 6/10 capitals by u.v on torch)."""
    return lab_run("word2vec", *W2V).run


@pytest.fixture(scope="module")
def trained(quick_run):
    run = quick_run
    fitted = run.fitted["skip-gram"]
    u, v = word2vec.vectors(fitted.model)
    return run, run.outputs["vocab"], u, v, fitted, {"curve": run.outputs["curves"]["skip-gram"], "|u| before": run.metrics["skip-gram"]["|u| before"]}


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
    result = word2vec.evaluate((u, v), vocab, probes=["paris"])
    assert result["capital neighbours that are capitals"] >= 0.7, result["neighbours"]
    assert result["family analogies"] >= 4, result["family wrong"]  # of 12


def test_the_saved_model_reloads_with_the_same_vectors(trained):
    import keras

    run, vocab, u, v, fitted, _ = trained
    layer = word2vec.skip_gram_layer(keras.saving.load_model(run.file("skip-gram.keras")))
    np.testing.assert_array_equal(layer.embeddings(normalize=False), u)
    np.testing.assert_array_equal(layer.output_embeddings(), v)
    from kcourse.runs import read_history

    history = read_history(run.file("history_skip-gram.csv"))
    assert history == {"loss": fitted.history["loss"], "val_loss": fitted.history["val_loss"]} and len(history["loss"]) == 5


def test_unknown_words_are_lab_errors(trained):
    _, vocab, u, _, _, _ = trained
    with pytest.raises(cli.LabError, match="'atlantis' is not in the vocabulary"):
        word2vec.nearest(u, vocab, "atlantis")
    with pytest.raises(cli.LabError, match="analogy king:queen::emperor:\\? uses 'emperor'"):
        word2vec.analogy(u, vocab, "king", "queen", "emperor")


def test_a_tenth_of_the_learning_rate_goes_a_shorter_way(quick_run):
    run = quick_run
    files = {p.name for p in run.path.iterdir()}
    assert {"config.json", "metrics.json", "summary.csv", "loss.png", "projection.png", "embeddings.npz",
            "history_skip-gram.csv", "history_lr-10.csv", "skip-gram.keras", "lr-10.keras"} <= files, files  # file-safe names
    metrics = json.loads(run.file("metrics.json").read_text())
    assert metrics["corpus"]["sentences"] == 2000
    fast, slow = metrics["skip-gram"], metrics["lr/10"]
    assert slow["learning rate"] == pytest.approx(fast["learning rate"] / 10)
    assert fast["loss"] < slow["loss"] and fast["|u| after"] > 1.2 * slow["|u| after"]  # the larger rate goes further
    assert fast["|u| before"] == slow["|u| before"]  # the same seed, the same start
    vectors, vocab = text.load_embeddings(run.file("embeddings.npz"))
    assert vectors.shape == (len(vocab), 50) and vocab.itos[:3] == list(text.SPECIALS)


def test_sampling_more_negatives_steadies_the_loss_and_the_exact_softmax_trains(lab_run):
    """001:6 at a small size: k = 1, 15 and the exact softmax, everything else equal."""
    run = lab_run("word2vec", "--quick", "--epochs", "2", "--batch-size", "256", "--models", "k=1", "k=15", "softmax",
                  "weight decay").run
    rows = {r["model"]: r for r in run.rows}
    assert rows["k=1"]["step-to-step"] > rows["k=15"]["step-to-step"], rows  # more negatives, a steadier loss
    assert rows["softmax"]["negatives"] == "softmax" and rows["softmax"]["loss"] < rows["softmax"]["P"] * np.log(len(run.outputs["vocab"]))  # below uniform, for P contexts
    answer = {a["tag"]: a["answer"] for a in run.answers()}["001:6"]
    assert f"k=1 {rows['k=1']['step-to-step']:.3f}" in answer
    assert run.fitted["weight decay"].model.optimizer.weight_decay == 0.01  # 001:10's regulariser, measured beside
    assert "With weight decay" in {a["tag"]: a["answer"] for a in run.answers()}["001:10"]


def test_grouping_by_centre_halves_the_examples_and_each_habit_is_measured_once(lab_run):
    """001:13 at a small size: the handout's grouping (P = 2) against one pair per example, subsampling and the
    shrinking window, everything else equal."""
    run = lab_run("word2vec", "--quick", "--batch-size", "256", "--models", "skip-gram", "P=1", "subsample",
                  "shrinking window").run
    rows = {r["model"]: r for r in run.rows}
    grouped, plain = rows["skip-gram"]["examples / epoch"], rows["P=1"]["examples / epoch"]
    assert 1.8 < plain / grouped < 2.1, (plain, grouped)  # P = 2 contexts an example: about half as many examples
    assert rows["subsample"]["examples / epoch"] < 0.9 * grouped  # frequent words dropped
    assert rows["shrinking window"]["examples / epoch"] < 0.9 * grouped  # windows of 1 or 2 instead of 2
    assert run.config["sample"] == 0 and not run.config["shrink_window"]  # both off by default
    answer = {a["tag"]: a["answer"] for a in run.answers()}["001:13"]
    assert f"{grouped:,} examples" in answer and f"{plain:,} examples" in answer and "keeps" in answer


def test_a_wider_window_makes_more_and_farther_pairs(trained):
    run = trained[0]
    windows = {w["window"]: w for w in run.metrics["windows"]}
    assert windows[1]["share by distance"] == [1.0]
    assert windows[1]["pairs"] < windows[2]["pairs"] < windows[5]["pairs"]
    assert windows[5]["share by distance"][0] > windows[5]["share by distance"][-1]  # sentence ends cut the far pairs
    answers = {a["tag"]: a["answer"] for a in run.answers()}
    assert answers["001:5"] and answers["001:10"] and "held-out loss" in answers["001:10"]


def test_the_larger_learning_rate_reaches_the_stated_loss_in_fewer_steps(trained):
    run = trained[0]
    rows = {r["model"]: r for r in run.rows}
    target = 1.05 * max(rows["skip-gram"]["loss"], rows["lr/10"]["loss"])
    fast, slow = (word2vec.steps_to(run.metrics[f"{name} curve"], target) for name in ("skip-gram", "lr/10"))
    assert fast is not None and (slow is None or fast < slow), (fast, slow)
    assert f"{fast:,} steps" in {a["tag"]: a["answer"] for a in run.answers()}["001:9"]
