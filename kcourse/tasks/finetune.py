"""TP3 part II: ants vs bees, a pretrained ResNet18 fine-tuned, frozen or trained from scratch.

The course's second exercise (II.A to II.D) on the Hymenoptera set (244 train /
153 val photos of ants and bees, the PyTorch tutorial's zip):

- II.A augmentation: random crop (images loaded at 8/7 of the input side, the
  handout's Resize(256) / CenterCrop(224)), flips, rotation, zoom and contrast, as Keras
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
statistics and keeps updating its running statistics. `--models frozen
frozen-batch-stats` trains both, all else equal (`freeze(..., "batch-stats")`
is the course's behaviour in Keras), and the report compares them: their
validation accuracy and how far the moving statistics moved.

    python -m kcourse.tasks.finetune                                  # pretrained ResNet18, fine-tuned
    python -m kcourse.tasks.finetune --models fine-tuned frozen scratch   # II.D, the three in turn
    python -m kcourse.tasks.finetune --models frozen frozen-batch-stats   # Keras' frozen BatchNorm against the course's
    python -m kcourse.tasks.finetune --models scratch --image-size 128 --epochs 2   # no download
    python -m kcourse.tasks.finetune --models frozen --freeze all-but-head
    python -m kcourse.tasks.finetune --data-dir my_photos --val-split 0.2
    python -m kcourse.tasks.finetune --preset path/to/folder          # a preset saved with save_to_preset

The known presets: `keras_hub.models.ResNetBackbone.presets.keys()` (every
image backbone: `keras_hub.models.Backbone.presets`). Offline, one line says so
for each thing it could not download: without the images it trains on random
crops of scikit-learn's two sample photos (china vs flower); without the
preset it trains ResNet18 from random weights, "fine-tuned" is left out
(it would repeat scratch) and "frozen" trains a head on a random backbone,
each said in one line.

The run folder gets config.json, history_<model>.csv, <model>.keras (reload
with `finetune.load_model`, which keeps the frozen backbone frozen),
metrics.json, summary.csv, augmentation.png and learning_curves.png.
"""


import numpy as np

from kcourse import cli, datasets, images, presets, runs
from kcourse.report import Item, plural

main = cli.lab_main(__name__)  # python -m kcourse.tasks.finetune: build_parser(), then run_lab(args)

PRESET = "resnet_18_imagenet"
MODELS = ("fine-tuned", "frozen", "frozen-batch-stats", "scratch")
FREEZE = ("none", "features", "all-but-head", "batch-stats")
PARITY = {"val accuracy": 0.1}  # 30 validation photos offline: one photo is 3 points
CLASS_SIZE = ("--models", "fine-tuned", "frozen", "frozen-batch-stats", "scratch", "--image-size", "128")  # ~6 min a backend
KEY_FIGURES = ("learning_curves", "augmentation")


def load_backbone(preset=PRESET, pretrained=True):
    """A keras-hub image backbone and where its weights come from ("pretrained" or "random").

    `preset`: a keras-hub preset name, any keras-hub handle (kaggle://, hf://)
    or a local folder saved with `save_to_preset`. Offline, one line says so
    and ResNet18 is built with random weights (kcourse.models.resnet_backbone).
    """
    from kcourse import system
    from kcourse.models import resnet_backbone

    presets.check(preset, "Backbone")
    keras_hub = system.keras_hub()  # ~7 s, and imports TensorFlow: only here
    if not pretrained and preset == PRESET:
        return resnet_backbone(18), "random"  # the same architecture, no download
    backbone = presets.load(preset, lambda: keras_hub.models.Backbone.from_preset(preset, load_weights=pretrained),
                            "ResNet18 with random weights (from scratch)")
    if backbone is None:
        return resnet_backbone(18), "random"
    return backbone, "pretrained" if pretrained else "random"


