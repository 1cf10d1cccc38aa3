"""TP3 part II: ants vs bees, a pretrained ResNet18 fine-tuned, frozen or trained from scratch.

The course's second exercise (II.A to II.D) on the Hymenoptera set (244 train /
153 val photos of ants and bees, the PyTorch tutorial's zip):

- II.A augmentation: random crop, flips, rotation, zoom and contrast, as Keras
  preprocessing layers inside the model (active in `fit`, off in `predict`);
  `augmentation.png` shows what the model sees.
- II.B a network off the shelf: keras-hub's `resnet_18_imagenet` backbone, its
  ImageNet head replaced by global average pooling and `Dense(num_classes)`.
- II.C the device: the summary gives the time per epoch and the device; with
  an accelerator visible, the runner times the same epoch on the CPU (the speed-up).
- II.D freezing: `--models fine-tuned frozen scratch` trains the three in turn,
  with the same split, seed, head and batches, each starting from the preset's
  own weights (scratch: random ones). "frozen" is `--freeze features` (every
  convolution and BatchNorm layer of the backbone, as the course's loop over
  Conv2d / BatchNorm2d) or `--freeze all-but-head` (the whole backbone, one
  flag); on ResNet18 both leave only the head trainable (512 x 2 + 2 = 1,026).

BatchNorm and `trainable=False`: in Keras, a frozen BatchNormalization layer
also runs in inference mode: it normalises with its moving mean and variance
and no longer updates them, even inside `fit`. In PyTorch, setting
`requires_grad=False` on BatchNorm2d's parameters only stops the gradient of
gamma and beta: in `model.train()` the layer still normalises with the batch's
statistics and keeps updating its running statistics. Keras' choice is the one
wanted for fine-tuning on a few hundred images: the ImageNet statistics stay.

    python -m kcourse.tasks.finetune                                  # pretrained ResNet18, fine-tuned
    python -m kcourse.tasks.finetune --models fine-tuned frozen scratch   # II.D, the three in turn
    python -m kcourse.tasks.finetune --models scratch --image-size 128 --epochs 2   # no download
    python -m kcourse.tasks.finetune --models frozen --freeze all-but-head
    python -m kcourse.tasks.finetune --data-dir my_photos --val-split 0.2
    python -m kcourse.tasks.finetune --preset path/to/folder          # a preset saved with save_to_preset

The known presets: `keras_hub.models.ResNetBackbone.presets.keys()` (every
image backbone: `keras_hub.models.Backbone.presets`). Offline, one line says so
for each thing it could not download: without the images it trains on random
crops of scikit-learn's two sample photos (china vs flower); without the
preset it trains ResNet18 from random weights, and "fine-tuned" is left out
(it would repeat scratch), with one line saying so.

The run folder gets config.json, history_<model>.csv, <model>.keras (reload
with `finetune.load_model`, which keeps the frozen backbone frozen),
metrics.json, summary.csv, augmentation.png and learning_curves.png.
"""

import argparse
from pathlib import Path

import numpy as np

from kcourse import cli, runs

HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
PRESET = "resnet_18_imagenet"
MODELS = ("fine-tuned", "frozen", "scratch")
FREEZE = ("none", "features", "all-but-head")
# ResNet18 as keras-hub builds it (11,186,112 parameters, as the preset's): the
# architecture for "scratch" when the preset's own config cannot be downloaded.
RESNET18 = dict(
    input_conv_filters=[64],
    input_conv_kernel_sizes=[7],
    stackwise_num_filters=[64, 128, 256, 512],
    stackwise_num_blocks=[2, 2, 2, 2],
    stackwise_num_strides=[1, 2, 2, 2],
    block_type="basic_block",
    use_pre_activation=False,
)
PRESET_HELP = "for a local copy: --preset path/to/folder, saved with save_to_preset"
LIST_PRESETS = "list the known ones with keras_hub.models.ResNetBackbone.presets.keys() (every backbone: keras_hub.models.Backbone.presets)"


