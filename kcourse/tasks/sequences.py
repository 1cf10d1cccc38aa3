"""Lecture 000's toy tasks: where a CNN of the same budget fails and the Transformer succeeds, and where both do.

Two tasks on random sequences of 8 symbols, [CLS] first, half of them positive:

- first-last (a long-range dependency): is the last symbol the same as the first?
- bigram (a local pattern): does the pair "a b" occur somewhere?

and the tiny Transformer's own task (european: does a sentence of the
synthetic corpus name a European country?), where lecture 003's LSTM meets it
(accuracy, time per epoch, and the accuracy on the longest quarter of the
sentences).

Three models of about the same number of weights learn each at two lengths:
a CNN (two 3-wide convolutions, global max pooling: a receptive field of 5
symbols), an LSTM, and the tiny Transformer (2 blocks, learnt positions).
The CNN finds the bigram wherever it is, but no unit of it ever sees both
ends of a long sequence; attention relates any two positions in one step.
Lecture 000's "effect of dilation": the same CNN with its second convolution
dilated (gaps of (length - 2) / 2 symbols between its taps) has the same
weights and a receptive field of the whole sequence.

    python -m kcourse.tasks.sequences                 # 8,000 sequences per task, lengths 8 and 32, 5 epochs
    python -m kcourse.tasks.sequences --quick         # a smoke run

The run folder gets per model history_<model>-<task>-<length>.csv and its
.keras, summary.csv, accuracy.png (accuracy by length, one panel per task).
"""

import numpy as np

from kcourse import cli, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.sequences: build_parser(), then run_lab(args)

TASKS = ("first-last", "bigram", "european")
MODELS = ("cnn", "dilated", "lstm", "transformer")
SYMBOLS, PAD, CLS = 8, 0, 1  # symbols are ids 2..9
BIGRAM = (2, 3)  # the local pattern: symbol 2 then symbol 3
PARITY = {"val accuracy": 0.05}
KEY_FIGURES = ("accuracy",)


# ---------------------------------------------------------------- the tasks
def make_task(task, n, length, seed=0):
    """`n` sequences (n, 1 + length) int32, [CLS] first, and their labels (n,), half positive."""
    rng = np.random.default_rng(seed)
    x = rng.integers(2, 2 + SYMBOLS, (n, length))
    y = rng.random(n) < 0.5
    if task == "first-last":
        other = (x[:, 0] - 2 + rng.integers(1, SYMBOLS, n)) % SYMBOLS + 2  # any symbol but the first
        x[:, -1] = np.where(y, x[:, 0], other)
    elif task == "bigram":
        a, b = BIGRAM
        for row, positive in zip(x, y):
            while ((row[:-1] == a) & (row[1:] == b)).any():  # no pair by chance
                row[1:][(row[:-1] == a) & (row[1:] == b)] = rng.integers(4, 2 + SYMBOLS)
            if positive:
                at = rng.integers(0, length - 1)
                row[at:at + 2] = BIGRAM
    else:
        raise cli.LabError(f"unknown task {task!r}: choose among {', '.join(TASKS)}")
    return np.concatenate([np.full((n, 1), CLS), x], 1).astype("int32"), y.astype("int32")