def freeze(backbone, how):
    """Freeze part of the backbone in place (course II.D); the head is never frozen.

    "features": every convolution and BatchNorm layer (the course's loop);
    "all-but-head": the whole backbone; "none": everything trains.
    A frozen BatchNormalization layer runs in inference mode (see the module docstring).
    "batch-stats": as the course's PyTorch loop ran it: the convolutions and BatchNorm's gamma and beta
    frozen, but each BatchNorm layer left trainable, so that `fit` normalises with the batch's statistics
    and keeps updating the moving ones (its variables' own flags: not saved in `.keras`, see `load_model`).

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
    for layer in _all_layers(backbone):  # each layer set (its variables' flags with it): an earlier freeze is undone
        layer.trainable = how == "none" or (how == "features" and not isinstance(layer, features))
        if how == "batch-stats" and isinstance(layer, layers.BatchNormalization):
            layer.trainable = True  # in training mode inside fit: batch statistics, moving ones updated
            for variable in (layer.gamma, layer.beta):
                if variable is not None:
                    variable.trainable = False  # but no gradient step, as requires_grad=False
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
    scratch if that is not asked for), and "frozen" trains a head on a random
    backbone; one line says each.
    """
    recipes = {"fine-tuned": (True, "none"), "frozen": (True, freeze_how), "frozen-batch-stats": (True, "batch-stats"),
               "scratch": (False, "none")}
    names = list(dict.fromkeys(models))
    if weights == "random" and "fine-tuned" in names:
        if "scratch" in names:
            names.remove("fine-tuned")
            print("no pretrained weights: fine-tuned is left out (it would repeat scratch)")
        else:
            names[names.index("fine-tuned")] = "scratch"
            print("no pretrained weights: fine-tuned would be scratch under another name; training scratch")
    for name in ("frozen", "frozen-batch-stats"):
        if weights == "random" and name in names:
            print(f"no pretrained weights: {name} trains its head on a random backbone's features "
                  "(what freezing keeps needs the preset)")
    return [(name, *recipes[name]) for name in names]


def build_model(backbone, num_classes, input_size, augment=None, freeze_how="none", learning_rate=1e-3, name="resnet",
                optimizer="sgd"):
    """augmentation -> ImageNet normalisation -> backbone -> average pooling -> Dense(num_classes), compiled.

    Args:
        backbone: a keras-hub backbone (B, H, W, 3) -> (B, h, w, C).
        input_size: the side of the loaded images (before the random crop).
        augment: a keras.Sequential of preprocessing layers (kcourse.images.augmentation).
    """
    import keras
    from keras import layers

    from kcourse import training
    from kcourse.training import compile_model

    freeze(backbone, freeze_how)
    inputs = keras.Input((input_size, input_size, 3), name="image")  # values in [0, 255]
    x = augment(inputs) if augment is not None else inputs  # (B, S, S, 3), S = image_size
    x = images.imagenet_normalization()(x)
    features = backbone(x)  # (B, S/32, S/32, 512) for ResNet18
    pool = layers.GlobalAveragePooling2D if len(features.shape) == 4 else layers.GlobalAveragePooling1D
    x = pool(name="pool")(features)  # (B, 512)
    outputs = layers.Dense(num_classes, name="head")(x)  # logits
    return compile_model(keras.Model(inputs, outputs, name=name), training.optimizer(optimizer, learning_rate))


