"""TP4 part 1, steps 1-2: Word2Vec skip-gram with negative sampling on the synthetic corpus.

Step 1 builds the course's corpus (20,000 sentences about countries, capitals,
currencies and family words), tokenizes it and prints the vocabulary size,
the token counts with and without case/punctuation sensitivity and the class
balance of the European-country task. Step 2 trains the `SkipGram` layer
(input vectors u, output vectors v) on the handout's dataset: the (centre,
context) pairs of a window of +-2 words grouped by centre word, each example
a centre with P = 2 of its contexts and K = 5 negatives from unigram^0.75
shared by them, re-drawn at every epoch. Word2vec's subsampling of frequent
words (--sample) and shrinking window (--shrink-window) are off unless asked.

    python -m kcourse.tasks.word2vec                  # 20,000 sentences, 5 epochs
    python -m kcourse.tasks.word2vec --quick          # a smoke run in seconds
    python -m kcourse.tasks.word2vec --models skip-gram lr/10   # two learning rates, one figure
    python -m kcourse.tasks.word2vec --probe paris --analogy king queen man

Which metric evaluates the embeddings? Two answer different questions.
Cosine similarity of input vectors (u.u) groups words that fill the same
slots: a capital's nearest neighbours are the other capitals, because every
capital appears in the same templates. The co-occurrence score u_w . v_x
(input vector against output vector) is what skip-gram actually fits: it is
high when x appears near w, so a capital's own country comes first. Analogies
(b - a + c) need relations that the corpus repeats with many different
words: the family pairs (king:queen::actor:actress) are right most of the
time, capital analogies (paris - france + japan = tokyo) almost never, since
each country/capital pair is a relation of its own, seen only through co-occurrence.

The variants (--models), each one change to the options as given: "skip-gram"
(none), "lr/10" (a tenth of --learning-rate), "k=1" and "k=15" (negatives),
"softmax" (no sampling: the exact softmax over the vocabulary), "window=1" and
"window=5", "weight decay" (AdamW, one regulariser), "P=1" (one pair per
example, word2vec's own way), "subsample" (t = 1e-3) and "shrinking window".
The last 10% of the sentences are held out: their examples give a validation
loss every epoch (does it overfit?). The run folder gets config.json,
history_<variant>.csv and <variant>.keras per variant (keras.saving.load_model;
file-safe names: lr-10 for lr/10), metrics.json, summary.csv, the per-batch
loss curve, windows.png (the pairs a window makes), the 2-D PCA projection and `embeddings.npz` (`vectors`, `words`,
`output_vectors`, from the first variant), which
`python -m kcourse.tasks.transformer --embeddings PATH` loads.
"""


import numpy as np

from kcourse import cli, runs, skipgram, text
from kcourse.report import Item, plural

main = cli.lab_main(__name__)  # python -m kcourse.tasks.word2vec: build_parser(), then run_lab(args)

PROBES = ("paris", "france", "euro", "king", "doctor")
PARITY = {"loss": 0.05, "cos caps": 0.15}  # the pairs are drawn alike; the vectors' geometry varies with float rounding
KEY_FIGURES = ("loss", "projection")
# The variants --models compares: each one a change to the options given, everything else equal.
VARIANTS = {
    "skip-gram": {},
    "lr/10": {"learning_rate": 0.1},  # a factor on --learning-rate: how the rate changes the convergence
    "k=1": {"negatives": 1},  # how many negatives (001:6)
    "k=15": {"negatives": 15},
    "softmax": {"negatives": 0},  # no sampling: the exact softmax over the vocabulary
    "window=1": {"window": 1},  # how wide a context (001:5)
    "window=5": {"window": 5},
    "weight decay": {"weight_decay": 0.01},  # one regulariser (001:10): AdamW's decoupled decay on both tables
    "P=1": {"positives": 1},  # the handout's grouping against one pair per example (001:13)
    "subsample": {"sample": 1e-3},  # word2vec's habits, off by default, each compared once
    "shrinking window": {"shrink_window": True},
}
CLASS_SIZE = ("--models", *VARIANTS)  # RESULTS.md: every variant
WINDOWS = (1, 2, 5)  # the pair distributions drawn (001:5)
HELD_OUT = 0.1  # the share of sentences whose pairs measure overfitting (001:10)
CATEGORIES = text.CATEGORIES  # the kinds of words, coloured in the projection


