"""TP3 part II: ants vs bees, a pretrained ResNet18 fine-tuned, frozen or trained from scratch.

The course's second exercise (II.A to II.D) on the Hymenoptera set (244 train /
153 val photos of ants and bees, the PyTorch tutorial's zip):

- II.A augmentation: random crop, flips, rotation, zoom and contrast, as Keras
  preprocessing layers inside the model (active in `fit`, off in `predict`);
  `augmentation.png` shows what the model sees.
- II.B a network off the shelf: keras-hub's `resnet_18_imagenet` backbone, its
  ImageNet head replaced by global average pooling and `Dense(num_classes)`.
- II.C the device: the summary gives the time per epoch and the device; with
  an accelerator visible, the same epoch is timed on the CPU (the speed-up).
- II.D freezing: `--freeze features` freezes every convolution and BatchNorm
  layer of the backbone, as the course's loop over Conv2d / BatchNorm2d does;
  `--freeze all-but-head` freezes the whole backbone with one flag (on ResNet18
  the two leave the same weights trainable: only the head).

BatchNorm and `trainable=False`: in Keras, a frozen BatchNormalization layer
also runs in inference mode: it normalises with its moving mean and variance
and no longer updates them, even inside `fit`. In PyTorch, setting
`requires_grad=False` on BatchNorm2d's parameters only stops the gradient of
gamma and beta: in `model.train()` the layer still normalises with the batch's
statistics and keeps updating its running statistics. Keras' choice is the one
wanted for fine-tuning on a few hundred images: the ImageNet statistics stay.

    python -m kcourse.tasks.finetune                    # pretrained ResNet18, fine-tuned
    python -m kcourse.tasks.finetune --compare          # scratch vs fine-tuned vs frozen
    python -m kcourse.tasks.finetune --compare --scratch --image-size 128 --epochs 2   # no download
    python -m kcourse.tasks.finetune --freeze features  # only the head trains
    python -m kcourse.tasks.finetune --image-size 128 --epochs 3   # faster on a CPU
    python -m kcourse.tasks.finetune --data-dir my_photos --val-split 0.2
    python -m kcourse.tasks.finetune --preset path/to/folder   # a preset saved with save_to_preset

Offline, one line says so for each thing it could not download: without the
images it trains on random crops of scikit-learn's two sample photos (a
two-class set: china vs flower); without the preset it trains ResNet18 from
random weights, and `--compare` (like `--compare --scratch`) then compares
scratch with frozen random features (a fine-tuned run would repeat scratch).

The run folder gets config.json, history_<model>.csv, metrics.json,
summary.csv, augmentation.png and learning_curves.png.
"""

from pathlib import Path

import numpy as np

from kcourse import cli

HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
PRESET = "resnet_18_imagenet"
FREEZE = ("none", "features", "all-but-head")
# ResNet18 as keras-hub builds it (11,186,112 parameters, as the preset's): the
# architecture for --scratch when the preset's own config cannot be downloaded.
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


