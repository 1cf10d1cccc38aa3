"""TP4 part 1, step 1: the course's synthetic corpus, its tokenizer and vocabulary.

The corpus is the seed's `build_synthetic_corpus`: ten countries with their
capital and currency, four family analogies, nine professions, four
connectors, eight sentence templates, and in 40% of the sentences a noise
clause ("in unrelated news the poet gave a talk"). Both TP4 labs read it:
`kcourse.tasks.word2vec` learns word vectors from it, `kcourse.tasks.transformer`
classifies its sentences (does it name a European country?).

    from kcourse import text
    corpus = text.build_synthetic_corpus(20_000, seed=0)
    vocab = text.Vocabulary.build([text.tokenize(s) for s in corpus], min_freq=1)
    ids = vocab.encode_batch(corpus[:2], max_len=32, add_cls=True)  # (2, 32) int32
"""

import random
from collections import Counter
from pathlib import Path

import numpy as np

from kcourse.errors import LabError

PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
SPECIALS = (PAD, UNK, CLS)  # ids 0, 1, 2 in every Vocabulary
PUNCTUATION = ",.!?"

COUNTRIES = {
    "france": {"capital": "paris", "currency": "euro"},
    "germany": {"capital": "berlin", "currency": "euro"},
    "italy": {"capital": "rome", "currency": "euro"},
    "spain": {"capital": "madrid", "currency": "euro"},
    "japan": {"capital": "tokyo", "currency": "yen"},
    "usa": {"capital": "washington", "currency": "dollar"},
    "uk": {"capital": "london", "currency": "pound"},
    "canada": {"capital": "ottawa", "currency": "dollar"},
    "brazil": {"capital": "brasilia", "currency": "real"},
    "india": {"capital": "new_delhi", "currency": "rupee"},
}
FAMILY = [
    ("king", "queen", "man", "woman"),
    ("actor", "actress", "man", "woman"),
    ("prince", "princess", "boy", "girl"),
    ("duke", "duchess", "man", "woman"),
]
PROFESSIONS = ["scientist", "engineer", "teacher", "doctor", "poet", "painter", "chef", "musician", "lawyer"]
CONNECTORS = ["while", "although", "whereas", "however"]
TEMPLATES = [
    "the capital of {country} is {capital}",
    "in {country} the currency is the {currency}",
    "{A} is the male counterpart of a {B}",
    "a {A} is related to a {B} as {man} to {woman}",
    "many believe that the capital of {country} is {capital}, {connector} the currency of {other_country} is the {other_currency}",
    "people know that {city} belongs to {country}, but some mention {alt_city} incorrectly",
    "despite debates, {city} remains the capital of {country}",
    "experts say the {currency} is used in {country}, {connector} tourists spend {other_currency} in {other_country}",
]
NOISE = "in unrelated news the {p} gave a talk"
NOISE_RATE = 0.4
EUROPEAN_COUNTRIES = {"france", "germany", "italy", "spain", "uk"}


CATEGORIES = {  # the kinds of words the corpus is made of
    "country": list(COUNTRIES),
    "capital": [d["capital"] for d in COUNTRIES.values()],
    "currency": sorted({d["currency"] for d in COUNTRIES.values()}),
    "family": sorted({w for t in FAMILY for w in t}),
    "profession": PROFESSIONS,
    "connector": CONNECTORS,
}


def build_synthetic_corpus(n_sentences=20_000, seed=0):
    """The seed's corpus: `n_sentences` lower-case sentences, the same for a given seed.

    Faithful to the course's code (same lists, templates, draws in the same
    order, 40% noise clauses), with one change: the wrong city of the
    "people know that ..." template is drawn from the *sorted* other capitals,
    where the course drew from a set, whose order changes with Python's hash
    seed: the course's corpus was not reproducible from one process to the next.
    """
    rng = random.Random(seed)
    cities = {v["capital"] for v in COUNTRIES.values()}
    names = list(COUNTRIES)
    sents = []
    for _ in range(n_sentences):
        t = rng.choice(TEMPLATES)
        c = rng.choice(names)
        d = COUNTRIES[c]
        oc = rng.choice([x for x in names if x != c])
        od = COUNTRIES[oc]
        fields = {}
        if "{A}" in t:
            A, B, man, woman = rng.choice(FAMILY)
            fields = dict(A=A, B=B, man=man, woman=woman)
        sent = t.format(
            **fields,
            country=c,
            capital=d["capital"],
            currency=d["currency"],
            connector=rng.choice(CONNECTORS),
            other_country=oc,
            other_currency=od["currency"],
            city=d["capital"],
            alt_city=rng.choice(sorted(cities - {d["capital"]})),
        )
        # light lexical noise
        if rng.random() < NOISE_RATE:
            p = rng.choice(PROFESSIONS)
            sent = f"{sent}. {NOISE.format(p=p)}"
        sents.append(sent.lower())
    return sents


def tokenize(text, lower=True, strip_punct=True):
    """Whitespace tokens, lower-cased and with `,.!?` stripped from their ends (each switchable).

    The seed's `tokenize` is `tokenize(text)` with both on. Tokens that were
    only punctuation disappear.
    """
    if lower:
        text = text.lower()
    tokens = text.split()
    if strip_punct:
        tokens = [t.strip(PUNCTUATION) for t in tokens]
    return [t for t in tokens if t]


