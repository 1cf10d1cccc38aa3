"""TP5 part I: from a classifier to a fully convolutional network (FCN), localisation and receptive fields.

"The only thing that blocks an image of any size is the final MLP: replace it
by convolutions." The MNIST lab's vanilla CNN (conv 5x5 -> pool -> conv 5x5 ->
pool -> dense 50 -> dense 10) is converted layer by layer: each Dense becomes
a convolution holding the same weights and biases, the first a 7x7 'valid'
convolution over the 7x7x10 feature map (its kernel is the Dense kernel
reshaped in Flatten's order, (7, 7, 10) row-major), the next ones 1x1;
Dropout is dropped (inference). On a 28x28 digit the FCN gives the
classifier's logits exactly; on a larger image, a map of logits, one every
4 pixels (the trunk's stride).

- Receptive fields, from the layers' own configs (kcourse.receptive_field):
  the table printed for the FCN, checked by a gradient probe (one output
  pixel's gradient is non-zero exactly inside its field). The field of an
  FCN output is 40 px, not 28: the 'same' paddings of the two convolutions
  look 6 px beyond the 28x28 window the classifier saw, so sliding the
  classifier and running the FCN agree only on 28x28 inputs.
- Localisation, "carte d'activation puis max": digits placed at seeded,
  non-overlapping positions on a large canvas (200x300 by default); the
  per-class maps, their max over the classes, local maxima above a
  threshold with non-maximum suppression; precision and recall against the
  placed digits (a detection is right when its class matches and its centre
  lies within --tolerance pixels of a placed digit's centre).
- Sliding window against one pass (lecture 004): the classifier run on every
  28x28 window of a canvas, 4 px apart, against the FCN's single pass: time,
  multiply-adds, and where their outputs agree. And a global max-pooling on
  the FCN's class maps: one decision for a digit anywhere in an image of any
  size, which the classifier (its Flatten expects 7x7x10) cannot take.
- The background problem: the CNN learnt centred digits on a blank frame and
  must always name a digit, so on empty paper and on half digits its map
  fires too. The course's remedy, compared as a second variant: an 11th
  class "background" trained on crops of the canvas that hold no centred
  digit (empty, or digits shifted by 10 px or more).

`--model-file cnn.keras` gives the lab a CNN the mnist lab saved: it is the
"cnn" variant, loaded (its row says so) instead of trained.

    python -m kcourse.tasks.fcn                          # both variants, 5 test canvases
    python -m kcourse.tasks.fcn --quick                  # a smoke run in seconds
    python -m kcourse.tasks.fcn --model-file runs/mnist-.../cnn.keras --models cnn
    python -m kcourse.tasks.fcn --canvas 280 420 --digits 12 --threshold 0.8

Offline, the digits are the MNIST lab's embedded ones (one line says so).
The run folder gets config.json, history_<variant>.csv, <variant>.keras and
<variant>_fcn.keras, metrics.json, summary.csv, receptive_fields.csv,
learning_curves.png, localisation_<variant>.png (canvas, placed digits,
detections, the max map) and class_maps_<variant>.png (one map per class).
"""

from pathlib import Path

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.fcn: build_parser(), then run_lab(args)

MODELS = ("cnn", "background")
DIGIT = 28  # the classifier's input side
BACKGROUND = 10  # the label of the 11th class
PARITY = {"test accuracy": 0.02, "recall": 0.2}  # 30 placed digits: one digit is 3 points of recall
KEY_FIGURES = ("localisation_background", "localisation_cnn")


# ---------------------------------------------------------------- data
def load_data(path=None, quick=False, seed=0):
    """The MNIST lab's digits (kcourse.datasets.digits; offline its embedded ones)."""
    return datasets.digits("auto", path, quick=quick, seed=seed)


