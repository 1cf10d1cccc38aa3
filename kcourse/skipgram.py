"""Skip-gram's training data and model, written once: the word2vec lab's step 2, and the vectors the transformer lab
trains in-run when it is given none.

The handout's dataset (`SGDataset`): the (centre, context) pairs of a window
grouped by centre word; an example is a centre with P = 2 of its contexts
drawn at random and K = 5 negatives from unigram^0.75 shared by them:
`center (B,)`, `pos (B, P)`, `neg (B, K)`. Each word makes ceil(n / P)
examples from its n pairs, so an epoch sees as many positives as there are
pairs. Word2vec's own habits, subsampling of frequent words and a window that
shrinks at random, are options, off by default.
"""

import numpy as np

from kcourse.errors import LabError

POSITIVES, NEGATIVES, WINDOW = 2, 5, 2  # the handout's P, K and window


def token_stream(ids, n_special):
    """Padded rows of word ids (N, L) as one flat id array of their words (special ids below `n_special` dropped)
    and the row of each word: what `pairs` reads."""
    ids = np.asarray(ids)
    row, _ = np.nonzero(ids >= n_special)
    return ids[ids >= n_special].astype("int32"), row


def pairs(flat, sentence, window=WINDOW, rng=None, shrink_window=False, distances=False):
    """(centre, context) pairs within `window` words, never across sentences; vectorised.

    With `shrink_window` (word2vec's and gensim's habit) each centre word uses
    a window drawn uniformly in 1..window, so near words count more.
    Returns `centers (N,)` and `contexts (N,)`, shuffled, and with `distances` each pair's distance (N,).
    """
    if window < 1:
        raise LabError(f"--window must be at least 1, got {window}")
    rng = rng or np.random.default_rng(0)
    reach = rng.integers(1, window + 1, size=len(flat)) if shrink_window else np.full(len(flat), window)
    centers, contexts, gaps = [], [], []
    for d in range(1, window + 1):
        same = sentence[:-d] == sentence[d:]  # tokens i and i+d in one sentence
        forward = same & (reach[:-d] >= d)  # centre i, context i+d
        backward = same & (reach[d:] >= d)  # centre i+d, context i
        centers += [flat[:-d][forward], flat[d:][backward]]
        contexts += [flat[d:][forward], flat[:-d][backward]]
        gaps.append(np.full(int(forward.sum() + backward.sum()), d))
    centers, contexts, gaps = np.concatenate(centers), np.concatenate(contexts), np.concatenate(gaps)
    order = rng.permutation(len(centers))
    return (centers[order], contexts[order], gaps[order]) if distances else (centers[order], contexts[order])


