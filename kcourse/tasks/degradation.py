"""Lecture 004's degradation problem: a deeper plain CNN trains worse, the same CNN with identity shortcuts does not.

He et al. (2016) found that stacking more layers on a plain CNN raised its
training error, though the deeper net could copy the shallower one and set
the extra layers to the identity. Their answer, the residual block, learns
y = F(x) + x: each pair of convolutions adds to its input instead of
replacing it, and the gradient reaches the first layers through the
shortcuts. Here four narrow CNNs (3x3 convolutions of width 16, Keras'
default initialisation, no normalisation, two max-poolings, global average
pooling, a dense head) learn the digits briefly: plain and residual, with 8
and 20 convolutions after the first. The run measures each one's training
loss and error, and the gradient norm reaching its first convolution before
training (kcourse.training.gradients).

    python -m kcourse.tasks.degradation              # 12,000 digits, 3 epochs
    python -m kcourse.tasks.degradation --quick      # 4,000 digits, 3 epochs: the lesson already
    python -m kcourse.tasks.degradation --depths 8 20 32

The run folder gets config.json, history_<model>.csv and <model>.keras per
model, metrics.json, summary.csv, the learning curves and gradients.png.
"""

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.degradation: build_parser(), then run_lab(args)

PARITY = {"train error": 0.1}
KEY_FIGURES = ("learning_curves", "gradients")


def build_model(depth, residual, width=16, learning_rate=1e-3, classes=10):
    """A compiled CNN: a first 3x3 convolution, `depth` more in pairs (a max-pooling halfway), global average
    pooling, Dense(classes). `residual`: each pair adds its input back (x + F(x), then ReLU)."""
    import keras
    from keras import layers

    from kcourse.training import compile_model

    x = inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(width, 3, padding="same", activation="relu", name="first_conv")(x)
    x = layers.MaxPooling2D(2)(x)  # (B, 14, 14, width)
    for block in range(depth // 2):
        if block == depth // 4:
            x = layers.MaxPooling2D(2)(x)  # (B, 7, 7, width)
        h = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        h = layers.Conv2D(width, 3, padding="same")(h)
        x = layers.ReLU()(layers.Add()([x, h]) if residual else h)  # y = F(x) + x, or F(x) alone
    x = layers.GlobalAveragePooling2D()(x)
    name = f"{'residual' if residual else 'plain'}-{depth}"
    return compile_model(keras.Model(inputs, layers.Dense(classes)(x), name=name), keras.optimizers.Adam(learning_rate))


def first_layer_gradient(model, x, y):
    """The norm of the loss's gradient at the first convolution's kernel, on one batch."""
    from kcourse.training import gradients

    return float(np.linalg.norm(gradients(model, x, y)[0]))


def gradients_figure(rows):
    import matplotlib.pyplot as plt

    from kcourse import plots

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    names = [r["model"] for r in rows]
    ax.bar(names, [r["gradient at the first layer"] for r in rows], color=["C1" if r["residual"] else "C0" for r in rows])
    ax.set(yscale="log", ylabel="gradient norm, first convolution", title="what reaches the first layer, before training")
    return plots.tidy(fig, ax)


# ---------------------------------------------------------------- the handout's question, answered by the run
def degradation(run):
    rows = {r["model"]: r for r in run.rows}  # by name: a run folder's summary.csv gives the booleans back as text
    depths = sorted({int(r["depth"]) for r in run.rows})
    if len(depths) < 2 or not all(f"{kind}-{d}" in rows for d in depths for kind in ("plain", "residual")):
        return None
    low, high = depths[0], depths[-1]
    plain_low, plain_high = rows[f"plain-{low}"], rows[f"plain-{high}"]
    res_low, res_high = rows[f"residual-{low}"], rows[f"residual-{high}"]
    worse = plain_high["train error"] > plain_low["train error"]
    return (f"After {run.config['epochs']} epochs, training error: plain {low} {plain_low['train error']:.3f}, plain {high} "
            f"{plain_high['train error']:.3f}; residual {low} {res_low['train error']:.3f}, residual {high} "
            f"{res_high['train error']:.3f}. {'The deeper plain net trains worse' if worse else 'The deeper plain net is not worse here'}"
            f" on its own training data, the degradation problem (not overfitting: its training error is what rose); "
            f"with shortcuts the deeper net {'trains better' if res_high['train error'] < res_low['train error'] else 'does not train better'} "
            f"than the shallower one. Before training, the gradient reaching the first convolution is "
            f"{plain_high['gradient at the first layer']:.1e} in plain {high} against {plain_low['gradient at the first layer']:.1e} "
            f"in plain {low} and {res_high['gradient at the first layer']:.1e} in residual {high} (gradients.png): each "
            f"plain layer multiplies it by its own Jacobian, the shortcut y = F(x) + x adds the identity to each.")


HANDOUT = (
    Item("004:12", "Problème de dégradation ; y = F(x) + x ; disparition du gradient", "The degradation problem and "
         "the residual block.", degradation, "kcourse.tasks.degradation.build_model"),
)


def build_parser():
    """The lab's options: the shared ones, the depths, the width, the digits."""
    parser = cli.lab_parser("degradation", __doc__, epochs=3, batch_size=64, learning_rate=1e-3,
                            quick={"train_size": 4000, "epochs": 3})
    parser.add_argument("--depths", nargs="+", type=cli.positive_int, default=[8, 20],
                        help="convolutions after the first, in pairs (default: 8 20)")
    parser.add_argument("--width", type=cli.positive_int, default=16, help="channels of every convolution (default: %(default)s)")
    parser.add_argument("--train-size", type=cli.positive_int, default=12_000,
                        help="training digits (default: %(default)s, 4000 with --quick)")
    return parser


def run_lab(args):
    """Plain and residual at each depth, from the same seed and digits (what `main` and the notebook run)."""
    for depth in args.depths:
        if depth < 2 or depth % 2:
            raise cli.LabError(f"--depths {depth}: the convolutions come in pairs (a residual block each); give an even number from 2")
    run = runs.start("degradation", args)
    from kcourse.training import set_seed  # imports keras: after the backend is chosen

    data = datasets.digits(quick=args.quick, seed=args.seed)
    train = data.x_train[: args.train_size], data.y_train[: args.train_size]
    run.note(data_used=data.name)
    for depth in dict.fromkeys(args.depths):
        for residual in (False, True):
            name = f"{'residual' if residual else 'plain'}-{depth}"
            fitted = run.fit(name, lambda d=depth, r=residual: build_model(d, r, args.width, args.learning_rate), train, data.val)
            set_seed(args.seed)  # the initial weights the fit started from
            start = build_model(depth, residual, args.width)
            run.record(fitted, depth=depth, residual=residual, **{
                "train loss": fitted.history["loss"][-1], "train error": 1.0 - fitted.history["accuracy"][-1],
                "val accuracy": fitted.history["val_accuracy"][-1],
                "gradient at the first layer": first_layer_gradient(start, train[0][:256], train[1][:256])})
    run.savefig(gradients_figure(run.rows), "gradients")
    return run.finish(f"The degradation problem: plain against residual CNNs ({data.name})", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