def background_crops(x, count, seed=0, min_shift=10):
    """`count` 28x28 crops of a canvas that hold no centred digit: the "background" class.

    Each crop is the centre of an 84x84 canvas holding 0 (a fifth of the
    crops), 1 or 2 digits of `x` whose centres lie `min_shift` pixels or more
    from the crop's centre: empty paper, or parts of the neighbouring digits.
    """
    rng = np.random.default_rng(seed)
    crops = np.zeros((count, DIGIT, DIGIT, 1), "float32")
    for crop in crops:
        canvas = np.zeros((3 * DIGIT, 3 * DIGIT), "float32")
        for _ in range(rng.choice(3, p=[0.2, 0.5, 0.3])):
            while True:  # a centre offset from the middle by min_shift..27 px
                dy, dx = rng.integers(-27, 28, size=2)
                if dy * dy + dx * dx >= min_shift**2:
                    break
            top, left = DIGIT + dy, DIGIT + dx
            canvas[top : top + DIGIT, left : left + DIGIT] = np.maximum(
                canvas[top : top + DIGIT, left : left + DIGIT], x[rng.integers(len(x)), ..., 0])
        crop[..., 0] = canvas[DIGIT : 2 * DIGIT, DIGIT : 2 * DIGIT]
    return crops


def with_background(data, seed=0, fraction=0.5):
    """(train, val): the digits plus background crops (label 10), as many as `fraction` of the digits, shuffled."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (x, y) in enumerate((data.train, data.val)):
        crops = background_crops(x, int(fraction * len(x)), seed=seed + i)
        x2, y2 = np.concatenate([x, crops]), np.concatenate([y, np.full(len(crops), BACKGROUND, "int32")])
        order = rng.permutation(len(x2))
        out.append((x2[order], y2[order]))
    return tuple(out)


def place_digits(size=(200, 300), digits=6, seed=0, gap=4):
    """Seeded (top, left) corners of `digits` 28x28 boxes on a canvas, `gap` pixels apart at least."""
    height, width = size
    if height < DIGIT or width < DIGIT:
        raise cli.LabError(f"--canvas {height} {width}: a digit is {DIGIT}x{DIGIT}; use a canvas of {DIGIT}x{DIGIT} or more")
    rng = np.random.default_rng(seed)
    corners = []
    for _ in range(digits):
        for _ in range(1000):
            top, left = int(rng.integers(0, height - DIGIT + 1)), int(rng.integers(0, width - DIGIT + 1))
            if all(abs(top - t) >= DIGIT + gap or abs(left - l) >= DIGIT + gap for t, l in corners):
                corners.append((top, left))
                break
        else:
            raise cli.LabError(f"cannot place {digits} digits without overlap on a {height}x{width} canvas; "
                               "use fewer --digits or a larger --canvas")
    return corners


def make_canvas(x, y, size=(200, 300), digits=6, seed=0):
    """`digits` digits of (x, y), drawn at random, pasted at seeded non-overlapping places on a blank canvas.

    Returns:
        canvas (H, W, 1) float32, and the placed digits as a list of dicts
        {"label", "top", "left", "y", "x"}: (top, left) the corner of the 28x28 frame,
        (y, x) the centre of the digit's ink (the embedded digits sit up to
        6 px off their frame's centre).
    """
    corners = place_digits(size, digits, seed)
    chosen = np.random.default_rng(seed).integers(len(x), size=digits)
    canvas = np.zeros((*size, 1), "float32")
    placed = []
    for (top, left), i in zip(corners, chosen):
        canvas[top : top + DIGIT, left : left + DIGIT] = np.maximum(canvas[top : top + DIGIT, left : left + DIGIT], x[i])
        ink_rows, ink_cols = np.flatnonzero(x[i].any((1, 2))), np.flatnonzero(x[i].any((0, 2)))
        if len(ink_rows) == 0:  # a blank image: the frame's centre
            ink_rows = ink_cols = np.array([0, DIGIT - 1])
        placed.append({"label": int(y[i]), "top": top, "left": left,  # the centre of the ink's bounding box
                       "y": top + (ink_rows[0] + ink_rows[-1]) / 2, "x": left + (ink_cols[0] + ink_cols[-1]) / 2})
    return canvas, placed


# ---------------------------------------------------------------- the classifier and its conversion
def build_model(classes=10, learning_rate=1e-3):
    """The MNIST lab's vanilla CNN (kcourse.models.build_cnn), with `classes` logits (11: + background); compiled."""
    import keras

    from kcourse.models import build_cnn
    from kcourse.training import compile_model

    return compile_model(build_cnn(classes=classes), keras.optimizers.Adam(learning_rate))


MODEL_FILE = "a .keras file the mnist lab saved (runs/mnist-<time>-<backend>/cnn.keras)"


