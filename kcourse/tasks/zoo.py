"""Lectures 003-004: the architectures the lectures cite, their numbers computed rather than believed.

Every model is built from its definition, with no weights to download: the
course's MLP 784-128-10 and vanilla CNN (kcourse.models, as the mnist lab trains them), one 3x3
convolution 3 -> 64 (k x k x C_in x C_out + C_out = 1,792), VGG11/13 from the
VGG paper's configurations and VGG16/19 from keras.applications
(weights=None), ResNet-18/34/50/101 from keras-hub's `ResNetBackbone`
constructor (the arguments of its `resnet_*_imagenet` presets) with a
1000-class head, ViT-B/16 from keras-hub's `ViTBackbone` constructor, and the
course's tiny Transformer at the TP4 sizes (`transformer`). For each one the
table gives:

- the parameters counted as PyTorch counts them (the trainable ones: batch
  normalisation's running mean and variance are buffers, not parameters),
  Keras' count_params() (which includes them), the lecture's figure and
  whether it agrees at the precision the lecture writes it with
  ("~11.7 M" agrees with 11,689,512; "445 M" for ResNet-101 does not: the
  computed 44.5 M says a decimal point was lost), and a reference count:
  torchvision's model tables for the ImageNet models, the hand count for the
  course's MLP, CNN and convolution, the transformer lab's formula for its model;
- the multiply-adds and FLOPs for one image (1 MAC = 2 FLOPs; counted from the
  layers' configs and output shapes by kcourse.flops, nothing is run), next
  to the published GMACs (torchvision's "GFLOPS" column counts multiply-adds);
- the receptive field of the last convolutional layer (kcourse.receptive_field,
  the FCN lab's computation), and the size of the weights in MiB (float32).

A second table redoes the first-layer argument of the lectures: a dense
layer on a 1024x1024 image with 512 neurons has 5 x 10^8 weights, one on a
224x224x3 image with 1000 neurons 150 million, a 3x3 convolution ~1K
whatever the size of the image. Every layer and model is built with
shapes only (`shapes_only()`: keras.StatelessScope without initialisation),
so the 2 GiB of that first dense layer, or VGG16's 528 MiB, are never
allocated, and nothing is drawn at random.

    python -m kcourse.tasks.zoo                          # every architecture (seconds: shapes only)
    python -m kcourse.tasks.zoo --quick                  # only the small ones, in seconds
    python -m kcourse.tasks.zoo --models vgg16 resnet18  # a choice
    python -m kcourse.tasks.zoo --classes 10             # the ImageNet models with a 10-class head (fine-tuning)

Nothing is trained, so the run folder has no `.keras` model: config.json,
metrics.json (one entry per model; `--resume RUN_DIR` reads back the models an
interrupted run had already counted), zoo.csv (and the runner's summary.csv),
first_layers.csv and params_vs_flops.png (parameters against FLOPs, log scale).
"""

import contextlib
import re

import numpy as np

from kcourse import cli, parameters, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.zoo: build_parser(), then run_lab(args)

MODELS = ("mlp", "cnn", "conv3x3", "vgg11", "vgg13", "vgg16", "vgg19",
          "resnet18", "resnet34", "resnet50", "resnet101", "vit_b16", "transformer")
QUICK = ("mlp", "cnn", "conv3x3", "transformer")
LATENCY = ("resnet18", "resnet50", "vit_b16")  # 004:31: the CNNs against the ViT, run (`--latency`)
BATCHES = (1, 32)
CLASS_SIZE = ("--latency",)  # RESULTS.md: the counts, and the three models run (a minute or two on 2 cores)
PARITY = {"params (trainable)": 0, "GMACs": 1e-9}  # counted from the configs: the same everywhere
KEY_FIGURES = ("params_vs_flops",)

# The VGG paper's configurations A, B, D, E (Simonyan & Zisserman 2015, table 1): 3x3 convolutions, "M" = max pooling 2x2.
VGG_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
TP4 = dict(max_len=32, d_model=64, n_heads=2, n_layers=2, pe="sinusoidal")  # kcourse.tasks.transformer's defaults
VIT_B16 = dict(image_shape=(224, 224, 3), patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072)

