"""Lecture 000's translation architecture: a tiny encoder-decoder Transformer, its causal decoder and its cross-attention.

The toy translation: a sentence of the synthetic corpus into the same words
read backwards ("the capital of france is paris" -> "paris is france of
capital the"), the classic test of a sequence-to-sequence model (Sutskever et
al. 2014 reversed their sources): every output word sits at the mirrored
place of the input, so what the cross-attention must learn is known, and
drawn. The `TinyTranslator` (2 encoder blocks, 2 decoder blocks, 2 heads,
d_model 64, sinusoidal positions) learns with teacher forcing: the decoder
reads `[CLS]` and the translation so far, a causal mask hiding the words to
come, and the encoder's output through cross-attention; it is then run
greedily, word after word, on held-out sentences.

    python -m kcourse.tasks.translation              # 20,000 sentences, 5 epochs
    python -m kcourse.tasks.translation --quick      # a smoke run

The run folder gets config.json, history_translator.csv, translator.keras
(keras.saving.load_model), metrics.json, summary.csv, the learning curves,
`translations.csv` (held-out sentences, the greedy output, right or not) and
`attention_<k>.png`: the encoder's, the decoder's (causal) and the
cross-attention's maps of a sentence, one row per block.
"""

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.translation: build_parser(), then run_lab(args)

SENTENCES = ("the capital of france is paris", "despite debates, tokyo remains the capital of japan")
PARITY = {"exact": 0.1}
KEY_FIGURES = ("learning_curves", "attention_1")
SHOWN = 200  # held-out sentences translated greedily


# ---------------------------------------------------------------- the toy translation
def reversed_pairs(source, pad_id, start_id, end_id):
    """Teacher forcing for the reversal task, from source rows (N, L) of word ids, words first then padding.

    Returns `target` (N, L): the start token then the reversed words (what the
    decoder reads), and `labels` (N, L): the reversed words then the end token
    (what it must say at each position), both padded. A source of n words
    needs n + 1 <= L.
    """
    n = (source != pad_id).sum(1)  # (N,) words per sentence
    if (n + 1 > source.shape[1]).any():
        raise cli.LabError(f"a sentence has {int(n.max())} words: the translation needs one more place for its end "
                           f"token; raise --max-len above {int(n.max())}")
    positions = np.arange(source.shape[1])[None, :]
    mirrored = n[:, None] - 1 - positions  # (N, L): the source position of output word t
    words = np.where(mirrored >= 0, np.take_along_axis(source, np.clip(mirrored, 0, None), 1), pad_id)
    labels = np.where(positions == n[:, None], end_id, words).astype("int32")
    target = np.concatenate([np.full((len(source), 1), start_id), labels[:, :-1]], 1)
    return np.where(target == end_id, pad_id, target).astype("int32"), labels


def load_data(n_sentences, seed, max_len):
    """The corpus's sentences (kcourse.datasets.sentences, split train / val) as reversal pairs; the target
    vocabulary is the source's words plus an end token (its id: len(vocab))."""
    data = datasets.sentences(n_sentences, seed, max_len)
    vocab, end = data.vocab, len(data.vocab)
    split = {}
    for part, rows in (("train", data.x_train), ("val", data.x_val)):
        source = np.concatenate([rows[:, 1:], np.full((len(rows), 1), vocab.pad_id, "int32")], 1)  # [CLS] taken off
        target, labels = reversed_pairs(source, vocab.pad_id, vocab.cls_id, end)
        split[part] = ({"source": source, "target": target}, labels)
    return split, vocab, data.val_sentences


def words(vocab, ids):
    """Ids back to words, stopping at the end token; padding left out."""
    out = []
    for i in ids:
        if i == len(vocab):
            break
        if i != vocab.pad_id:
            out.append(vocab.itos[i])
    return out


# ---------------------------------------------------------------- decoding and measuring
def translate(model, source, start_id, end_id, pad_id=0):
    """Greedy decoding, word after word: the decoder reads what it has said so far. Fixed shapes (B, L): one
    compiled predict for every step, the causal mask hiding the places not yet filled. Returns (B, L) ids."""
    batch, length = source.shape
    target = np.full((batch, length), pad_id, "int32")
    target[:, 0] = start_id
    said, done = np.full((batch, length), pad_id, "int32"), np.zeros(batch, bool)
    for t in range(length):
        word = np.asarray(model.predict_on_batch({"source": source, "target": target}))[:, t].argmax(-1)
        said[:, t] = np.where(done, pad_id, word)
        done |= word == end_id
        if t + 1 < length:
            target[:, t + 1] = np.where(done, pad_id, word)
        if done.all():
            break
    return said


