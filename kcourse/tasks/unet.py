"""TP5 part 2: dense prediction on simulated images: U-Net segmentation, denoising, weak supervision.

One output per pixel instead of one per image. The images come from
kcourse.shapes: discs, squares and triangles (rotated) on textured, noisy
backgrounds, with per-pixel masks, boxes and image-level labels, so that the
same images serve every kind of supervision. The variants (--models):

- unet: the U-Net (kcourse.models.UNet, --depth poolings, --base-filters
  channels at full resolution) trained with `model.fit` on the full masks,
  cross-entropy on the logits of each pixel; per-class IoU and mean IoU on
  held-out images.
- no-skip: the same network without its skip connections, a plain
  encoder-decoder (FCN), trained alike: the fine detail lost by the poolings
  must come back from the bottleneck alone, and the edges blur.
- denoise: the same U-Net with a regression head (one grey level per
  pixel, mean squared error) from the noisy image to the clean one; PSNR of
  the noisy input and of the output.
- box: weak supervision by boxes, each box filled with its class (the box
  as a noisy mask).
- image-labels: weak supervision by image-level labels only (which classes
  an image holds). A classifier (the U-Net's encoder, global average
  pooling, a Dense layer, one sigmoid per class) gives class activation
  maps, CAM_c = features . w_c + b_c, upsampled to the image; for each
  class the image holds, CAM_c / max CAM_c >= --cam-threshold marks its
  pixels (the larger wins where two do), the rest is background; the U-Net
  is trained on these pseudo-masks. The classifier is saved as
  cam-classifier.keras and has its own row (its CAM masks, on test images,
  for the classes it predicts).

A U-Net of depth d pools d times: it trains on sizes that are multiples of
2^d (--image-size), and `predict_any_size` segments any size, odd ones
included, by padding to the next multiple (reflection) and cropping back;
each run segments images of an odd size to show it. IoU figures are named
as Keras names its metric, `mean_iou` (and `iou_<class>`), in the history and
the summary alike.

    python -m kcourse.tasks.unet                          # every variant: 5 epochs of 4,000 images of 48x48 each
    python -m kcourse.tasks.unet --quick                  # a smoke run in seconds
    python -m kcourse.tasks.unet --models unet no-skip    # the skip-connection comparison only
    python -m kcourse.tasks.unet --depth 4 --image-size 96 --base-filters 8   # deeper, thinner
    python -m kcourse.tasks.unet --model-file runs/unet-.../unet.keras --image-size 75   # a saved model, any size

With the defaults (U-Net of depth 3 and 16 filters, 4,000 images, 5 epochs
of batches of 16), one run on a 2-core CPU (torch) took 28 min, 5 per
variant, and gave: mean IoU 0.909 for the U-Net, 0.878 without skips,
0.691 from boxes and 0.493 from image labels; denoising from 14.0 to 25.7 dB.

The run folder gets config.json, history_<model>.csv, <model>.keras,
metrics.json, summary.csv (mean_iou and per-class iou, PSNR), supervision.csv
(mean_iou for full, box and image-level supervision), learning_curves.png,
segmentation.png (input / truth / each model's prediction), denoising.png
(noisy / denoised / clean) and weak_supervision.png (the box masks, the CAMs
and their pseudo-masks).
"""

from pathlib import Path

import numpy as np

from kcourse import cli, runs, shapes
from kcourse.report import Item
from kcourse.shapes import CLASSES

main = cli.lab_main(__name__)  # python -m kcourse.tasks.unet: build_parser(), then run_lab(args)

MODELS = ("unet", "no-skip", "denoise", "box", "image-labels")
SUPERVISION = {"unet": "full masks", "no-skip": "full masks", "denoise": "clean images", "box": "boxes",
               "image-labels": "image labels", "cam-classifier": "image labels"}
NUM_CLASSES = len(CLASSES)  # background included
PARITY = {"mean_iou": 0.03, "PSNR denoised": 1.0}
CLASS_SIZE = ("--train-size", "1000", "--epochs", "3")  # the defaults take ~28 min a backend on 2 cores
KEY_FIGURES = ("segmentation", "weak_supervision")