# What the lectures write (003: "J3 après-midi", 004: "Convolution, architectures"), as they write it.
LECTURE = {
    "mlp": "101,770",  # 003: the MLP(784, 128, 10) slide, `print(n)  # 101770`
    "conv3x3": "1,792",  # 004: "3 x 3 x 3 x 64 + 64 = 1792"
    "vgg16": "138 M",  # 004: "VGG16 (138M parameters)"
    "resnet18": "~11.7 M",  # 004: the "Versions de ResNet" table
    "resnet34": "~21.8 M",
    "resnet50": "~25.6 M",
    "resnet101": "~445 M",
}
# Published counts: torchvision's model tables (trainable parameters, and their "GFLOPS", which are GMACs).
PUBLISHED = {
    "vgg11": (132_863_336, 7.61), "vgg13": (133_047_848, 11.31), "vgg16": (138_357_544, 15.47),
    "vgg19": (143_667_240, 19.63), "resnet18": (11_689_512, 1.81), "resnet34": (21_797_672, 3.66),
    "resnet50": (25_557_032, 4.09), "resnet101": (44_549_160, 7.80), "vit_b16": (86_567_656, 17.56),
}
# Published ImageNet-1k top-1 accuracy (validation, single crop): torchvision's model tables (the IMAGENET1K_V1
# weights), and CLIP's zero-shot ViT-L/14@336px (Radford et al. 2021, table 11). Cited, not measured: see imagenet().
PUBLISHED_TOP1 = {"resnet18": 69.758, "resnet50": 76.130, "resnet101": 77.374, "vgg16": 71.592, "vit_b16": 81.072,
                  "clip ViT-L/14@336px, zero-shot": 76.2}
ILSVRC_2012 = {"train": 1_281_167, "val": 50_000, "classes": 1_000}  # Russakovsky et al. 2015
IMAGENET = {"vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101", "vit_b16"}
CONVOLUTIONS = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D"}
COLUMNS = ("model", "params (trainable)", "count_params()", "lecture", "vs lecture", "reference",
           "GMACs", "published GMACs", "GFLOPs", "field (last conv)", "MiB (float32)")


# ---------------------------------------------------------------- the builders
def build_conv3x3():
    """One 3x3 convolution, 3 -> 64 channels, on a 224x224 RGB image: 3 x 3 x 3 x 64 + 64 = 1,792 parameters."""
    import keras

    return keras.Sequential([keras.Input((224, 224, 3)), keras.layers.Conv2D(64, 3, padding="same")], name="conv3x3")


def build_vgg_from_config(depth, classes=1000, include_top=True):
    """VGG from the paper's configuration table: 3x3 convolutions 'same' + ReLU, max pooling, then 4096-4096-classes.

    With include_top=False, only the convolutional part (as keras.applications' `include_top=False`).
    """
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((224, 224, 3))], name=f"vgg{depth}")
    for item in VGG_CONFIGS[depth]:
        model.add(layers.MaxPooling2D(2) if item == "M" else layers.Conv2D(item, 3, padding="same", activation="relu"))
    if not include_top:
        return model  # (B, 7, 7, 512)
    model.add(layers.Flatten())  # (B, 7 * 7 * 512 = 25,088)
    model.add(layers.Dense(4096, activation="relu"))
    model.add(layers.Dense(4096, activation="relu"))
    model.add(layers.Dense(classes))
    return model


def build_vgg(depth, classes=1000):
    """VGG11/13 from the configuration table; VGG16/19 from keras.applications (weights=None: nothing downloaded)."""
    import keras

    if depth in (16, 19):
        application = keras.applications.VGG16 if depth == 16 else keras.applications.VGG19
        return application(weights=None, classes=classes, classifier_activation=None)
    return build_vgg_from_config(depth, classes)


def build_resnet(depth, classes=1000, image_size=224):
    """keras-hub's ResNetBackbone from its preset's constructor arguments, then global pooling and a dense head."""
    import keras

    from kcourse.models import resnet_backbone

    backbone = resnet_backbone(depth, image_shape=(image_size, image_size, 3))
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)  # (B, 512 or 2048)
    return keras.Model(backbone.input, keras.layers.Dense(classes, name="fc")(features), name=f"resnet{depth}")


def build_vit_b16(classes=1000, image_size=224):
    """keras-hub's ViTBackbone at the ViT-B/16 sizes (197 tokens of 768 at 224 px), a dense head on the [CLS] token."""
    import keras

    from kcourse import system

    backbone = system.keras_hub().models.ViTBackbone(**{**VIT_B16, "image_shape": (image_size, image_size, 3)})
    cls = backbone.output[:, 0, :]  # (B, 768): the [CLS] token of (B, 197, 768)
    return keras.Model(backbone.input, keras.layers.Dense(classes, name="head")(cls), name="vit_b16")