# ---------------------------------------------------------------- step 1: corpus
def corpus_stats(corpus, vocab):
    """The figures step 1 asks for: vocabulary, token counts under each tokenizer, class balance."""
    stats = {"sentences": len(corpus), "vocabulary (with 3 special tokens)": len(vocab)}
    for lower in (True, False):
        for strip in (True, False):
            n, distinct = text.token_counts(corpus, lower, strip)
            key = f"{'lower' if lower else 'cased'}, {'punct stripped' if strip else 'punct kept'}"
            stats[f"tokens ({key})"] = n
            stats[f"distinct tokens ({key})"] = distinct
    positives = sum(text.label_from_sentence(s) for s in corpus)
    stats["European-country sentences"] = positives
    stats["European share"] = positives / max(len(corpus), 1)
    return stats


def encode_corpus(tokens, vocab):
    """The corpus as one flat id array and the sentence index of each token."""
    ids = [vocab.encode(t) for t in tokens]
    lengths = np.array([len(t) for t in ids])
    flat = np.concatenate(ids).astype("int32") if ids else np.zeros(0, "int32")
    return flat, np.repeat(np.arange(len(ids)), lengths)


# ---------------------------------------------------------------- step 2: pairs and negatives
# The handout's SGDataset and SkipGramNS are written once in kcourse.skipgram: the transformer lab trains its
# vectors with the same code. Grouped by centre: center (E,), pos (E, P), neg (E, K), re-drawn at every epoch.
skipgram_pairs, group_by_center, subsample = skipgram.pairs, skipgram.group_by_center, skipgram.subsample
noise_distribution, sample_negatives, epoch_data = skipgram.noise_distribution, skipgram.sample_negatives, skipgram.epoch_data


def pair_distances(flat, sentence, counts, window, top=10, seed=0, shrink_window=False):
    """How a window shapes the pairs (001:5): the share of pairs at each distance 1..window (skipgram_pairs' own
    pairs), and the share whose context is one of the `top` commonest words."""
    _, contexts, gaps = skipgram_pairs(flat, sentence, window, np.random.default_rng(seed), shrink_window, distances=True)
    total = max(len(gaps), 1)
    return {"window": window, "pairs": len(gaps), "share by distance": [float((gaps == d).sum() / total) for d in range(1, window + 1)],
            "common contexts": float(np.isin(contexts, np.argsort(-counts)[:top]).mean()) if len(gaps) else 0.0}


def windows_figure(rows):
    """The share of pairs at each distance, one bar group per window."""
    import matplotlib.pyplot as plt

    from kcourse import plots

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        d = np.arange(1, r["window"] + 1)
        ax.bar(d + (i - (len(rows) - 1) / 2) * width, r["share by distance"], width,
               label=f"window {r['window']}: {r['pairs']:,} pairs, {r['common contexts']:.0%} to the 10 commonest words")
    ax.set(xlabel="distance between centre and context", ylabel="share of the pairs", title="what a window makes")
    return plots.tidy(fig, ax)


# ---------------------------------------------------------------- model and training
build_model, pair_batches, vectors = skipgram.build_model, skipgram.batches, skipgram.vectors


def train(run, name, vocab_size, flat, sentence, counts, *, dim=50, learning_rate=0.01, weight_decay=0.0,
          batch_size=None, held_out=None, verbose="auto", **options):
    """Train one variant on the shared runner: `run.fit` on batches re-drawn at every epoch.

    `options`: how the examples are drawn (kcourse.skipgram.epoch_data: window, negatives, positives, sample,
    shrink_window). `held_out`: (flat, sentence) of sentences kept out of training; their examples (drawn once, as
    the training ones are) give the validation loss of every epoch (001:10).
    Returns the Fitted variant and {"curve": the loss of each batch (N, 2),
    epochs as x; "|u| before": the mean norm of the input vectors before
    training; "words / s": corpus words per second of a steady epoch; "examples": per epoch}.
    """
    batch_size = batch_size or run.batch_size
    data = pair_batches(flat, sentence, counts, batch_size, run.seed, **options)
    val = None
    if held_out is not None and len(held_out[0]):
        val = (epoch_data(*held_out, counts, rng=np.random.default_rng(run.seed + 1), **options),)
    batch_losses = _batch_loss_callback(data.num_batches)
    negatives, positives = options.get("negatives", skipgram.NEGATIVES), options.get("positives", skipgram.POSITIVES)
    fitted = run.fit(name, lambda: build_model(vocab_size, dim, negatives, learning_rate, weight_decay, positives), data, val,
                     batch_size=batch_size, callbacks=[batch_losses], verbose=verbose)
    return fitted, {
        "curve": np.array(batch_losses.curve).reshape(-1, 2),
        "|u| before": batch_losses.norm_before,
        "words / s": len(flat) / fitted.figures["s / epoch"],
        "examples": data.examples,
    }