# ---------------------------------------------------------------- data
def load_data(image_size=48, train_size=4000, test_size=200, noise=0.2, seed=0, classes=CLASSES[1:]):
    """Simulated train and test images (kcourse.shapes), drawn with different seeds.

    `classes`: the shapes drawn (all three by default; a subset makes an easier task).

    Returns:
        (train, test), two `kcourse.shapes.Shapes`: `.images` (N, H, W, 1)
        noisy, `.clean`, `.masks` (N, H, W), `.boxes`, `.labels` (N, 3).
    """
    train = shapes.simulate(train_size, image_size, noise=noise, classes=classes, seed=seed)
    test = shapes.simulate(test_size, image_size, noise=noise, classes=classes, seed=seed + 10_000)
    return train, test


def check_size(image_size, depth):
    """A training size a U-Net of this depth takes: a multiple of 2^depth, at least 2^depth (LabError if not)."""
    multiple = 2**depth
    if image_size < max(multiple, 8):
        raise cli.LabError(f"--image-size {image_size} is too small for --depth {depth}: use {max(multiple, 8)} or more")
    if image_size % multiple:
        below, above = image_size // multiple * multiple, (image_size // multiple + 1) * multiple
        nearest = f"{below} or {above}" if below >= 8 else f"{above}"
        raise cli.LabError(
            f"--image-size {image_size} is not a multiple of 2^depth = {multiple} (--depth {depth}): "
            f"train on {nearest}; a trained model segments any size (--model-file)"
        )
    return image_size


# ---------------------------------------------------------------- models
def build_model(kind, depth=3, base_filters=16, learning_rate=3e-3, decay_steps=None, norm="batch"):
    """A compiled model for one variant: Adam, its learning rate decayed to 5% along a cosine over
    `decay_steps` training steps when given (the last epochs settle the weights and BatchNorm's statistics).

    Args:
        kind: "unet", "box", "image-labels" (a U-Net segmenting into the 4
            classes, logits), "no-skip" (the same without skip connections),
            "denoise" (a U-Net with one linear output, mean squared error) or
            "cam-classifier" (the U-Net's encoder, global average pooling and
            one logit per shape class, binary cross-entropy: several shapes
            per image).
    """
    import keras

    from kcourse.models import MeanIoU, UNet
    from kcourse.training import compile_model  # the fast settings, and whole batches under --distribute

    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.05)
    optimizer = keras.optimizers.Adam(learning_rate)
    if kind == "cam-classifier":
        model = build_classifier(len(CLASSES) - 1, depth, base_filters, norm)
        return compile_model(model, optimizer, keras.losses.BinaryCrossentropy(from_logits=True),
                             metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])  # logits: 0 is p = 0.5
    if kind == "denoise":
        model = UNet(1, depth, base_filters, norm=norm, name="denoise")
        model.build((None, None, None, 1))  # any size: the weights do not depend on it
        return compile_model(model, optimizer, "mse", metrics=())
    if kind not in ("unet", "no-skip", "box", "image-labels"):
        raise cli.LabError(f"unknown model {kind!r}: choose one of {', '.join(MODELS)} or cam-classifier")
    model = UNet(NUM_CLASSES, depth, base_filters, skips=kind != "no-skip", norm=norm, name=kind.replace("-", "_"))
    model.build((None, None, None, 1))
    return compile_model(model, optimizer,  # cross-entropy on each pixel's logits
                         metrics=[MeanIoU(NUM_CLASSES, sparse_y_pred=False, name="mean_iou")])  # keras' own, without its torch slowdown