def build_tiny_transformer():
    """The TP4 TinyTransformerClassifier at the transformer lab's sizes: its corpus' vocabulary, 32 tokens,
    d_model 64, 2 heads, 2 blocks (as kcourse.models.build_classifier makes it, uncompiled)."""
    from kcourse import text
    from kcourse.models import TinyTransformerClassifier

    _, _, vocab = text.load_corpus()
    model = TinyTransformerClassifier(vocab_size=len(vocab), pad_id=vocab.pad_id, name="transformer", **TP4)
    model.build((None, TP4["max_len"]))
    return model


def build_model(name, classes=1000, image_size=224):
    """The architecture `name` (one of MODELS), built with fresh weights; `classes` sizes the ImageNet models' head,
    `image_size` the ResNets' and the ViT's input (the others have the course's fixed inputs)."""
    from kcourse.models import build_cnn, build_mlp

    if name not in MODELS:
        raise cli.LabError(f"unknown model {name!r}: choose among {', '.join(MODELS)}")
    if name == "mlp":
        return build_mlp()
    if name == "cnn":
        return build_cnn()
    if name == "conv3x3":
        return build_conv3x3()
    if name.startswith("vgg"):
        return build_vgg(int(name[3:]), classes)
    if name.startswith("resnet"):
        return build_resnet(int(name[6:]), classes, image_size)
    if name == "vit_b16":
        return build_vit_b16(classes, image_size)
    return build_tiny_transformer()


# ---------------------------------------------------------------- the numbers
def macs_per_image(name, model):
    """Multiply-adds for one image (one sequence for the Transformer), from the configs: see kcourse.flops."""
    from kcourse import flops

    if name == "vit_b16":
        return flops.vit_macs(**VIT_B16, classes=model.output.shape[-1])
    if name == "transformer":
        return flops.tiny_transformer_macs(model)
    return flops.count_macs(model)


def last_conv_field(model):
    """The receptive field of the model's last convolutional layer, by kcourse.receptive_field; None without one."""
    from kcourse import receptive_field

    try:
        image_model = len(model.inputs[0].shape) == 4
    except (AttributeError, IndexError, TypeError, ValueError):  # a subclassed model has no symbolic inputs
        image_model = False
    if not image_model:
        return None  # not an image model (the MLP flattens first; the Transformer reads tokens)
    convs = [row for row in receptive_field.receptive_fields(model) if row["type"] in CONVOLUTIONS]
    return convs[-1]["receptive field"] if convs else None


def reference_count(name, model):
    """The count to check against: torchvision's, the hand count of the course's models, or the TP4 formula."""
    if name in PUBLISHED:
        return PUBLISHED[name][0]
    if name == "mlp":
        return 784 * 128 + 128 + 128 * 10 + 10
    if name == "cnn":  # conv 5x5 1 -> 10, conv 5x5 10 -> 10, dense 490 -> 50, dense 50 -> 10
        return (5 * 5 * 1 * 10 + 10) + (5 * 5 * 10 * 10 + 10) + (490 * 50 + 50) + (50 * 10 + 10)
    if name == "conv3x3":
        return conv_parameters(3, 3, 64)
    formulas = parameters.transformer_formulas(model.d_model, model.n_heads, model.mlp_ratio, model.n_layers,
                                              model.vocab_size, model.max_len, model.num_classes, model.pe)
    return formulas[-1]["computed"]


def measure(name, model, classes=1000):
    """One row of the zoo's table for a built model: parameters, the lecture's figure, FLOPs, field, MiB."""
    trainable, total = parameters.trainable(model), model.count_params()
    macs = macs_per_image(name, model)
    lecture = LECTURE.get(name)
    same_head = classes == 1000 or name not in IMAGENET
    return {
        "model": name,  # the columns of COLUMNS
        "params (trainable)": trainable,
        "count_params()": total,
        "lecture": lecture,
        "vs lecture": compare(trainable, lecture) if lecture else None,
        "reference": reference_count(name, model) if same_head else None,
        "GMACs": macs / 1e9,
        "published GMACs": PUBLISHED[name][1] if name in PUBLISHED and same_head else None,
        "GFLOPs": 2 * macs / 1e9,
        "field (last conv)": last_conv_field(model),
        "MiB (float32)": total * 4 / 2**20,  # every weight, running statistics included, in float32
    }


