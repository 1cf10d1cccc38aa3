"""TP4 part 1, steps 3-4: a tiny Transformer classifier and its attention maps.

Does a sentence of the synthetic corpus name a European country? Each
sentence becomes `[CLS] w1 ... wn [PAD] ...` (right padding, so [CLS] is
always at position 0 and the padding mask hides the rest); the
`TinyTransformerClassifier` (2 encoder blocks, 2 heads, d_model 64) reads the
class from the [CLS] output, trained with AdamW and cross-entropy, validated
every epoch. Step 4 draws the attention of every layer and head on chosen
sentences and measures how much the maps move when one capital is swapped
for another (a label-preserving change).

    python -m kcourse.tasks.transformer                       # 20,000 sentences, 5 epochs
    python -m kcourse.tasks.transformer --quick               # a smoke run in seconds
    python -m kcourse.tasks.transformer --pe both             # sinusoidal vs learned positions
    python -m kcourse.tasks.transformer --embeddings runs/word2vec-.../embeddings.npz  # frozen word2vec vectors
    python -m kcourse.tasks.transformer --sentence "the capital of france is paris"

The run folder gets config.json, one history CSV per model, metrics.json, the
learning curves, `attention_<k>.png` for each sentence and `stability.csv`.
"""

import numpy as np

from kcourse import cli, text

SENTENCES = (
    "the capital of france is paris",
    "despite debates, tokyo remains the capital of japan",
    "people know that rome belongs to italy, but some mention ottawa incorrectly",
)
PE_MODES = ("sinusoidal", "learned")


def load_data(n_sentences=20_000, seed=0, max_len=32, vocab=None, val_fraction=0.2):
    """Token ids (N, max_len) with [CLS] first, labels (N,), split train/val; and the vocabulary.

    `vocab` (e.g. the word2vec lab's) is used as given; otherwise one is built on the corpus.
    """
    corpus = text.build_synthetic_corpus(n_sentences, seed)
    if vocab is None:
        vocab = text.Vocabulary.build([text.tokenize(s) for s in corpus])
    x = vocab.encode_batch(corpus, max_len, add_cls=True, padding="right")  # (N, L)
    y = np.array([text.label_from_sentence(s) for s in corpus], "int32")  # (N,)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, int(len(x) * val_fraction))
    val, tr = order[:n_val], order[n_val:]
    return ((x[tr], y[tr]), (x[val], y[val])), vocab, corpus


def build_model(vocab, max_len=32, d_model=64, n_heads=2, n_layers=2, pe="sinusoidal", drop=0.1,
                embeddings=None, freeze_embeddings=True, learning_rate=1e-3):
    """A compiled TinyTransformerClassifier: AdamW, cross-entropy on logits, accuracy."""
    import keras

    from kcourse.models import TinyTransformerClassifier

    if embeddings is not None and tuple(embeddings.shape)[0] != len(vocab):
        raise cli.LabError(
            f"the embeddings have {embeddings.shape[0]} rows but the vocabulary has {len(vocab)} words; "
            f"expected a ({len(vocab)}, D) table"
        )
    if d_model % n_heads:
        raise cli.LabError(f"--d-model {d_model} is not divisible by --heads {n_heads}")
    model = TinyTransformerClassifier(
        vocab_size=len(vocab), max_len=max_len, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
        pe=pe, drop=drop, pad_id=vocab.pad_id, embeddings=embeddings,
        freeze_embeddings=embeddings is not None and freeze_embeddings, name=f"transformer_{pe}",
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.build((None, max_len))
    return model


def train(model, data, epochs=5, batch_size=64, callbacks=(), verbose="auto"):
    """`fit` with validation at every epoch; returns the History and the EpochTimer."""
    from kcourse.training import EpochTimer

    (x_train, y_train), (x_val, y_val) = data
    timer = EpochTimer()
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                        batch_size=batch_size, callbacks=[timer, *callbacks], verbose=verbose)
    return history, timer