def _batch_loss_callback(steps):
    import keras

    class _BatchLoss(keras.callbacks.Callback):
        """The loss of each batch, recovered from Keras' running mean over the epoch."""

        def __init__(self):
            super().__init__()
            self.curve, self.steps, self._epoch, self._mean = [], steps, 0, 0.0
            self.norm_before = float("nan")

        def on_train_begin(self, logs=None):
            u = skip_gram_layer(self.model).embeddings(normalize=False)
            self.norm_before = float(np.linalg.norm(u[len(text.SPECIALS):], axis=1).mean())

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch, self._mean, self._done = epoch, 0.0, 0

        def on_train_batch_end(self, batch, logs=None):  # batch: the last of the call's steps_per_execution
            mean, done = float(logs["loss"]), batch + 1
            self.curve.append((self._epoch + done / self.steps, (done * mean - self._done * self._mean) / (done - self._done)))
            self._mean, self._done = mean, done

    return _BatchLoss()


def skip_gram_layer(model):
    return model.get_layer("skip_gram")


def mean_norm(vectors, vocab):
    """Mean L2 norm of the word vectors (special tokens left out)."""
    return float(np.linalg.norm(vectors[len(text.SPECIALS):], axis=1).mean())


# ---------------------------------------------------------------- evaluation
def _unit(vectors):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def nearest(vectors, vocab, word, k=5):
    """The k nearest words by cosine similarity of input vectors: [(word, cosine), ...]."""
    unit = _unit(vectors)
    scores = unit @ unit[vocab.id(word)]
    scores[: len(text.SPECIALS)] = -np.inf
    scores[vocab.id(word)] = -np.inf
    return [(vocab.itos[i], float(scores[i])) for i in np.argsort(-scores)[:k]]


def analogy(vectors, vocab, a, b, c, k=1):
    """a : b :: c : ?  by 3CosAdd (b - a + c on unit vectors), the question words left out."""
    for word in (a, b, c):
        if word not in vocab:
            raise cli.LabError(f"analogy {a}:{b}::{c}:? uses {word!r}, which is not in the vocabulary ({len(vocab)} words)")
    unit = _unit(vectors)
    ids = [vocab.id(w) for w in (a, b, c)]
    scores = unit @ (unit[ids[1]] - unit[ids[0]] + unit[ids[2]])
    scores[: len(text.SPECIALS)] = -np.inf
    scores[ids] = -np.inf
    best = np.argsort(-scores)[:k]
    return vocab.itos[best[0]] if k == 1 else [vocab.itos[i] for i in best]


def analogy_questions():
    """The corpus's own relations: {"family": 12 questions, "capital": 90}, each (a, b, c, expected).

    Every ordered pair of different (male, female) family pairs (king:queen::actor:actress)
    and of different (country, capital) pairs (france:paris::japan:tokyo).
    """
    family = [(t[0], t[1]) for t in text.FAMILY]
    capital = [(c, d["capital"]) for c, d in text.COUNTRIES.items()]
    return {
        name: [(a, b, c, d) for (a, b) in pairs for (c, d) in pairs if (a, b) != (c, d)]
        for name, pairs in (("family", family), ("capital", capital))
    }


def analogy_accuracy(vectors, vocab, questions):
    """(number right, number asked, the wrong answers as 'a:b::c:got (expected)')."""
    wrong = []
    for a, b, c, d in questions:
        got = analogy(vectors, vocab, a, b, c)
        if got != d:
            wrong.append(f"{a}:{b}::{c}:{got} ({d})")
    return len(questions) - len(wrong), len(questions), wrong


def cooccurrence_countries(in_vectors, out_vectors, vocab):
    """For each capital, the countries ranked by u_capital . v_country: {capital: [(country, score), ...]}."""
    countries = list(text.COUNTRIES)
    v = out_vectors[[vocab.id(c) for c in countries]]  # (10, D)
    ranking = {}
    for d in text.COUNTRIES.values():
        scores = v @ in_vectors[vocab.id(d["capital"])]
        ranking[d["capital"]] = [(countries[i], float(scores[i])) for i in np.argsort(-scores)]
    return ranking