def latency(name, batch_sizes=BATCHES, image_size=224, repeats=3):
    """004:31: `name` built with random weights and run by `predict_on_batch` (compiled where the backend compiles).

    Returns {batch: {"ms / image", "peak MiB"}}: the median of `repeats` calls after a warm-up one (the
    compilation), divided by the batch; the peak memory of those calls above what was in use before the
    model was built: its weights, activations and workspace (kcourse.system.memory_mib: the accelerator's
    allocator, else this process's resident memory, the backend's runtime included). The lab calls it in a
    fresh process per model (`latency_apart`): what an earlier model left in the allocator would hide the next.
    """
    import time

    import keras

    from kcourse import system

    keras.backend.clear_session()
    if name.startswith(("resnet", "vit")):
        system.keras_hub()  # imported before the baseline: its hundreds of MiB (TensorFlow's) are not the model's
    keras.ops.convert_to_numpy(keras.ops.ones((2,)) + 1)  # the backend's runtime started, before the baseline too
    system.reset_peak()
    before, _ = system.memory_mib()
    model = build_model(name, image_size=image_size)
    images = np.random.default_rng(0).uniform(0, 255, (max(batch_sizes), image_size, image_size, 3)).astype("float32")
    found = {}
    for batch in batch_sizes:
        x = images[:batch]
        model.predict_on_batch(x)  # compiles
        system.reset_peak()
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict_on_batch(x)  # NumPy out: the call has finished
            seconds.append(time.perf_counter() - start)
        _, peak = system.memory_mib()
        found[batch] = {"ms / image": 1000 * float(np.median(seconds)) / batch,
                        "peak MiB": None if peak is None or before is None else peak - before}
    del model
    keras.backend.clear_session()
    return found


def latency_apart(name, batch_sizes=BATCHES, image_size=224):
    """`latency` in a fresh Python process (the same backend, from KERAS_BACKEND), its result read back.

    A plain subprocess, not multiprocessing: a spawned child would re-run the caller's script."""
    import json
    import subprocess
    import sys

    code = (f"import json; from kcourse.tasks import zoo; "
            f"print('LATENCY', json.dumps(zoo.latency({name!r}, {tuple(batch_sizes)!r}, {int(image_size)})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"zoo.latency({name!r}) failed in its process:\n{done.stderr[-2000:]}")
    found = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("LATENCY "))[8:])
    return {int(batch): t for batch, t in found.items()}


@contextlib.contextmanager
def shapes_only():
    """Build models whose weights have their shapes but no values: nothing is allocated or drawn at random.

    Counting needs only the shapes: VGG16's 138 M weights would take 528 MiB and
    seconds of random draws (on JAX, a compilation per weight shape). The
    models built inside cannot be called; build again outside to use one.

        with zoo.shapes_only():
            model = zoo.build_model("vgg16")
        zoo.measure("vgg16", model)
    """
    import keras

    with keras.StatelessScope(initialize_variables=False):
        yield


def count(name, classes=1000):
    """Build `name` (shapes only), measure it and free it: its row of the table."""
    import keras

    with shapes_only():
        model = build_model(name, classes)
    try:
        return measure(name, model, classes)
    finally:
        del model
        keras.backend.clear_session()


def compare(computed, stated):
    """'agrees' if `computed` rounds to the lecture's figure at the precision it is written with, else 'off x<ratio>'.

    "~11.7 M" is good to 0.05 M, "138 M" to 0.5 M, "500 M" (one significant
    digit, 5 x 10^8) to 50 M, "~1K" to 0.5 K; a figure written in full
    ("101,770") must be exact.
    """
    value, tolerance = parse_figure(stated)
    if abs(computed - value) <= tolerance:
        return "agrees"
    return f"off x{value / computed:.3g}"  # the lecture's figure over the computed one


def parse_figure(text):
    """A lecture's figure ('~11.7 M', '138M', '150 millions', '~1K', '1,792') as (value, tolerance)."""
    match = re.fullmatch(r"~?\s*([\d.,]+)\s*(K|M|G|millions?|milliards?)?", text.strip(), flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"cannot read the figure {text!r}")
    digits, unit = match.group(1).replace(",", ""), (match.group(2) or "").lower()
    scale = {"": 1, "k": 1e3, "m": 1e6, "million": 1e6, "millions": 1e6, "g": 1e9, "milliard": 1e9, "milliards": 1e9}[unit]
    if not unit:
        return float(digits), 0.5  # written in full: exact
    if "." in digits:
        last = -len(digits.split(".")[1])  # the place of the last written decimal
    else:
        last = len(digits) - len(digits.rstrip("0"))  # trailing zeros of "500" are not significant
    return float(digits) * scale, 0.5 * 10.0**last * scale


def dense_parameters(n_in, n_out):
    """A dense layer: n_in n_out weights + n_out biases."""
    return n_in * n_out + n_out


def conv_parameters(c_in, k, c_out):
    """A k x k convolution: k k C_in C_out weights + C_out biases (lecture 004), whatever the image size."""
    return k * k * c_in * c_out + c_out


