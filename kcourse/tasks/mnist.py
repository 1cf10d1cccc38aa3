"""TP3 part I: handwritten digits, a multi-layer perceptron against a vanilla CNN.

The course's two models, trained with `model.fit` on MNIST (60,000 / 10,000
digits of 28x28): the MLP 784 -> 128 -> 10 (101,770 parameters) flattens the
image and loses its 2-D structure; the vanilla CNN (conv 5x5 -> pool -> conv
5x5 -> pool -> dense 50 -> dense 10, 27,830 parameters) shares its filters
across the image and wins with a quarter of the weights.

    python -m kcourse.tasks.mnist                 # real MNIST (downloaded once, cached)
    python -m kcourse.tasks.mnist --quick         # seconds: 12,000 digits, 3 epochs
    python -m kcourse.tasks.mnist --data mnist.npz  # a local copy (keras' mnist.npz format)

Offline, it says so in one line and trains on scikit-learn's 1,797 embedded
8x8 digits, resized and placed at random in 28x28 frames (ten times each).
The last twelfth of the training digits is held out for validation (the
learning curves); the test digits are seen once, at the end. The run folder
gets config.json, one history CSV per model, metrics.json, the learning
curves, the CNN's confusion matrix and a grid of the digits it got wrong.
The "GPU speed-up" exercise: the summary names the device trained on and,
when an accelerator is visible, times a few steps of the same epoch on the CPU.
"""

from pathlib import Path

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.mnist: build_parser(), then run_lab(args)

MODELS = ("mlp", "cnn")
PARITY = {"test accuracy": 0.02}  # the largest difference between backends RESULTS.md accepts
KEY_FIGURES = ("learning_curves", "confusion_cnn")


def build_model(name, learning_rate=1e-3):
    """The compiled model `name` ("mlp" or "cnn", kcourse.models): Adam and cross-entropy on logits, accuracy tracked."""
    import keras

    from kcourse.models import build_cnn, build_mlp
    from kcourse.training import compile_model

    return compile_model({"mlp": build_mlp, "cnn": build_cnn}[name](), keras.optimizers.Adam(learning_rate))


def evaluate(model, data):
    """{"test accuracy"}: on the test digits (a kcourse.datasets.Digits), never seen in training or validation."""
    from kcourse.training import predict_classes

    return {"test accuracy": float((predict_classes(model, data.x_test, 256) == data.y_test).mean())}


# ---------------------------------------------------------------- the handout's questions, answered by the run
def vanilla_cnn(run):
    cnn = run.row("cnn")
    shapes = run.metrics.get("shapes", {}).get("cnn")
    if cnn is None or shapes is None:
        return None
    return (f"The vanilla CNN built here (conv 5x5 1 -> 10, pool, conv 5x5 10 -> 10, pool, dense 490 -> 50, dropout, "
            f"50 -> 10) has {cnn['total params']:,} parameters and maps {_shape(shapes['input'])} to {_shape(shapes['output'])} "
            f"(channels last: the course's [B, 1, 28, 28] is (B, 28, 28, 1) in Keras).")


def cnn_beats_mlp(run):
    cnn, mlp = run.row("cnn"), run.row("mlp")
    if cnn is None or mlp is None:
        return None
    verdict = "Yes" if cnn["test accuracy"] > mlp["test accuracy"] else "Not in this run"
    return (f"{verdict}: the CNN reaches {cnn['test accuracy']:.3f} test accuracy against the MLP's {mlp['test accuracy']:.3f}, "
            f"with {mlp['total params'] / cnn['total params']:.1f}x fewer parameters ({cnn['total params']:,} against "
            f"{mlp['total params']:,}).")


def mlp_parameters(run):
    mlp = run.row("mlp")
    if mlp is None:
        return None
    agrees = "as" if mlp["total params"] == 101_770 else "not as"
    return f"The MLP(784, 128, 10) has {mlp['total params']:,} parameters, {agrees} the lecture's print(n) says (101770)."


def _shape(shape):
    return "(" + ", ".join("B" if d is None else str(d) for d in shape) + ")"


HANDOUT = (
    Item("000:1", "Construction d'un « Vanilla CNN »", "The vanilla CNN: its layers, parameters and shapes.",
         vanilla_cnn, "kcourse.models.build_cnn", needs="--models cnn"),
    Item("000:2", "Meilleur scores qu'un MLP", "Does the vanilla CNN score better than the MLP?",
         cnn_beats_mlp, "kcourse.tasks.mnist.evaluate", needs="--models mlp cnn"),
    Item("003:3", "model = MLP(784, 128, 10) ; print(f\"{n} parametres\")  # 101770", "How many parameters has the MLP 784-128-10?",
         mlp_parameters, "kcourse.models.build_mlp", needs="--models mlp"),
    Item("003:11", "MNIST : [B, 1, 28, 28] → [B, 10]", "The MNIST CNN's input and output shapes.",
         vanilla_cnn, "kcourse.models.build_cnn", needs="--models cnn"),
)


def build_parser():
    """The lab's options: the shared ones, the data and the models."""
    # --quick: 12,000 digits, 3 epochs: enough for the CNN to pass the MLP, in seconds
    parser = cli.lab_parser("mnist", __doc__, epochs=5, batch_size=64, learning_rate=1e-3, quick={"epochs": 3})
    parser.add_argument("--dataset", default="auto", choices=datasets.DIGITS_SOURCES, help="default: %(default)s")
    parser.add_argument("--data", type=Path, help="local .npz in keras' mnist.npz layout (overrides --dataset)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="default: mlp cnn")
    return parser


def run_lab(args):
    """TP3 part I from the parsed options: the digits, each model fitted and tested, the CNN's mistakes
    (what `main` and the notebook run)."""
    run = runs.start("mnist", args)
    from kcourse import plots
    from kcourse.training import predict_classes

    data = datasets.digits(args.dataset, args.data, quick=args.quick, seed=args.seed)
    run.note(data_used=data.name)
    print(repr(data))
    for name in args.models:
        fitted = run.fit(name, lambda: build_model(name, args.learning_rate), data.train, data.val)
        run.record(fitted, **evaluate(fitted.model, data))
        run.save_metrics(shapes={**run.metrics.get("shapes", {}), name: {"input": list(fitted.model.inputs[0].shape),
                                                                          "output": list(fitted.model.outputs[0].shape)}})

    shown = "cnn" if "cnn" in args.models else args.models[-1]
    y_pred = predict_classes(run.fitted[shown].model, data.x_test, 256)
    run.outputs.update(data=data, shown=shown, y_pred=y_pred)
    run.savefig(plots.confusion_matrix(data.y_test, y_pred, [str(d) for d in range(10)], f"{shown} on {data.name}"),
                f"confusion_{shown}")
    wrong = np.flatnonzero(y_pred != data.y_test)[:32]
    run.savefig(plots.image_grid(data.x_test[wrong], [f"{data.y_test[i]} -> {y_pred[i]}" for i in wrong]), f"misclassified_{shown}")
    return run.finish(f"MNIST: MLP vs CNN ({data.name})", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