def load_classifier(path):
    """A CNN the mnist lab saved (`cnn.keras`): (None, 28, 28, 1) in, (None, 10) logits out, ending in Flatten and Dense."""
    model = runs.load_model_file(path, "--model-file", MODEL_FILE)
    shapes = f"got input {tuple(model.inputs[0].shape)}, output {tuple(model.outputs[0].shape)}"
    if tuple(model.inputs[0].shape) != (None, DIGIT, DIGIT, 1) or tuple(model.outputs[0].shape) != (None, 10):
        raise cli.LabError(f"--model-file {path}: {shapes}; expected input (None, 28, 28, 1) and output (None, 10), {MODEL_FILE}")
    try:
        _split(model)
    except ValueError as error:
        raise cli.LabError(f"--model-file {path}: {error}; expected {MODEL_FILE}") from None
    return model


def _split(classifier):
    """(trunk layers, Flatten, head layers) of a plain stack of layers."""
    layers = [layer for layer in classifier.layers if type(layer).__name__ != "InputLayer"]
    kinds = [type(layer).__name__ for layer in layers]
    if "Flatten" not in kinds:
        raise ValueError(f"{classifier.name} has no Flatten layer: nothing to convert")
    at = kinds.index("Flatten")
    head = layers[at + 1 :]
    if not head or any(kind not in ("Dense", "Dropout") for kind in kinds[at + 1 :]):
        raise ValueError(f"{classifier.name} should end in Flatten then Dense (and Dropout) layers, got {', '.join(kinds[at:])}")
    return layers[:at], layers[at], head


def to_fcn(classifier):
    """The classifier as a fully convolutional network, on images of any size (None, None, C).

    The trunk (convolutions, pooling, activations) is the classifier's own
    layers, shared (training one model trains the other); Flatten + the first Dense(n) become Conv2D(n, (h, w), padding='valid')
    over the (h, w, c) map that Flatten read, its kernel the Dense kernel
    reshaped to (h, w, c, n) (Flatten's row-major order, channels last); each
    next Dense(n) becomes Conv2D(n, 1); every bias and activation is kept;
    Dropout is left out (inference). Output (B, H', W', classes): on the
    classifier's input size, H' = W' = 1 and the logits are the classifier's.
    """
    import keras

    trunk, flatten, head = _split(classifier)
    inputs = keras.Input((None, None, classifier.inputs[0].shape[-1]), name="image")
    x = inputs
    for layer in trunk:
        x = layer(x)  # the classifier's own layers: the same weights, shared, not copied
    h, w, c = flatten.input.shape[1:]  # (7, 7, 10) for the vanilla CNN
    first = True
    for layer in head:
        if type(layer).__name__ == "Dropout":
            continue
        kernel, *bias = layer.get_weights()
        units = kernel.shape[-1]
        config = layer.get_config()
        conv = keras.layers.Conv2D(units, (h, w) if first else 1, padding="valid", activation=config["activation"],
                                   use_bias=config["use_bias"], name=f"{layer.name}_as_conv",
                                   kernel_initializer="zeros")  # overwritten at once by the Dense weights
        x = conv(x)  # (B, H', W', units)
        conv.set_weights([kernel.reshape(h, w, c, units) if first else kernel.reshape(1, 1, -1, units), *bias])
        first = False
    return keras.Model(inputs, x, name=f"{classifier.name}_fcn")


def smallest_input(fcn):
    """The smallest square side the FCN takes (its output at least 1x1): 28 for the vanilla CNN."""
    from kcourse import receptive_field

    for side in range(1, 1025):
        size = receptive_field.receptive_fields(fcn, (side, side))[-1]["output size"]
        if size is not None and min(size) >= 1:
            return side
    raise ValueError(f"{fcn.name}: no input up to 1024x1024 gives an output")


def check_size(fcn, height, width):
    """A LabError (one line) when the FCN cannot take a height x width image."""
    from kcourse import receptive_field

    size = receptive_field.receptive_fields(fcn, (height, width))[-1]["output size"]
    if size is None or min(size) < 1:
        side = smallest_input(fcn)
        raise cli.LabError(f"a {height}x{width} image is too small for the FCN: its trunk's map is smaller than the "
                           f"first dense-as-convolution kernel; the smallest image is {side}x{side}")