def model_builder(args):
    """`build(kind)`: a function that builds that variant's compiled model (`build_model`) at the sizes of the
    lab's options (`build_parser().parse_args(...)`), its learning rate decayed over the run's training steps."""
    steps = args.epochs * -(-args.train_size // args.batch_size)
    sizes = dict(depth=args.depth, base_filters=args.base_filters, learning_rate=args.learning_rate, decay_steps=steps)
    return lambda kind: (lambda: build_model(kind, **sizes))


def build_classifier(num_classes, depth=3, base_filters=16, norm="batch"):
    """The U-Net's encoder, global average pooling and a Dense layer: an image-level classifier whose
    last convolutional map (`features`) gives class activation maps (`class_activation_maps`)."""
    import keras
    from keras import layers

    from kcourse.layers import ConvBlock, DownBlock

    inputs = keras.Input((None, None, 1))
    h = ConvBlock(base_filters, norm=norm, name="stem")(inputs)  # (B, H, W, F)
    for i in range(1, depth + 1):
        h = DownBlock(base_filters * 2**i, norm=norm, name=f"down_{i}")(h)  # (B, H / 2^i, W / 2^i, F 2^i)
    h = layers.Identity(name="features")(h)
    pooled = layers.GlobalAveragePooling2D(name="pool")(h)  # (B, F 2^depth)
    logits = layers.Dense(num_classes, name="classes")(pooled)  # (B, num_classes)
    return keras.Model(inputs, logits, name="cam_classifier")


def load_model(path):
    """A segmentation `<model>.keras` this lab saved (LabError if the file is missing or is not one)."""
    model = runs.load_model_file(path, "--model-file", "a <model>.keras that a unet run saved (runs/unet-.../unet.keras)")
    if getattr(model, "num_outputs", None) != NUM_CLASSES:
        raise cli.LabError(f"--model-file {path}: not one of this lab's segmentation U-Nets (unet, no-skip, box or image-labels .keras)")
    return model


# ---------------------------------------------------------------- any size
def predict_any_size(model, images, multiple=None, batch_size=32):
    """The model's output for images of any size `(N, H, W, C)`, odd sizes included.

    Each image is padded (by reflection) at the bottom and right to the next
    multiple of `multiple` (by default 2^depth of the U-Net: every pooling
    then halves an even size), run through the model, and the output cropped
    back to `(N, H, W, outputs)`.
    """
    from kcourse.training import predict

    if multiple is None:
        multiple = 2 ** getattr(model, "depth", 0)
    images = np.asarray(images, "float32")
    height, width = images.shape[1:3]
    pad_h, pad_w = -height % multiple, -width % multiple
    padded = np.pad(images, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)], mode="reflect" if min(height, width) > 1 else "edge")
    return predict(model, padded, batch_size)[:, :height, :width]


# ---------------------------------------------------------------- metrics
def iou_per_class(truth, predicted, num_classes=NUM_CLASSES):
    """Intersection over union of each class, over all pixels: (num_classes,), NaN for a class absent from both."""
    truth, predicted = np.asarray(truth).ravel(), np.asarray(predicted).ravel()
    confusion = np.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)
    intersection = np.diag(confusion).astype("float64")
    union = confusion.sum(0) + confusion.sum(1) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / union, np.nan)


def iou_scores(truth, predicted):
    """{"mean_iou", "iou_<class>" for each class}: the mean over the 4 classes, background included (as
    keras.metrics.MeanIoU, whose name the history uses)."""
    per_class = iou_per_class(truth, predicted)
    return {"mean_iou": float(np.nanmean(per_class)), **{f"iou_{name}": float(v) for name, v in zip(CLASSES, per_class)}}


def segment(model, images, batch_size=32):
    """The predicted masks (N, H, W) int32 for images of any size."""
    return predict_any_size(model, images, batch_size=batch_size).argmax(-1).astype("int32")


def evaluate(model, data, batch_size=32):
    """{"mean_iou", "iou_<class>"} of a segmentation model on `data` (a Shapes)."""
    return iou_scores(data.masks, segment(model, data.images, batch_size))