def group_by_center(centers, contexts, positives=POSITIVES, rng=None):
    """The handout's grouping: `centers (E,)` and `pos (E, P)`, each example a centre word with P of its contexts
    drawn with replacement (`random.choices`); a word with n pairs makes ceil(n / P) examples. Shuffled."""
    rng = rng or np.random.default_rng(0)
    order = np.argsort(centers, kind="stable")
    words, start, n = np.unique(centers[order], return_index=True, return_counts=True)
    examples = -(-n // positives)  # ceil(n / P) per word
    which = np.repeat(np.arange(len(words)), examples)  # (E,): the word of each example
    drawn = start[which, None] + (rng.random((len(which), positives)) * n[which, None]).astype(int)  # (E, P)
    shuffle = rng.permutation(len(which))
    return words[which][shuffle], contexts[order][drawn][shuffle]


def subsample(flat, sentence, counts, sample, rng):
    """Drop frequent tokens with word2vec's keep probability (sqrt(f/t) + 1) t/f; `sample=0` keeps all."""
    if not sample:
        return flat, sentence
    freq = counts / max(counts.sum(), 1)
    keep_p = np.minimum(1.0, (np.sqrt(freq / sample) + 1) * sample / np.maximum(freq, 1e-12))
    keep = rng.random(len(flat)) < keep_p[flat]
    return flat[keep], sentence[keep]


def noise_distribution(counts, power=0.75):
    """unigram^power, normalised; the special tokens (never seen) get probability 0."""
    p = np.asarray(counts, "float64") ** power
    return p / p.sum()


def sample_negatives(p_noise, shape, rng):
    """Word ids drawn from `p_noise`, vectorised (inverse CDF)."""
    cdf = np.cumsum(p_noise)
    draws = np.searchsorted(cdf, rng.random(shape) * cdf[-1], side="right")
    return np.minimum(draws, len(p_noise) - 1).astype("int32")


def epoch_data(flat, sentence, counts, window=WINDOW, negatives=NEGATIVES, sample=0.0, rng=None, positives=POSITIVES,
               shrink_window=False):
    """One epoch's inputs for the SkipGram model: {"center" (E,), "pos" (E, P), "neg" (E, K)}; no "neg" for K = 0
    (the full softmax). `positives=1`: one pair per example, word2vec's own way (each pair its own negatives)."""
    rng = rng or np.random.default_rng(0)
    kept, kept_sentence = subsample(flat, sentence, counts, sample, rng)
    centers, contexts = pairs(kept, kept_sentence, window, rng, shrink_window)
    if positives > 1:
        centers, pos = group_by_center(centers, contexts, positives, rng)
    else:
        pos = contexts[:, None]
    x = {"center": centers.astype("int32"), "pos": pos.astype("int32")}
    if negatives:
        x["neg"] = sample_negatives(noise_distribution(counts), (len(centers), negatives), rng)
    return x


def batches(flat, sentence, counts, batch_size=1024, seed=0, **options):
    """The training data: a `keras.utils.PyDataset` of skip-gram batches, re-drawn at every epoch.

    Each epoch draws its examples afresh (`epoch_data(..., **options)`). Keras
    reads the number of batches once per `fit`, so every epoch has the first
    draw's number of examples: a later draw is cut to it, or topped up with
    examples re-drawn from itself (the counts differ by well under 1%).
    """
    import keras

    class SkipGramBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.batch_size = batch_size
            self.x = epoch_data(flat, sentence, counts, rng=self.rng, **options)
            self.examples = len(self.x["center"])
            if self.examples == 0:
                raise LabError("the corpus gives no skip-gram pairs; use more --sentences or a wider --window")

        @property
        def num_batches(self):  # whole batches only under --distribute (each batch is split over the devices)
            whole = keras.distribution.distribution() is not None
            return self.examples // self.batch_size if whole else -(-self.examples // self.batch_size)

        def __getitem__(self, i):
            part = slice(i * self.batch_size, (i + 1) * self.batch_size)
            return ({key: value[part] for key, value in self.x.items()},)

        def on_epoch_end(self):  # the next epoch's pairs and negatives
            x = epoch_data(flat, sentence, counts, rng=self.rng, **options)
            n, want = len(x["center"]), self.examples
            keep = np.arange(want) if n >= want else np.concatenate([np.arange(n), self.rng.integers(0, n, want - n)])
            self.x = {key: value[keep] for key, value in x.items()}

    return SkipGramBatches()


def build_model(vocab_size, dim=50, negatives=NEGATIVES, learning_rate=0.01, weight_decay=0.0, positives=POSITIVES):
    """A functional model around `SkipGram`, compiled with Adam (the loss comes from add_loss); `negatives=0`: the
    full softmax over the vocabulary instead of negative sampling; `weight_decay`: AdamW's instead."""
    import keras

    from kcourse.layers import SkipGram
    from kcourse.training import compile_model

    inputs = {
        "center": keras.Input((), dtype="int32", name="center"),
        "pos": keras.Input((positives,), dtype="int32", name="pos"),
    }
    if negatives:
        inputs["neg"] = keras.Input((negatives,), dtype="int32", name="neg")
    skip_gram = SkipGram(vocab_size, dim, name="skip_gram")
    model = keras.Model(inputs, skip_gram(inputs), name="skip_gram_ns")
    # one step per call: the per-batch loss curve is the lesson (and 32 steps per call did not pay here, BENCHMARKS.md)
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay) if weight_decay else keras.optimizers.Adam(learning_rate)
    return compile_model(model, optimizer, loss=None, steps_per_execution=1)


def vectors(model):
    """The trained model's input vectors u (V, D) and output vectors v (V, D), raw (not normalised)."""
    layer = model.get_layer("skip_gram")
    return layer.embeddings(normalize=False), layer.output_embeddings()