def evaluate(model, vocab, probes=PROBES, extra_analogies=()):
    """Every figure of step 2 for a trained model (or its (u, v) tables): analogies, u.v, neighbours."""
    in_vectors, out_vectors = model if isinstance(model, tuple) else vectors(model)
    questions = analogy_questions()
    family = analogy_accuracy(in_vectors, vocab, questions["family"])
    capital = analogy_accuracy(in_vectors, vocab, questions["capital"])
    ranking = cooccurrence_countries(in_vectors, out_vectors, vocab)
    own_first = sum(ranking[d["capital"]][0][0] == c for c, d in text.COUNTRIES.items())
    capitals = CATEGORIES["capital"]
    neighbours_of_capitals = [w for cap in capitals for w, _ in nearest(in_vectors, vocab, cap, k=5)]
    return {
        "family analogies": family[0],
        "family asked": family[1],
        "capital analogies": capital[0],
        "capital asked": capital[1],
        "own country first by u.v": own_first,
        "capitals": len(capitals),
        "capital neighbours that are capitals": sum(w in capitals for w in neighbours_of_capitals) / len(neighbours_of_capitals),
        "neighbours": {w: nearest(in_vectors, vocab, w) for w in probes},
        "u.v countries of capitals": {cap: r[:3] for cap, r in ranking.items()},
        "analogies asked": {f"{a}:{b}::{c}:?": analogy(in_vectors, vocab, a, b, c) for a, b, c in extra_analogies},
        "family wrong": family[2],
        "capital right": [q for q in questions["capital"] if analogy(in_vectors, vocab, *q[:3]) == q[3]],
    }