def load_model(path):
    """A `<model>.keras` this lab saved, frozen where it was frozen.

    `keras.saving.load_model` after `import keras_hub` gives the same
    predictions, but a keras-hub backbone saved with `trainable=False` comes
    back with that flag on itself only, not on its layers (keras-hub passes
    it to the constructor, which does not pass it down), so that `fit` would
    train it again: the flag is set here on each of its layers. A model frozen
    with "batch-stats" comes back with BatchNorm's gamma and beta trainable
    (a variable's own flag is not saved): `freeze(backbone, "batch-stats")` again.
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


def statistics_moved(backbone, start):
    """How far training moved the BatchNorm moving means and variances from `start` (weights_of, before any
    training): the mean absolute change over every entry, 0.0 where they stayed (Keras' frozen BatchNorm)."""
    changes = [np.abs(np.asarray(now) - before).ravel() for w, now, before in zip(backbone.weights, backbone.get_weights(), start)
               if w.path.endswith(("moving_mean", "moving_variance"))]
    return float(np.concatenate(changes).mean()) if changes else None


def evaluate(model, data, batch_size=32):
    """{"val accuracy", "macro F1"} on the validation photos (an images.ImageData)."""
    from kcourse import metrics
    from kcourse.training import predict_classes

    return metrics.classification(data.y_val, predict_classes(model, data.x_val, batch_size), len(data.class_names))


# ---------------------------------------------------------------- the handout's questions, answered by the run
def the_task(run):
    sizes = run.metrics.get("photos")
    if not sizes:
        return None
    classes = " vs ".join(run.config["classes"])
    return (f"{classes}: {sizes['train']:,} training and {sizes['val']:,} validation photos of {run.config['data_used']}, "
            f"two classes (the Hymenoptera set has 244 / 153; offline, the embedded stand-in).")


def the_augmentation(run):
    c, sizes = run.config, run.metrics.get("photos")
    if not sizes:
        return None
    crop = f"a random {c['image_size']}x{c['image_size']} window of the {sizes['side']} px photos" if c["crop_margin"] > 0 else "a resize"
    return (f"In training only: {crop}, flips {c['flip']}, rotations up to {c['rotation']:.0%} of a turn, zoom up to "
            f"{c['zoom']:.0%}, contrast up to {c['contrast']:.0%}; at inference the centre {c['image_size']} px window "
            f"(augmentation.png shows {sizes['shown']} photos and four draws each).")


def the_new_head(run):
    row = run.row("frozen") or run.row("fine-tuned") or run.row("scratch")
    head = run.metrics.get("head")
    if row is None or head is None:
        return None
    return (f"{run.config['preset']} ({run.config['weights']} weights): its ImageNet head replaced by average pooling and "
            f"Dense({head['classes']}) on its {head['features']} features, {head['parameters']:,} parameters of the model's "
            f"{row['total params']:,}.")


def fine_tuned_frozen_scratch(run):
    rows = [r for r in run.rows if r["model"] in MODELS]
    if len(rows) < 2:
        return None
    best = max(rows, key=lambda r: r["val accuracy"])
    parts = ", ".join(f"{r['model']} {r['val accuracy']:.3f} ({r['trainable params']:,} trainable, {r['s / epoch']:.2f} s / epoch)"
                      for r in rows)
    random = " (no pretrained weights here: frozen keeps a random backbone, the comparison needs the preset)" if run.config["weights"] == "random" else ""
    return f"Val accuracy: {parts}; {best['model']} wins{random}."


def slide_in_keras(classes=10):
    """The lecture's slide in Keras on a small model of the same shape, twice. As the slide orders it:
    `model.trainable = False`, then `head.trainable = True`; a model's flag gates its layers' weights, so nothing
    trains here either. Done right: `backbone.trainable = False`, the head left alone.
    Returns {"as the slide", "right", "head", "total"}: trainable parameters of each."""
    import keras

    from kcourse import parameters

    def small_model():
        backbone = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                                     keras.layers.GlobalAveragePooling2D()], name="backbone")
        head = keras.layers.Dense(classes, name="fc")
        return keras.Sequential([backbone, head]), backbone, head

    model, _, head = small_model()
    model.trainable = False  # every layer frozen, the model's own flag with them
    head.trainable = True  # the last layer: but the model's flag still gates it
    as_the_slide = parameters.trainable(model)
    model, backbone, head = small_model()
    backbone.trainable = False  # only what is to stay fixed
    return {"as the slide": as_the_slide, "right": parameters.trainable(model), "head": head.count_params(),
            "total": model.count_params()}


def the_slides_snippet():
    """004:25 measured: the slide's lines in native PyTorch (kcourse.native.snippet) and in Keras; torch is optional
    outside the backend comparison, so its half may be missing."""
    try:
        from kcourse.native.snippet import the_slide
    except ImportError:
        torch_half = None
    else:
        torch_half = the_slide()
    return {"torch": torch_half, "keras": slide_in_keras()}