def load_data(data_dir=None, image_size=224, val_split=0.2, quick=False, seed=0, crop_margin=0.125):
    """The photos as a kcourse.images.ImageData (x in [0, 255], loaded a little larger than image_size).

    Args:
        data_dir: a local image folder (`train/` and `val/` with one folder per
            class, or one folder per class split with `val_split`); by default
            the Hymenoptera zip (downloaded once, cached), or offline the
            embedded china/flower crops.
        quick: at most 16 images per class and split.
    """
    from kcourse import downloads, images

    limit = 16 if quick else None
    if data_dir is not None:
        return images.load_image_folder(data_dir, image_size, val_split, seed, crop_margin, limit)
    path = downloads.download_or_none(
        lambda: downloads.fetch("hymenoptera_data.zip", HYMENOPTERA_URL, extract=True),  # no published hash
        "the Hymenoptera ants/bees photos",
        "an embedded two-class set (random crops of scikit-learn's two sample photos, china.jpg vs flower.jpg)",
    )
    if path is None:
        return images.embedded_two_class(image_size, 12 if quick else 60, seed=seed, crop_margin=crop_margin)
    root = Path(path)
    if not (root / "train").is_dir():
        root = root / "hymenoptera_data"  # the zip holds one top folder
    return images.load_image_folder(root, image_size, val_split, seed, crop_margin, limit)


def _local(preset):
    return "://" not in preset and ("/" in preset or "\\" in preset or Path(preset).exists())


def check_preset(preset):
    """A LabError unless `preset` is a known keras-hub name, a handle (kaggle://, hf://) or a preset folder.

    Asks nothing of the network: an unknown name is not mistaken for being offline.
    """
    from kcourse import system

    if _local(preset):
        if not (Path(preset) / "config.json").is_file():
            raise cli.LabError(
                f"--preset {preset}: not a keras-hub preset folder (no config.json); "
                f"save one with backbone.save_to_preset(folder), or give a preset name such as {PRESET}"
            )
    elif "://" not in preset and preset not in system.keras_hub().models.Backbone.presets:
        raise cli.LabError(f"--preset {preset}: unknown keras-hub preset; {LIST_PRESETS}, e.g. {PRESET}")


def load_backbone(preset=PRESET, pretrained=True):
    """A keras-hub backbone and where its weights come from ("pretrained" or "random").

    `preset`: a keras-hub preset name, any keras-hub handle (kaggle://, hf://)
    or a local folder saved with `save_to_preset`. Offline, one line says so
    and the same architecture is built with random weights (ResNet18's
    configuration when the preset's own cannot be read).
    """
    from kcourse import downloads, system

    check_preset(preset)
    keras_hub = system.keras_hub()  # ~7 s, and imports TensorFlow: only here
    kind = "pretrained" if pretrained else "random"
    if _local(preset):
        return keras_hub.models.Backbone.from_preset(preset, load_weights=pretrained), kind
    if not pretrained and preset == PRESET:
        return keras_hub.models.ResNetBackbone(**RESNET18), "random"  # the same architecture, no download
    what, instead = f"the keras-hub preset {preset} ({PRESET_HELP})", "ResNet18 with random weights (from scratch)"
    if preset.startswith("hf://") and not downloads.online("huggingface.co"):  # hf:// retries ~20 s offline
        downloads.offline_notice(what, instead)
        backbone = None
    else:
        backbone = downloads.download_or_none(
            lambda: keras_hub.models.Backbone.from_preset(preset, load_weights=pretrained), what, instead
        )
    if backbone is None:
        return keras_hub.models.ResNetBackbone(**RESNET18), "random"
    return backbone, kind


def starting_weights(backbone):
    """The backbone's weights now, as NumPy copies that no training can touch.

    Taken once, before any variant trains, so that every variant starts from
    the preset's own weights whatever was trained before it (on torch,
    `get_weights()` alone would share memory with the live variables).
    """
    return [np.array(w, copy=True) for w in backbone.get_weights()]


def fresh_copy(backbone, weights=None):
    """A new backbone of the same architecture: with `weights` (a list of arrays, e.g. starting_weights) or random ones."""
    copy = backbone.__class__.from_config(backbone.get_config())
    if weights is not None:
        copy.set_weights(weights)
    return copy