# ---------------------------------------------------------------- figures and files
def loss_figure(curves):
    """Per-batch loss (smoothed) against epochs, one line per variant."""
    import matplotlib.pyplot as plt

    from kcourse import plots

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (label, curve) in enumerate(curves.items()):
        if len(curve) == 0:
            continue
        width = max(1, len(curve) // 100)
        smooth = np.convolve(curve[:, 1], np.ones(width) / width, mode="valid")
        ax.plot(curve[width - 1 :, 0], smooth, color=f"C{i}", label=label)
    ax.set(xlabel="epoch", ylabel="loss per example", title="skip-gram NS loss")
    return plots.tidy(fig, ax)


def projection_figure(vectors, vocab, title="word vectors, PCA 2-D"):
    """The corpus's content words projected on their first two principal components."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    words = [w for ws in CATEGORIES.values() for w in ws if w in vocab]
    xy = PCA(2).fit_transform(_unit(vectors[[vocab.id(w) for w in words]]))
    fig, ax = plt.subplots(figsize=(7, 6))
    for i, (category, members) in enumerate(CATEGORIES.items()):
        idx = [k for k, w in enumerate(words) if w in members]
        ax.scatter(xy[idx, 0], xy[idx, 1], color=f"C{i}", label=category, s=18)
        for k in idx:
            ax.annotate(words[k], xy[k], fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the lab
# ---------------------------------------------------------------- the handout's questions, answered by the run
def vocabulary_size(run):
    stats = run.metrics["corpus"]
    return (f"{stats['vocabulary (with 3 special tokens)']:,} words with the 3 special tokens, min_freq "
            f"{run.config['min_freq']}; a word out of the vocabulary (OOV) is encoded as [UNK] (id 1).")


def case_and_punctuation(run):
    s = run.metrics["corpus"]
    return (f"Yes: lower-cased with ,.!? stripped, the corpus has {s['tokens (lower, punct stripped)']:,} tokens, "
            f"{s['distinct tokens (lower, punct stripped)']:,} distinct; with case and punctuation kept, "
            f"{s['tokens (cased, punct kept)']:,} tokens, {s['distinct tokens (cased, punct kept)']:,} distinct.")


def corpus_and_labels(run):
    s = run.metrics["corpus"]
    return (f"{s['sentences']:,} sentences from the seed's templates; {s['European-country sentences']:,} of them "
            f"({s['European share']:.1%}) name a European country, the transformer's label.")


def mean_norm_grows(run):
    row = run.rows[0]
    return (f"The input vectors' mean norm goes from {row['|u| before']:.4f} (uniform in +-0.5/dim) to {row['|u| after']:.3f} "
            f"after {plural(run.config['epochs'], 'epoch')} ({row['|u| after'] / row['|u| before']:.0f}x): training moves the words away "
            f"from the origin, along the directions that tell their contexts apart.")


def skip_gram_ns(run):
    row = run.rows[0]
    return (f"SkipGram holds u and v, {row['total params']:,} parameters = 2 x {run.metrics['corpus']['vocabulary (with 3 special tokens)']} "
            f"words x {run.config['dim']}; u starts uniform in +-0.5/dim, v at zero, as SkipGramNS.")


def steps_to(curve, loss):
    """The first batch (counted from 1) at which the loss, averaged over 20 batches, is at most `loss`; None if never."""
    smooth = np.convolve(np.asarray(curve), np.ones(20) / 20, mode="valid") if len(curve) >= 20 else np.asarray(curve)
    below = np.flatnonzero(smooth <= loss)
    return int(below[0]) + 20 if len(below) else None


def two_learning_rates(run):
    fast, slow = run.row("skip-gram"), run.row("lr/10")
    if fast is None or slow is None:
        return None
    target = 1.05 * max(fast["loss"], slow["loss"])
    steps = {name: steps_to(run.metrics[f"{name} curve"], target) for name in ("skip-gram", "lr/10")}
    said = {name: f"{n:,} steps" if n else "not within the run" for name, n in steps.items()}
    return (f"After {plural(run.config['epochs'], 'epoch')} the loss is {fast['loss']:.3f} at learning rate "
            f"{fast['learning rate']:g} against {slow['loss']:.3f} at {slow['learning rate']:g}; to reach {target:.3f} "
            f"(5% above the slower one's last loss) the larger rate needs {said['skip-gram']}, the smaller "
            f"{said['lr/10']} (loss.png).")


def window_size(run):
    rows = run.metrics["windows"]
    parts = [f"window {r['window']}: {r['pairs']:,} pairs, {r['share by distance'][0]:.0%} at distance 1, "
             f"{r['common contexts']:.0%} with one of the 10 commonest words as context" for r in rows]
    narrow, wide = rows[0], rows[-1]
    how = "with word2vec's shrinking window" if run.config["shrink_window"] else "with a fixed window"
    text_ = (f"On the training sentences, {how}: {'; '.join(parts)}: window {wide['window']} "
             f"makes {wide['pairs'] / narrow['pairs']:.1f}x the pairs of window {narrow['window']}, "
             f"{wide['share by distance'][0]:.0%} of them at distance 1 (windows.png).")
    trained = [(name, run.row(name)) for name in ("window=1", "skip-gram", "window=5") if run.row(name)]
    if len(trained) > 1:
        text_ += " Trained: " + "; ".join(f"window {r['window']}: family analogies {r['family']}, capitals {r['capital']}, "
                                          f"{r['cos caps']:.0%} capital neighbours" for _, r in trained) + "."
    return text_


def negative_sampling(run):
    rows = [r for name in ("k=1", "skip-gram", "k=15", "softmax") if (r := run.row(name))]
    if len(rows) < 2 or not any(r["negatives"] == "softmax" for r in rows):
        return None
    def each(column, form="{}"):
        return ", ".join(f"{'softmax' if r['negatives'] == 'softmax' else 'k=' + str(r['negatives'])} {form.format(r[column])}"
                         for r in rows)

    sampled = [r for r in rows if r["negatives"] != "softmax"]
    softmax = next(r for r in rows if r["negatives"] == "softmax")
    trend = "falls" if all(a["step-to-step"] > b["step-to-step"] for a, b in zip(sampled, sampled[1:])) else "does not fall steadily"
    vocabulary = run.metrics["corpus"]["vocabulary (with 3 special tokens)"]
    return (f"Step-to-step variation of the batch loss in the last epoch (std of the differences over the mean): "
            f"{each('step-to-step', '{:.3f}')}; it {trend} as k grows. Family analogies {each('family')}; capital "
            f"neighbours {each('cos caps', '{:.0%}')}; s / epoch {each('s / epoch', '{:.2f}')}. A step with k negatives "
            f"pushes down k random words instead of all {vocabulary}: a noisy estimate of the softmax's gradient"
            f"{' that more negatives make less noisy' if trend == 'falls' else ''}, at k + 1 dot products per pair "
            f"instead of one per word (the vocabulary is "
            f"small here: the full softmax costs {softmax['s / epoch']:.2f} s an epoch); and the sigmoid loss never "
            f"normalises over the vocabulary, so no single huge sum dominates it.")


def overfitting(run):
    epochs = run.metrics.get("skip-gram epochs") or run.metrics.get(f"{run.rows[0]['model']} epochs")
    if not epochs or "val_loss" not in epochs:
        return None
    train_, held = epochs["loss"], epochs["val_loss"]
    gaps = [h - t for t, h in zip(train_, held)]
    rising = next((i + 1 for i in range(1, len(held)) if held[i] > held[i - 1]), None)
    verdict = (f"the held-out loss rises from epoch {rising}: overfitting" if rising
               else "the held-out loss falls every epoch: no overfitting within the run")
    text_ = (f"Pairs from {HELD_OUT:.0%} of the sentences, never trained on: by epoch, training loss "
             f"{', '.join(f'{v:.3f}' for v in train_)} and held-out loss {', '.join(f'{v:.3f}' for v in held)} (gap "
             f"{gaps[0]:+.3f} to {gaps[-1]:+.3f}); {verdict}. The corpus repeats a few templates, so held-out sentences "
             f"are made of the same pairs.")
    decayed = run.metrics.get("weight decay epochs")
    if decayed and "val_loss" in decayed:
        row = run.row("weight decay")
        text_ += (f" With weight decay (AdamW, 0.01), the regulariser to switch on: held-out loss {decayed['val_loss'][-1]:.3f} "
                  f"against {held[-1]:.3f}, gap {decayed['val_loss'][-1] - decayed['loss'][-1]:+.3f} against {gaps[-1]:+.3f}, "
                  f"family analogies {row['family']}.")
    return text_


def the_handouts_dataset(run):
    base = run.row("skip-gram")
    if base is None:
        return None

    def quality(r):
        return f"family analogies {r['family']}, {r['cos caps']:.0%} capital neighbours, {r['s / epoch']:.2f} s an epoch"

    text_ = (f"As the handout's SGDataset, the pairs grouped by centre word: each example a centre with P = {base['P']} "
             f"of its contexts and K = {base['negatives']} negatives shared by them, {base['examples / epoch']:,} examples "
             f"an epoch; {quality(base)}.")
    against = []
    if one := run.row("P=1"):
        against.append(f"one pair per example (P = 1, word2vec's way, each pair its own negatives): "
                       f"{one['examples / epoch']:,} examples, {quality(one)}")
    if sub := run.row("subsample"):
        kept = run.metrics["subsampling"]
        against.append(f"subsampling (t = {kept['t']:g}, which keeps {kept['kept']:.0%} of the tokens): "
                       f"{sub['examples / epoch']:,} examples, {quality(sub)}")
    if shrink := run.row("shrinking window"):
        against.append(f"the shrinking window (a window drawn in 1..{shrink['window']} per centre): "
                       f"{shrink['examples / epoch']:,} examples, {quality(shrink)}")
    if against:
        text_ += (" Each of word2vec's habits once, all else equal: " + "; ".join(against) + ". (A loss sums P + K terms "
                  "per example: losses compare at equal P only.)")
    return text_


def embedding_metrics(run):
    row = run.rows[0]
    return (f"Analogies by 3CosAdd: family {row['family']}, capitals {row['capital']}; {row['cos caps']:.0%} of each capital's 5 "
            f"nearest cosine neighbours are capitals; {row['u.v own']} capitals score their own country first by u.v "
            f"(cosine groups words by slot, u.v scores co-occurrence).")


def unigram_075(run):
    noise = run.metrics.get("noise")
    if noise is None:
        return None
    return (f"Negatives from unigram^0.75: the commonest word, {noise['word']!r}, makes {noise['share']:.1%} of the tokens "
            f"but {noise['drawn']:.1%} of the negatives; a word seen once, {noise['rare share']:.4%} of the tokens, "
            f"{noise['rare drawn']:.4%} of the negatives.")


HANDOUT = (
    Item("001:1", "Quelle est la taille du vocabulaire après filtrage ? Que fait-on des mots OOV (out-of-vocabulary) ?",
         "The vocabulary's size after filtering; what happens to out-of-vocabulary words.", vocabulary_size,
         "kcourse.tasks.word2vec.corpus_stats"),
    Item("001:2", "La tokenisation est-elle sensible à la casse et à la ponctuation ? Mesurez l'impact sur le nombre de tokens.",
         "Is tokenisation sensitive to case and punctuation? Its effect on the token count.", case_and_punctuation,
         "kcourse.text.token_counts"),
    Item("001:4", "build_synthetic_corpus, tokenize, label_from_sentence", "The corpus, the tokenizer and the labels of the seed's code.",
         corpus_and_labels, "kcourse.text.build_synthetic_corpus"),
    Item("001:7", "Comparez la norme moyenne des vecteurs d'embedding avant et après entraînement : que remarquez-vous ?",
         "The mean norm of the embeddings before and after training.", mean_norm_grows, "kcourse.tasks.word2vec.mean_norm"),
    Item("001:8", "class SkipGramNS(nn.Module): ... nn.init.uniform_(self.in_embed.weight, -0.5/dim, 0.5/dim)",
         "The SkipGramNS model: its two tables and their initialisation.", skip_gram_ns, "kcourse.layers.SkipGram"),
    Item("001:9", "La courbe de perte sature-t-elle ? Testez deux learning rates différents et comparez le temps de convergence.",
         "Does the loss saturate? Two learning rates and their convergence.", two_learning_rates,
         "kcourse.tasks.word2vec.train", needs="--models skip-gram lr/10"),
    Item("001:5", "Quel est l'effet du window size sur la distribution des paires (centre, contexte) ?",
         "How the window size shapes the (centre, context) pairs.", window_size, "kcourse.tasks.word2vec.pair_distances"),
    Item("001:6", "Pourquoi le negative sampling stabilise-t-il l'apprentissage ? Quelle est l'influence du nombre de "
         "négatifs k sur le signal du gradient ?",
         "Why negative sampling stabilises training; the effect of k.", negative_sampling, "kcourse.tasks.word2vec.train",
         needs="--models skip-gram k=1 k=15 softmax"),
    Item("001:10", "Voyez-vous des signes d'overfitting ? Si oui, quelle régularisation simple pourriez-vous activer ?", "Does the model overfit?", overfitting,
         "kcourse.tasks.word2vec.train"),
    Item("001:13", "class SGDataset(Dataset): ... Regrouper paires par centre pour tirer P contextes positifs si dispo",
         "The handout's dataset: pairs grouped by centre, P = 2 contexts and K = 5 negatives per example.",
         the_handouts_dataset, "kcourse.skipgram.group_by_center", needs='--models skip-gram P=1 subsample "shrinking window"'),
    Item("001:11", "Quelle métrique (ex. analogies, voisinage cosinus) utilisez-vous pour évaluer la qualité des embeddings ?",
         "Which metric evaluates the embeddings: analogies, cosine neighbours?", embedding_metrics,
         "kcourse.tasks.word2vec.evaluate"),
    Item("001:12", "Négatifs selon distribution unigram^0.75", "Negatives drawn from unigram^0.75.", unigram_075,
         "kcourse.tasks.word2vec.noise_distribution"),
)


def build_parser():
    """The lab's options: the shared ones, the corpus, the skip-gram's sizes, the variants and the words to probe."""
    parser = cli.lab_parser("word2vec", __doc__, epochs=5, batch_size=1024, learning_rate=0.01, quick={"sentences": 2000})
    parser.add_argument("--models", nargs="+", default=["skip-gram"], choices=list(VARIANTS),
                        help="variants, everything else equal: skip-gram (the options given), lr/10 (a tenth of the rate), k=1 and k=15 "
                             "(negatives), softmax (the exact softmax, no sampling), window=1 and window=5, weight decay (default: skip-gram)")
    corpus = parser.add_argument_group("step 1, the corpus")
    corpus.add_argument("--sentences", type=cli.positive_int, default=20_000, help="corpus size (default: %(default)s)")
    corpus.add_argument("--min-freq", type=cli.positive_int, default=1, help="vocabulary filter (default: %(default)s)")
    pairs = parser.add_argument_group("step 2, the pairs and the skip-gram")
    pairs.add_argument("--window", type=cli.positive_int, default=2, help="context words each side (default: %(default)s)")
    pairs.add_argument("--positives", type=cli.positive_int, default=skipgram.POSITIVES,
                       help="contexts per centre in an example, P (default: %(default)s; 1: one pair per example)")
    pairs.add_argument("--negatives", type=cli.positive_int, default=skipgram.NEGATIVES,
                       help="negatives per example, K, shared by its P contexts (default: %(default)s)")
    pairs.add_argument("--sample", type=cli.number(float, 0, 1, high_open=True, why="0 turns subsampling off"), default=0.0,
                       help="subsample frequent words with threshold t, word2vec's 1e-3 for instance (default: 0, off)")
    pairs.add_argument("--shrink-window", action="store_true",
                       help="each centre draws its window in 1..--window, word2vec's habit (default: the full window)")
    pairs.add_argument("--dim", type=cli.positive_int, default=50, help="embedding width (default: %(default)s)")
    probes = parser.add_argument_group("what the vectors know")
    probes.add_argument("--probe", nargs="+", help=f"words whose neighbours to list (default: {' '.join(PROBES)})")
    probes.add_argument("--analogy", nargs=3, action="append", metavar=("A", "B", "C"), help="solve A:B::C:?")
    return parser


def run_lab(args):
    """Steps 1-2 from the parsed options: the corpus and its figures, each variant fitted on re-drawn pairs, its
    vectors probed (what `main` and the notebook run)."""
    run = runs.start("word2vec", args)
    corpus, tokens, vocab = text.load_corpus(args.sentences, args.seed, args.min_freq)
    probes = args.probe or [w for w in PROBES if w in vocab]
    for word in probes:
        vocab.id(word)  # an unknown word stops the lab before training
    for a, b, c in args.analogy or []:
        analogy(np.zeros((len(vocab), 1)), vocab, a, b, c)
    stats = corpus_stats(corpus, vocab)
    print("step 1, the corpus:")
    for key, value in stats.items():
        print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value:,}")
    print(f"  OOV words map to {text.UNK} (id {vocab.unk_id}); min_freq={args.min_freq}")
    run.save_metrics(corpus=stats)
    flat_counts = np.bincount(encode_corpus(tokens, vocab)[0], minlength=len(vocab)).astype("float64")
    noise, share = noise_distribution(flat_counts), flat_counts / flat_counts.sum()
    common, rare = int(flat_counts.argmax()), int(np.flatnonzero(flat_counts == flat_counts[flat_counts > 0].min())[0])
    run.save_metrics(noise={"word": vocab.itos[common], "share": share[common], "drawn": noise[common],
                            "rare share": share[rare], "rare drawn": noise[rare]})

    flat, sentence = encode_corpus(tokens, vocab)
    counts = np.bincount(flat, minlength=len(vocab)).astype("float64")
    windows = [pair_distances(flat, sentence, counts, w, seed=args.seed, shrink_window=args.shrink_window) for w in WINDOWS]
    kept = len(subsample(flat, sentence, counts, VARIANTS["subsample"]["sample"], np.random.default_rng(args.seed))[0])
    run.save_metrics(subsampling={"t": VARIANTS["subsample"]["sample"], "kept": kept / max(len(flat), 1)})
    run.save_metrics(windows=windows)
    run.savefig(windows_figure(windows), "windows")
    train_part = sentence < round(len(corpus) * (1 - HELD_OUT))  # the last sentences held out: pairs never trained on
    held_out = flat[~train_part], sentence[~train_part]
    flat, sentence = flat[train_part], sentence[train_part]
    curves, results = {}, {}
    run.outputs.update(corpus=corpus, vocab=vocab, stats=stats, curves=curves, results=results)
    for name in dict.fromkeys(args.models):
        options = {"window": args.window, "negatives": args.negatives, "positives": args.positives, "sample": args.sample,
                   "shrink_window": args.shrink_window, "weight_decay": 0.0, **VARIANTS[name]}
        rate = args.learning_rate * options.pop("learning_rate", 1.0)
        fitted, trained = train(run, name, len(vocab), flat, sentence, counts, dim=args.dim, learning_rate=rate,
                                held_out=held_out, **options)
        u, v = vectors(fitted.model)
        curves[name] = trained["curve"]
        results[name] = result = evaluate(fitted.model, vocab, probes, args.analogy or [])
        last = trained["curve"][trained["curve"][:, 0] > len(fitted.history["loss"]) - 1, 1]  # the last epoch's batches
        run.record(fitted, **{
            "learning rate": rate,
            "window": options["window"],
            "negatives": options["negatives"] or "softmax",
            "P": options["positives"],
            "subsample": options["sample"],
            "shrinking": options["shrink_window"],
            "examples / epoch": trained["examples"],
            "loss": fitted.history["loss"][-1],
            "held-out loss": fitted.history["val_loss"][-1] if "val_loss" in fitted.history else None,
            "step-to-step": float(np.std(np.diff(last)) / np.mean(last)) if len(last) > 2 else None,
            "|u| before": trained["|u| before"],
            "|u| after": mean_norm(u, vocab),
            "family": f"{result['family analogies']}/{result['family asked']}",
            "capital": f"{result['capital analogies']}/{result['capital asked']}",
            "u.v own": f"{result['own country first by u.v']}/{result['capitals']}",
            "cos caps": result["capital neighbours that are capitals"],
            "words / s": trained["words / s"],
        })
        run.save_metrics(**{name: result, f"{name} curve": trained["curve"][:, 1].tolist(),
                            f"{name} epochs": {k: [float(x) for x in v] for k, v in fitted.history.items()}})
        if name == args.models[0]:
            text.save_embeddings(run.file("embeddings.npz"), u, v, vocab)
            run.savefig(projection_figure(u, vocab, f"word vectors, PCA 2-D ({name})"), "projection")

    run.savefig(loss_figure(curves), "loss")
    first = results[args.models[0]]
    print("\nnearest neighbours by cosine (u.u):")
    for word, near in first["neighbours"].items():
        print(f"  {word:>10}: " + ", ".join(f"{w} {s:.2f}" for w, s in near))
    print("countries of a capital by co-occurrence (u_capital . v_country):")
    for cap, ranked in first["u.v countries of capitals"].items():
        print(f"  {cap:>10}: " + ", ".join(f"{c} {s:.1f}" for c, s in ranked))
    for question, answer in first["analogies asked"].items():
        print(f"  {question} {answer}")
    print(
        "columns: family / capital = analogies right (3CosAdd); u.v own = capitals whose own country "
        "scores first by u_capital . v_country; cos caps = share of capitals among the 5 nearest "
        "cosine neighbours of each capital; |u| = mean norm of the input vectors.\n"
        "reading: cosine neighbours group words by the slots they fill (capitals with capitals); "
        "u.v scores co-occurrence (a capital with its own country); analogies work for relations the "
        "corpus repeats across words (family), not for one-off pairs (capitals)."
    )
    return run.finish(f"Word2Vec skip-gram NS ({args.sentences:,} sentences)", curves=("loss",), handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
