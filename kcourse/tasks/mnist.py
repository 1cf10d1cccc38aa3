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

What a CNN is for (lectures 003-004), measured on the trained models: the
test digits shifted by 0 to 8 pixels, each model's accuracy as the shift grows
(shift.png); the CNN's first feature map shifting exactly with its input
(equivariance) while its pooled, classified output changes less and less
(invariance); its first-layer filters, the feature maps of each layer on a few
digits, and for each class the input that most excites its logit, climbed by
gradient ascent from noise (filters.png, feature_maps.png, dreams.png).
"""

from pathlib import Path

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.mnist: build_parser(), then run_lab(args)

MODELS = ("mlp", "cnn")
PARITY = {"test accuracy": 0.02}  # the largest difference between backends RESULTS.md accepts
CLASS_SIZE = ("--optimizers", "adam", "sgd", "rmsprop")  # RESULTS.md: the lecture's three optimizers on the CNN (003:4)
KEY_FIGURES = ("learning_curves", "confusion_cnn")


def build_model(name, learning_rate=1e-3, optimizer="adam"):
    """The compiled model `name` ("mlp" or "cnn", kcourse.models): `optimizer` (kcourse.training.optimizer, Adam as
    lecture 003) and cross-entropy on logits, accuracy tracked."""
    from kcourse import training
    from kcourse.models import build_cnn, build_mlp

    return training.compile_model({"mlp": build_mlp, "cnn": build_cnn}[name](), training.optimizer(optimizer, learning_rate))


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


# ---------------------------------------------------------------- what a CNN is for: shifts, filters, feature maps
SHIFTS = tuple(range(9))  # pixels, right and down


def shifted(images, pixels):
    """Images (N, H, W, C) moved `pixels` right and down, zeros coming in."""
    if pixels == 0:
        return images
    out = np.zeros_like(images)
    out[:, pixels:, pixels:] = images[:, :-pixels, :-pixels]
    return out


def accuracy_under_shift(model, data, shifts=SHIFTS):
    """Test accuracy of `model` on the test digits shifted by each of `shifts` pixels: [accuracy, ...]."""
    from kcourse.training import predict_classes

    return [float((predict_classes(model, shifted(data.x_test, d), 256) == data.y_test).mean()) for d in shifts]


def shift_figure(curves, shifts=SHIFTS):
    import matplotlib.pyplot as plt

    from kcourse import plots

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for name, accuracy in curves.items():
        ax.plot(shifts, accuracy, "o-", label=name)
    ax.set(xlabel="shift of the test digits (pixels right and down)", ylabel="test accuracy", ylim=(0, 1.02),
           title="translation: who still recognises the digit?")
    return plots.tidy(fig, ax)


def layer_output(model, index):
    """A model from the CNN's input to its layer `index`'s output (a feature map)."""
    import keras

    return keras.Model(model.inputs, model.layers[index].output)


def equivariance(cnn, images, pixels=2):
    """Shift the input by `pixels`: the first convolution's map shifts with it (equivariance), up to the border it
    pads; the logits do not follow, they stay (invariance). Returns {"feature map": largest difference between
    conv(shift(x)) and shift(conv(x)) away from the borders, "feature map scale", "logits change": relative change
    of the logits, "same class": share of digits whose predicted class is kept}."""
    from keras import ops

    conv = layer_output(cnn, 0)
    a, b = ops.convert_to_numpy(conv(images)), ops.convert_to_numpy(conv(shifted(images, pixels)))
    k = cnn.layers[0].kernel_size[0]
    inner = slice(pixels + k, -k)  # away from the zeros shifted in and from the padded border
    moved = shifted(a, pixels)
    logits, logits_moved = (ops.convert_to_numpy(cnn(x, training=False)) for x in (images, shifted(images, pixels)))
    return {"pixels": pixels, "feature map": float(np.abs(b[:, inner, inner] - moved[:, inner, inner]).max()),
            "feature map scale": float(np.abs(a).max()),
            "logits change": float(np.linalg.norm(logits_moved - logits) / np.linalg.norm(logits)),
            "same class": float((logits_moved.argmax(1) == logits.argmax(1)).mean())}


def dreams(cnn, steps=60, rate=0.05, seed=0):
    """For each class, the input that most excites it: gradient ascent from faint noise on the class's
    log-probability (its logit against the others'), kept in [0, 1] (feature visualisation). Returns the images
    (C, 28, 28, 1), each one's probability of its class at the start and at the end, and the class the CNN gives it."""
    from keras import ops

    from kcourse.training import input_gradient

    classes = cnn.outputs[0].shape[-1]
    x = np.random.default_rng(seed).uniform(0, 0.1, (classes, *cnn.inputs[0].shape[1:])).astype("float32")
    pick = ops.convert_to_tensor(np.eye(classes, dtype="float32"))  # row c selects class c

    def own_log_probability(z):
        return ops.log_softmax(cnn(z, training=False), axis=-1) * pick

    def probabilities(z):
        return ops.convert_to_numpy(ops.softmax(cnn(z, training=False), axis=-1))

    start = np.diag(probabilities(x))
    for _ in range(steps):
        g = input_gradient(own_log_probability, x)
        x = np.clip(x + rate * g / (np.abs(g).max(axis=(1, 2, 3), keepdims=True) + 1e-8), 0.0, 1.0).astype("float32")
    end = probabilities(x)
    return x, start, np.diag(end), end.argmax(1)


def filters_figure(cnn):
    """The first convolution's filters, one 5x5 image each."""
    kernel = cnn.layers[0].get_weights()[0]  # (k, k, 1, C)
    from kcourse import plots

    return plots.image_grid(np.moveaxis(kernel[:, :, 0, :], -1, 0)[..., None], [f"filter {c}" for c in range(kernel.shape[-1])], cmap="RdBu_r")


def relu_maps(cnn, images):
    """Each layer's feature maps after its ReLU, on `images`: [(N, H, W, C), ...] as NumPy."""
    from keras import ops

    relus = [i for i, layer in enumerate(cnn.layers) if type(layer).__name__ == "ReLU"]
    return [ops.convert_to_numpy(layer_output(cnn, i)(images)) for i in relus]


def feature_maps_figure(cnn, images):
    """Each digit, then each layer's feature maps (after the ReLU), channels side by side."""
    import matplotlib.pyplot as plt

    maps = relu_maps(cnn, images)
    channels = maps[0].shape[-1]
    fig, axes = plt.subplots(len(images) * len(maps), channels + 1, figsize=(channels + 1, 1.1 * len(images) * len(maps)))
    for n in range(len(images)):
        for m, fmap in enumerate(maps):
            row = axes[n * len(maps) + m]
            if m == 0:
                row[0].imshow(images[n, :, :, 0], cmap="gray")
                row[0].set_title("digit", fontsize=7)
            for c in range(channels):
                row[c + 1].imshow(fmap[n, :, :, c], cmap="magma")
                row[c + 1].set_title(f"layer {m + 1} ch {c}" if n == 0 else "", fontsize=6)
            for ax in row:
                ax.axis("off")
    fig.tight_layout()
    return fig


def activity(cnn, images):
    """The share of active units (ReLU > 0) in each layer's feature maps, on `images`."""
    return [float((fmap > 0).mean()) for fmap in relu_maps(cnn, images)]


# ---------------------------------------------------------------- feeding the model: the lecture's DataLoader
FEEDS = ("arrays", "PyDataset", "tf.data", "torch DataLoader")


def feeds(x, y, batch_size=32, workers=2, seed=0):
    """The same digits as each input pipeline `fit` takes, batch 32 and shuffled: {name: (data, fit options)}.

    arrays: NumPy arrays, Keras batches and shuffles them; PyDataset: a
    `keras.utils.PyDataset` read by `workers` threads; tf.data: from_tensor_slices, shuffle, batch, prefetch;
    torch DataLoader: the lecture's own (batch 32, shuffle=True), which Keras 3 fits on any backend, with
    num_workers=0: its workers are forked processes, and forking a process that runs jax's or tensorflow's threads
    can deadlock. A pipeline whose library is missing is left out.
    """
    import keras

    class Digits(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers)
            self.order = np.random.default_rng(seed).permutation(len(x))

        def __len__(self):
            return -(-len(x) // batch_size)

        def __getitem__(self, i):
            take = self.order[i * batch_size : (i + 1) * batch_size]
            return x[take], y[take]

        def on_epoch_end(self):
            np.random.default_rng(seed).shuffle(self.order)

    made = {"arrays": ((x, y), {"batch_size": batch_size, "shuffle": True}), "PyDataset": ((Digits(),), {})}
    try:
        import tensorflow as tf
    except ImportError:
        pass
    else:
        made["tf.data"] = ((tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(batch_size)
                            .prefetch(tf.data.AUTOTUNE),), {})
    try:
        import torch
        from torch.utils.data import DataLoader, TensorDataset
    except ImportError:
        pass
    else:
        made["torch DataLoader"] = ((DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype("int64"))),
                                                batch_size=batch_size, shuffle=True, num_workers=0),), {})
    return made