def max_difference(classifier, fcn, x):
    """max |classifier(x) - fcn(x)| over 28x28 images x: the conversion is exact (float rounding)."""
    from kcourse.training import predict

    logits = predict(classifier, x, batch_size=256)
    maps = predict(fcn, x, batch_size=256)  # (N, 1, 1, classes)
    return float(np.abs(maps[:, 0, 0, :] - logits).max())


# ---------------------------------------------------------------- localisation
def class_maps(fcn, canvas):
    """The per-class probability maps of the FCN on one canvas: (H', W', classes), softmax over the classes."""
    import keras

    from kcourse.training import predict

    check_size(fcn, *canvas.shape[:2])
    logits = predict(fcn, canvas[None], batch_size=1)[0]  # (H', W', classes)
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))


def detect(maps, centre, jump, threshold=0.5, radius=14.0):
    """Detections from the class maps: local maxima of the digits' max map above `threshold`, with NMS.

    Args:
        maps: (H', W', classes) probabilities; an 11th class (background)
            is never detected.
        centre, jump: map pixel (i, j) is centred on input pixel
            (centre + i * jump, centre + j * jump) (kcourse.receptive_field).
        threshold: the smallest probability detected.
        radius: non-maximum suppression: a detection closer than `radius`
            input pixels to a stronger one (whatever its class) is dropped.

    Returns:
        [{"label", "y", "x", "score"}], strongest first.
    """
    digits = maps[..., :10]
    score, label = digits.max(-1), digits.argmax(-1)  # the lecture's "carte d'activation puis max"
    rows, cols = np.nonzero(score >= threshold)
    found = []
    for k in np.argsort(-score[rows, cols], kind="stable"):
        i, j = rows[k], cols[k]
        y, x = centre + i * jump, centre + j * jump
        if all((y - d["y"]) ** 2 + (x - d["x"]) ** 2 >= radius**2 for d in found):
            found.append({"label": int(label[i, j]), "y": float(y), "x": float(x), "score": float(score[i, j])})
    return found


def match(detections, placed, tolerance=8.0):
    """(true positives, precision, recall): a detection is right when its class matches and its centre is
    within `tolerance` pixels of a placed digit's centre (each placed digit matched once)."""
    free = list(placed)
    hits = 0
    for d in detections:
        near = [p for p in free if p["label"] == d["label"] and (p["y"] - d["y"]) ** 2 + (p["x"] - d["x"]) ** 2 <= tolerance**2]
        if near:
            free.remove(near[0])
            hits += 1
    precision = hits / len(detections) if detections else 0.0
    recall = hits / len(placed) if placed else 0.0
    return hits, precision, recall


def localise(fcn, canvases, threshold=0.5, tolerance=8.0, radius=14.0):
    """Detections on each canvas and the pooled precision / recall: a dict of figures and the per-canvas results."""
    from kcourse import receptive_field

    centre = receptive_field.field_centre(fcn, canvases[0][0].shape[:2])
    _, jump = receptive_field.receptive_field_of(fcn, canvases[0][0].shape[:2])
    results, hits, found, placed_total = [], 0, 0, 0
    for canvas, placed in canvases:
        maps = class_maps(fcn, canvas)
        detections = detect(maps, centre, jump, threshold, radius)
        tp, _, _ = match(detections, placed, tolerance)
        hits, found, placed_total = hits + tp, found + len(detections), placed_total + len(placed)
        results.append({"canvas": canvas, "placed": placed, "maps": maps, "detections": detections})
    figures = {
        "placed digits": placed_total,
        "detections": found,
        "precision": hits / found if found else 0.0,
        "recall": hits / placed_total if placed_total else 0.0,
    }
    return figures, results


