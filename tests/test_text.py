"""TP4 step 1: the seed's synthetic corpus, the tokenizer and the vocabulary."""

import re
import subprocess
import sys

import numpy as np
import pytest

from kcourse import cli, text


def _template_regex(template):
    return "[a-z_]+".join(re.escape(part) for part in re.split(r"\{\w+\}", template))


def test_corpus_is_deterministic_for_a_seed_even_across_processes():
    a = text.build_synthetic_corpus(300, seed=3)
    assert a == text.build_synthetic_corpus(300, seed=3)
    assert a != text.build_synthetic_corpus(300, seed=4)
    # another process has another string hash seed: the corpus must not depend on it
    code = "from kcourse import text; print(hash(tuple(text.build_synthetic_corpus(300, seed=3))) and '|'.join(text.build_synthetic_corpus(300, seed=3)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": "123", "PATH": ""}, check=True)
    assert out.stdout.strip().split("|") == a


def test_every_sentence_follows_a_template_of_the_seed():
    noise = re.escape(". in unrelated news the ") + "(?:" + "|".join(text.PROFESSIONS) + ")" + re.escape(" gave a talk")
    regexes = [re.compile(_template_regex(t) + f"({noise})?") for t in text.TEMPLATES]
    corpus = text.build_synthetic_corpus(2000, seed=0)
    used = np.zeros(len(regexes), int)
    for s in corpus:
        matches = [i for i, r in enumerate(regexes) if r.fullmatch(s)]
        assert matches, s
        used[matches[0]] += 1
    assert (used > 150).all(), used  # the 8 templates, drawn uniformly
    noisy = sum(". in unrelated news" in s for s in corpus) / len(corpus)
    assert 0.37 < noisy < 0.43, noisy
    assert len(text.TEMPLATES) == 8 and len(text.COUNTRIES) == 10 and len(text.FAMILY) == 4


def test_facts_in_the_corpus_are_right():
    corpus = text.build_synthetic_corpus(2000, seed=1)
    for s in corpus:
        if m := re.match(r"the capital of (\w+) is (\w+)", s):
            assert text.COUNTRIES[m[1]]["capital"] == m[2]
        if m := re.match(r"people know that (\w+) belongs to (\w+), but some mention (\w+)", s):
            assert text.COUNTRIES[m[2]]["capital"] == m[1] != m[3]
        if m := re.match(r"a (\w+) is related to a (\w+) as (\w+) to (\w+)", s):
            assert m.groups() in text.FAMILY


def test_labels_are_european_countries():
    assert text.label_from_sentence("the capital of france is paris") == 1
    assert text.label_from_sentence("despite debates, london remains the capital of uk") == 1
    assert text.label_from_sentence("the capital of japan is tokyo") == 0
    assert text.label_from_sentence("people know that paris belongs to japan, but ...") == 0  # cities do not count


def test_tokenizer_switches():
    s = "Despite debates, Paris remains the capital of France."
    assert text.tokenize(s) == ["despite", "debates", "paris", "remains", "the", "capital", "of", "france"]
    assert text.tokenize(s, lower=False)[2] == "Paris"
    assert text.tokenize(s, strip_punct=False)[1] == "debates,"
    corpus = text.build_synthetic_corpus(500)
    n, distinct = text.token_counts(corpus)
    n_kept, distinct_kept = text.token_counts(corpus, strip_punct=False)
    assert n == n_kept and distinct_kept > distinct  # "paris," and "paris" differ


def test_vocabulary_specials_min_freq_oov_and_padding():
    vocab = text.Vocabulary.build([["a", "b", "a", "c", "a", "b"]], min_freq=2)
    assert vocab.itos == ["[PAD]", "[UNK]", "[CLS]", "a", "b"]
    assert vocab.encode(["a", "c", "zzz"]) == [3, 1, 1]  # c is filtered: OOV
    right = vocab.encode_batch(["a b", "b"], max_len=4)
    np.testing.assert_array_equal(right, [[2, 3, 4, 0], [2, 4, 0, 0]])
    left = vocab.encode_batch(["a b"], max_len=4, padding="left", add_cls=False)
    np.testing.assert_array_equal(left, [[0, 0, 3, 4]])
    with pytest.raises(cli.LabError, match="has 4 tokens with \\[CLS\\], more than the maximum length 3"):
        vocab.encode_batch(["a b a"], max_len=3)
    with pytest.raises(cli.LabError, match="'zzz' is not in the vocabulary"):
        vocab.id("zzz")