def time_feeds(x, y, learning_rate=1e-3, epochs=2, seed=0):
    """Seconds per steady epoch of a fresh CNN fed by each pipeline of `feeds`: {name: seconds}."""
    from kcourse.training import EpochTimer, set_seed

    seconds = {}
    for name, (data, options) in feeds(x, y, seed=seed).items():
        set_seed(seed)
        timer = EpochTimer()
        build_model("cnn", learning_rate).fit(*data, epochs=epochs, verbose=0, callbacks=[timer], **options)
        seconds[name] = timer.steady
    return seconds


def data_loaders(run):
    timed = run.metrics.get("feeds")
    if not timed:
        return None
    fastest = min(timed["seconds"], key=timed["seconds"].get)
    parts = ", ".join(f"{name} {s:.2f} s" for name, s in timed["seconds"].items())
    return (f"The CNN on {timed['digits']:,} digits, batches of 32, shuffled, one steady epoch fed by each: {parts}; "
            f"{fastest} is the fastest here. Keras 3's fit takes them all on every backend, the lecture's torch "
            f"DataLoader (batch_size=32, shuffle=True) included, its num_workers at 0 (forked workers and jax's or "
            f"tensorflow's threads can deadlock); the PyDataset reads with 2 threads.")


def three_optimizers(run):
    rows = [r for r in run.rows if r["model"].startswith("cnn")]
    if len(rows) < 2:
        return None
    parts = ", ".join(f"{r['optimizer']} {r['test accuracy']:.3f}" for r in rows)
    best = max(rows, key=lambda r: r["test accuracy"])
    return (f"The CNN with each optimizer at learning rate {run.config['learning_rate']:g}, all else equal: test accuracy "
            f"{parts} after {run.config['epochs']} epochs (learning_curves.png); {best['optimizer']} wins. SGD takes "
            f"w <- w - lr grad as it is; RMSprop divides each weight's step by its gradients' recent size, Adam does too "
            f"and adds momentum: at the same rate they move where plain SGD crawls.")