def plot_localisation(result, centre, jump, title=""):
    """The canvas with the placed digits (green) and the detections (red, with their class), and the max map."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    canvas, maps = result["canvas"][..., 0], result["maps"]
    h, w = canvas.shape
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2 * h / w + 0.8))
    axes[0].imshow(canvas, cmap="gray")
    for p in result["placed"]:
        axes[0].add_patch(Rectangle((p["left"] - 0.5, p["top"] - 0.5), DIGIT, DIGIT, fill=False, ec="lime", lw=1.5))
    for d in result["detections"]:
        axes[0].add_patch(Rectangle((d["x"] - DIGIT / 2, d["y"] - DIGIT / 2), DIGIT, DIGIT, fill=False, ec="red", lw=1, ls="--"))
        axes[0].text(d["x"] - DIGIT / 2, d["y"] - DIGIT / 2 - 2, f"{d['label']} {d['score']:.2f}", color="red", fontsize=8)
    axes[0].set_title(f"{title}: placed (green), detected (red)")
    hm, wm = maps.shape[:2]
    extent = (centre - jump / 2, centre + (wm - 0.5) * jump, centre + (hm - 0.5) * jump, centre - jump / 2)  # map pixels on the canvas
    axes[1].imshow(canvas, cmap="gray", alpha=0.35)
    shown = axes[1].imshow(maps[..., :10].max(-1), extent=extent, cmap="magma", alpha=0.75, vmin=0, vmax=1)
    axes[1].set(xlim=(-0.5, w - 0.5), ylim=(h - 0.5, -0.5), title=f"max over the digit classes ({hm}x{wm} map, stride {jump})")
    fig.colorbar(shown, ax=axes[1], fraction=0.03)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_class_maps(maps):
    """One panel per class: the probability map of the class (an 11th panel: background)."""
    import matplotlib.pyplot as plt

    n = maps.shape[-1]
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(2.2 * ((n + 1) // 2), 4.4 * maps.shape[0] / maps.shape[1] + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for c, ax in zip(range(n), axes.flat):
        ax.imshow(maps[..., c], cmap="magma", vmin=0, vmax=1)
        ax.set_title("background" if c == BACKGROUND else f"class {c}", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the lab
def evaluate(model, data):
    """{"test accuracy"}: the classifier on the test digits (a kcourse.datasets.Digits)."""
    from kcourse.training import predict_classes

    return {"test accuracy": float((predict_classes(model, data.x_test, 256) == data.y_test).mean())}


# ---------------------------------------------------------------- sliding window against one pass; any size
def sliding_window(classifier, canvas, jump):
    """The classifier on every 28x28 window of the canvas, `jump` pixels apart (the FCN's output grid): logits
    (H', W', classes)."""
    from kcourse.training import predict

    rows, cols = ((n - DIGIT) // jump + 1 for n in canvas.shape[:2])
    windows = np.stack([canvas[i * jump : i * jump + DIGIT, j * jump : j * jump + DIGIT] for i in range(rows) for j in range(cols)])
    return predict(classifier, windows, 256).reshape(rows, cols, -1)


def fcn_macs(fcn, height, width):
    """Multiply-adds of one FCN pass over a height x width image: each convolution's kernel times its output places."""
    from kcourse import receptive_field

    sizes = {r["layer"]: r["output size"] for r in receptive_field.receptive_fields(fcn, (height, width))}
    return sum(int(np.prod(layer.kernel.shape)) * sizes[layer.name][0] * sizes[layer.name][1]
               for layer in fcn.layers if hasattr(layer, "kernel"))


def sliding_against_fcn(classifier, fcn, canvas, field, jump):
    """Both ways of scoring every place of a canvas: {"windows", "sliding s", "fcn s", "sliding MACs", "fcn MACs",
    "largest difference" of the logits, "same class": the share of places where both name the same class,
    "blank around": the share of places where the field is blank around the window's core (the band `reach` px
    either side of the window's edge, where the paddings differ),
    "difference there", "blank after conv 1": what blank paper becomes after the first convolution, its ReLU'd bias}."""
    import time

    from kcourse import flops
    from kcourse.training import predict

    sliding_window(classifier, canvas[: DIGIT + jump, : DIGIT + jump], jump)  # warm both up: compile, not timed
    predict(fcn, canvas[None], batch_size=1)
    start = time.perf_counter()
    slid = sliding_window(classifier, canvas, jump)
    sliding_s = time.perf_counter() - start
    start = time.perf_counter()
    maps = predict(fcn, canvas[None], batch_size=1)[0]
    fcn_s = time.perf_counter() - start
    difference = np.abs(slid - maps).max(-1)  # (H', W')
    reach = (field - DIGIT) // 2  # what the FCN reads beyond the window, through its 'same' paddings
    blank = np.zeros(difference.shape, bool)
    for i, j in np.ndindex(*difference.shape):
        top, left = i * jump, j * jump
        around = canvas[max(top - reach, 0) : top + DIGIT + reach, max(left - reach, 0) : left + DIGIT + reach].sum()
        blank[i, j] = around == canvas[top + reach : top + DIGIT - reach, left + reach : left + DIGIT - reach].sum()
    return {"windows": int(difference.size), "sliding s": sliding_s, "fcn s": fcn_s,
            "sliding MACs": int(difference.size) * flops.count_macs(classifier), "fcn MACs": fcn_macs(fcn, *canvas.shape[:2]),
            "largest difference": float(difference.max()), "blank around": float(blank.mean()),
            "same class": float((slid.argmax(-1) == maps.argmax(-1)).mean()),
            "blank after conv 1": float(np.maximum(classifier.layers[0].get_weights()[1], 0).max()),
            "difference there": float(difference[blank].max()) if blank.any() else None, "reach": reach}


def global_pooling_classifier(fcn, digits=10):
    """The FCN with a global max-pooling: each digit's largest probability over the places, one decision for an
    image of any size (B, digits); a background class, if the FCN has one, takes its share of each place's softmax."""
    import keras

    probabilities = keras.ops.softmax(fcn.outputs[0], axis=-1)[..., :digits]  # (B, H', W', digits)
    return keras.Model(fcn.inputs, keras.layers.GlobalMaxPooling2D()(probabilities), name=f"{fcn.name}_global")


def framed(images, side, seed=0):
    """Each 28x28 digit placed at a random place of a blank side x side frame (N, side, side, 1)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(images), side, side, images.shape[-1]), images.dtype)
    for k, (i, j) in enumerate(rng.integers(0, side - DIGIT + 1, (len(images), 2))):
        out[k, i : i + DIGIT, j : j + DIGIT] = images[k]
    return out


def any_size_accuracy(fcn, data, sides=(28, 42, 56, 84), n=1000, seed=0):
    """{side: accuracy} of the FCN with a global max-pooling on test digits framed at random in side x side images."""
    from kcourse.training import predict_classes

    head, x, y = global_pooling_classifier(fcn), data.x_test[:n], data.y_test[:n]
    return {side: float((predict_classes(head, framed(x, side, seed), 64) == y).mean()) for side in sides}


# ---------------------------------------------------------------- the handout's questions, answered by the run
def sliding_window_against_fcn(run):
    s = run.metrics.get("sliding against fcn")
    if s is None:
        return None
    h, w = run.config["canvas"]
    there = ""
    if s["difference there"] is not None:
        there = (f"; at the {s['blank around']:.0%} of the places where the paper is blank {s['reach']} px either side "
                 f"of the window's edge, by {s['difference there']:.1e}")
    return (f"Every 28x28 window of a {h}x{w} canvas, {run.metrics[run.rows[0]['model']]['jump']} px apart: "
            f"{s['windows']:,} windows through the classifier, {s['sliding MACs'] / 1e6:,.0f} M multiply-adds and "
            f"{s['sliding s']:.2f} s; the FCN in one pass: {s['fcn MACs'] / 1e6:,.0f} M and {s['fcn s']:.3f} s, "
            f"{s['sliding MACs'] / s['fcn MACs']:.0f}x fewer multiply-adds (overlapping windows share their convolutions). "
            f"They name the same class at {s['same class']:.0%} of the places; their logits differ by up to "
            f"{s['largest difference']:.2f}{there}: the FCN's 'same' paddings read what lies around the window, where "
            f"the lone window was padded with zeros"
            + (f", and blank paper is not zero after the first convolution (its ReLU'd bias reaches "
               f"{s['blank after conv 1']:.2f})" if s["blank after conv 1"] > 0 else "") + ".")


def global_pooling(run):
    sizes = run.metrics.get("any size")
    if not sizes:
        return None
    parts = "; ".join(f"{name}: " + ", ".join(f"{acc:.3f} on {side}x{side}" for side, acc in by_side.items())
                      for name, by_side in sizes.items())
    text_ = (f"A global max-pooling of the FCN's class probabilities makes one decision for a digit placed at random in "
             f"a blank image of any size, which the classifier (its Flatten reads 7x7x10) cannot take: accuracy {parts}.")
    if "cnn" in sizes and "background" in sizes:
        largest = max(sizes["cnn"], key=int)
        text_ += (f" Without a background class the maps fire on blank paper and on parts of the digit, and a larger "
                  f"image has more such places ({sizes['cnn'][largest]:.3f} at {largest}x{largest}); with one, the pooled "
                  f"decision holds ({sizes['background'][largest]:.3f}): the 7x7 conversion gives the map, the pooling the "
                  f"final decision.")
    return text_


def dense_as_convolutions(run):
    row = run.row("cnn") or run.rows[0]
    return (f"Flatten + Dense(50) become a 7x7 'valid' convolution and Dense(10) a 1x1 one, holding the same weights and "
            f"biases ({row['total params']:,} parameters either way): on 28x28 digits the FCN's logits differ from the "
            f"classifier's by at most {row['fcn vs classifier']:.1e}, float rounding; on a {run.config['canvas'][0]}x"
            f"{run.config['canvas'][1]} canvas they form a map.")


def activation_map_then_max(run):
    rows = {r["model"]: r for r in run.rows}
    parts = "; ".join(f"{name}: precision {r['precision']:.2f}, recall {r['recall']:.2f} ({r['detections']} detections)"
                      for name, r in rows.items())
    placed = next(iter(rows.values()))["placed digits"]
    return f"The max over the class maps, local maxima above {run.config['threshold']}, on {placed} placed digits: {parts}."


def field_of_an_output(run):
    name = run.rows[0]["model"]
    m = run.metrics[name]
    return (f"Each output of the FCN sees {m['receptive field']}x{m['receptive field']} input pixels (the gradient probe finds "
            f"{m['probed field'][0]}x{m['probed field'][1]}), its outputs {m['jump']} px apart: not the 28x28 window the "
            f"classifier saw, the 'same' paddings look {(m['receptive field'] - 28) // 2} px beyond it.")


def background_class(run):
    cnn, background = run.row("cnn"), run.row("background")
    if cnn is None or background is None:
        return None
    return (f"Without a background class the CNN must name a digit everywhere: precision {cnn['precision']:.2f}; with an "
            f"11th class trained on empty paper and shifted digits, {background['precision']:.2f} (recall {cnn['recall']:.2f} "
            f"against {background['recall']:.2f}).")


HANDOUT = (
    Item("004:18", "La seule chose qui bloque c'est le MLP final : on le remplace par des convolutions (noyau 1 × 1)",
         "A fully convolutional network: the final MLP replaced by convolutions.", dense_as_convolutions,
         "kcourse.tasks.fcn.to_fcn"),
    Item("004:20", "Localisation : carte d'activation finale puis max", "Localisation: the final activation map, then its max.",
         activation_map_then_max, "kcourse.tasks.fcn.localise"),
    Item("004:10", "Champ réceptif : nombre de pixels d'entrée dont dépend une valeur en profondeur",
         "The receptive field of an output.", field_of_an_output, "kcourse.receptive_field.receptive_fields"),
    Item("004:17", "Grandes images : fenêtre glissante naïve vs convolution", "Sliding window against the FCN: cost and "
         "outputs.", sliding_window_against_fcn, "kcourse.tasks.fcn.sliding_against_fcn"),
    Item("004:19", "Pooling global pour la décision finale", "Global pooling for the final decision, on images of any size.",
         global_pooling, "kcourse.tasks.fcn.any_size_accuracy"),
    Item("002:6", "De revenir sur les couches de convolutions → notion de FCN", "The FCN, and the background it must learn.",
         background_class, "kcourse.tasks.fcn.with_background", needs="--models cnn background"),
)


def build_parser():
    """The lab's options: the shared ones, the models, a saved CNN, the canvases and the detector."""
    # --quick: 12,000 digits (+ 6,000 backgrounds), 3 epochs: the classifiers find digits, in seconds
    parser = cli.lab_parser("fcn", __doc__, epochs=5, batch_size=64, learning_rate=1e-3, quick={"canvases": 2, "epochs": 3})
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="cnn: the mnist CNN as it is; background: with an 11th class (default: both)")
    parser.add_argument("--model-file", type=Path, metavar="CNN.keras",
                        help="a CNN the mnist lab saved (cnn.keras), used as the cnn variant instead of training one")
    parser.add_argument("--data", type=Path, help="local .npz in keras' mnist.npz layout")
    canvas = parser.add_argument_group("the canvases")
    canvas.add_argument("--canvas", nargs=2, type=cli.positive_int, default=[200, 300], metavar=("H", "W"), help="default: 200 300")
    canvas.add_argument("--digits", type=cli.positive_int, default=6, help="digits per canvas (default: %(default)s)")
    canvas.add_argument("--canvases", type=cli.positive_int, default=5, help="test canvases (default: %(default)s, 2 with --quick)")
    detector = parser.add_argument_group("the detector")
    detector.add_argument("--threshold", type=cli.fraction, default=0.5, help="smallest probability detected (default: %(default)s)")
    detector.add_argument("--tolerance", type=cli.positive_float, default=8.0, help="pixels between a right detection and the digit's centre (default: %(default)s)")
    return parser