# ---------------------------------------------------------------- the models, about 10-20 k weights each
def dilation_for(length):
    """The second convolution's dilation that lets one unit see the first and the last symbol: its taps 0, D and 2D
    over 3-wide windows reach [CLS] to the last symbol, one output left."""
    return max(1, (length - 2) // 2)


def build_model(kind, length, learning_rate=1e-3, width=32, vocab_size=2 + SYMBOLS):
    """A compiled classifier of sequences (B, 1 + length) of ids below `vocab_size`, 0 the padding: "cnn",
    "dilated" (the cnn, its second convolution dilated), "lstm" or "transformer"."""
    import keras

    from kcourse.models import TinyTransformerClassifier
    from kcourse.training import compile_model

    vocab, layers, wide = vocab_size, keras.layers, width + width // 2
    if kind == "transformer":  # learnt positions: the sinusoidal table does not find the first and last here
        model = TinyTransformerClassifier(vocab, 1 + length, d_model=width, n_heads=2, n_layers=2, drop=0.0, pe="learned",
                                          pad_id=PAD, name="transformer")
        model.build((None, 1 + length))
        return compile_model(model, keras.optimizers.AdamW(learning_rate))
    body = {
        "cnn": [layers.Conv1D(wide, 3, activation="relu"), layers.Conv1D(wide, 3, activation="relu"),
                layers.GlobalMaxPooling1D(), layers.Dense(width, activation="relu")],
        "dilated": [layers.Conv1D(wide, 3, activation="relu"),
                    layers.Conv1D(wide, 3, dilation_rate=dilation_for(length), activation="relu"),
                    layers.GlobalMaxPooling1D(), layers.Dense(width, activation="relu")],
        "lstm": [layers.LSTM(wide)],
    }[kind]
    embed = layers.Embedding(vocab, width, mask_zero=kind == "lstm")  # the LSTM skips the padding; convolutions cannot
    model = keras.Sequential([keras.Input((1 + length,), dtype="int32"), embed, *body, layers.Dense(2)], name=kind)
    return compile_model(model, keras.optimizers.Adam(learning_rate))


def receptive_field(model):
    """The symbols one output of a CNN's last convolution sees (kcourse.receptive_field, dilations included)."""
    from kcourse import receptive_field as fields

    return int(fields.receptive_field_of(model)[0])


def accuracy_figure(rows):
    import matplotlib.pyplot as plt

    from kcourse.plots import tidy

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for kind in dict.fromkeys(r["kind"] for r in rows):
            part = [r for r in rows if r["task"] == task and r["kind"] == kind]
            ax.plot([r["length"] for r in part], [r["val accuracy"] for r in part], "o-", label=kind)
        ax.axhline(0.5, color="grey", lw=0.8, label="chance")
        ax.set(xlabel="sequence length", ylabel="val accuracy", title=task, ylim=(0.4, 1.02))
    return tidy(fig, *axes[0])


# ---------------------------------------------------------------- the handout's question, answered by the run
def cnn_against_transformer(run):
    rows = {(r["kind"], r["task"], r["length"]): r for r in run.rows}
    longest = max(r["length"] for r in run.rows)
    get = lambda kind, task: rows.get((kind, task, longest), {}).get("val accuracy")  # noqa: E731
    parts = [f"{kind} {get(kind, 'first-last'):.3f}" for kind in MODELS if get(kind, "first-last") is not None]
    field = run.metrics.get("cnn receptive field")
    text = f"Is the last symbol the first one, at length {longest}: val accuracy {', '.join(parts)} (chance 0.5)."
    if field is not None:
        sees = "none sees both ends" if field < longest + 1 else "one can see both ends"
        text += (f" The CNN's units see {field} symbols: {sees}, and max pooling forgets where a feature was; "
                 f"attention relates any two positions in one step.")
    local = {kind: get(kind, "bigram") for kind in MODELS if get(kind, "bigram") is not None}
    if local:
        best = max(local, key=local.get)
        text += (f" Does the pair occur (a local pattern): {', '.join(f'{k} {v:.3f}' for k, v in local.items())}, "
                 f"the best {best}.")
    params = {kind: r["total params"] for (kind, _, length), r in rows.items() if length == longest}
    return text + " Weights: " + ", ".join(f"{kind} {n:,}" for kind, n in params.items()) + "."


def dilation(run):
    rows = {(r["kind"], r["task"], r["length"]): r for r in run.rows}
    longest = max((length for kind, _, length in rows if kind == "dilated"), default=None)
    plain, dilated = rows.get(("cnn", "first-last", longest)), rows.get(("dilated", "first-last", longest))
    if plain is None or dilated is None:
        return None
    field = run.metrics.get("receptive fields", {})
    local = rows.get(("dilated", "bigram", longest)), rows.get(("cnn", "bigram", longest))
    text_ = (f"The CNN's second convolution dilated by {dilation_for(longest)}: the same {dilated['total params']:,} weights "
             f"as the plain one ({plain['total params']:,}), a receptive field of {field.get(f'dilated-{longest}')} symbols "
             f"against {field.get(f'cnn-{longest}')} (kcourse.receptive_field). Is the last symbol the first one, at length "
             f"{longest}: {dilated['val accuracy']:.3f} dilated against {plain['val accuracy']:.3f} plain, "
             f"{dilated['s / epoch']:.2f} against {plain['s / epoch']:.2f} s an epoch")
    if all(local):
        text_ += f"; the local pair: {local[0]['val accuracy']:.3f} dilated, {local[1]['val accuracy']:.3f} plain"
    return text_ + ": dilation widens the field at no cost in weights, skipping the symbols between its taps."


def lstm_against_transformer(run):
    rows = {r["kind"]: r for r in run.rows if r["task"] == "european"}
    if "lstm" not in rows or "transformer" not in rows:
        return None
    lstm, tr = rows["lstm"], rows["transformer"]
    return (f"On the tiny Transformer's task (European country?), the LSTM ({lstm['total params']:,} weights) reaches "
            f"{lstm['val accuracy']:.3f} in {lstm['s / epoch']:.2f} s an epoch, the Transformer ({tr['total params']:,}) "
            f"{tr['val accuracy']:.3f} in {tr['s / epoch']:.2f} s; on the longest quarter of the sentences "
            f"{lstm['longest quarter']:.3f} against {tr['longest quarter']:.3f}. The LSTM reads word after word and must "
            f"carry the country to the end in its state; attention reaches it from [CLS] in one step, whatever the length.")


HANDOUT = (
    Item("000:16", "Tâches jouets où un CNN vanille << Transformer", "Toy tasks where a vanilla CNN fails and a Transformer succeeds.",
         cnn_against_transformer, "kcourse.tasks.sequences.make_task"),
    Item("000:17", "Effet de la dilation (?)", "The effect of dilation: a dilated CNN against the plain one, same weights.",
         dilation, "kcourse.tasks.sequences.build_model", needs="--tasks first-last --models cnn dilated"),
    Item("003:16", "Demain : Séquences & Attention. De la vision spatiale aux données séquentielles => RNN, LSTM, Transformers", "An LSTM against the Transformer on the Transformer's task.",
         lstm_against_transformer, "kcourse.tasks.sequences.sentences_task", needs="--tasks european --models lstm transformer"),
)


def build_parser():
    """The lab's options: the shared ones, the tasks, the lengths, the models."""
    parser = cli.lab_parser("sequences", __doc__, epochs=5, batch_size=64, learning_rate=1e-3,
                            quick={"train_size": 4000, "lengths": [16], "epochs": 3})
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS, help="default: all three")
    parser.add_argument("--lengths", nargs="+", type=cli.number(int, low=3), default=[8, 32],
                        help="symbols per sequence, after [CLS] (default: 8 32; 16 with --quick)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="default: all three")
    parser.add_argument("--train-size", type=cli.positive_int, default=8000,
                        help="training sequences per task and length, sentences for european (default: %(default)s, 4000 with --quick)")
    return parser


def sentences_task(run, args, max_len=32):
    """The tiny Transformer's task (kcourse.datasets.sentences) for each model: accuracy, overall and on the quarter
    of the validation sentences with the most words."""
    from kcourse import datasets
    from kcourse.training import predict_classes

    data = datasets.sentences(max(args.train_size, 1000), args.seed, max_len)
    lengths = (data.x_val != data.vocab.pad_id).sum(1)
    longest = lengths >= np.quantile(lengths, 0.75)
    for kind in dict.fromkeys(args.models):
        build = lambda kind=kind: build_model(kind, max_len - 1, args.learning_rate, vocab_size=len(data.vocab))  # noqa: E731
        fitted = run.fit(f"{kind}-european", build, data.train, data.val)
        right = predict_classes(fitted.model, data.x_val, 256) == data.y_val
        run.record(fitted, kind=kind, task="european", length=max_len - 1, **{"val accuracy": float(right.mean()),
                   "longest quarter": float(right[longest].mean())})


def run_lab(args):
    """Every model on every task and length, trained from the same seed (what `main` and the notebook run)."""
    run = runs.start("sequences", args)
    for task in dict.fromkeys(args.tasks):
        if task == "european":
            sentences_task(run, args)
            continue
        for length in dict.fromkeys(args.lengths):
            train = make_task(task, args.train_size, length, args.seed)
            val = make_task(task, max(500, args.train_size // 4), length, args.seed + 1)
            for kind in dict.fromkeys(args.models):
                fitted = run.fit(f"{kind}-{task}-{length}", lambda kind=kind, length=length: build_model(kind, length, args.learning_rate),
                                 train, val)
                run.record(fitted, kind=kind, task=task, length=length, **{"val accuracy": fitted.history["val_accuracy"][-1]})
                if kind in ("cnn", "dilated"):
                    fields = {**run.metrics.get("receptive fields", {}), f"{kind}-{length}": receptive_field(fitted.model)}
                    run.save_metrics(**{"receptive fields": fields})
                if kind == "cnn":
                    run.save_metrics(**{"cnn receptive field": receptive_field(fitted.model)})
    run.savefig(accuracy_figure(run.rows), "accuracy")
    return run.finish("Toy sequence tasks: CNN, LSTM, Transformer", curves=("accuracy",), handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