def translation_invariance(run):
    curves = run.metrics.get("shift")
    if not curves or len(curves) < 2:
        return None
    last = SHIFTS[-1]
    parts = [f"{name} {acc[0]:.3f} unshifted, {acc[4]:.3f} at 4 pixels, {acc[-1]:.3f} at {last}" for name, acc in curves.items()]
    drop = {name: acc[0] - acc[4] for name, acc in curves.items()}
    better = min(drop, key=drop.get)
    return (f"Test accuracy as the digits move right and down (shift.png): {'; '.join(parts)}. Within 4 pixels the "
            f"{better} loses least ({drop[better]:.3f} against {max(drop.values()):.3f}): a convolution's weights are "
            f"shared across places and pooling forgets small moves, while each of the MLP's weights belongs to one pixel. "
            f"({DATA_NOTE.get(run.metrics['data'], run.metrics['data'])}.)")


DATA_NOTE = {"digits": "offline, on scikit-learn's digits placed at random in their frames: both models saw moves in training",
             "mnist": "on MNIST, whose digits are centred: neither model saw a moved digit in training"}


def equivariant_and_invariant(run):
    e = run.metrics.get("equivariance")
    if e is None:
        return None
    return (f"Shift the input {e['pixels']} pixels: the first convolution's map shifts with it, equal to the shifted map "
            f"within {e['feature map']:.1e} away from the borders (its values reach {e['feature map scale']:.2f}): "
            f"equivariance. The logits, after two poolings and the dense layers, change by {e['logits change']:.0%} and "
            f"the predicted class stays for {e['same class']:.0%} of the digits: invariance, bought by pooling.")