def attention(model, vocab, sentences):
    """Token ids (N, L), the tokens of each sentence (with [CLS], no padding) and the maps.

    Returns ids, tokens, logits (N, C) and a list of per-layer maps (N, H, L, L).
    A sentence longer than the model's max_len is a LabError.
    """
    ids = vocab.encode_batch(list(sentences), model.max_len, add_cls=True, padding="right")
    logits, maps = model.logits_and_attention(ids)
    tokens = [[vocab.itos[i] for i in row if i != vocab.pad_id] for row in ids]
    return ids, tokens, logits, maps


def attention_figure(tokens, maps, index=0, title=""):
    """Heatmaps of every layer (rows) and head (columns) for one sentence, padding hidden."""
    import matplotlib.pyplot as plt

    n = len(tokens)
    n_layers, n_heads = len(maps), maps[0].shape[1]
    size = 0.28 * n + 1.5
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(size * n_heads, size * n_layers), squeeze=False)
    for layer, layer_maps in enumerate(maps):
        for head in range(n_heads):
            ax = axes[layer, head]
            ax.imshow(layer_maps[index, head, :n, :n], cmap="viridis", vmin=0)  # (n, n), padding cut
            ax.set_xticks(range(n), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(n), tokens, fontsize=7)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
    ax.figure.supxlabel("attended (keys)", fontsize=8)
    ax.figure.supylabel("attending (queries)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def swap_capital(sentence, rng):
    """The sentence with its first capital replaced by another capital, or None if it has none."""
    capitals = [d["capital"] for d in text.COUNTRIES.values()]
    tokens = sentence.split()
    for k, token in enumerate(tokens):
        word = token.strip(text.PUNCTUATION)
        if word in capitals:
            other = rng.choice([c for c in capitals if c != word])
            tokens[k] = token.replace(word, other)
            return " ".join(tokens)
    return None


def attention_stability(model, vocab, sentences, n=200, seed=0):
    """How much the attention moves when one capital is swapped for another, per layer.

    For up to `n` sentences holding a capital: the mean absolute difference of
    the maps over heads and real (non-padding) query/key pairs, and the total
    variation 0.5 * sum |a - b| of the [CLS] row (0: same attention, 1: disjoint).
    """
    rng = np.random.default_rng(seed)
    pairs = [(s, t) for s in sentences if (t := swap_capital(s, rng)) is not None][:n]
    if not pairs:
        raise cli.LabError("no sentence with a capital to swap")
    ids, _, logits_a, maps_a = attention(model, vocab, [s for s, _ in pairs])
    _, _, logits_b, maps_b = attention(model, vocab, [t for _, t in pairs])
    real = (ids != vocab.pad_id).astype("float32")  # (N, L)
    pair_mask = real[:, None, :, None] * real[:, None, None, :]  # (N, 1, L, L)
    rows = []
    for layer, (a, b) in enumerate(zip(maps_a, maps_b)):
        diff = np.abs(a - b)  # (N, H, L, L)
        mad = float((diff * pair_mask).sum() / (pair_mask.sum() * a.shape[1]))
        tv = float(0.5 * diff[:, :, 0, :].sum(-1).mean())
        rows.append({"layer": layer + 1, "mean |dA|": mad, "TV of [CLS] row": tv})
    same_prediction = float((logits_a.argmax(-1) == logits_b.argmax(-1)).mean())
    return rows, same_prediction, len(pairs)


def main(argv=None):
    parser = cli.lab_parser("transformer", __doc__, epochs=5, batch_size=64)
    parser.add_argument("--sentences", type=int, default=20_000, help="corpus size (default: %(default)s)")
    parser.add_argument("--max-len", type=int, default=32, help="tokens per sequence with [CLS] (default: %(default)s)")
    parser.add_argument("--d-model", type=int, default=64, help="default: %(default)s")
    parser.add_argument("--heads", type=int, default=2, help="default: %(default)s")
    parser.add_argument("--layers", type=int, default=2, help="default: %(default)s")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW's (default: %(default)s)")
    parser.add_argument("--pe", default="sinusoidal", choices=[*PE_MODES, "both"], help="positional encoding (default: %(default)s)")
    parser.add_argument("--embeddings", help="embeddings.npz from kcourse.tasks.word2vec (its vocabulary is used)")
    frozen = parser.add_mutually_exclusive_group()
    frozen.add_argument("--freeze-embeddings", dest="freeze", action="store_true", default=True,
                        help="keep the loaded embeddings fixed (default, the course's set-up)")
    frozen.add_argument("--train-embeddings", dest="freeze", action="store_false", help="fine-tune them")
    parser.add_argument("--sentence", action="append", help="sentence whose attention to draw (repeatable)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.sentences = min(args.epochs, 1), min(args.sentences, 1000)
    backend = cli.use_backend(args.backend)

    embeddings, vocab = None, None
    if args.embeddings:
        from kcourse.tasks.word2vec import load_embeddings

        embeddings, vocab = load_embeddings(args.embeddings)
    data, vocab, corpus = load_data(args.sentences, args.seed, args.max_len, vocab)
    shown = args.sentence or list(SENTENCES)
    vocab.encode_batch(shown, args.max_len)  # a sentence that is too long stops the lab before training

    import keras

    from kcourse import plots
    from kcourse.runs import Run

    run = Run("transformer", vars(args), out=args.out)
    (x_train, y_train), (x_val, y_val) = data
    print(f"{len(x_train):,} train / {len(x_val):,} val sentences of {args.max_len} tokens; "
          f"vocabulary {len(vocab)}; European share {y_train.mean():.3f}; backend {backend}")
    modes = list(PE_MODES) if args.pe == "both" else [args.pe]
    rows, histories, models = [], {}, {}
    for pe in modes:
        keras.utils.set_random_seed(args.seed)
        model = build_model(vocab, args.max_len, args.d_model, args.heads, args.layers, pe,
                            embeddings=embeddings, freeze_embeddings=args.freeze, learning_rate=args.learning_rate)
        print(f"\n{pe} positions: {model.count_params():,} parameters"
              + (f", embeddings from {args.embeddings} ({'frozen' if args.freeze else 'trained'})" if embeddings is not None else ""))
        history, timer = train(model, data, args.epochs, args.batch_size, [run.csv_logger(f"history_{pe}")])
        histories[pe], models[pe] = history.history, model
        row = {
            "positions": pe,
            "parameters": model.count_params(),
            "val accuracy": float(history.history["val_accuracy"][-1]),
            "val loss": float(history.history["val_loss"][-1]),
            "best val accuracy": float(max(history.history["val_accuracy"])),
            "s / epoch": timer.steady,
        }
        rows.append(row)
        run.save_metrics(**{pe: row})
    run.savefig(plots.learning_curves(histories), "learning_curves")

    model = models[modes[0]]
    _, tokens, logits, maps = attention(model, vocab, shown)
    for k, sentence in enumerate(shown):
        p = float(np.exp(logits[k]).max() / np.exp(logits[k]).sum())
        title = f"{sentence!r}: class {int(logits[k].argmax())} (p={p:.2f}, true {text.label_from_sentence(sentence)})"
        run.savefig(attention_figure(tokens[k], maps, k, title), f"attention_{k + 1}")
    val_sentences = [corpus[i] for i in np.random.default_rng(args.seed).permutation(len(corpus))[: len(x_val)]]
    stability, same, n = attention_stability(model, vocab, val_sentences, seed=args.seed)
    run.save_table("stability", stability)
    run.save_metrics(stability=stability, same_prediction_after_swap=same, swapped_sentences=n)
    print(f"\nstep 4, stability: one capital swapped for another in {n} validation sentences "
          f"({modes[0]} model); the prediction stays the same for {same:.1%}")
    for row in stability:
        print(f"  layer {row['layer']}: mean |dA| {row['mean |dA|']:.4f}, TV of the [CLS] row {row['TV of [CLS] row']:.4f}")
    run.save_table("summary", rows)
    run.print_summary(f"Tiny Transformer, European country? ({len(corpus):,} sentences, {backend})", rows)
    return run


if __name__ == "__main__":
    cli.run(main)