def load_data(data_dir=None, image_size=224, val_split=0.2, quick=False, seed=0, crop_margin=0.125):
    """The photos as a kcourse.images.ImageData (x in [0, 255], loaded a little larger than image_size).

    Args:
        data_dir: a local image folder (`train/` and `val/` with one folder per
            class, or one folder per class split with `val_split`); by default
            the Hymenoptera zip (downloaded once, cached), or offline the
            embedded china/flower crops.
        quick: at most 16 images per class and split.
    """
    from kcourse import images

    limit = 16 if quick else None
    if data_dir is not None:
        return images.load_image_folder(data_dir, image_size, val_split, seed, crop_margin, limit)
    import keras

    from kcourse.downloads import download_or_none

    path = download_or_none(
        lambda: keras.utils.get_file("hymenoptera_data.zip", HYMENOPTERA_URL, extract=True),
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


def load_backbone(preset=PRESET, pretrained=True):
    """A keras-hub backbone and where its weights come from ("pretrained" or "random").

    `preset`: a keras-hub preset name, any keras-hub handle (kaggle://, hf://)
    or a local folder saved with `save_to_preset`. Offline, one line says so
    and the same architecture is built with random weights (ResNet18's
    configuration when the preset's own cannot be read).
    """
    import keras_hub  # ~7 s, and imports TensorFlow: only here

    from kcourse.downloads import download_or_none

    if _local(preset):
        if not (Path(preset) / "config.json").is_file():
            raise cli.LabError(
                f"--preset {preset}: not a keras-hub preset folder (no config.json); "
                f"save one with backbone.save_to_preset(folder), or give a preset name such as {PRESET}"
            )
        return keras_hub.models.Backbone.from_preset(preset, load_weights=pretrained), "pretrained" if pretrained else "random"
    if not pretrained and preset == PRESET:
        return keras_hub.models.ResNetBackbone(**RESNET18), "random"  # the same architecture, no download
    backbone = download_or_none(
        lambda: keras_hub.models.Backbone.from_preset(preset, load_weights=pretrained),
        f"the keras-hub preset {preset} ({PRESET_HELP})",
        "ResNet18 with random weights (from scratch)",
    )
    if backbone is None:
        return keras_hub.models.ResNetBackbone(**RESNET18), "random"
    return backbone, "pretrained" if pretrained else "random"


def fresh_copy(backbone, weights=True):
    """A new backbone of the same architecture: random weights, or a copy of `backbone`'s."""
    copy = backbone.__class__.from_config(backbone.get_config())
    if weights:
        copy.set_weights(backbone.get_weights())
    return copy


def freeze(backbone, how):
    """Freeze part of the backbone in place (course II.D); the head is never frozen.

    "features": every convolution and BatchNorm layer (the course's loop);
    "all-but-head": the whole backbone; "none": everything trains.
    A frozen BatchNormalization layer runs in inference mode (see the module docstring).
    """
    from keras import layers

    if how not in FREEZE:
        raise cli.LabError(f"--freeze {how!r}: choose one of {', '.join(FREEZE)}")
    backbone.trainable = how != "all-but-head"
    features = (layers.Conv2D, layers.DepthwiseConv2D, layers.BatchNormalization)
    for layer in _all_layers(backbone):  # each layer set, so that an earlier freeze is undone
        layer.trainable = how == "none" or (how == "features" and not isinstance(layer, features))
    return backbone


def _all_layers(layer):
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _all_layers(sub)


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

    freeze(backbone, freeze_how)
    inputs = keras.Input((input_size, input_size, 3), name="image")  # values in [0, 255]
    x = augment(inputs) if augment is not None else inputs  # (B, S, S, 3), S = image_size
    x = images.imagenet_normalization()(x)
    features = backbone(x)  # (B, S/32, S/32, 512) for ResNet18
    pool = layers.GlobalAveragePooling2D if len(features.shape) == 4 else layers.GlobalAveragePooling1D
    x = pool(name="pool")(features)  # (B, 512)
    outputs = layers.Dense(num_classes, name="head")(x)  # logits
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def parameter_counts(model):
    """(trainable, total) parameters; total includes BatchNorm's moving statistics."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, model.count_params()


def train(model, data, epochs, batch_size, callbacks=(), verbose="auto"):
    """`model.fit` on the training photos, validated each epoch; returns the History and the EpochTimer."""
    from kcourse.training import EpochTimer

    timer = EpochTimer()
    history = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[timer, *callbacks],
        verbose=verbose,
    )
    return history, timer


def evaluate(model, data, batch_size=32):
    """Validation accuracy, macro F1 and the predicted classes."""
    from sklearn.metrics import f1_score

    y_pred = model.predict(data.x_val, batch_size=batch_size, verbose=0).argmax(-1)
    f1 = f1_score(data.y_val, y_pred, average="macro", labels=range(len(data.class_names)), zero_division=0)
    return float((y_pred == data.y_val).mean()), float(f1), y_pred


def variants(compare, scratch, freeze_how):
    """The models to train: (name, pretrained?, freeze)."""
    if compare:
        return [("scratch", False, "none"), ("fine-tuned", True, "none"), ("frozen", True, freeze_how if freeze_how != "none" else "features")]
    if scratch:
        return [("scratch", False, freeze_how)]
    return [("fine-tuned" if freeze_how == "none" else "frozen", True, freeze_how)]


def _millions(n):
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n:,}"


def main(argv=None):
    parser = cli.lab_parser("finetune", __doc__, epochs=10, batch_size=32)
    data_group = parser.add_argument_group("data")
    data_group.add_argument("--data-dir", type=Path, help="local image folder: train/ and val/ with one folder per class, or one folder per class")
    data_group.add_argument("--val-split", type=float, default=0.2, help="held-out fraction when there is no val/ folder (default: %(default)s)")
    data_group.add_argument("--image-size", type=int, default=224, help="model input side in pixels; smaller is faster (default: %(default)s)")
    aug = parser.add_argument_group("augmentation (II.A)")
    aug.add_argument("--crop-margin", type=float, default=0.125, help="images are loaded this much larger and randomly cropped; 0: no crop (default: %(default)s)")
    aug.add_argument("--flip", default="horizontal", choices=["horizontal", "vertical", "horizontal_and_vertical", "none"], help="default: %(default)s")
    aug.add_argument("--rotation", type=float, default=0.0, help="largest rotation, fraction of a turn (default: %(default)s)")
    aug.add_argument("--zoom", type=float, default=0.0, help="largest zoom, fraction of the side (default: %(default)s)")
    aug.add_argument("--contrast", type=float, default=0.0, help="largest contrast change (default: %(default)s)")
    model_group = parser.add_argument_group("model (II.B, II.D)")
    model_group.add_argument("--preset", default=PRESET, help="keras-hub preset, handle or local folder (default: %(default)s)")
    model_group.add_argument("--scratch", action="store_true", help="random weights, same architecture (no download)")
    model_group.add_argument("--freeze", default="none", choices=FREEZE, help="default: %(default)s")
    model_group.add_argument("--compare", action="store_true", help="train scratch, fine-tuned and frozen on the same split and seed")
    model_group.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.image_size = min(args.epochs, 1), min(args.image_size, 64)
    if args.image_size < 16:
        raise cli.LabError(f"--image-size {args.image_size}: too small, use 16 or more (ResNet divides it by 32)")
    if not 0.0 <= args.crop_margin < 1.0:
        raise cli.LabError(f"--crop-margin {args.crop_margin}: must be in [0, 1)")
    backend = cli.use_backend(args.backend)
    data = load_data(args.data_dir, args.image_size, args.val_split, args.quick, args.seed, args.crop_margin)

    import keras

    from kcourse import images, plots, system
    from kcourse.runs import Run

    keras.utils.set_random_seed(args.seed)
    todo = variants(args.compare, args.scratch, args.freeze)
    pretrained = not args.scratch and any(p for _, p, _ in todo)
    loaded, weights = load_backbone(args.preset, pretrained)
    if args.compare and weights == "random":  # without weights, "fine-tuned" would train the scratch model again
        todo = [v for v in todo if v[0] != "fine-tuned"]
        print("no pretrained weights: comparing scratch with frozen random features (fine-tuned would repeat scratch)")
    run = Run("finetune", {**vars(args), "data_used": data.name, "classes": data.class_names, "weights": weights}, out=args.out)
    device = system.accelerator() or "cpu:0"
    input_size = data.x_train.shape[1]
    print(f"{data!r}\nbackbone {args.preset} ({weights} weights); backend {backend} on {device}")

    def augment():
        return images.augmentation(
            args.image_size, args.crop_margin > 0, args.flip, args.rotation, args.zoom, args.contrast, seed=args.seed
        )

    shown = np.concatenate([np.flatnonzero(data.y_train == c)[:2] for c in range(len(data.class_names))])
    run.savefig(images.augmentation_figure(data.x_train[shown], augment(), data.class_names, data.y_train[shown]), "augmentation")

    rows, histories, used = [], {}, False
    for name, wants_weights, freeze_how in todo:
        keras.utils.set_random_seed(args.seed)  # the same head and the same batches for every model
        has_weights = wants_weights and weights == "pretrained"
        backbone = loaded if has_weights and not used else fresh_copy(loaded, weights=has_weights)
        used = used or backbone is loaded

        def build(backbone=backbone, freeze_how=freeze_how, name=name):
            return build_model(backbone, len(data.class_names), input_size, augment(), freeze_how, args.learning_rate, name)

        model = build()
        trainable, total = parameter_counts(model)
        print(f"\n{name}: {'pretrained' if has_weights else 'random'} weights, freeze {freeze_how}: {trainable:,} trainable / {total:,} parameters")
        history, timer = train(model, data, args.epochs, args.batch_size, [run.csv_logger(f"history_{name}")])
        accuracy, f1, _ = evaluate(model, data, args.batch_size)
        histories[name] = history.history
        row = {
            "model": name,
            "weights": "pretrained" if has_weights else "random",
            "freeze": freeze_how,
            "trainable params": trainable,
            "total params": total,
            "val accuracy": accuracy,
            "macro F1": f1,
            "s / epoch": timer.steady,
            "device": device,
        }
        if device != "cpu:0":  # II.C: the same epoch on the CPU
            from kcourse.training import epoch_time_on

            fresh = lambda: build(fresh_copy(backbone, weights=has_weights))
            row["speed-up vs CPU"] = epoch_time_on("cpu", fresh, data.x_train, data.y_train, args.batch_size) / timer.steady
        rows.append(row)
        run.save_metrics(**{name: {k: v for k, v in row.items() if k != "model"}, "data": data.name})

    run.savefig(plots.learning_curves(histories), "learning_curves")
    run.save_table("summary", rows)
    table = [{k: _millions(v) if k.endswith("params") else v for k, v in row.items() if k != "device"} for row in rows]
    run.print_summary(f"{' vs '.join(data.class_names)} ({data.name}), {backend} on {device}", table)
    return run


if __name__ == "__main__":
    cli.run(main)