def run_lab(args):
    """TP5 part I from the parsed options: each classifier fitted (or given back), converted, its fields probed,
    digits found on the canvases (what `main` and the notebook run)."""
    if min(args.canvas) < DIGIT:
        raise cli.LabError(f"--canvas {args.canvas[0]} {args.canvas[1]}: the FCN needs at least {DIGIT}x{DIGIT} pixels (its smallest input)")
    for k in range(args.canvases):  # the canvases fit (or a one-line error), before any data
        place_digits(tuple(args.canvas), args.digits, seed=args.seed + k)
    run = runs.start("fcn", args)
    from kcourse import receptive_field

    classifier = load_classifier(args.model_file) if args.model_file is not None else None
    data = load_data(args.data, quick=args.quick, seed=args.seed)
    canvases = [make_canvas(data.x_test, data.y_test, tuple(args.canvas), args.digits, seed=args.seed + k) for k in range(args.canvases)]
    run.note(data_used=data.name, model=str(args.model_file) if args.model_file else "trained here")
    print(f"{data!r}; {args.canvases} canvases of {args.canvas[0]}x{args.canvas[1]} with {args.digits} digits each")
    run.outputs.update(data=data, canvases=canvases, fcns={}, localised={})

    for name in args.models:
        if name == "cnn" and classifier is not None:
            fitted = run.loaded(name, classifier, args.model_file)
        else:
            classes, (train, val) = (11, with_background(data, seed=args.seed)) if name == "background" else (10, (data.train, data.val))
            fitted = run.fit(name, lambda: build_model(classes, args.learning_rate), train, val)
        converted = to_fcn(fitted.model)
        converted.save(run.file(f"{name}_fcn.keras"))
        difference = max_difference(fitted.model, converted, data.x_test[:512])

        rows = receptive_field.receptive_fields(converted, tuple(args.canvas))
        field, jump = receptive_field.receptive_field_of(converted)
        centre = receptive_field.field_centre(converted, tuple(args.canvas))
        probe = receptive_field.probe_receptive_field(converted)
        if name == args.models[0]:
            print(f"\n{converted.name} on a {args.canvas[0]}x{args.canvas[1]} canvas:\n{receptive_field.table(rows)}")
            print(f"output pixel (i, j) <- input centred at ({centre:g} + {jump} i, {centre:g} + {jump} j), field {field} "
                  f"(gradient probe: {probe['field'][0]}x{probe['field'][1]}); FCN vs classifier on 28x28: max |diff| {difference:.1e}")
            run.save_table("receptive_fields", rows)
            run.outputs.update(fields=rows, field=field, jump=jump, centre=centre, probe=probe)
            run.save_metrics(**{"sliding against fcn": sliding_against_fcn(fitted.model, converted, canvases[0][0], field, jump)})

        sizes = {str(side): acc for side, acc in any_size_accuracy(converted, data, seed=args.seed).items()}
        run.save_metrics(**{"any size": {**run.metrics.get("any size", {}), name: sizes}})
        figures, results = localise(converted, canvases, args.threshold, args.tolerance)
        run.outputs["fcns"][name], run.outputs["localised"][name] = converted, results
        run.savefig(plot_localisation(results[0], centre, jump, name), f"localisation_{name}")
        run.savefig(plot_class_maps(results[0]["maps"]), f"class_maps_{name}")
        run.save_metrics(**{name: {"receptive field": field, "probed field": list(probe["field"]), "jump": jump}})
        run.record(fitted, **evaluate(fitted.model, data), **{"fcn vs classifier": difference}, **figures)
    return run.finish(f"FCN localisation ({data.name}, threshold {args.threshold}, tolerance {args.tolerance:g} px)", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