def what_filters_learn(run):
    d = run.metrics.get("dreams")
    if d is None:
        return None
    active = run.metrics["activity"]
    return (f"The first layer's {d['filters']} filters are 5x5 detectors of local patterns (filters.png); each output "
            f"channel is one detector, applied at every place (feature_maps.png): {active[0]:.0%} of the first layer's "
            f"units are active on the test digits, {active[1]:.0%} of the second's. Climbing each class's log-probability "
            f"from faint noise (dreams.png) takes its probability from {d['start']:.2f} to {d['end']:.2f} on average, and "
            f"the CNN calls {d['own class']} of the {d['classes']} images it dreamt by their own class: strokes placed "
            f"where the class's digits have them, the later layers' detectors made of the first ones'.")


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
    Item("003:4", "SGD : descente de gradient classique ; Adam ; RMSprop", "SGD, Adam and RMSprop on the CNN.",
         three_optimizers, "kcourse.training.optimizer", needs="--models cnn --optimizers adam sgd rmsprop"),
    Item("003:5", "DataLoader(dataset, batch_size=32, shuffle=True, num_workers=...)", "The lecture's DataLoader and "
         "Keras' own pipelines: time per epoch.", data_loaders, "kcourse.tasks.mnist.feeds", needs="--models cnn"),
    Item("003:7", "MLP vs CNN : invariance à la translation, localité", "Translation: the MLP against the CNN as the digits move.",
         translation_invariance, "kcourse.tasks.mnist.accuracy_under_shift", needs="--models mlp cnn"),
    Item("004:2", "Inconvénients du MLP : ... pas d'invariance par translation", "The MLP's drawback: no invariance to translation.",
         translation_invariance, "kcourse.tasks.mnist.accuracy_under_shift", needs="--models mlp cnn"),
    Item("004:3", "Invariance vs équivariance", "Equivariance of a feature map, invariance of the output.",
         equivariant_and_invariant, "kcourse.tasks.mnist.equivariance", needs="--models cnn"),
    Item("003:9", "Les couches apprennent des bords -> des objets", "What the layers learn: strokes, then digits.",
         what_filters_learn, "kcourse.tasks.mnist.dreams", needs="--models cnn"),
    Item("004:5", "Les filtres comme détecteurs ; canaux de sortie", "Filters as detectors, one per output channel.",
         what_filters_learn, "kcourse.tasks.mnist.feature_maps_figure", needs="--models cnn"),
    Item("004:21", "Visualisation des features", "Feature visualisation: the input that most excites a unit.",
         what_filters_learn, "kcourse.tasks.mnist.dreams", needs="--models cnn"),
)