def requires_grad_bug(run):
    found = run.metrics.get("slide snippet")
    if found is None:
        return None
    keras_half, torch_half = found["keras"], found["torch"]
    text_ = ""
    if torch_half:
        text_ = (f"As written, on a small model with a ResNet's fc (no weights downloaded): {torch_half['as written']:,} "
                 f"trainable parameters of {torch_half['total']:,}: `model.fc.requires_grad = True` sets an attribute on "
                 f"the module that no parameter reads, so the new head stays frozen with the rest and nothing trains; "
                 f"`model.fc.requires_grad_(True)` makes its {torch_half['fixed']:,} trainable. ")
    return text_ + (f"Keras has the same trap: `model.trainable = False` then `head.trainable = True` leaves "
                    f"{keras_half['as the slide']:,} trainable of {keras_half['total']:,}, since a model's flag gates its "
                    f"layers; freezing the backbone alone (`backbone.trainable = False`) leaves the head's "
                    f"{keras_half['right']:,}, as the fine-tuning here does (finetune.freeze).")


def the_courses_optimizer(run):
    rows = run.rows
    used = list(dict.fromkeys(r["optimizer"] for r in rows))
    first = rows[0]
    text_ = (f"The seed's code trains with torch.optim.SGD(lr=0.001), plain; here {first['model']} with "
             f"{first['optimizer']} at {run.config['learning_rate']:g}: val accuracy {first['val accuracy']:.3f} after "
             f"{plural(run.config['epochs'], 'epoch')}.")
    if len(used) > 1:
        variant = first["model"]
        same = [r for r in rows if r["model"].split(" (")[0] == variant]
        text_ += (" The same model with each optimizer, all else equal: " + ", ".join(
            f"{r['optimizer']} {r['val accuracy']:.3f}" for r in same)
            + " (learning_curves.png). Adam scales each weight's step by its gradients' recent size: at the same "
              "rate it moves where plain SGD crawls.")
    return text_


def gpu_speed_up(run):
    timed = [r for r in run.rows if r.get("speed-up vs CPU")]
    if timed:
        r = timed[0]
        return (f"On {r['device']}, {r['model']} takes {r['s / epoch']:.2f} s an epoch, {r['speed-up vs CPU']:.1f}x faster "
                f"than the same epoch on the CPU (the course found 20x).")
    r = run.rows[0]
    return (f"No accelerator was found here ({r['device']}): {r['model']} takes {r['s / epoch']:.2f} s an epoch on the CPU "
            f"at {run.config['image_size']} px, batch {run.config['batch_size']}. The course's 20x needs a GPU: run the lab "
            f"on one (Colab) and the summary times the same epoch on the CPU beside it.")


def frozen_batchnorm(run):
    keras_way, course_way = run.row("frozen"), run.row("frozen-batch-stats")
    if keras_way is None or course_way is None:
        return None
    diff = float(course_way["val accuracy"]) - float(keras_way["val accuracy"])
    text_ = (f"Keras' frozen BatchNorm (frozen) normalises with its moving statistics and leaves them where they were "
             f"(moved by {float(keras_way['BN statistics moved']):.3g}): val accuracy {float(keras_way['val accuracy']):.3f}. "
             f"As the course's PyTorch loop ran it (frozen-batch-stats: gamma and beta frozen, the layers in training mode), "
             f"each batch is normalised with its own statistics and the moving ones drift, by "
             f"{float(course_way['BN statistics moved']):.3g} on average here: val accuracy "
             f"{float(course_way['val accuracy']):.3f} ({diff:+.3f}). ")
    if run.config["weights"] == "random":
        return text_ + ("Offline the ResNet18 is random: its moving statistics are the initial 0 and 1, so Keras' frozen "
                        "layers pass the activations un-normalised while the course's normalise them; what each does "
                        "to ImageNet's statistics on a few hundred photos needs the preset.")
    return text_ + ("Frozen in Keras, the backbone computes at validation exactly what it computed in training; the "
                    "course's loop trains the head on features normalised per batch, then validates on the moving "
                    "statistics those batches left.")


