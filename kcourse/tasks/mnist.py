"""TP3 part I: handwritten digits, a multi-layer perceptron against a vanilla CNN.

The course's two models, trained with `model.fit` on MNIST (60,000 / 10,000
digits of 28x28): the MLP 784 -> 128 -> 10 (101,770 parameters) flattens the
image and loses its 2-D structure; the vanilla CNN (conv 5x5 -> pool -> conv
5x5 -> pool -> dense 50 -> dense 10, 27,830 parameters) shares its filters
across the image and wins with a quarter of the weights.

    python -m kcourse.tasks.mnist                 # real MNIST (downloaded once, cached)
    python -m kcourse.tasks.mnist --quick         # a smoke run in seconds
    python -m kcourse.tasks.mnist --data mnist.npz  # a local copy (keras' mnist.npz format)

Offline, it says so in one line and trains on scikit-learn's 1,797 embedded
8x8 digits, resized and placed at random in 28x28 frames (ten times each).
The run folder gets config.json, one history CSV per model, metrics.json,
the learning curves, the CNN's confusion matrix and a grid of the digits it
got wrong. The "GPU speed-up" exercise: the summary names the device
trained on and, when an accelerator is visible, times the same epoch on the
CPU.
"""

from pathlib import Path

import numpy as np

from kcourse import cli, runs

MODELS = ("mlp", "cnn")


def load_data(source="auto", path=None, quick=False, seed=0):
    """The digits as float32 images (N, 28, 28, 1) in [0, 1] and int labels (N,).

    Args:
        source: "mnist" (keras.datasets, cached), "digits" (embedded 8x8
            digits, resized) or "auto" (MNIST, else the embedded digits).
        path: a local `.npz` with x_train, y_train, x_test, y_test (keras'
            mnist.npz layout); overrides `source`.
        quick: keep a small slice (2,000 train / 500 test) for a smoke run.

    Returns:
        ((x_train, y_train), (x_test, y_test)), and the name of the data used.
    """
    if path is not None:
        (x_train, y_train), (x_test, y_test) = _read_npz(Path(path))
        name = str(path)
    elif source in ("auto", "mnist"):
        import keras

        from kcourse import downloads

        if source == "mnist":  # asked for by name: no fallback, and no notice of one
            try:
                (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
            except Exception as error:
                if not downloads.is_network_error(error):
                    raise
                raise cli.LabError("MNIST could not be downloaded (offline?); give a local copy with --data mnist.npz") from None
            name = "mnist"
        else:
            loaded = downloads.download_or_none(
                keras.datasets.mnist.load_data, "MNIST", "scikit-learn's embedded 8x8 digits"
            )
            (x_train, y_train), (x_test, y_test) = loaded or embedded_digits(seed)
            name = "mnist" if loaded else "digits"
    elif source == "digits":
        (x_train, y_train), (x_test, y_test) = embedded_digits(seed)
        name = "digits"
    else:
        raise cli.LabError(f"unknown --dataset {source!r}: choose auto, mnist or digits")

    if quick:
        x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], y_test[:500]
    prepare = lambda x: (np.asarray(x, "float32") / 255.0)[..., None]  # (N, 28, 28, 1)
    return ((prepare(x_train), np.asarray(y_train, "int32")), (prepare(x_test), np.asarray(y_test, "int32"))), name