def label_from_sentence(sentence):
    """1 if the sentence names a European country of the corpus, else 0 (the transformer's task)."""
    return int(any(tok in EUROPEAN_COUNTRIES for tok in tokenize(sentence)))


def token_counts(corpus, lower=True, strip_punct=True):
    """(number of tokens, number of distinct tokens) of the corpus under one tokenizer setting."""
    counts = Counter(t for s in corpus for t in tokenize(s, lower, strip_punct))
    return sum(counts.values()), len(counts)


class Vocabulary:
    """Words <-> ids: `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, then the words by decreasing frequency.

    Words seen fewer than `min_freq` times are left out; any word not in the
    vocabulary (OOV) is encoded as `[UNK]`.

    Args:
        words: the words after the special tokens, in id order.
        counts: {word: count in the training corpus}.
    """

    def __init__(self, words, counts=None):
        self.itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.counts = dict(counts or {})
        self.pad_id, self.unk_id, self.cls_id = (self.stoi[s] for s in SPECIALS)

    @classmethod
    def build(cls, token_lists, min_freq=1):
        counts = Counter(t for tokens in token_lists for t in tokens)
        words = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        return cls(words, {w: counts[w] for w in words})

    @classmethod
    def from_words(cls, itos):
        """The vocabulary of a saved embedding table (its `words`, special tokens first)."""
        missing = [s for s in SPECIALS if s not in list(itos)]
        if missing:
            raise LabError(f"the word list has no {missing[0]} token; expected {', '.join(SPECIALS)} first")
        return cls([str(w) for w in itos])

    def __len__(self):
        return len(self.itos)

    def __contains__(self, word):
        return word in self.stoi

    def id(self, word):
        """The id of a word the vocabulary must know; an unknown word is a LabError."""
        if word not in self.stoi:
            raise LabError(f"{word!r} is not in the vocabulary ({len(self)} words, e.g. {', '.join(self.itos[3:8])})")
        return self.stoi[word]

    def encode(self, tokens):
        """Token ids, `[UNK]` for OOV words."""
        return [self.stoi.get(t, self.unk_id) for t in tokens]

    def decode(self, ids):
        return [self.itos[i] for i in ids]

    def encode_batch(self, sentences, max_len, add_cls=True, padding="right", lower=True, strip_punct=True):
        """Sentences as an int32 array (N, max_len): `[CLS]` first if `add_cls`, `[PAD]` to fill.

        `padding="right"` puts the words first (position 0 is then always
        `[CLS]`, whatever the length), `"left"` puts the padding first. A
        sentence with more than `max_len` tokens is a LabError, not a silent cut.
        """
        if padding not in ("right", "left"):
            raise LabError(f"padding must be 'right' or 'left', got {padding!r}")
        out = np.full((len(sentences), max_len), self.pad_id, dtype="int32")
        for row, sentence in zip(out, sentences):
            ids = ([self.cls_id] if add_cls else []) + self.encode(tokenize(sentence, lower, strip_punct))
            if len(ids) > max_len:
                raise LabError(
                    f"the sentence {sentence[:60]!r} has {len(ids)} tokens{' with [CLS]' if add_cls else ''}, "
                    f"more than the maximum length {max_len}"
                )
            if padding == "right":
                row[: len(ids)] = ids
            else:
                row[max_len - len(ids) :] = ids
        return out


def load_corpus(n_sentences=20_000, seed=0, min_freq=1):
    """The corpus, its token lists and the vocabulary built on them: what both TP4 labs start from."""
    corpus = build_synthetic_corpus(n_sentences, seed)
    tokens = [tokenize(s) for s in corpus]
    return corpus, tokens, Vocabulary.build(tokens, min_freq=min_freq)


def save_embeddings(path, in_vectors, out_vectors, vocab):
    """`embeddings.npz`: the input vectors `vectors` (V, D), `output_vectors` and the vocabulary's `words`."""
    np.savez(path, vectors=in_vectors, output_vectors=out_vectors, words=np.array(vocab.itos))


def load_embeddings(path):
    """(vectors (V, D), Vocabulary) from an `embeddings.npz` this lab wrote; bad files are LabErrors."""
    path = Path(path)
    expected = "an embeddings.npz written by kcourse.tasks.word2vec (arrays 'vectors' (V, D) and 'words' (V,))"
    if not path.is_file():
        raise LabError(f"--embeddings {path}: no such file; expected {expected}")
    try:
        with np.load(path) as f:
            vectors, words = f["vectors"], f["words"]
    except Exception as error:
        raise LabError(f"--embeddings {path}: not readable ({type(error).__name__}: {error}); expected {expected}") from None
    if vectors.ndim != 2 or words.ndim != 1 or len(words) != len(vectors):
        raise LabError(f"--embeddings {path}: got vectors {vectors.shape} and words {words.shape}; expected {expected}")
    return vectors.astype("float32"), Vocabulary.from_words(words)