def psnr(reference, image, peak=1.0):
    """Peak signal-to-noise ratio in dB, 10 log10(peak^2 / MSE), over the whole set of images."""
    mse = float(np.mean((np.asarray(reference, "float64") - np.asarray(image, "float64")) ** 2))
    return 10.0 * np.log10(peak**2 / mse)


def evaluate_denoising(model, data, batch_size=32):
    """{"PSNR noisy", "PSNR denoised"}: dB against the clean images, of the input and of the model's output."""
    denoised = predict_any_size(model, data.images, batch_size=batch_size)
    return {"PSNR noisy": psnr(data.clean, data.images), "PSNR denoised": psnr(data.clean, denoised)}


# ---------------------------------------------------------------- weak supervision
def class_activation_maps(classifier, images, upsample=True, batch_size=32):
    """CAM_c = features . w_c + b_c for every class, upsampled (bilinear) to the images: (N, H, W, classes).

    Averaged over the pixels of the feature map, CAM_c is the classifier's
    logit for class c (global average pooling, then a linear layer); with
    `upsample=False` the maps keep the feature map's size (N, h, w, classes).
    """
    import keras

    from kcourse.training import predict

    features = keras.Model(classifier.inputs, classifier.get_layer("features").output)
    kernel, bias = classifier.get_layer("classes").get_weights()
    maps = predict(features, np.asarray(images, "float32"), batch_size)  # (N, h, w, F)
    cams = maps @ kernel + bias  # (N, h, w, classes)
    if not upsample:
        return cams
    height, width = np.shape(images)[1:3]
    resized = keras.ops.image.resize(cams, (height, width), interpolation="bilinear")
    return np.asarray(keras.ops.convert_to_numpy(resized))  # (N, H, W, classes)


def cam_masks(cams, labels, threshold=0.5):
    """Pseudo-masks (N, H, W) int32 from CAMs (N, H, W, C) and the classes each image holds (N, C).

    For each class an image holds, CAM_c is divided by its maximum over the
    image; a pixel takes the class with the largest such score if it is at
    least `threshold`, else it is background (0). Classes the image does not
    hold (or whose CAM is nowhere positive) are left out.
    """
    cams = np.asarray(cams, "float64")
    peak = cams.max(axis=(1, 2), keepdims=True)  # (N, 1, 1, C)
    held = (np.asarray(labels) > 0.5)[:, None, None, :] & (peak > 0)
    scores = np.where(held, cams / np.where(peak > 0, peak, 1.0), -np.inf)
    best = scores.argmax(-1)  # (N, H, W)
    return np.where(scores.max(-1) >= threshold, best + 1, 0).astype("int32")


def weak_masks(kind, data, classifier=None, threshold=0.5):
    """The training targets that weak supervision gives, (N, H, W) int32.

    Args:
        kind: "box" (each box filled with its class) or "image-labels" (the
            CAM pseudo-masks of `classifier`, for the classes in `data.labels`).
        data: a Shapes (only its boxes or labels are used, and its images for the CAMs).
    """
    if kind == "box":
        return shapes.box_masks(data.boxes, data.size)
    if kind == "image-labels":
        if classifier is None:
            raise ValueError("image-labels pseudo-masks need the trained classifier (build_model('cam-classifier'))")
        return cam_masks(class_activation_maps(classifier, data.images), data.labels, threshold)
    raise ValueError(f"unknown weak supervision {kind!r}: choose 'box' or 'image-labels'")


def predicted_labels(classifier, images, batch_size=32):
    """The classifier's image-level labels (N, C): logit > 0, i.e. probability > 0.5."""
    from kcourse.training import predict

    return (predict(classifier, np.asarray(images, "float32"), batch_size) > 0).astype("float32")


# ---------------------------------------------------------------- figures
def _mask_style():
    from matplotlib.colors import ListedColormap

    return dict(cmap=ListedColormap(["#202020", "#1f77b4", "#2ca02c", "#ff7f0e"]), vmin=0, vmax=NUM_CLASSES - 1, interpolation="nearest")