def embedded_digits(seed=0, test_fraction=0.2, copies=10):
    """scikit-learn's 1,797 real 8x8 digits, made to look like MNIST.

    Each 0-16 image is resized to 20x20 and placed in a 28x28 frame of 0-255
    values, as MNIST's digits are, at a random offset of up to 4 pixels from
    the centre (seeded): handwriting never sits at exactly the same place, and
    this is where the CNN's shared filters beat the MLP's per-pixel weights.
    Each digit is placed `copies` times at different offsets (14,370 train /
    3,600 test images by default); the test digits are never seen in training.
    """
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = (digits.images * (255.0 / 16.0)).astype("uint8")  # (1797, 8, 8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((20, 20), Image.BILINEAR)) for im in small])
    train, test, y_train, y_test = train_test_split(
        big, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    rng = np.random.default_rng(seed)

    def place(digits_20, labels):  # (N, 20, 20) -> (N * copies, 28, 28), shuffled
        order = rng.permutation(len(digits_20) * copies)
        digits_20, labels = np.repeat(digits_20, copies, axis=0)[order], np.repeat(labels, copies)[order]
        images = np.zeros((len(digits_20), 28, 28), "uint8")
        for image, digit, (dy, dx) in zip(images, digits_20, rng.integers(0, 9, size=(len(images), 2))):
            image[dy : dy + 20, dx : dx + 20] = digit  # offsets 0..8: +-4 px
        return images, labels

    return place(train, y_train), place(test, y_test)


def _read_npz(path):
    expected = "an .npz file with arrays x_train (N, 28, 28), y_train (N,), x_test (M, 28, 28), y_test (M,)"
    if not path.is_file():
        raise cli.LabError(f"--data {path}: no such file; expected {expected}")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path) as f:
            missing = [k for k in keys if k not in f.files]
            arrays = [f[k] for k in keys if k in f.files]
    except Exception as error:
        raise cli.LabError(f"--data {path}: not a readable .npz ({error}); expected {expected}") from None
    if missing:
        raise cli.LabError(f"--data {path}: array {missing[0]!r} is missing; expected {expected}")
    x_train, y_train, x_test, y_test = arrays
    if x_train.shape[1:] != (28, 28) or x_test.shape[1:] != (28, 28) or len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise cli.LabError(
            f"--data {path}: got x_train {x_train.shape}, y_train {y_train.shape}, "
            f"x_test {x_test.shape}, y_test {y_test.shape}; expected {expected}"
        )
    return (x_train, y_train), (x_test, y_test)


def build_mlp():
    """784 -> 128 -> 10: 101,770 parameters."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Flatten(),  # (B, 784): the 2-D structure is gone
            layers.Dense(128, activation="relu"),
            layers.Dense(10),  # logits
        ],
        name="mlp",
    )


def build_cnn(dropout=0.5):
    """The course's vanilla CNN: 27,830 parameters.

    relu(maxpool(conv)) as in the seed; channels last, so (B, 28, 28, 1) in.
    """
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(10, 5, padding="same"),  # (B, 28, 28, 10)
            layers.MaxPooling2D(2),  # (B, 14, 14, 10)
            layers.ReLU(),
            layers.Conv2D(10, 5, padding="same"),  # (B, 14, 14, 10)
            layers.MaxPooling2D(2),  # (B, 7, 7, 10)
            layers.ReLU(),
            layers.Flatten(),  # (B, 490)
            layers.Dense(50, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(10),  # logits
        ],
        name="cnn",
    )


def build_model(name, learning_rate=1e-3):
    """A compiled model: Adam and cross-entropy on logits, accuracy tracked."""
    import keras

    from kcourse.training import compile_model

    model = {"mlp": build_mlp, "cnn": build_cnn}[name]()
    return compile_model(model, keras.optimizers.Adam(learning_rate))


def evaluate(model, data):
    """Test accuracy and predicted classes."""
    (_, _), (x_test, y_test) = data
    y_pred = model.predict(x_test, verbose=0).argmax(-1)
    return float((y_pred == y_test).mean()), y_pred


def main(argv=None):
    parser = cli.lab_parser("mnist", __doc__, epochs=5, batch_size=64, learning_rate=1e-3)
    parser.add_argument("--dataset", default="auto", choices=["auto", "mnist", "digits"], help="default: %(default)s")
    parser.add_argument("--data", type=Path, help="local .npz in keras' mnist.npz layout (overrides --dataset)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="default: mlp cnn")
    args = parser.parse_args(argv)
    run = runs.start("mnist", args)
    from kcourse import plots

    data, data_name = load_data(args.dataset, args.data, quick=args.quick, seed=args.seed)
    run.note(data_used=data_name)
    (x_train, _), (x_test, y_test) = data
    print(f"{data_name}: {len(x_train):,} train / {len(x_test):,} test digits")

    predictions = {}
    for name in args.models:
        fitted = run.fit(name, lambda: build_model(name, args.learning_rate), *data)
        accuracy, predictions[name] = evaluate(fitted.model, data)
        run.record(fitted, **{"test accuracy": accuracy})

    shown = "cnn" if "cnn" in predictions else args.models[-1]
    labels = [str(d) for d in range(10)]
    run.savefig(plots.confusion_matrix(y_test, predictions[shown], labels, f"{shown} on {data_name}"), f"confusion_{shown}")
    wrong = np.flatnonzero(predictions[shown] != y_test)[:32]
    run.savefig(plots.image_grid(x_test[wrong], [f"{y_test[i]} -> {predictions[shown][i]}" for i in wrong]), f"misclassified_{shown}")
    return run.finish(f"MNIST: MLP vs CNN ({data_name})")


if __name__ == "__main__":
    cli.run(main)