def frozen_trains_the_head(run):
    frozen = run.row("frozen")
    if frozen is None:
        return None
    return (f"Frozen, only the new head trains: {frozen['trainable params']:,} of {frozen['total params']:,} parameters "
            f"({frozen['trainable params'] / frozen['total params']:.3%}), val accuracy {frozen['val accuracy']:.3f}; the "
            f"backbone's weights did not move by a bit (tests/test_finetune.py).")


HANDOUT = (
    Item("000:3", "...sur un problème de classification binaire (Hymenoptera dataset)", "The binary task: ants against bees.",
         the_task, "kcourse.datasets.ants_bees"),
    Item("000:4", "Paramétrage de l'augmentation de données (II.A)", "The augmentation's settings (II.A).",
         the_augmentation, "kcourse.images.augmentation"),
    Item("000:5", "model = models.resnet18(pretrained=True) ; model.fc = nn.Linear(num_ftrs, 2)",
         "A pretrained ResNet18 with a new two-class head (II.B).", the_new_head, "kcourse.tasks.finetune.build_model"),
    Item("000:8", "Comparaison entre deux méthodes de Fine-Tuning (II.D, avec ou sans « Freezing »)",
         "Fine-tuned against frozen against trained from scratch (II.D).", fine_tuned_frozen_scratch,
         "kcourse.tasks.finetune.evaluate", needs="--models fine-tuned frozen scratch"),
    Item("000:8", "for param in model.parameters(): param.requires_grad = False (Conv2d, BatchNorm2d)",
         "Frozen BatchNorm: Keras' inference mode against the course's loop in train mode.", frozen_batchnorm,
         "kcourse.tasks.finetune.freeze", needs="--models frozen frozen-batch-stats"),
    Item("004:24", "On change la tête dense du réseau ; on fixe tous les paramètres sauf cette nouvelle tête",
         "A new dense head, every other parameter frozen.", frozen_trains_the_head, "kcourse.tasks.finetune.freeze",
         needs="--models frozen"),
    Item("004:25", "for param in model.parameters(): param.requires_grad = False ; model.fc.requires_grad = True",
         "The slide's fine-tuning snippet: does its new head train?", requires_grad_bug,
         "kcourse.native.snippet.the_slide"),
    Item("000:6", "optimizer = torch.optim.SGD(model.parameters(), lr=0.001)", "The course's optimizer: SGD at 1e-3, "
         "against Adam.", the_courses_optimizer, "kcourse.training.optimizer", needs="--optimizers sgd adam"),
    Item("000:7", "Passage de la descente de gradient sur GPU (II.C) → speed-up 20x", "The GPU speed-up (II.C).",
         gpu_speed_up, "kcourse.training.cpu_epoch_seconds"),
    Item("004:22", "Modèles pré-entraînés sur ImageNet : point de départ pour de nouvelles tâches, classes, données",
         "A model pretrained on ImageNet as the starting point.", the_new_head, "kcourse.tasks.finetune.load_backbone"),
)