def plot_segmentation(images, truth, predictions, n=6):
    """Rows: the input, the true mask, then each model's predicted mask; one column per image.

    Args:
        images: (N, H, W, 1); truth: (N, H, W); predictions: {model name: (N, H, W)}.
    """
    n = min(n, len(images))
    rows = [("input", images[:n, ..., 0], dict(cmap="gray")), ("truth", truth[:n], _mask_style())]
    rows += [(name, masks[:n], _mask_style()) for name, masks in predictions.items()]
    fig = _grid(rows, n)
    fig.suptitle("0 background, 1 disc (blue), 2 square (green), 3 triangle (orange)", fontsize=9)
    fig.tight_layout()
    return fig


def _grid(rows, n):
    """A figure with one row per (title, pictures, imshow style), the first `n` pictures of each."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.6 * len(rows)), squeeze=False)
    for r, (title, pictures, style) in enumerate(rows):
        for c in range(n):
            axes[r, c].imshow(pictures[c], **style)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=9)
    return fig


def plot_denoising(noisy, denoised, clean, n=6):
    """Rows: noisy input, the U-Net's output, the clean image, each titled with its PSNR."""
    import matplotlib.pyplot as plt

    n = min(n, len(noisy))
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
    for r, (title, pictures) in enumerate([("noisy", noisy), ("denoised", denoised), ("clean", clean)]):
        for c in range(n):
            axes[r, c].imshow(pictures[c, ..., 0], cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if r < 2:
                axes[r, c].set_title(f"{psnr(clean[c], pictures[c]):.1f} dB", fontsize=8)
        axes[r, 0].set_ylabel(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_weak(images, truth, box_masks=None, cams=None, pseudo=None, n=6):
    """Rows: input, truth, and what weak supervision gives: box masks, the CAM of the strongest class, the CAM masks."""
    n = min(n, len(images))
    rows = [("input", images[:n, ..., 0], dict(cmap="gray")), ("truth", truth[:n], _mask_style())]
    if box_masks is not None:
        rows.append(("boxes", box_masks[:n], _mask_style()))
    if cams is not None:
        rows.append(("CAM (max)", cams[:n].max(-1), dict(cmap="magma")))
    if pseudo is not None:
        rows.append(("CAM masks", pseudo[:n], _mask_style()))
    fig = _grid(rows, n)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the lab
# ---------------------------------------------------------------- the handout's questions, answered by the run
def segmentation(run):
    full, plain = run.row("unet"), run.row("no-skip")
    if full is None or plain is None:
        return None
    verdict = ("the skips bring back the edges the poolings lost" if full["mean_iou"] > plain["mean_iou"]
               else "the skips do not pay in this run (too short a training for the edges to matter)")
    return (f"Per pixel, 4 classes: the U-Net reaches mean IoU {full['mean_iou']:.3f} on held-out images, the same network "
            f"without its skip connections (a plain encoder-decoder FCN) {plain['mean_iou']:.3f}: {verdict} "
            f"({full['total params']:,} against {plain['total params']:,} parameters).")


def denoising(run):
    row = run.row("denoise")
    if row is None:
        return None
    return (f"The same U-Net with one linear output and the squared error: {row['PSNR noisy']:.1f} dB in, "
            f"{row['PSNR denoised']:.1f} dB out ({row['PSNR denoised'] - row['PSNR noisy']:+.1f} dB).")


def weak_supervision(run):
    rows = {r["model"]: r for r in run.rows}
    if "box" not in rows or "image-labels" not in rows:
        return None
    full = f"; full masks {rows['unet']['mean_iou']:.3f}" if "unet" in rows else ""
    return (f"Boxes as masks (their IoU with the true masks {rows['box']['target_mean_iou']:.3f}) train a U-Net of mean IoU "
            f"{rows['box']['mean_iou']:.3f}; image labels through class activation maps ({rows['image-labels']['target_mean_iou']:.3f}) "
            f"one of {rows['image-labels']['mean_iou']:.3f}{full}.")


def any_size(run):
    odd = next((key for key in run.metrics if key.startswith("unet at ")), None)
    full = run.row("unet")
    if odd is None or full is None:
        return None
    return (f"The U-Net ({full['total params']:,} parameters, {run.config['depth']} poolings) segments {odd[len('unet at '):]} "
            f"images, not multiples of 2^{run.config['depth']}, padded and cropped back: mean IoU {run.metrics[odd]['mean_iou']:.3f}.")


HANDOUT = (
    Item("002:7", "D'introduire des tâches de prédiction « dense » sur des images (Segmentation, Débruitage)",
         "Dense prediction: segmentation.", segmentation, "kcourse.tasks.unet.evaluate", needs="--models unet no-skip"),
    Item("002:8", "Débruitage", "Dense prediction: denoising.", denoising, "kcourse.tasks.unet.evaluate_denoising",
         needs="--models denoise"),
    Item("002:9", "De sortir un peu du cadre supervisé standard → weak supervision", "Weak supervision: boxes, image labels.",
         weak_supervision, "kcourse.tasks.unet.weak_masks", needs="--models box image-labels"),
    Item("002:10", "De présenter le UNet", "The U-Net, on images of any size.", any_size, "kcourse.tasks.unet.predict_any_size",
         needs="--models unet"),
    Item("003:15", "U-Net : segmentation", "The U-Net for segmentation.", segmentation, "kcourse.tasks.unet.evaluate",
         needs="--models unet no-skip"),
)


def build_parser():
    """The lab's options: the shared ones, the models, the simulated images, the U-Net's size, a saved model."""
    parser = cli.lab_parser(
        "unet", __doc__, epochs=5, batch_size=16, learning_rate=3e-3,
        quick={"train_size": 96, "test_size": 24, "image_size": 32, "base_filters": 4, "depth": 2},
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="default: all of them")
    data = parser.add_argument_group("the simulated images")
    data.add_argument("--image-size", type=cli.positive_int, default=48, help="a multiple of 2^depth (default: %(default)s)")
    data.add_argument("--train-size", type=cli.positive_int, default=4000, help="simulated training images (default: %(default)s)")
    data.add_argument("--test-size", type=cli.positive_int, default=200, help="held-out images (default: %(default)s)")
    data.add_argument("--noise", type=cli.number(float, 0, 1), default=0.2, help="noise standard deviation, grey levels in [0, 1] (default: %(default)s)")
    model = parser.add_argument_group("the U-Net and the CAMs")
    model.add_argument("--depth", type=cli.positive_int, default=3, help="poolings in the U-Net (default: %(default)s)")
    model.add_argument("--base-filters", type=cli.positive_int, default=16, help="channels at full resolution, doubled per level (default: %(default)s)")
    model.add_argument("--cam-threshold", type=cli.fraction, default=0.5, help="CAM_c / max CAM_c that marks a class's pixels (default: %(default)s)")
    parser.add_argument("--model-file", type=Path, metavar="MODEL.keras",
                        help="segment new images (any --image-size, odd included) with a saved model, no training")
    return parser


def run_lab(args):
    """TP5 part II from the parsed options: the simulated shapes, each variant fitted on its targets and scored,
    odd sizes segmented (what `main` and the notebook run)."""
    if args.model_file is not None:
        return predict_saved(args)
    check_size(args.image_size, args.depth)
    run = runs.start("unet", args)
    train, test = load_data(args.image_size, args.train_size, args.test_size, args.noise, args.seed)
    print(f"simulated {len(train):,} train / {len(test):,} test images of {args.image_size}x{args.image_size}, "
          f"noise {args.noise} ({psnr(test.clean, test.images):.1f} dB)")
    build = model_builder(args)
    predictions, weak, supervision = {}, {}, []
    run.outputs.update(train=train, test=test, predictions=predictions, weak=weak, supervision=supervision)

    for name in args.models:
        if name == "denoise":
            fitted = run.fit(name, build(name), (train.images, train.clean), (test.images, test.clean))
            run.record(fitted, supervision=SUPERVISION[name], **evaluate_denoising(fitted.model, test))
            run.outputs["denoised"] = predict_any_size(fitted.model, test.images)
            run.savefig(plot_denoising(test.images, run.outputs["denoised"], test.clean), "denoising")
            continue
        if name in ("unet", "no-skip"):
            targets = train.masks
        elif name == "box":
            targets = weak["box"] = weak_masks("box", train)
        else:  # image-labels: first the classifier, its CAMs, their pseudo-masks
            classifier = run.fit("cam-classifier", build("cam-classifier"), (train.images, train.labels), (test.images, test.labels))
            cams = class_activation_maps(classifier.model, test.images)
            on_test = cam_masks(cams, predicted_labels(classifier.model, test.images), args.cam_threshold)
            targets = weak["image-labels"] = weak_masks("image-labels", train, classifier.model, args.cam_threshold)
            run.record(classifier, supervision=SUPERVISION["cam-classifier"], **iou_scores(test.masks, on_test),
                       target_mean_iou=iou_scores(train.masks, targets)["mean_iou"])
            weak["cams"], weak["cam masks"] = cams, on_test
        fitted = run.fit(name, build(name), (train.images, targets), (test.images, test.masks))
        predictions[name] = segment(fitted.model, test.images)
        target_iou = iou_scores(train.masks, targets)["mean_iou"]
        row = run.record(fitted, supervision=SUPERVISION[name], **iou_scores(test.masks, predictions[name]), target_mean_iou=target_iou)
        if name in ("unet", "box", "image-labels"):
            supervision.append({"supervision": SUPERVISION[name], "model": name, "target_mean_iou": target_iou,
                                "test mean_iou": row["mean_iou"]})
        if name == "unet":
            any_size(run, fitted.model, args)

    if predictions:
        run.savefig(plot_segmentation(test.images, test.masks, predictions), "segmentation")
    if weak:
        run.savefig(plot_weak(test.images, test.masks, shapes.box_masks(test.boxes, test.size) if "box" in weak else None,
                              weak.get("cams"), weak.get("cam masks")), "weak_supervision")
    if supervision:
        run.save_table("supervision", supervision)
    return run.finish(f"U-Net on simulated shapes ({args.image_size}x{args.image_size}): segmentation, denoising, weak supervision",
                      curves=("loss", "mean_iou"), handout=HANDOUT)


def any_size(run, model, args):
    """Segment held-out images of an odd size (neither a multiple of 2^depth nor square) with predict_any_size."""
    height, width = args.image_size + 2**args.depth // 2 + 3, args.image_size - 3
    odd = shapes.simulate(max(args.test_size // 4, 8), (height, width), noise=args.noise, seed=args.seed + 20_000)
    scores = evaluate(model, odd)
    print(f"unet on {height}x{width} images (padded to a multiple of {2**args.depth}, cropped back): mean_iou {scores['mean_iou']:.3f}")
    run.save_metrics(**{f"unet at {height}x{width}": scores})
    return scores


def predict_saved(args):
    """--model-file MODEL.keras: segment simulated images of any --image-size with a saved segmentation model."""
    if args.image_size < 8:
        raise cli.LabError(f"--image-size {args.image_size} is too small for shapes: use 8 or more")
    cli.use_backend(args.backend)
    model = load_model(args.model_file)
    run = runs.start("unet", args)
    data = shapes.simulate(args.test_size, args.image_size, noise=args.noise, seed=args.seed + 30_000)
    predicted = segment(model, data.images)
    scores = iou_scores(data.masks, predicted)
    print(f"{args.model_file.name} on {len(data)} images of {args.image_size}x{args.image_size}: mean_iou {scores['mean_iou']:.3f}")
    run.save_metrics(predict={"model": str(args.model_file), "image size": args.image_size, **scores})
    run.savefig(plot_segmentation(data.images, data.masks, {args.model_file.stem: predicted}), "segmentation")
    return run.finish("U-Net: prediction", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
