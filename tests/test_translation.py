"""Lecture 000's translation architecture: the tiny encoder-decoder reads sentences backwards, its decoder never sees
the future, its cross-attention finds the word it copies."""

import numpy as np
import pytest

from kcourse import cli
from kcourse.tasks import translation

TRANSLATION = ("--quick",)  # 2,000 sentences, 8 epochs, one block each side: the lectures notebook's run


@pytest.fixture(scope="module")
def made(lab_run):
    return lab_run("translation", *TRANSLATION).run


def test_teacher_forcing_reads_the_start_token_and_says_the_end_token():
    source = np.array([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0]])
    target, labels = translation.reversed_pairs(source, pad_id=0, start_id=2, end_id=99)
    assert labels.tolist() == [[7, 6, 5, 99, 0], [8, 99, 0, 0, 0]]  # the words backwards, then the end
    assert target.tolist() == [[2, 7, 6, 5, 0], [2, 8, 0, 0, 0]]  # what the decoder reads: shifted right behind [CLS]
    with pytest.raises(cli.LabError, match="raise --max-len above 3"):
        translation.reversed_pairs(np.array([[5, 6, 7]]), 0, 2, 99)  # no place left for the end token


def test_the_translator_learns_to_read_sentences_backwards(made):
    row = made.rows[0]
    assert row["exact"] >= 0.8 and row["val token accuracy"] >= 0.95, row  # greedy decoding, held-out sentences
    rows = list(__import__("csv").DictReader(made.file("translations.csv").open()))
    assert len(rows) == made.metrics["sentences"]["translated"]
    assert sum(r["right"] == "True" for r in rows) / len(rows) == pytest.approx(row["exact"])
    right = next(r for r in rows if r["right"] == "True")
    assert right["translation"].split() == [w.strip(",.!?") for w in right["sentence"].split()][::-1]


def test_the_decoder_never_sees_the_words_to_come(made):
    before, after = made.metrics["causal check"]
    assert before < 1e-5 < 0.1 < after  # earlier outputs exactly unmoved, later ones changed


def test_cross_attention_looks_at_the_word_being_copied(made):
    best = max(r["on the mirrored word"] for r in made.metrics["alignment"])
    assert best > 2 * made.metrics["uniform share"], made.metrics["alignment"]


def test_the_saved_translator_reloads_to_the_same_outputs(made):
    import keras

    model = made.fitted["translator"].model
    loaded = keras.saving.load_model(made.file("translator.keras"))
    source = np.array([[5, 6, 7, 8, 0, 0] + [0] * 26], "int32")
    target, _ = translation.reversed_pairs(source, 0, 2, model.target_vocab - 1)
    x = {"source": source, "target": target}
    np.testing.assert_allclose(np.asarray(loaded.predict_on_batch(x)), np.asarray(model.predict_on_batch(x)), atol=1e-5)


def test_the_report_answers_with_the_runs_numbers(made):
    answer = {a["tag"]: a["answer"] for a in made.answers()}["000:13"]
    assert f"{made.rows[0]['exact']:.1%}" in answer and "causal mask" in answer