def build_parser():
    """The lab's options: the shared ones, the data, the augmentation (II.A) and the models (II.B, II.D)."""
    parser = cli.lab_parser("finetune", __doc__, epochs=10, batch_size=32, learning_rate=1e-3, quick={"image_size": 64})
    data = images.add_folder_options(parser, "local image folder instead of the ants and bees")
    data.add_argument("--image-size", type=cli.number(int, low=16, why="ResNet divides the side by 32"), default=224,
                      help="model input side, 16 or more; smaller is faster (default: %(default)s, 64 with --quick)")
    aug = parser.add_argument_group("augmentation (II.A)")
    aug.add_argument("--crop-margin", type=cli.unit, default=images.CROP_MARGIN,
                     help="images are loaded this much larger and randomly cropped; 0: no crop (default: 1/7, 256 px for 224)")
    aug.add_argument("--flip", default="horizontal", choices=["horizontal", "vertical", "horizontal_and_vertical", "none"], help="default: %(default)s")
    aug.add_argument("--rotation", type=cli.unit, default=0.0, help="largest rotation, fraction of a turn (default: %(default)s)")
    aug.add_argument("--zoom", type=cli.unit, default=0.0, help="largest zoom, fraction of the side (default: %(default)s)")
    aug.add_argument("--contrast", type=cli.unit, default=0.0, help="largest contrast change (default: %(default)s)")
    model = parser.add_argument_group("models (II.B, II.D)")
    model.add_argument("--models", nargs="+", default=["fine-tuned"], choices=MODELS,
                       help="trained in turn, everything else equal (default: fine-tuned; II.D: fine-tuned frozen scratch)")
    model.add_argument("--freeze", default="features", choices=FREEZE[1:], help='what "frozen" freezes (default: %(default)s)')
    cli.add_optimizer_option(model, "sgd", "each model (the seed's code: SGD at 1e-3)")
    model.add_argument("--preset", default=PRESET, help="keras-hub preset, handle or local folder (default: %(default)s)")
    return parser


def run_lab(args):
    """II.A to II.D from the parsed options: the photos, the preset's backbone, its weights kept, then each variant
    fitted from them and scored (what `main` and the notebook run)."""
    run = runs.start("finetune", args)
    presets.check(args.preset, "Backbone")  # before any download: an unknown name is one line
    data = datasets.ants_bees(args.image_size, args.data_dir, args.val_split, args.quick, args.seed, args.crop_margin)
    backbone, weights = load_backbone(args.preset, pretrained=any(m != "scratch" for m in args.models))
    start = presets.weights_of(backbone)  # before any training: every variant starts from the preset's weights
    todo = variants(args.models, weights, args.freeze)
    run.note(data_used=data.name, classes=data.class_names, weights=weights)
    features = int(backbone.output.shape[-1])
    run.save_metrics(photos={"train": len(data.x_train), "val": len(data.x_val), "side": int(data.x_train.shape[1]),
                             "shown": 2 * len(data.class_names)},
                     head={"classes": len(data.class_names), "features": features,
                           "parameters": features * len(data.class_names) + len(data.class_names)})
    run.save_metrics(**{"slide snippet": the_slides_snippet()})
    run.outputs.update(data=data, backbone=backbone, start=start, weights=weights)
    print(f"{data!r}\nbackbone {args.preset} ({weights} weights)")

    def augment():
        return images.augmentation(args.image_size, args.crop_margin > 0, args.flip, args.rotation, args.zoom, args.contrast,
                                   seed=args.seed, input_size=data.x_train.shape[1])

    shown = np.concatenate([np.flatnonzero(data.y_train == c)[:2] for c in range(len(data.class_names))])
    run.savefig(images.augmentation_figure(data.x_train[shown], augment(), data.class_names, data.y_train[shown]), "augmentation")
    for variant, pretrained, freeze_how in todo:
        for how in dict.fromkeys(args.optimizers):
            name = variant if how == args.optimizers[0] else f"{variant} ({how})"
            copies = []

            def build(pretrained=pretrained, freeze_how=freeze_how, name=name, how=how):
                copies.append(presets.fresh_copy(backbone, start if pretrained else None))
                return build_model(copies[-1], len(data.class_names), data.x_train.shape[1], augment(), freeze_how,
                                   args.learning_rate, name.replace(" (", "_").rstrip(")"), how)

            fitted = run.fit(name, build, (data.x_train, data.y_train), (data.x_val, data.y_val))
            moved = statistics_moved(copies[-1], start) if pretrained else None
            run.record(fitted, weights=weights if pretrained else "random", freeze=freeze_how, optimizer=how,
                       **evaluate(fitted.model, data, args.batch_size), **{"val loss": fitted.history.get("val_loss", [None])[-1],
                                                                           "BN statistics moved": moved})
    return run.finish(f"{' vs '.join(data.class_names)} ({data.name})", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