def build_parser():
    """The lab's options: the shared ones, the data and the models."""
    # --quick: 12,000 digits, 3 epochs: enough for the CNN to pass the MLP, in seconds
    parser = cli.lab_parser("mnist", __doc__, epochs=5, batch_size=64, learning_rate=1e-3, quick={"epochs": 3})
    parser.add_argument("--dataset", default="auto", choices=datasets.DIGITS_SOURCES, help="default: %(default)s")
    parser.add_argument("--data", type=Path, help="local .npz in keras' mnist.npz layout (overrides --dataset)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="default: mlp cnn")
    cli.add_optimizer_option(parser, "adam", "the CNN (the MLP with the first only)")
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
        fitted = run.fit(name, lambda: build_model(name, args.learning_rate, args.optimizers[0]), data.train, data.val)
        run.record(fitted, optimizer=args.optimizers[0], **evaluate(fitted.model, data))
        run.save_metrics(shapes={**run.metrics.get("shapes", {}), name: {"input": list(fitted.model.inputs[0].shape),
                                                                          "output": list(fitted.model.outputs[0].shape)}})

    for how in args.optimizers[1:] if "cnn" in args.models else ():  # the lecture's other optimizers, on the CNN
        fitted = run.fit(f"cnn ({how})", lambda how=how: build_model("cnn", args.learning_rate, how), data.train, data.val)
        run.record(fitted, optimizer=how, **evaluate(fitted.model, data))

    shown = "cnn" if "cnn" in args.models else args.models[-1]
    y_pred = predict_classes(run.fitted[shown].model, data.x_test, 256)
    run.outputs.update(data=data, shown=shown, y_pred=y_pred)
    run.savefig(plots.confusion_matrix(data.y_test, y_pred, [str(d) for d in range(10)], f"{shown} on {data.name}"),
                f"confusion_{shown}")
    wrong = np.flatnonzero(y_pred != data.y_test)[:32]
    run.savefig(plots.image_grid(data.x_test[wrong], [f"{data.y_test[i]} -> {y_pred[i]}" for i in wrong]), f"misclassified_{shown}")

    # what a CNN is for: translation, then what its filters learn
    curves = {name: accuracy_under_shift(run.fitted[name].model, data) for name in args.models}
    run.savefig(shift_figure(curves), "shift")
    run.save_metrics(shift=curves, data=data.name)
    print("\naccuracy as the test digits shift by " + ", ".join(map(str, SHIFTS)) + " pixels: " +
          "; ".join(f"{name} " + " ".join(f"{a:.2f}" for a in acc) for name, acc in curves.items()))
    if "cnn" in args.models:
        cnn, sample = run.fitted["cnn"].model, data.x_test[:500]
        run.save_metrics(equivariance=equivariance(cnn, sample), activity=activity(cnn, sample))
        images, start, end, said = dreams(cnn, seed=args.seed)
        run.save_metrics(dreams={"classes": len(images), "filters": cnn.layers[0].filters, "start": float(start.mean()),
                                 "end": float(end.mean()), "own class": int((said == np.arange(len(images))).sum())})
        run.savefig(filters_figure(cnn), "filters")
        run.savefig(feature_maps_figure(cnn, data.x_test[:3]), "feature_maps")
        run.savefig(plots.image_grid(images, [f"class {c}: said {s}" for c, s in enumerate(said)]), "dreams")
        run.outputs.update(dreams=images)
        # 4,096 digits (1,024 with --quick), whole batches of 32 (they split over devices)
        sample = slice(0, min(len(data.x_train), 1024 if args.quick else 4096) // 32 * 32)
        seconds = time_feeds(data.x_train[sample], data.y_train[sample], args.learning_rate, seed=args.seed)
        run.save_metrics(feeds={"digits": len(data.x_train[sample]), "seconds": seconds})
        print("one epoch of the CNN fed by " + ", ".join(f"{name}: {s:.2f} s" for name, s in seconds.items()))
    return run.finish(f"MNIST: MLP vs CNN ({data.name})", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