def freeze(backbone, how):
    """Freeze part of the backbone in place (course II.D); the head is never frozen.

    "features": every convolution and BatchNorm layer (the course's loop);
    "all-but-head": the whole backbone; "none": everything trains.
    A frozen BatchNormalization layer runs in inference mode (see the module docstring).

    When "features" leaves no backbone weight trainable (ResNet: only
    convolutions and BatchNorm hold weights), the backbone itself is marked
    frozen too: a keras-hub backbone saves its own `trainable` flag but not
    its layers', so the saved `.keras` model reloads frozen.
    """
    from keras import layers

    if how not in FREEZE:
        raise cli.LabError(f"--freeze {how!r}: choose one of {', '.join(FREEZE)}")
    backbone.trainable = how != "all-but-head"
    features = (layers.Conv2D, layers.DepthwiseConv2D, layers.BatchNormalization)
    for layer in _all_layers(backbone):  # each layer set, so that an earlier freeze is undone
        layer.trainable = how == "none" or (how == "features" and not isinstance(layer, features))
    if how == "features" and not backbone.trainable_weights:
        backbone.trainable = False
    return backbone


def _all_layers(layer):
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _all_layers(sub)


def variants(models, weights, freeze_how="features"):
    """The models to train, in order: [(name, starts from the preset's weights?, freeze)].

    Without pretrained weights (`weights == "random"`), "fine-tuned" would
    train the same random weights as "scratch": it is left out (replaced by
    scratch if that is not asked for), with one line saying so.
    """
    recipes = {"fine-tuned": (True, "none"), "frozen": (True, freeze_how), "scratch": (False, "none")}
    names = list(dict.fromkeys(models))
    if weights == "random" and "fine-tuned" in names:
        if "scratch" in names:
            names.remove("fine-tuned")
            print("no pretrained weights: fine-tuned is left out (it would repeat scratch)")
        else:
            names[names.index("fine-tuned")] = "scratch"
            print("no pretrained weights: fine-tuned would be scratch under another name; training scratch")
    return [(name, *recipes[name]) for name in names]


def build_model(backbone, num_classes, input_size, augment=None, freeze_how="none", learning_rate=1e-3, name="resnet"):
    """augmentation -> ImageNet normalisation -> backbone -> average pooling -> Dense(num_classes), compiled.

    Args:
        backbone: a keras-hub backbone (B, H, W, 3) -> (B, h, w, C).
        input_size: the side of the loaded images (before the random crop).
        augment: a keras.Sequential of preprocessing layers (kcourse.images.augmentation).
    """
    import keras
    from keras import layers

    from kcourse import images
    from kcourse.training import compile_model

    freeze(backbone, freeze_how)
    inputs = keras.Input((input_size, input_size, 3), name="image")  # values in [0, 255]
    x = augment(inputs) if augment is not None else inputs  # (B, S, S, 3), S = image_size
    x = images.imagenet_normalization()(x)
    features = backbone(x)  # (B, S/32, S/32, 512) for ResNet18
    pool = layers.GlobalAveragePooling2D if len(features.shape) == 4 else layers.GlobalAveragePooling1D
    x = pool(name="pool")(features)  # (B, 512)
    outputs = layers.Dense(num_classes, name="head")(x)  # logits
    return compile_model(keras.Model(inputs, outputs, name=name), keras.optimizers.Adam(learning_rate))


def load_model(path):
    """A `<model>.keras` this lab saved, frozen where it was frozen.

    `keras.saving.load_model` after `import keras_hub` gives the same
    predictions, but a keras-hub backbone saved with `trainable=False` comes
    back with that flag on itself only, not on its layers (keras-hub passes
    it to the constructor, which does not pass it down), so that `fit` would
    train it again: the flag is set here on each of its layers.
    """
    import keras

    from kcourse import system

    system.keras_hub()  # its classes, registered for deserialization
    model = keras.saving.load_model(path)
    for layer in model.layers:
        if not layer.trainable:
            for sub in [layer, *_all_layers(layer)]:  # each one: on tensorflow the flag set on the backbone alone stays there
                sub.trainable = False
    return model