def first_layers():
    """The lectures' first-layer argument: a dense layer on the flat image against a 3x3 convolution.

    Lecture 003: a 1024x1024 image (10^6 inputs) into 512 neurons is 5 x 10^8
    weights; a convolution ~1K. Lecture 004: 224 x 224 x 3 = 150,528 inputs
    into 1000 neurons, 150 million; a 3x3 convolution 3 -> 64, 1,792. Each
    layer is built (shapes only: the first dense layer's float32 weights would
    take 2 GiB) and counted by Keras, next to the lecture's formula. The
    multiply-adds show what weight sharing does not save: the convolution runs
    at every pixel.
    """
    import keras

    from kcourse import flops

    rows = []
    for lecture, (h, w, c), neurons, filters, dense_figure, conv_figure in (
        ("003", (1024, 1024, 1), 512, 64, "500 M", "~1K"),
        ("004", (224, 224, 3), 1000, 64, "150 millions", "1,792"),
    ):
        n_in = h * w * c
        with shapes_only():
            dense = keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(neurons)])  # on the flattened image
            conv = keras.Sequential([keras.Input((h, w, c)), keras.layers.Conv2D(filters, 3, padding="same")])
        for layer, name, formula, by_formula, figure in (
            (dense, f"Dense({neurons}) on {n_in:,} inputs", "n_in n_out + n_out", dense_parameters(n_in, neurons), dense_figure),
            (conv, f"Conv2D({filters}, 3x3)", "k k C_in C_out + C_out", conv_parameters(c, 3, filters), conv_figure),
        ):
            params = layer.count_params()
            rows.append({"lecture": lecture, "image": f"{h}x{w}x{c}", "first layer": name, "formula": formula,
                         "by formula": by_formula, "parameters": params, "the lecture's figure": figure,
                         "vs lecture": compare(params, figure), "GMACs": flops.count_macs(layer) / 1e9,
                         "MiB (float32)": params * 4 / 2**20})
        keras.backend.clear_session()
    return rows


# ---------------------------------------------------------------- the figure
def figure(rows):
    """Parameters against FLOPs per image, both on log scales: one marker per family, one colour per model."""
    import matplotlib.pyplot as plt

    markers = {"vgg": "s", "resnet": "^", "vit": "D", "transformer": "D"}
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, row in enumerate(r for r in rows if r["GFLOPs"]):
        marker = next((m for prefix, m in markers.items() if row["model"].startswith(prefix)), "o")
        ax.scatter(row["params (trainable)"], row["GFLOPs"] * 1e9, marker=marker, s=50, color=plt.cm.tab20(i % 20),
                   label=f"{row['model']}: {_short(row['params (trainable)'])}, {row['GFLOPs']:.3g} GFLOPs")
    ax.set(xscale="log", yscale="log", xlabel="parameters (trainable)", ylabel="FLOPs / image (1 multiply-add = 2 FLOPs)",
           title="the zoo: parameters against compute")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def notes(rows):
    """What the table says that a reader might miss, one line each."""
    lines = ["FLOPs: 1 multiply-add = 2 FLOPs; published GMACs: torchvision's model tables (their 'GFLOPS' are multiply-adds)",
             "params (trainable): as PyTorch counts them; count_params() adds batch normalisation's running mean and variance"]
    for row in rows:
        if row["vs lecture"] and row["vs lecture"] != "agrees":
            ratio = row["vs lecture"][len("off x"):]
            line = f"{row['model']}: the lecture's {row['lecture']} is {ratio} times the computed {_short(row['params (trainable)'])}"
            if row["model"] == "resnet101":
                line += ": most likely a lost decimal point"
            lines.append(line)
    if any(row["model"] == "vit_b16" for row in rows):
        lines.append("vit_b16: no field column: its one convolution cuts 16x16 patches, and from the first attention "
                     "layer on every token sees the whole image")
    return lines