def attention_maps(model, x):
    """Inference-mode attention of every block as NumPy: {"encoder": [(B, H, S, S)], "decoder": [(B, H, T, T)],
    "cross": [(B, H, T, S)]}."""
    from keras import ops

    _, maps = model(x, need_weights=True, training=False)
    return {kind: [ops.convert_to_numpy(a) for a in blocks] for kind, blocks in maps.items()}


def alignment(model, x, labels):
    """How much of each head's cross-attention falls on the mirrored source word (the one output word t copies):
    rows {"block", "head", "on the mirrored word"}, and the uniform share 1 / n for comparison."""
    maps = attention_maps(model, x)
    n = (x["source"] != model.pad_id).sum(1)  # (N,)
    t = np.arange(labels.shape[1])[None, :]
    real = t < n[:, None]  # output places that copy a word (not the end token)
    mirrored = np.clip(n[:, None] - 1 - t, 0, None)
    rows = []
    for b, cross in enumerate(maps["cross"]):  # (N, H, T, S)
        for h in range(cross.shape[1]):
            on = np.take_along_axis(cross[:, h], mirrored[:, :, None], 2)[:, :, 0]  # (N, T)
            rows.append({"block": b + 1, "head": h + 1, "on the mirrored word": float(on[real].mean())})
    return rows, float(np.repeat(1.0 / n, n).mean())


def causal_check(model, x, at=3):
    """Change the target's word at place `at`: the decoder's outputs before it must not move (the causal mask),
    those from it on do. Returns (largest change before, largest change from `at`)."""
    changed = {k: v.copy() for k, v in x.items()}
    changed["target"][:, at] = np.where(changed["target"][:, at] == 3, 4, 3)  # another word
    before, after = (np.asarray(model.predict_on_batch(d)) for d in (x, changed))
    delta = np.abs(after - before)
    return float(delta[:, :at].max()), float(delta[:, at:].max())