def evaluate(model, data, batch_size=32):
    """Validation accuracy, macro F1 and the predicted classes."""
    from sklearn.metrics import f1_score

    y_pred = model.predict(data.x_val, batch_size=batch_size, verbose=0).argmax(-1)
    f1 = f1_score(data.y_val, y_pred, average="macro", labels=range(len(data.class_names)), zero_division=0)
    return float((y_pred == data.y_val).mean()), float(f1), y_pred


def _image_size(text):
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"{value} is too small: use 16 or more (ResNet divides the side by 32)")
    return value


def _unit(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is not allowed: it must lie in [0, 1)")
    return value


def build_parser():
    """The lab's options: the shared ones, the data, the augmentation (II.A) and the models (II.B, II.D)."""
    parser = cli.lab_parser("finetune", __doc__, epochs=10, batch_size=32, learning_rate=1e-3, quick={"image_size": 64})
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", type=Path, help="local image folder: train/ and val/ with one folder per class, or one folder per class")
    data.add_argument("--val-split", type=cli.fraction, default=0.2, help="held-out fraction when there is no val/ folder (default: %(default)s)")
    data.add_argument("--image-size", type=_image_size, default=224, help="model input side, 16 or more; smaller is faster (default: %(default)s, 64 with --quick)")
    aug = parser.add_argument_group("augmentation (II.A)")
    aug.add_argument("--crop-margin", type=_unit, default=0.125, help="images are loaded this much larger and randomly cropped; 0: no crop (default: %(default)s)")
    aug.add_argument("--flip", default="horizontal", choices=["horizontal", "vertical", "horizontal_and_vertical", "none"], help="default: %(default)s")
    aug.add_argument("--rotation", type=_unit, default=0.0, help="largest rotation, fraction of a turn (default: %(default)s)")
    aug.add_argument("--zoom", type=_unit, default=0.0, help="largest zoom, fraction of the side (default: %(default)s)")
    aug.add_argument("--contrast", type=_unit, default=0.0, help="largest contrast change (default: %(default)s)")
    model = parser.add_argument_group("models (II.B, II.D)")
    model.add_argument("--models", nargs="+", default=["fine-tuned"], choices=MODELS,
                       help="trained in turn, everything else equal (default: fine-tuned; II.D: fine-tuned frozen scratch)")
    model.add_argument("--freeze", default="features", choices=FREEZE[1:], help='what "frozen" freezes (default: %(default)s)')
    model.add_argument("--preset", default=PRESET, help="keras-hub preset, handle or local folder (default: %(default)s)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    run = runs.start("finetune", args)
    from kcourse import images

    check_preset(args.preset)  # before any download: an unknown name is one line
    data = load_data(args.data_dir, args.image_size, args.val_split, args.quick, args.seed, args.crop_margin)
    backbone, weights = load_backbone(args.preset, pretrained=any(m != "scratch" for m in args.models))
    start = starting_weights(backbone)  # before any training: every variant starts from the preset's weights
    todo = variants(args.models, weights, args.freeze)
    run.note(data_used=data.name, classes=data.class_names, weights=weights)
    print(f"{data!r}\nbackbone {args.preset} ({weights} weights)")

    def augment():
        return images.augmentation(args.image_size, args.crop_margin > 0, args.flip, args.rotation, args.zoom, args.contrast, seed=args.seed)

    shown = np.concatenate([np.flatnonzero(data.y_train == c)[:2] for c in range(len(data.class_names))])
    run.savefig(images.augmentation_figure(data.x_train[shown], augment(), data.class_names, data.y_train[shown]), "augmentation")
    for name, pretrained, freeze_how in todo:
        def build(pretrained=pretrained, freeze_how=freeze_how, name=name):
            copy = fresh_copy(backbone, start if pretrained else None)
            return build_model(copy, len(data.class_names), data.x_train.shape[1], augment(), freeze_how, args.learning_rate, name)

        fitted = run.fit(name, build, (data.x_train, data.y_train), (data.x_val, data.y_val))
        accuracy, f1, _ = evaluate(fitted.model, data, args.batch_size)
        run.record(fitted, weights=weights if pretrained else "random", freeze=freeze_how, **{"val accuracy": accuracy, "macro F1": f1})
    return run.finish(f"{' vs '.join(data.class_names)} ({data.name})")


if __name__ == "__main__":
    cli.run(main)