def _short(n):
    """11,689,512 -> '11.7 M': three significant digits."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


# ---------------------------------------------------------------- the handout's questions, answered by the run
def _count(run, name):
    return run.value(name, "params (trainable)")


def mlp_count(run):
    n = _count(run, "mlp")
    if n is None:
        return None
    return f"The MLP(784, 128, 10): {n:,} parameters counted, the lecture's 101770 ({run.value('mlp', 'vs lecture')})."


def first_layers_compared(run, lecture):
    rows = [r for r in run.metrics.get("first layers", []) if r["lecture"] == lecture]
    if len(rows) != 2:
        return None
    (dense, conv), said = rows, "the lecture's figure"
    compute = ("yet computes more, run at every pixel" if conv["GMACs"] > dense["GMACs"] else "and computes less")
    return (f"On a {dense['image']} image, {dense['first layer']} has {dense['parameters']:,} parameters (the lecture's "
            f"{dense[said]}, {dense['vs lecture']}); {conv['first layer']} {conv['parameters']:,} ({conv[said]}, "
            f"{conv['vs lecture']}), {compute}: {conv['GMACs']:.3f} GMACs against {dense['GMACs']:.3f}.")


def conv_count(run):
    n = _count(run, "conv3x3")
    if n is None:
        return None
    return f"One 3x3 convolution 3 -> 64: k k C_in C_out + C_out = {n:,} parameters, whatever the image's size."


def vgg_counts(run):
    vggs = [(name, _count(run, name)) for name in ("vgg11", "vgg13", "vgg16", "vgg19") if _count(run, name) is not None]
    if not vggs:
        return None
    parts = ", ".join(f"{name.upper()} {n / 1e6:.1f} M" for name, n in vggs)
    verdict = f"; VGG16 against the lecture's 138M: {run.value('vgg16', 'vs lecture')}" if _count(run, "vgg16") else ""
    return f"{parts}{verdict}."


def resnet_counts(run):
    nets = [(name, _count(run, name)) for name in ("resnet18", "resnet34", "resnet50", "resnet101") if _count(run, name) is not None]
    if not nets:
        return None
    parts = ", ".join(f"ResNet-{name[6:]} {n / 1e6:.2f} M (lecture {run.value(name, 'lecture')}: {run.value(name, 'vs lecture')})"
                      for name, n in nets)
    return f"Trainable parameters, as PyTorch counts them: {parts}."


def resnet_against_vgg(run):
    vgg, resnet = _count(run, "vgg16"), _count(run, "resnet50") or _count(run, "resnet18")
    name = "ResNet-50" if _count(run, "resnet50") else "ResNet-18"
    if vgg is None or resnet is None:
        return None
    return (f"{name} has {resnet / 1e6:.1f} M parameters against VGG16's {vgg / 1e6:.1f} M ({vgg / resnet:.1f}x fewer): its "
            f"head is one Dense on pooled features where VGG16's three dense layers hold most of its weights.")


def receptive_fields(run):
    cnn, vgg = run.value("cnn", "field (last conv)"), run.value("vgg16", "field (last conv)")
    if cnn is None:
        return None
    deep = f"; VGG16's last, after 13 of them and 4 poolings, {vgg}" if vgg is not None else ""
    return f"The course CNN's last 5x5 convolution, after one pooling, sees {cnn}x{cnn} input pixels{deep}."


def imagenet(run):
    counted = [name for name in PUBLISHED_TOP1 if run.value(name, "params (trainable)") is not None]
    return (f"Not measured here: ImageNet (ILSVRC-2012: {ILSVRC_2012['train']:,} training and {ILSVRC_2012['val']:,} "
            f"validation images of {ILSVRC_2012['classes']:,} classes, about 150 GB behind a registration) is no download "
            f"for a course machine; the presets the labs fine-tune were trained on it. The counts above are of the "
            f"architectures: {', '.join(counted) or 'none in this run'}.")


def state_of_the_art(run):
    parts = ", ".join(f"{name} {top1:.1f}%" for name, top1 in PUBLISHED_TOP1.items())
    return (f"Cited, not measured (it needs ImageNet's validation set): the published top-1 accuracies, {parts} "
            f"(torchvision's tables; CLIP's without a single ImageNet label). On this run's table, ViT-B/16's "
            f"{PUBLISHED_TOP1['vit_b16'] - PUBLISHED_TOP1['resnet50']:.1f} points over ResNet-50 cost "
            + (f"{run.value('vit_b16', 'GMACs') / run.value('resnet50', 'GMACs'):.1f}x its multiply-adds."
               if run.value("vit_b16", "GMACs") and run.value("resnet50", "GMACs") else "more multiply-adds (count both: --models resnet50 vit_b16)."))


def cnn_against_vit_cost(run):
    found = run.metrics.get("latency")
    if not found or "vit_b16" not in found:
        return None
    cnn = "resnet50" if "resnet50" in found else next((n for n in found if n.startswith("resnet")), None)
    if cnn is None:
        return None
    big = str(max(int(b) for b in found["vit_b16"]))
    def timings(by_batch):
        return ", ".join(f"{t['ms / image']:.1f} ms an image at batch {b}" for b, t in by_batch.items())

    parts = "; ".join(f"{_label(name)} {timings(t)}, peak {_mib(t[big]['peak MiB'])} at {big}" for name, t in found.items())
    vit, conv = found["vit_b16"][big], found[cnn][big]
    ratio = lambda column: f"{run.value('vit_b16', column) / run.value(cnn, column):.1f}x"  # noqa: E731
    memory = f" and {vit['peak MiB'] / conv['peak MiB']:.1f}x the memory" if vit["peak MiB"] and conv["peak MiB"] else ""
    size = run.metrics["latency image size"]
    text_ = (f"On {run.metrics['latency device']}, at {size} px: {parts}. At 224 px ViT-B/16 has "
             f"{ratio('params (trainable)')} {_label(cnn)}'s parameters and {ratio('GMACs')} its multiply-adds (the table); "
             f"here it takes {vit['ms / image'] / conv['ms / image']:.1f}x its time per image at batch {big}{memory}.")
    if vit["peak MiB"] and conv["peak MiB"]:
        share = {name: run.value(name, "MiB (float32)") / found[name][big]["peak MiB"] for name in ("vit_b16", cnn)}
        text_ += (f" Its weights are {share['vit_b16']:.0%} of its peak, {_label(cnn)}'s {share[cnn]:.0%} of its own: "
                  f"the rest is activations and the runtime, and grows with the batch and the pixels (for the ViT, "
                  f"with the square of its {(size // 16) ** 2 + 1} tokens in attention).")
    return text_


def _label(name):
    return {"vit_b16": "ViT-B/16"}.get(name, f"ResNet-{name[6:]}")


def _mib(value):
    return "not measured" if value is None else f"{value:,.0f} MiB"


HANDOUT = (
    Item("003:3", "model = MLP(784, 128, 10) ; print(f\"{n} parametres\")  # 101770", "The MLP's parameters, counted.",
         mlp_count, "kcourse.parameters.trainable", needs="--models mlp"),
    Item("003:6", "Image 1024 × 1024 ⇒ 10^6 entrées ; couche cachée de 512 neurones ; 10^6 × 512 = 5 × 10^8 poids",
         "A dense first layer on a 1024x1024 image against a convolution.", lambda run: first_layers_compared(run, "003"),
         "kcourse.tasks.zoo.first_layers"),
    Item("004:1", "Image 224 x 224 pixels avec 3 canaux RGB ; MLP avec une couche cachée à 1000 nœuds : 150 millions",
         "A dense first layer on a 224x224x3 image against a convolution.", lambda run: first_layers_compared(run, "004"),
         "kcourse.tasks.zoo.first_layers"),
    Item("004:6", "Nombre de paramètres k x k x C_in x C_out + C_out ; exemple : 3 x 3 x 3 x 64 + 64 = 1792",
         "A convolution's parameters.", conv_count, "kcourse.tasks.zoo.conv_parameters", needs="--models conv3x3"),
    Item("004:10", "Champ réceptif : un petit noyau avec de nombreuses couches : grand champ réceptif",
         "The receptive field of small kernels stacked.", receptive_fields, "kcourse.receptive_field.receptive_fields",
         needs="--models cnn vgg16"),
    Item("004:11", "VGG16 (138M parameters) ; variantes : VGG11, 13, 16, 19", "VGG16's 138M, and its variants.",
         vgg_counts, "kcourse.tasks.zoo.build_vgg", needs="--models vgg11 vgg13 vgg16 vgg19"),
    Item("004:14", "ResNet-18 ~11.7 M ; ResNet-34 ~21.8 M ; ResNet-50 ~25.6 M ; ResNet-101 ~445 M",
         "The ResNets' parameters against the lecture's table.", resnet_counts, "kcourse.tasks.zoo.build_resnet",
         needs="--models resnet18 resnet34 resnet50 resnet101"),
    Item("004:15", "Beaucoup moins que VGG, même avec beaucoup de couches", "ResNets have far fewer parameters than VGG.",
         resnet_against_vgg, "kcourse.tasks.zoo.count", needs="--models vgg16 resnet50"),
    Item("003:8", "Le Kernel (Filtre) : petite fenêtre (ex : 3 × 3) qui glisse sur l'image ; partage des poids",
         "A 3x3 kernel slides over the image: its weights are shared.", conv_count, "kcourse.tasks.zoo.conv_parameters",
         needs="--models conv3x3"),
    Item("003:13", "ImageNet : ResNet, VGG", "The ImageNet architectures, counted.", resnet_counts, "kcourse.tasks.zoo.count",
         needs="--models resnet18 resnet34 resnet50 resnet101"),
    Item("004:16", "ImageNet : 1M d'images, 1000 classes", "ImageNet: a million images, 1000 classes.", imagenet,
         "kcourse.tasks.zoo.ILSVRC_2012"),
    Item("004:28", "État de l'art sur ImageNet", "The state of the art on ImageNet, cited.", state_of_the_art,
         "kcourse.tasks.zoo.PUBLISHED_TOP1"),
    Item("004:31", "CNN vs ViT : latence et mémoire", "CNN against ViT: latency and memory, measured.",
         cnn_against_vit_cost, "kcourse.tasks.zoo.latency", needs="--latency"),
    Item("004:9", "Architecture de base : Conv → ReLU → Max Pool, puis Dense → ReLU, Dense → Softmax", "The basic CNN architecture: VGG.",
         vgg_counts, "kcourse.tasks.zoo.build_vgg", needs="--models vgg16"),
    Item("004:13", "Couches résiduelles y = F(x) + x ; blocs basic et bottleneck", "Residual blocks, basic and bottleneck.",
         resnet_counts, "kcourse.tasks.zoo.build_resnet", needs="--models resnet18 resnet50"),
)


def build_parser():
    """The shared options that mean something here (nothing is trained: no --epochs, --batch-size, --distribute), the models, the head."""
    parser = cli.lab_parser("zoo", __doc__, trains=False, quick={"models": list(QUICK)})
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL",
                        help=f"among {', '.join(MODELS)} (default: all; with --quick: {' '.join(QUICK)})")
    parser.add_argument("--classes", type=cli.positive_int, default=1000,
                        help="classes of the ImageNet models' head (default: %(default)s, the published counts)")
    parser.add_argument("--latency", nargs="*", choices=LATENCY, metavar="MODEL",
                        help=f"also run these models (default: {' '.join(LATENCY)}) at 224 px with random weights: "
                             f"ms per image at batch {' and '.join(map(str, BATCHES))}, peak memory (004:31)")
    parser.add_argument("--latency-size", type=cli.number(int, low=32, why="the ResNets divide the side by 32"), default=224,
                        help="their input side in pixels (default: %(default)s)")
    return parser


def hand_in(run, rows, first, classes=1000):
    """Write zoo.csv, first_layers.csv and params_vs_flops.png; print the first layers, the notes and the table."""
    run.save_table("zoo", rows)
    run.savefig(figure(rows), "params_vs_flops")
    run.save_table("first_layers", first)
    print("\nthe first layer, dense against convolutional (lectures 003 and 004):")
    for row in first:
        stated = row["the lecture's figure"]
        print(f"  {row['lecture']} {row['image']:<12} {row['first layer']:<32} {row['parameters']:>13,} parameters "
              f"(lecture: {stated}, {row['vs lecture']}), {row['GMACs']:.3f} GMACs")
    print()
    for line in notes(rows):
        print(line)
    run.rows = [{key: ("-" if value is None else value) for key, value in row.items()} for row in rows]
    return run.finish(f"the lectures' architectures, per image ({classes}-class heads on the ImageNet models)", handout=HANDOUT)


def run_lab(args):
    """The zoo from the parsed options: each architecture built with shapes only and counted, the first layers
    (what `main` and the notebook run)."""
    run = runs.start("zoo", args)
    rows = []
    for name in dict.fromkeys(args.models):
        if run.resuming and name in run.metrics:
            print(f"{name}: counted by the interrupted run; read back from metrics.json")
            row = run.metrics[name]
        else:
            row = count(name, args.classes)
            run.save_metrics(**{name: row})
        rows.append(row)
    if args.latency is not None:
        from kcourse import system

        timed = dict(run.metrics.get("latency", {})) if run.resuming else {}
        for name in dict.fromkeys(args.latency or LATENCY):
            if name in timed:
                print(f"latency: {name}, measured by the interrupted run; read back from metrics.json")
                continue
            print(f"latency: {name}, batch {' and '.join(map(str, BATCHES))} at {args.latency_size} px...", flush=True)
            timed[name] = {str(b): t for b, t in latency_apart(name, image_size=args.latency_size).items()}  # str: as metrics.json
            run.save_metrics(latency=timed, **{"latency device": system.accelerator() or "cpu",  # kept model by model
                                               "latency image size": args.latency_size})
        run.save_table("latency", [{"model": name, "batch": b, **t} for name, by in timed.items() for b, t in by.items()])
        for name in timed:
            if name not in args.models:  # their parameters and FLOPs beside
                rows.append(count(name))
                run.save_metrics(**{name: rows[-1]})
    first = first_layers()
    run.save_metrics(**{"first layers": first})
    run.outputs.update(rows=rows, first=first)
    return hand_in(run, rows, first, args.classes)


if __name__ == "__main__":
    cli.run(main)