def attention_figure(vocab, x, maps, labels, k=0, title=""):
    """One sentence's maps, heads averaged, one row per block: the encoder's, the decoder's (causal), the cross's."""
    import matplotlib.pyplot as plt

    source = [vocab.itos[i] for i in x["source"][k] if i != vocab.pad_id]
    said = [*words(vocab, labels[k]), "[END]"]
    reads = ["[CLS]", *said[:-1]]
    panels = (("encoder", source, source), ("decoder", reads, reads), ("cross", source, reads))
    blocks = len(maps["cross"])
    fig, axes = plt.subplots(blocks, 3, figsize=(13, 4.2 * blocks), squeeze=False)
    for b in range(blocks):
        for ax, (kind, columns, rows) in zip(axes[b], panels):
            a = maps[kind][b][k].mean(0)[: len(rows), : len(columns)]
            ax.imshow(a, cmap="viridis", vmin=0, vmax=max(float(a.max()), 1e-6))
            ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
            ax.set_yticks(range(len(rows)), rows, fontsize=7)
            ax.set_title(f"block {b + 1}, {kind}{' (causal)' if kind == 'decoder' else ''}: heads averaged, "
                         f"largest {a.max():.2f}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the handout's question, answered by the run
def translation_architecture(run):
    row, m = run.rows[0], run.metrics
    best = max(m["alignment"], key=lambda r: r["on the mirrored word"])
    before, after = m["causal check"]
    return (f"An encoder-decoder of {row['total params']:,} weights ({run.config['layers']} encoder and "
            f"{run.config['layers']} decoder blocks, d_model {run.config['d_model']}) learns to read "
            f"{m['sentences']['train']:,} sentences backwards in {run.config['epochs']} epochs "
            f"({row['s / epoch']:.1f} s an epoch): greedy decoding, word after word, gets {row['exact']:.1%} of "
            f"{m['sentences']['translated']} held-out sentences exactly right ({row['val token accuracy']:.1%} of the words "
            f"with teacher forcing). The causal mask: changing the word the decoder reads at place "
            f"{m['causal at']} moves its earlier outputs by {before:.1e}, the later ones by up to {after:.2f}. "
            f"Cross-attention: block {best['block']} head {best['head']} puts {best['on the mirrored word']:.0%} of "
            f"its weight on the mirrored source word, the one being copied, against {m['uniform share']:.0%} spread "
            f"evenly: {alignment_reading(best['on the mirrored word'], m['uniform share'])}.")


def alignment_reading(share, uniform):
    """What the cross-attention's share on the copied word says."""
    if share >= 0.5:
        return "the anti-diagonal of attention_1.png, the alignment a translation learns"
    return (f"{share / uniform:.1f}x an even spread, yet not all of it: the encoder's self-attention has already mixed "
            f"each word into its neighbours, so the word to copy can also be read at other places (attention_1.png)")


HANDOUT = (
    Item("000:13", "Architecture de traduction : masque causal, encodeur-décodeur, cross-attention, encodage positionnel",
         "The translation architecture: a causal decoder, cross-attention, trained on a toy translation.",
         translation_architecture, "kcourse.models.TinyTranslator"),
)


def build_parser():
    """The lab's options: the shared ones, the sentences and the model's sizes, the sentences to draw."""
    parser = cli.lab_parser("translation", __doc__, epochs=5, batch_size=64, learning_rate=1e-3,
                            quick={"sentences": 2000, "epochs": 8, "layers": 1, "learning_rate": 3e-3})
    cli.add_transformer_options(parser)
    parser.add_argument("--sentence", action="append", help="sentence whose attention to draw (repeatable)")
    return parser


def run_lab(args):
    """The pairs, the translator fitted with teacher forcing, decoded greedily, its causal mask checked and its
    attention drawn (what `main` and the notebook run)."""
    cli.check_heads(args.d_model, args.heads)
    run = runs.start("translation", args)
    from kcourse.models import build_translator  # imports keras: after the backend is chosen

    split, vocab, val_sentences = load_data(args.sentences, args.seed, args.max_len)
    shown = args.sentence or list(SENTENCES)
    drawn = vocab.encode_batch(shown, args.max_len, add_cls=False)  # a LabError for a sentence too long
    target, labels = reversed_pairs(drawn, vocab.pad_id, vocab.cls_id, len(vocab))  # and for one with no place to end
    end = len(vocab)
    print(f"{len(split['train'][1]):,} train / {len(split['val'][1]):,} val sentences; vocabulary {len(vocab)} "
          f"(+ the end token, id {end}); e.g. {val_sentences[0]!r} -> {' '.join(words(vocab, split['val'][1][0]))!r}")
    fitted = run.fit("translator", lambda: build_translator(len(vocab), end + 1, args.max_len, args.d_model, args.heads,
                                                             args.layers, args.learning_rate, pad_id=vocab.pad_id),
                     split["train"], split["val"])
    model = fitted.model

    x_val, y_val = split["val"]
    part = {k: v[:SHOWN] for k, v in x_val.items()}
    said = translate(model, part["source"], vocab.cls_id, end, vocab.pad_id)
    exact = (said == y_val[:SHOWN]).all(1)
    run.save_table("translations", [{"sentence": s, "translation": " ".join(words(vocab, out)), "right": bool(ok)}
                                    for s, out, ok in zip(val_sentences, said, exact)])
    rows, uniform = alignment(model, part, y_val[:SHOWN])
    at = 3
    run.save_metrics(**{"sentences": {"train": len(split["train"][1]), "val": len(y_val), "translated": len(exact)},
                        "alignment": rows, "uniform share": uniform, "causal check": causal_check(model, part, at),
                        "causal at": at})
    run.record(fitted, exact=float(exact.mean()), **{"val token accuracy": fitted.history["val_token_accuracy"][-1],
                                                    "val loss": fitted.history["val_loss"][-1]})
    print(f"\ngreedy decoding: {exact.mean():.1%} of {len(exact)} held-out sentences exactly right; e.g.")
    for sentence, out in list(zip(val_sentences, said))[:3]:
        print(f"  {sentence!r} -> {' '.join(words(vocab, out))!r}")

    x = {"source": drawn, "target": target}
    maps = attention_maps(model, x)
    said = translate(model, drawn, vocab.cls_id, end, vocab.pad_id)
    run.outputs.update(vocab=vocab, drawn=(x, maps, labels), split=split)
    for k, sentence in enumerate(shown):
        title = f"{sentence!r} -> {' '.join(words(vocab, said[k]))!r}"
        run.savefig(attention_figure(vocab, x, maps, labels, k, title), f"attention_{k + 1}")
    return run.finish(f"Tiny encoder-decoder, sentences read backwards ({args.sentences:,} sentences)",
                      curves=("loss", "token_accuracy"), handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
