"""TP4 part 2: a pretrained Vision Transformer with our head, the augmentation ladder, rollout and occlusion.

The handout's steps A to E on hot dog / not hot dog (d2l's hotdog.zip, 3,000
photos; the handout names a copy on a hub, which `--data-dir` reads too):

- A, the backbone: keras-hub's ViTBackbone (vit_base_patch16_224_imagenet by
  default, hf://google/vit-base-patch16-224, or a local preset folder). Its
  sizes are read from the loaded model and the token arithmetic printed:
  N = (H/P)(W/P) patches + 1 [CLS], output (B, 1+N, D): 197 x 768 for ViT-B/16.
- B, the head: kcourse.layers.ClassificationHead on the [CLS] token, the
  mean of the patch tokens or a trained pooler (Dense + tanh on [CLS], the
  original ViT's pre-logits: keras-hub's backbone has none) (--pool), linear or one hidden layer of D/4, D/2
  or D (--head). The backbone frozen first (its features computed once);
  then the last N blocks and the final norm unfrozen at a lower learning
  rate (--unfreeze-last N).
- C, training: AdamW, cross-entropy, batch 32, warm-up then cosine decay;
  curves, confusion matrix, macro F1, time per epoch, config.json.
- D, the augmentation ladder (--augment, everything else equal): baseline
  (centre crop), light (random resized crop + flip), medium (+ colour jitter
  + random erasing), strong (+ RandAugment; --mix mixup|cutmix adds soft
  labels). Every level sees the same batches in the same order. Per level:
  best val accuracy, macro F1, time per epoch and the accuracy under a
  fixed, seeded set of unseen crops, lighting and blur.
- E, interpretation: attention rollout from [CLS] to the patches, next to
  the drop of the predicted logit when each patch is occluded.

    python -m kcourse.tasks.vit                       # every step (offline: a small ViT, embedded photos)
    python -m kcourse.tasks.vit --quick               # a smoke run in seconds
    python -m kcourse.tasks.vit --augment all --mix cutmix
    python -m kcourse.tasks.vit --pool cls mean --head linear D/4 D/2 D --augment baseline
    python -m kcourse.tasks.vit --preset hf://google/vit-base-patch16-224 --unfreeze-last 2
    python -m kcourse.tasks.vit --data-dir hymenoptera_data   # any image folder

Offline, one line says so for each thing it could not download: the photos
become an embedded dahlia / not-dahlia set (crops of scikit-learn's two
sample photos), the backbone a small ViT with random weights (64 px, patch
8, 4 blocks, width 128, MLP 512) trained from scratch, so that every step
still runs in a few minutes on a laptop CPU. Before the ladder, the time of
one epoch on this device is measured over a couple of steps and printed.

The run folder gets config.json (every hyper-parameter, the schedule, what
was frozen), history_<model>.csv, <model>.keras, metrics.json, summary.csv,
learning_curves.png, confusion_<model>.png, augmentation.png,
augment_ladder.csv / .png and interpretation.png. Variants' files take
file-safe names (`frozen-cls-d-2.keras` for frozen-cls-D/2, `strong-cutmix` for strong+cutmix).
"""


import argparse
import math
import time

import numpy as np

from kcourse import cli, datasets, images, parameters, presets, runs
from kcourse.report import Item, plural
from kcourse.images import CROP_MARGIN  # noqa: F401 (images loaded at 256 for 224)

main = cli.lab_main(__name__)  # python -m kcourse.tasks.vit: build_parser(), then run_lab(args)

PRESET = "vit_base_patch16_224_imagenet"
HF_PRESET = "hf://google/vit-base-patch16-224"
# The offline stand-in: a ViT small enough to train from scratch on a CPU in a minute.
SMALL_VIT = dict(image_shape=(64, 64, 3), patch_size=8, num_layers=4, num_heads=4, hidden_dim=128, mlp_dim=512)
SMALL_VIT_TEXT = "a small ViT with random weights (64 px, patch 8, 4 blocks, width 128, MLP 512), trained from scratch"
LEVELS = ("baseline", "light", "medium", "strong")
LEVEL_TEXT = {  # what each level does to a training photo (augmentation, rand_augment)
    "baseline": "the centre crop, nothing random",
    "light": "a random resized crop (8-100% of the area) and a horizontal flip: position and scale vary",
    "medium": "light + colour jitter and random erasing: colours vary, parts go missing",
    "strong": "medium + RandAugment (two random operations a photo): shears, rotations, posterisation...",
}
LEVEL_SHORT = {"baseline": "centre crop", "light": "crop, flip", "medium": "+ colour, erasing", "strong": "+ RandAugment"}
POOLS = ("cls", "mean", "pooler")
IMAGENET_NORM = "-imagenet-norm"  # ends the name of a frozen head trained on ImageNet-normalised inputs (001:51)
HEADS = ("linear", "D/4", "D/2", "D")
MIXES = ("none", "mixup", "cutmix")
PARITY = {"val accuracy": 0.1}  # 96 validation photos offline, trained from scratch: noisy
KEY_FIGURES = ("augment_ladder", "interpretation")


# ---------------------------------------------------------------- step A: the backbone
def load_backbone(preset=PRESET):
    """A keras-hub ViTBackbone and where its weights come from ("pretrained" or "random").

    `preset`: a keras-hub preset name, a handle (kaggle://, hf://) or a local
    folder saved with `save_to_preset`. Offline, one line says so and the
    small ViT of SMALL_VIT is built with random weights instead.
    """
    from kcourse import system

    presets.check(preset, "ViTBackbone", also=(HF_PRESET,))
    keras_hub = system.keras_hub()
    backbone = presets.load(preset, lambda: keras_hub.models.Backbone.from_preset(preset), SMALL_VIT_TEXT)
    if backbone is None:
        return keras_hub.models.ViTBackbone(**SMALL_VIT, name="small_vit"), "random"
    return presets.expect(backbone, keras_hub.models.ViTBackbone, preset), "pretrained"


def describe(backbone):
    """The backbone's sizes, read from the loaded model (never assumed)."""
    height, width = backbone.image_shape[:2]
    patch = tuple(backbone.patch_size) if not isinstance(backbone.patch_size, int) else (backbone.patch_size,) * 2
    grid = (height // patch[0], width // patch[1])
    return dict(
        image_size=(int(height), int(width)), patch_size=patch, grid=grid, num_patches=grid[0] * grid[1],
        tokens=grid[0] * grid[1] + 1, hidden_dim=int(backbone.hidden_dim), mlp_dim=int(backbone.mlp_dim),
        num_layers=int(backbone.num_layers), num_heads=int(backbone.num_heads),
        output_shape=tuple(backbone.output.shape[1:]), params=int(backbone.count_params()),
    )


def token_arithmetic(info, backbone):
    """The lines the handout asks for: N, the output shape, one block's parameters (formula vs Keras)."""
    (h, w), (ph, pw), (gh, gw) = info["image_size"], info["patch_size"], info["grid"]
    d, m = info["hidden_dim"], info["mlp_dim"]
    block = backbone.get_layer("vit_encoder").encoder_layers[0]
    keras_count = block.count_params()
    formula = parameters.vit_block(d, m)
    return [
        f"image {h}x{w}, patch {ph}x{pw}: N = ({h}/{ph})({w}/{pw}) = {gh} x {gw} = {info['num_patches']} patches "
        f"+ 1 [CLS] = {info['tokens']} tokens of D = {d}",
        f"backbone output (B, 1+N, D) = (B, {info['tokens']}, {d}); Keras says (B, {', '.join(str(s) for s in info['output_shape'])})",
        f"{info['num_layers']} encoder blocks, {info['num_heads']} heads, MLP width M = {m}; one block: "
        f"4(D^2 + D) + 2DM + M + D + 4D = {formula:,} parameters; Keras counts {keras_count:,}"
        + ("" if formula == keras_count else " (different: the formula misses something)"),
    ]


def normalization(preset, weights):
    """What the pretrained weights expect: the preset's image converter if it has one, else ImageNet mean/std.

    Returns a keras Normalization layer (values in [0, 255] in) and a
    description. A preset whose converter cannot be read says so in one line.
    """
    from keras import layers

    from kcourse import system

    if weights == "pretrained":
        try:
            converter = system.keras_hub().layers.ImageConverter.from_preset(preset)
        except Exception as error:
            print(f"--preset {preset}: its image converter cannot be read ({type(error).__name__}); "
                  "normalising with ImageNet's mean and std instead", flush=True)
            converter = None
        if converter is not None and converter.scale is not None:
            scale = np.broadcast_to(np.asarray(converter.scale, "float64"), (3,))
            offset = np.broadcast_to(np.asarray(converter.offset if converter.offset is not None else 0.0, "float64"), (3,))
            mean, std = -offset / scale, 1.0 / scale  # x * scale + offset = (x - mean) / std
            return (layers.Normalization(mean=mean.tolist(), variance=(std**2).tolist(), name="normalization"),
                    f"the preset's own (x * {scale[0]:.4g} + {offset[0]:.4g})")
    return images.imagenet_normalization(name="normalization"), "ImageNet mean and std"


def input_statistics(normalize, x, image_size):
    """What the backbone is fed (001:51): {"mean", "std", "min", "max"} of the normalised centre crops of photos `x`."""
    from keras import ops

    crops = augmentation("baseline", image_size, x.shape[1])(x, training=False)
    values = ops.convert_to_numpy(normalize(crops))
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()), "max": float(values.max())}


def check_unfreeze(last, backbone, weights):
    """--unfreeze-last against the loaded backbone: "all" with random weights (said once), a LabError beyond its blocks."""
    blocks = int(backbone.num_layers)
    if weights == "random":
        if last not in (0, 1):
            print(f"--unfreeze-last {last}: ignored, the whole ViT trains from scratch (random weights)")
        return "all"
    if not 0 <= last <= blocks:
        raise cli.LabError(f"--unfreeze-last {last}: this backbone has {blocks} encoder blocks; choose 0 to {blocks}")
    return last


def unfreeze(backbone, last):
    """Freeze the backbone except its last `last` encoder blocks and the final LayerNorm ("all": nothing frozen).

    `trainable=False` on a Keras layer also freezes everything inside it; the
    encoder itself stays trainable so that its unfrozen children train.
    Returns a description of what trains, for config.json and the summary.
    """
    if last == "all":  # a ViT or the CNN of 001:58, from scratch
        backbone.trainable = True
        return stage_name(last)
    encoder = backbone.get_layer("vit_encoder")
    blocks = encoder.encoder_layers
    if last != "all" and not 0 <= last <= len(blocks):
        raise cli.LabError(f"--unfreeze-last {last}: this backbone has {len(blocks)} encoder blocks; choose 0 to {len(blocks)}")
    if last == 0:
        backbone.trainable = False
        return stage_name(last)
    backbone.trainable = True
    backbone.get_layer("vit_patching_and_embedding").trainable = False
    for i, block in enumerate(blocks):
        block.trainable = i >= len(blocks) - last
    encoder.dropout.trainable = False
    encoder.layer_norm.trainable = True
    return stage_name(last)


def stage_name(last):
    """What trains besides the head for --unfreeze-last `last`, in words."""
    if last == "all":
        return "all (scratch)"
    if last == 0:
        return "head (frozen)"
    return f"last {last} + norm"


# ---------------------------------------------------------------- data
def load_data(data_dir=None, image_size=224, val_split=0.2, quick=False, seed=0):
    """The photos (kcourse.datasets.hotdogs) as an images.ImageData, loaded at 8/7 of `image_size`, values in [0, 255]."""
    return datasets.hotdogs(image_size, data_dir, val_split, quick, seed)


def robustness_set(x, y, seed=0):
    """A fixed, seeded set of perturbations no level trains on: crops, lighting and blur of every image.

    crop: a random window of 55-75% of the side, resized back; lighting:
    brightness x0.5-0.7 or x1.4-1.7 with a gamma of 0.7-1.4; blur: a Gaussian
    of sigma 1/48 of the side. The same images for every augmentation level.

    Returns {kind: (images, labels)}.
    """
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed + 1234)
    side = x.shape[1]
    crops, lights, blurs = [], [], []
    for image in x:
        s = int(round(side * rng.uniform(0.55, 0.75)))
        top, left = rng.integers(0, side - s + 1, size=2)
        window = Image.fromarray(image[top : top + s, left : left + s].astype("uint8"))
        crops.append(np.asarray(window.resize((side, side), Image.BILINEAR), "float32"))
        gain = rng.uniform(0.5, 0.7) if rng.random() < 0.5 else rng.uniform(1.4, 1.7)
        lights.append(np.clip(255.0 * (image / 255.0) ** rng.uniform(0.7, 1.4) * gain, 0, 255).astype("float32"))
        blurred = Image.fromarray(image.astype("uint8")).filter(ImageFilter.GaussianBlur(side / 48))
        blurs.append(np.asarray(blurred, "float32"))
    return {kind: (np.stack(v), y) for kind, v in (("crop", crops), ("lighting", lights), ("blur", blurs))}


# ---------------------------------------------------------------- step D: augmentation
def augmentation(level, image_size, load_size, seed=0):
    """The ladder's pipeline for one level: Keras preprocessing layers, random in training only.

    (B, L, L, 3) in [0, 255] -> (B, S, S, 3) in [0, 255]; at inference every
    level gives the same centre crop S of L (RandomResizedCrop's inference path).
    The strong level's RandAugment runs in the input pipeline (train_dataset),
    before these layers: strong = RandAugment, then the medium layers.
    """
    import keras
    from keras import layers

    from kcourse.layers import RandomResizedCrop

    if level not in LEVELS:
        raise cli.LabError(f"--augment {level!r}: choose among {', '.join(LEVELS)} or all")
    s = image_size
    if level == "baseline":
        return keras.Sequential([layers.CenterCrop(s, s)], name="augment_baseline")
    steps = [
        RandomResizedCrop(s, s, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), inference_crop=s / load_size, seed=seed, name="random_resized_crop"),
        layers.RandomFlip("horizontal", seed=seed + 1, name="flip"),
    ]
    if level in ("medium", "strong"):
        steps.append(layers.RandomColorJitter(value_range=(0, 255), brightness_factor=0.2, contrast_factor=0.2,
                                              saturation_factor=(0.3, 0.7), hue_factor=0.05, seed=seed + 3, name="color_jitter"))
        steps.append(layers.RandomErasing(factor=0.5, scale=(0.02, 0.25), value_range=(0, 255), seed=seed + 4, name="random_erasing"))
    return keras.Sequential(steps, name=f"augment_{level}")


def rand_augment(seed=0):
    """keras.layers.RandAugment (2 ops, factor 0.5, values in [0, 255]) as a tf.function, made afresh.

    A new layer each time, so that every training starts from the seed's own
    draws whatever ran before it in the process (a cached layer would carry
    its generator's state from one variant to the next). Tracing takes about
    ten seconds; the function is reused for every batch of one pipeline.
    """
    import keras

    from kcourse import system

    tf = system.import_tensorflow()
    layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.5, seed=seed + 2)
    layer.equalization._custom_histogram_fixed_width = _graph_histogram(tf)
    return tf.function(lambda images: layer(images, training=True))


def _graph_histogram(tf):
    """Equalization's histogram as the layer computes it off jax, one `bincount`, for TensorFlow's graph.

    Keras 3.15's Equalization (one of RandAugment's operations) builds its
    256-bin histogram as a loop of 256 comparisons whenever the *global*
    backend is jax, even inside tf.data where the layer runs on TensorFlow:
    tracing RandAugment then took 14 s on jax against 3 s on torch. In
    TensorFlow's graph `bincount` traces, and counts the same.
    """

    def histogram(values, value_range, nbins):
        low, high = value_range
        indices = tf.cast((tf.cast(values, "float32") - low) * (nbins - 1) / (high - low), "int32")
        indices = tf.clip_by_value(tf.reshape(indices, [-1]), 0, nbins - 1)
        return tf.math.bincount(indices, minlength=nbins, maxlength=nbins, dtype="int32")

    return histogram


def train_dataset(x, y, batch_size, num_classes, randaugment=False, mix=None, seed=0):
    """The training photos as a tf.data pipeline: shuffled by `seed`, batched, with RandAugment and/or MixUp / CutMix.

    Every level of the ladder goes through it, so that each sees the same
    batches in the same order (only the transforms differ) and counts the
    same steps (the last, partial batch kept; dropped under --distribute,
    which needs whole batches). These Keras layers run inside tf.data
    whatever the backend (their own TensorFlow path), beside training (the
    pipeline prefetches): under a jax jit, RandAugment alone made a training
    step of the small ViT 40 times slower. RandAugment comes first (on the whole photo),
    the rest of the level in the model. With `mix`, labels become one-hot rows
    mixed like the images (each row sums to 1): the loss is then categorical
    cross-entropy, and accuracy compares the argmax of the soft label with the prediction's.
    """
    if mix not in (None, "mixup", "cutmix"):
        raise cli.LabError(f"--mix {mix!r}: choose mixup or cutmix")
    import keras

    from kcourse import system

    tf = system.import_tensorflow()
    rand = rand_augment(seed) if randaugment else None
    mixer = {"mixup": keras.layers.MixUp, "cutmix": keras.layers.CutMix}[mix](seed=seed + 5) if mix else None

    def augment(images, labels):
        if rand is not None:
            images = rand(images)
        if mixer is not None:
            out = mixer({"images": images, "labels": tf.one_hot(labels, num_classes)}, training=True)
            images, labels = out["images"], out["labels"]
        return images, labels

    whole = keras.distribution.distribution() is not None
    data = tf.data.Dataset.from_tensor_slices((np.asarray(x, "float32"), np.asarray(y, "int32")))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size, drop_remainder=whole)
    if rand is not None or mixer is not None:  # one batch at a time: the layers' random state is drawn in order, so a
        data = data.map(augment)  # run draws what the same run draws again (parallel calls would race for it)
    return data.prefetch(tf.data.AUTOTUNE)  # still beside training


def steps_per_epoch(num_samples, batch_size):
    """The training steps of one epoch, as train_dataset batches them (whole batches only under --distribute)."""
    import keras

    whole = keras.distribution.distribution() is not None
    return num_samples // batch_size if whole else math.ceil(num_samples / batch_size)


# ---------------------------------------------------------------- step B / C: the model
def pool_tokens(tokens, pool):
    """(B, 1+N, D) -> (B, D): the [CLS] token ("cls"), the mean of the N patch tokens ("mean"), or a trained
    pooler on [CLS] ("pooler": Dense(D) + tanh, the original ViT's pre-logits in pre-training; keras-hub's
    ViTBackbone has none, and google/vit-base-patch16-224, fine-tuned, ships none).

    Built from Keras' own layers, so that the saved model needs no custom class.
    """
    from keras import layers

    n = tokens.shape[1] - 1
    if pool in ("cls", "pooler"):
        cls = layers.Flatten(name="cls_token")(layers.Cropping1D((0, n), name="keep_cls")(tokens))  # (B, D)
        return cls if pool == "cls" else pooler(tokens.shape[-1])(cls)
    if pool == "mean":
        patches = layers.Cropping1D((1, 0), name="drop_cls")(tokens)  # (B, N, D)
        return layers.GlobalAveragePooling1D(name="mean_of_patches")(patches)  # (B, D)
    raise cli.LabError(f"--pool {pool!r}: choose among {', '.join(POOLS)}")


def pooler(d):
    """The pooler ("pooler" pool): Dense(D) + tanh on the [CLS] token, trained with the head (D^2 + D weights)."""
    from keras import layers

    return layers.Dense(d, activation="tanh", name="pooler")


def feature_pool(pool):
    """The frozen backbone's features a pool trains its head on: the pooler's are the [CLS] token's."""
    return "cls" if pool == "pooler" else pool


def head_width(head, d):
    """The hidden width for --head: None (linear), D/4, D/2 or D."""
    if head not in HEADS:
        raise cli.LabError(f"--head {head!r}: choose among {', '.join(HEADS)}")
    return {"linear": None, "D/4": d // 4, "D/2": d // 2, "D": d}[head]


def make_head(num_classes, head, d, dropout=0.1, head_dim=None):
    """ClassificationHead(num_classes) on features of size D, guarded by input_dim (--head-dim, default D)."""
    from kcourse.layers import ClassificationHead

    return ClassificationHead(num_classes, hidden_dim=head_width(head, d), dropout=dropout,
                              input_dim=head_dim or d, name="head")


def attach_head(head, features, head_dim):
    """head(features), with the shape check's error as one line (the handout's assert on D)."""
    try:
        return head(features)
    except ValueError as error:
        if "ClassificationHead expected" not in str(error):
            raise
        raise cli.LabError(
            f"--head-dim {head_dim}: the head expects features of size {head_dim}, but the pooled backbone gives "
            f"D = {features.shape[-1]}; leave --head-dim out to read D from the backbone"
        ) from None


def schedule(learning_rate, steps, warmup=0.1):
    """Linear warm-up over `warmup` of the steps to `learning_rate`, then cosine decay to 0."""
    import keras

    warm = max(1, int(round(warmup * steps)))
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - warm), warmup_target=learning_rate, warmup_steps=warm
    )


def compile_classifier(model, learning_rate, steps, warmup=0.1, weight_decay=0.05, soft_labels=False):
    """AdamW on the warm-up schedule; cross-entropy on logits (categorical for soft labels)."""
    import keras

    from kcourse.training import compile_model

    loss = keras.losses.CategoricalCrossentropy(from_logits=True) if soft_labels else "sparse_categorical_logits"
    optimizer = keras.optimizers.AdamW(schedule(learning_rate, steps, warmup), weight_decay=weight_decay)
    return compile_model(model, optimizer, loss=loss, metrics=("accuracy",))


def is_vit(backbone):
    """A ViT (tokens out) rather than the CNN of 001:58 (a feature map out)."""
    return hasattr(backbone, "patch_size")


def feature_width(backbone):
    """The head's input size: a ViT's D, or the channels of the CNN's last feature map."""
    return int(backbone.hidden_dim) if is_vit(backbone) else int(backbone.output_shape[-1])


CNN_STAGES = (1, 2, 4, 8)  # the comparable CNN's widths, times w


def cnn_params(w):
    """The comparable CNN's parameters for width w: per stage, two 3x3 convolutions with biases, 3 channels in."""
    count, channels = 0, 3
    for f in (k * w for k in CNN_STAGES):
        count += (9 * channels * f + f) + (9 * f * f + f)
        channels = f
    return count


def comparable_cnn(params, image_size):
    """A CNN from scratch with about `params` parameters, the network the ladder is repeated on (001:58).

    Four stages of the U-Net's double convolution (kcourse.layers.ConvBlock, no normalisation), widths w, 2w, 4w, 8w,
    each halving the side: (B, S, S, 3) -> (B, S/16, S/16, 8w); w is the one whose count (cnn_params) is nearest.
    """
    import keras

    from kcourse.layers import ConvBlock

    w = min(range(1, 257), key=lambda w: abs(cnn_params(w) - params))
    x = inputs = keras.Input((image_size, image_size, 3), name="image")
    for stage, k in enumerate(CNN_STAGES):
        x = ConvBlock(k * w, norm="none", name=f"stage_{stage + 1}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{stage + 1}")(x)
    return keras.Model(inputs, x, name="cnn_backbone")


def build_classifier(backbone, normalize, pool, head):
    """normalisation -> backbone -> pooling -> head: (B, S, S, 3) in [0, 255] -> logits (B, C).

    A CNN backbone's (B, h, w, C) map is averaged over its positions (`pool` is a ViT's).
    """
    import keras

    inputs = keras.Input(tuple(backbone.input_shape[1:]), name="image")
    tokens = backbone(normalize(inputs))  # a ViT's (B, 1+N, D), a CNN's (B, h, w, C)
    features = (pool_tokens(tokens, pool) if is_vit(backbone)  # (B, D)
                else keras.layers.GlobalAveragePooling2D(name="mean_of_map")(tokens))
    return keras.Model(inputs, attach_head(head, features, head.input_dim), name="classifier")


def build_network(backbone, normalize, num_classes, load_size, level="baseline", pool="cls", head="linear",
                  dropout=0.1, head_dim=None, seed=0, name="vit"):
    """augmentation(level) -> classifier: (B, L, L, 3) photos in [0, 255] -> logits. Not compiled (see build_model).

    The classifier (`model.get_layer("classifier")`) takes (B, S, S, 3) crops:
    the interpretation step calls it directly.
    """
    import keras

    d = feature_width(backbone)
    size = backbone.input_shape[1]
    classifier = build_classifier(backbone, normalize, pool, make_head(num_classes, head, d, dropout, head_dim))
    inputs = keras.Input((load_size, load_size, 3), name="photo")
    outputs = classifier(augmentation(level, size, load_size, seed)(inputs))
    return keras.Model(inputs, outputs, name=name)


def build_model(backbone, normalize, num_classes, load_size, level, pool, head, unfreeze_last, learning_rate, steps,
                warm=None, soft_labels=False, dropout=0.1, head_dim=None, seed=0, warmup=0.1, weight_decay=0.05, name=None):
    """One rung of the ladder, compiled: a copy of the backbone, `unfreeze_last` blocks trainable, the level's augmentation.

    `warm`: the frozen stage's head model; its weights start the head (linear probe, then fine-tune).
    """
    copy = presets.fresh_copy(backbone, presets.weights_of(backbone))
    unfreeze(copy, unfreeze_last)
    model = build_network(copy, normalize, num_classes, load_size, level, pool, head, dropout, head_dim, seed,
                          name=runs.slug(name or level))
    if warm is not None:
        for part in ("pooler", "head") if pool == "pooler" else ("head",):
            model.get_layer("classifier").get_layer(part).set_weights(warm.get_layer(part).get_weights())
    return compile_classifier(model, learning_rate, steps, warmup, weight_decay, soft_labels=soft_labels)


def build_head_model(d, num_classes, head, dropout=0.1, head_dim=None, name="head_on_features", pool="cls"):
    """The head alone, on pooled features (B, D): what trains when the backbone is frozen and the features cached
    (the "pooler" pool: its Dense + tanh first, on the [CLS] features)."""
    import keras

    x = inputs = keras.Input((d,), name="features")
    if pool == "pooler":
        x = pooler(d)(x)
    return keras.Model(inputs, attach_head(make_head(num_classes, head, d, dropout, head_dim), x, head_dim or d), name=name)


def features(backbone, normalize, x, load_size, pools=POOLS, batch_size=32):
    """Pooled features of the frozen backbone, computed once: {pool: (N, D)} for the centre crops of `x`."""
    import keras

    from kcourse.training import predict

    size = backbone.image_shape[0]
    inputs = keras.Input((load_size, load_size, 3))
    tokens = backbone(normalize(augmentation("baseline", size, load_size)(inputs)))  # (B, 1+N, D)
    model = keras.Model(inputs, {p: keras.layers.Identity(name=p)(pool_tokens(tokens, p)) for p in pools})
    return predict(model, x, batch_size)


def epoch_estimate(what, num_samples, batch_size, epochs, runs_left, timed_steps=2):
    """A callback that times the first few training steps and prints how long an epoch, and the
    `runs_left` trainings of `epochs` epochs, will take on this device.

    The first step compiles; steps 2 and 3 are timed. A last, smaller batch
    compiles again, so only full batches are timed; with fewer than two of
    them the first step is used and the estimate is an upper bound.
    """
    import keras

    full, steps = num_samples // batch_size, math.ceil(num_samples / batch_size)

    class EpochEstimate(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.marks, self.done = [], False  # (steps done, time)

        def on_train_batch_begin(self, batch, logs=None):
            if not self.marks:
                self.marks = [(0, time.perf_counter())]

        def on_train_batch_end(self, batch, logs=None):
            if self.done:
                return
            self.marks.append((min(batch + 1, steps), time.perf_counter()))  # one call may run several steps
            after = [m for m in self.marks[1:] if m[0] <= full]  # after the compiling call, full batches only
            if len(after) >= 2 and after[-1][0] - after[0][0] >= min(timed_steps, full - 1):
                (s0, t0), (s1, t1) = after[0], after[-1]
                self.report((t1 - t0) / (s1 - s0), f"{s1 - s0} steps timed after compiling")
            elif self.marks[-1][0] >= steps:  # the epoch ended first: the first call, compiling included
                (s0, t0), (s1, t1) = self.marks[0], self.marks[1]
                self.report((t1 - t0) / (s1 - s0), "the first steps, compiling included: an upper bound")

        def report(self, per_step, how):
            seconds = per_step * steps
            print(f"\n   estimate: an epoch of {what} takes about {seconds:.1f} s on this device "
                  f"({per_step:.2f} s per step of {batch_size}, {how}); {runs_left} x {epochs} epochs: "
                  f"about {seconds * runs_left * epochs / 60:.1f} min", flush=True)
            self.done = True

    return EpochEstimate()


# ---------------------------------------------------------------- evaluation
def frozen_features(backbone, normalize, data, robust, load_size, pools=POOLS, batch_size=32):
    """Pooled features of train, val and the robustness sets, in one pass of the frozen backbone.

    Returns ({pool: ImageData of features (N, D)}, {pool: {kind: (features, labels)}}): the
    head models are evaluated on them as the full models are on photos.
    """
    parts = [data.x_train, data.x_val, *(x for x, _ in robust.values())]
    every = features(backbone, normalize, np.concatenate(parts), load_size, pools, batch_size)
    ends = np.cumsum([len(part) for part in parts])[:-1]
    by_pool, robust_by_pool = {}, {}
    for p in pools:
        f_train, f_val, *f_robust = np.split(every[p], ends)
        by_pool[p] = images.ImageData(f_train, data.y_train, f_val, data.y_val, data.class_names, f"{data.name}: {p} features")
        robust_by_pool[p] = {kind: (f, robust[kind][1]) for kind, f in zip(robust, f_robust)}
    return by_pool, robust_by_pool


def evaluate(model, data, robust=None, batch_size=32):
    """{"val accuracy", "macro F1", "robust accuracy", "robust <kind>" for each kind} of a model on `data`.

    `data`: an images.ImageData of photos, or of pooled features for a head
    model (frozen_features); `robust`: {kind: (inputs, labels)}, the same kind of inputs.
    """
    from kcourse import metrics
    from kcourse.training import predict_classes

    scores = metrics.classification(data.y_val, predict_classes(model, data.x_val, batch_size), len(data.class_names))
    per_kind = {kind: float((predict_classes(model, x, batch_size) == y).mean()) for kind, (x, y) in (robust or {}).items()}
    if per_kind:
        scores["robust accuracy"] = float(np.mean(list(per_kind.values())))
        scores.update({f"robust {kind}": value for kind, value in per_kind.items()})
    return scores


def ladder_figure(rows):
    """Bar plot: best val accuracy, macro F1 and robust accuracy per augmentation level."""
    import matplotlib.pyplot as plt

    metrics = ("best val accuracy", "macro F1", "robust accuracy")
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(rows), 3.4))
    width = 0.8 / len(metrics)
    for k, metric in enumerate(metrics):
        values = [row[metric] for row in rows]
        positions = np.arange(len(rows)) + (k - 1) * width
        ax.bar(positions, values, width, label=metric)
        for p, v in zip(positions, values):
            ax.text(p, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(rows)), [row["augment"] for row in rows])
    ax.set(ylim=(0, 1.1), ylabel="score", title="augmentation ladder (everything else equal)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def samples_figure(image, levels, image_size, load_size, seed=0, copies=4):
    """One photo through each level: per row, what the model sees at inference, then `copies` training draws."""
    from keras import ops

    from kcourse import plots

    rows, titles = [], []
    for level in levels:
        augment = augmentation(level, image_size, load_size, seed)
        batch = np.repeat(image[None], copies, axis=0)
        if level == "strong":  # as in training: RandAugment's TensorFlow path (eager on jax, it took 3x longer to draw)
            batch = rand_augment(seed)(batch).numpy()
        rows += [ops.convert_to_numpy(augment(image[None], training=False))[0], *ops.convert_to_numpy(augment(batch, training=True))]
        titles += [f"{level} ({LEVEL_SHORT[level]}): inference"] + [f"{level}, draw {k + 1}" for k in range(copies)]
    return plots.image_grid(np.clip(np.stack(rows) / 255.0, 0, 1), titles, ncols=1 + copies)


def interpret(classifier, backbone, normalize, x, y, class_names, load_size, count=4):
    """Step E on `count` validation photos: rollout from [CLS] and occlusion of each patch, side by side.

    Returns the figure and the maps {"rollout": (B, gh, gw), "occlusion": (B, gh, gw)}.
    """
    from keras import ops

    from kcourse import interpret as ip

    info = describe(backbone)
    size = info["image_size"][0]
    crops = ops.convert_to_numpy(augmentation("baseline", size, load_size)(x[:count]))  # (B, S, S, 3)
    _, attention = ip.attention_maps(backbone, ops.convert_to_numpy(normalize(crops)))
    rollout = ip.cls_to_patches(ip.rollout(attention), info["grid"])
    drops, predicted = ip.occlusion(classifier, crops, info["patch_size"][0])
    titles = [f"{class_names[t]} (predicted {class_names[p]})" for t, p in zip(y[:count], predicted)]
    fig = ip.figure(crops / 255.0, {"attention rollout [CLS]": rollout, "occlusion: logit drop": drops}, titles)
    return fig, {"rollout": rollout, "occlusion": drops}



# ---------------------------------------------------------------- the steps, as the CLI and the notebook run them
def frozen_name(pool, head, rate, rates):
    """frozen-cls-D/2, or frozen-cls-D/2-drop0.3 when several dropout rates are compared (the linear head has none)."""
    return f"frozen-{pool}-{head}" + (f"-drop{rate:g}" if len(rates) > 1 and head != "linear" else "")


def train_frozen_heads(run, backbone, normalize, data, robust, pools=("cls",), heads=("linear",), learning_rate=1e-3,
                       dropout=0.1, head_dim=None, warmup=0.1, weight_decay=0.05, suffix="", title="B. backbone frozen"):
    """Step B: the backbone frozen, its pooled features computed once, one head trained per (pool, head, dropout).

    `dropout`: a rate, or a list of them: each hidden head is trained once per rate (001:42).
    `suffix` ends every name (the other normalisation's heads: "-imagenet-norm", 001:51).
    Each variant `frozen-<pool>-<head>` goes through `run.fit` (history, .keras, its row in the summary).
    Returns {name: {"model": the head model, "y_pred": its val predictions}}.
    """
    from kcourse.training import predict_classes

    d, load, num_classes = backbone.hidden_dim, data.x_train.shape[1], len(data.class_names)
    steps = steps_per_epoch(len(data.x_train), run.batch_size) * run.epochs
    n_images = len(data.x_train) + (1 + len(robust)) * len(data.x_val)
    print(f"\n{title}: its pooled features ({', '.join(pools)}) of {n_images:,} images "
          f"(train, val and the {len(robust)} robustness sets) computed once", flush=True)
    start = time.perf_counter()
    by_pool, robust_by_pool = frozen_features(backbone, normalize, data, robust, load,
                                              list(dict.fromkeys(map(feature_pool, pools))), run.batch_size)
    print(f"   {time.perf_counter() - start:.1f} s; then only the head trains, at learning rate {learning_rate:g}")
    results, rates = {}, list(dropout) if isinstance(dropout, (list, tuple)) else [dropout]
    for p in pools:
        feats = by_pool[feature_pool(p)]
        for h, rate in ((h, rate) for h in heads for rate in (rates[:1] if h == "linear" else rates)):
            name = frozen_name(p, h, rate, rates) + suffix

            def build(h=h, p=p, rate=rate):
                model = build_head_model(d, num_classes, h, rate, head_dim, pool=p)
                return compile_classifier(model, learning_rate, steps, warmup, weight_decay)

            fitted = run.fit(name, build, (feats.x_train, feats.y_train), (feats.x_val, feats.y_val),
                             frozen_params=int(backbone.count_params()))  # the frozen backbone is part of the model
            scores = evaluate(fitted.model, feats, robust_by_pool[feature_pool(p)], batch_size=256)
            onset = overfitting_onset(fitted.history.get("val_loss", []))
            run.record(fitted, stage=stage_name(0), augment="baseline", dropout=rate if h != "linear" else "-",
                       **best_val(fitted), **scores, **{"val loss rises after epoch": onset if onset is not None else "-"})
            results[name] = dict(model=fitted.model, y_pred=predict_classes(fitted.model, feats.x_val, 256))
    return results


def map_figures(maps):
    """One map's numbers (001:61): the rollout's entropy (nats, over the patches), its brightest patch's share, and
    occlusion's largest logit drop, each averaged over the photos."""
    rollout = maps["rollout"].reshape(len(maps["rollout"]), -1)
    p = rollout / rollout.sum(axis=1, keepdims=True)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    return {"rollout entropy": float(entropy.mean()), "uniform entropy": float(np.log(p.shape[1])),
            "top patch share": float(p.max(axis=1).mean()), "largest drop": float(maps["occlusion"].max(axis=(1, 2)).mean())}


def overfitting_onset(val_loss, tolerance=0.01):
    """The epoch (1-based) after which the validation loss rises for good: its minimum's, when the last epoch ends
    more than `tolerance` (relative) above it; None while it still falls (no overfitting seen yet)."""
    losses = [float(v) for v in val_loss]
    if len(losses) < 2:
        return None
    best = int(np.argmin(losses))
    return best + 1 if losses[-1] > losses[best] * (1 + tolerance) else None


def best_val(fitted):
    """{"best val accuracy"}: the best epoch's, read from the history."""
    return {"best val accuracy": max(fitted.history.get("val_accuracy", [float("nan")]))}


def train_ladder(run, backbone, normalize, data, robust, levels=LEVELS, mix="none", pool="cls", head="linear",
                 unfreeze_last=1, learning_rate=1e-4, warm=None, dropout=0.1, head_dim=None, seed=0, warmup=0.1,
                 weight_decay=0.05, prefix="", title="D. augmentation ladder"):
    """Step D: one model per augmentation level, everything else equal (split, batches, seed, learning rate, epochs).

    `mix` ("mixup", "cutmix") applies to the strong level, with soft labels.
    `warm`: a frozen-stage head model whose weights start every head.
    `prefix` starts every name (the ladder repeated on other networks: "cnn-", "small-vit-", 001:58).
    Returns the ladder's rows (one dict per level) and {name: {"model", "y_pred"}}.
    """
    from kcourse.training import predict_classes

    load, num_classes = data.x_train.shape[1], len(data.class_names)
    steps = steps_per_epoch(len(data.x_train), run.batch_size) * run.epochs
    print(f"\n{title} {', '.join(levels)}" + (f" (+{mix} on strong)" if mix != "none" else "")
          + f": {stage_name(unfreeze_last)} trains, learning rate {learning_rate:g}, "
          + (f"pool {pool}" if is_vit(backbone) else "the map's mean") + f", head {head}"
          + (", starting from the frozen stage's head" if warm is not None else "")
          + (f" (the whole {'ViT' if is_vit(backbone) else 'CNN'} trains from scratch)" if unfreeze_last == "all" else ""))
    ladder, results = [], {}
    for i, level in enumerate(levels):
        mixing = mix if level == "strong" and mix != "none" else None
        rung = f"{level}+{mixing}" if mixing else level
        name = prefix + rung

        def build(level=level, soft=bool(mixing), name=name):
            return build_model(backbone, normalize, num_classes, load, level, pool, head, unfreeze_last, learning_rate,
                               steps, warm, soft, dropout, head_dim, seed, warmup, weight_decay, name=name)

        network = f"{backbone.num_layers}-block ViT" if is_vit(backbone) else f"{backbone.count_params():,}-parameter CNN"
        what = f"{len(data.x_train):,} photos through this {network} ({stage_name(unfreeze_last)} training)"
        callbacks = [epoch_estimate(what, len(data.x_train), run.batch_size, run.epochs, len(levels))] if i == 0 else []
        train = train_dataset(data.x_train, data.y_train, run.batch_size, num_classes, level == "strong", mixing, seed)
        val = (data.x_val, np.eye(num_classes, dtype="float32")[data.y_val] if mixing else data.y_val)
        fitted = run.fit(name, build, train, val, callbacks=callbacks, shuffle=False)  # the pipeline shuffles, alike for every level
        scores = evaluate(fitted.model, data, robust, batch_size=run.batch_size)
        row = run.record(fitted, stage=stage_name(unfreeze_last), augment=rung, **best_val(fitted), **scores)
        results[name] = dict(model=fitted.model, y_pred=predict_classes(fitted.model, data.x_val, run.batch_size))
        ladder.append({"augment": name, **best_val(fitted), **scores, "s / epoch": row["s / epoch"]})
    return ladder, results


def ladder_on_a_cnn(run, data, robust, levels, learning_rate, vit=None, pool="cls", head="linear", seed=0, **training):
    """001:58: the ladder repeated on a CNN of about the ViT's size, both from scratch, everything else equal.

    `vit`: the ladder's own ViT when it trained from scratch (its rows are the ViT's side); else (a pretrained
    ladder) the small ViT of SMALL_VIT trains the ladder from scratch first ("small-vit-" rows).
    The CNN's rows are "cnn-<level>"; ladder_vit_cnn.png plots both ladders.
    """
    from kcourse import system

    def scratch(backbone, prefix, title):
        return train_ladder(run, backbone, images.imagenet_normalization(name="normalization"), data, robust, levels,
                            pool=pool, head=head, unfreeze_last="all", learning_rate=learning_rate, prefix=prefix,
                            title=title, seed=seed, **training)[0]

    ours = ladder_rows(run)
    if vit is None:
        vit = system.keras_hub().models.ViTBackbone(**SMALL_VIT, name="small_vit")
        ours = scratch(vit, "small-vit-", f"D'. for 001:58, {SMALL_VIT_TEXT}: the ladder")
    cnn = comparable_cnn(vit.count_params(), vit.input_shape[1])
    theirs = scratch(cnn, "cnn-", f"D'. the same ladder on a CNN of {cnn.count_params():,} parameters (the ViT: "
                                  f"{vit.count_params():,}), from scratch:")
    run.outputs["from_scratch"] = {"ViT": ours, "CNN": theirs}
    run.savefig(ladder_comparison_figure(run.outputs["from_scratch"], levels), "ladder_vit_cnn")


def ladder_comparison_figure(ladders, levels):
    """Val and robust accuracy along the ladder, one line per network ({name: ladder rows})."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, metric in zip(axes, ("val accuracy", "robust accuracy")):
        for name, rows in ladders.items():
            ax.plot(levels, [float(r[metric]) for r in rows], marker="o", label=name)
        ax.set(title=metric, xlabel="augmentation", ylim=(0, 1.05))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    fig.suptitle("the same ladder, from scratch, on a ViT and a CNN of about its size")
    fig.tight_layout()
    return fig


def report_ladder(run, ladder, results, data, levels, image_size, seed=0):
    """augment_ladder.csv / .png, the augmented samples and the best level's confusion matrix; returns the best level."""
    from kcourse import plots

    run.save_table("augment_ladder", ladder)
    run.savefig(ladder_figure(ladder), "augment_ladder")
    run.savefig(samples_figure(data.x_train[0], levels, image_size, data.x_train.shape[1], seed), "augmentation")
    best = max(ladder, key=lambda r: (r["val accuracy"], r["macro F1"]))["augment"]
    run.savefig(plots.confusion_matrix(data.y_val, results[best]["y_pred"], data.class_names, f"{best} (val)"),
                f"confusion_{runs.slug(best)}")
    return best


def interpret_model(model, data, count=4):
    """Step E on a trained ladder model: rollout and occlusion for `count` val photos (both classes)."""
    import keras

    classifier = model.get_layer("classifier")
    backbone = next(layer for layer in classifier.layers if isinstance(layer, keras.Model))  # the (fine-tuned) backbone
    shown = np.concatenate([np.flatnonzero(data.y_val == c)[:2] for c in range(len(data.class_names))])[:count]
    return interpret(classifier, backbone, classifier.get_layer("normalization"), data.x_val[shown], data.y_val[shown],
                     data.class_names, data.x_train.shape[1], count=len(shown))


# ---------------------------------------------------------------- the lab
# ---------------------------------------------------------------- the handout's questions, answered by the run
COMPARED = ("frozen-", "small-vit-", "cnn-")  # the rows that are not the ladder's: frozen heads, 001:58's networks


def ladder_rows(run):
    """The summary's rows of the augmentation ladder (the frozen heads' and 001:58's left out), in the ladder's order."""
    return [r for r in run.rows if not r["model"].startswith(COMPARED)]


def onset_text(row):
    """'val loss rises after epoch 3', or 'val loss still falls', from a frozen head's row."""
    epoch = row.get("val loss rises after epoch")
    return f"val loss rises after epoch {epoch}" if epoch not in (None, "", "-") else "val loss still falls"


def token_count(run):
    b = run.config["backbone"]
    (h, w), (ph, pw), (gh, gw) = b["image_size"], b["patch_size"], b["grid"]
    return (f"{run.config['weights'].capitalize()} {run.config['preset'] if run.config['weights'] == 'pretrained' else 'small ViT'}: "
            f"{h}x{w} images in {ph}x{pw} patches, N = ({h}/{ph})({w}/{pw}) = {gh} x {gw} = {b['num_patches']} patches + 1 [CLS] "
            f"= {b['tokens']} tokens of D = {b['hidden_dim']}: the output is (B, {b['tokens']}, {b['hidden_dim']}) "
            f"(ViT-B/16 on 224 px: 14 x 14 + 1 = 197 tokens of 768).")


def the_dataset(run):
    photos = run.metrics.get("photos")
    if not photos:
        return None
    return (f"{' / '.join(run.config['classes'])}: {photos['train']:,} training and {photos['val']:,} validation photos of "
            f"{run.config['data_used']}. The handout names a copy of hot dog / not hot dog on a hub; kcourse downloads "
            f"d2l's hotdog.zip instead (keras.utils.get_file, cached, its SHA-1 checked), the same two classes; "
            f"`--data-dir` reads the hub's copy, or any image folder.")


def the_normalization(run):
    fed = run.metrics.get("inputs normalised")
    if not fed:
        return None
    own = run.config["normalization"]

    def values(s):
        return f"mean {s['mean']:.2f}, std {s['std']:.2f}, from {s['min']:.2f} to {s['max']:.2f}"

    seen = "; ".join(f"{text}: {values(s)}" for text, s in fed.items())
    if run.config["weights"] != "pretrained":
        return (f"Offline the ViT is the small random one, trained from scratch on inputs normalised with {own} "
                f"({values(fed[own])}): "
                f"it learns whatever scaling it is given. Which scaling pretrained weights expect, and what a mismatch "
                f"costs, needs the preset (online, or a --preset folder with its image converter).")
    if len(fed) < 2:
        return (f"The preset's image converter could not be read: the inputs are normalised with {own} ({seen}); the "
                f"comparison with the preset's own scaling needs its converter.")
    rows = {r["model"]: r for r in run.rows}
    name = f"frozen-{run.config['ladder']['pool']}-linear"
    if name not in rows or name + IMAGENET_NORM not in rows:
        return None
    own_acc, imagenet_acc = float(rows[name]["val accuracy"]), float(rows[name + IMAGENET_NORM]["val accuracy"])
    cost = (f"the mismatch costs {own_acc - imagenet_acc:.3f}" if imagenet_acc < own_acc else
            "the mismatch costs nothing here: the head, trained on the shifted features, absorbs it")
    return (f"The preset's image converter says what its weights were trained on: {own}. The same photos fed both ways "
            f"({seen}); the same linear head on the frozen features ({name}): val accuracy {own_acc:.3f} with the "
            f"preset's own against {imagenet_acc:.3f} with the handout's ImageNet mean and std: {cost}. Use the preset's.")


def patches_as_a_convolution(run):
    b = run.config["backbone"]
    ph = b["patch_size"][0]
    return (f"The patches are cut by a {ph}x{ph} convolution of stride {ph} into D = {b['hidden_dim']} channels: "
            f"{b['grid'][0]} x {b['grid'][1]} vectors, one per patch.")


def the_heads(run):
    heads = [r for r in run.rows if r["model"].startswith("frozen-")]
    if not heads:
        return None
    parts = "; ".join(f"{r['model']}: {r['trainable params']:,} trainable of {r['total params']:,}, val accuracy "
                      f"{r['val accuracy']:.3f}" for r in heads)
    return f"On the frozen backbone, features computed once, only ClassificationHead trains: {parts}."


def the_pooler(run):
    frozen = {r["model"]: r for r in run.rows if r["model"].startswith("frozen-")}
    head = next((r["model"].split("-", 2)[2] for r in run.rows if r["model"].startswith("frozen-pooler-")), None)
    compared = {p: frozen.get(f"frozen-{p}-{head}") for p in POOLS}
    if head is None or None in compared.values():
        return None
    best = max(POOLS, key=lambda p: (round(float(compared[p]["val accuracy"]), 3), -int(compared[p]["trainable params"])))
    extra = int(compared["pooler"]["trainable params"]) - int(compared["cls"]["trainable params"])
    parts = ", ".join(f"{name} {float(compared[p]['val accuracy']):.3f}" for p, name in
                      (("cls", "raw [CLS]"), ("mean", "the patch mean"), ("pooler", "a trained pooler")))
    return (f"keras-hub's ViTBackbone returns the tokens (B, 1+N, D) and no pooler output; the fine-tuned "
            f"google/vit-base-patch16-224 ships none (its pre-logits layer exists in pre-training only). All else equal "
            f"(the {head} head, the frozen backbone's features, the same split and seed), val accuracy: {parts} (Dense + "
            f"tanh on [CLS], {extra:,} more weights). Use {dict(cls='raw [CLS]', mean='the patch mean', pooler='the pooler')[best]} "
            f"here: the best, and at a tie the fewest weights.")


def linear_against_hidden(run):
    frozen = {r["model"]: r for r in run.rows if r["model"].startswith("frozen-")}
    pairs = [(f"frozen-{p}-linear", name) for p in POOLS for h in HEADS[1:] for name in frozen
             if f"frozen-{p}-linear" in frozen and name.split("-drop")[0] == f"frozen-{p}-{h}"]
    if not pairs:
        return None

    parts = []
    for linear, hidden in pairs:
        a, b = frozen[linear], frozen[hidden]
        parts.append(f"{hidden} against {linear}: val accuracy {float(b['val accuracy']):.3f} against "
                     f"{float(a['val accuracy']):.3f} ({float(b['val accuracy']) - float(a['val accuracy']):+.3f}), "
                     f"{int(b['trainable params']):,} trainable weights against {int(a['trainable params']):,}; the hidden head: "
                     f"its {onset_text(b)}, the linear one: its {onset_text(a)}; {float(b['s / epoch']):.2f} against {float(a['s / epoch']):.2f} s an epoch")
    return (f"On the frozen backbone's features, {plural(run.config['epochs'], 'epoch')}: " + "; ".join(parts)
            + ". The overfitting onset is read from the curves: the epoch of the lowest validation loss, when it ends "
              "above it.")


def augmented_images(run):
    ladder = ladder_rows(run)
    if not ladder:
        return None
    parts = "; ".join(f"{r['model']}: {LEVEL_TEXT[r['model'].split('+')[0]]} (val accuracy {float(r['val accuracy']):.3f}, "
                      f"robust {float(r['robust accuracy']):.3f})" for r in ladder)
    return f"augmentation.png shows one photo at each level, at inference then four training draws. {parts}."


def where_the_ladder_stops(run):
    ladder = ladder_rows(run)
    if len(ladder) < 2:
        return None
    accuracy = [float(r["val accuracy"]) for r in ladder]
    robust = [float(r["robust accuracy"]) for r in ladder]
    stop = next((i for i in range(1, len(ladder)) if accuracy[i] <= max(accuracy[:i])), None)
    if stop is None:
        verdict = f"val accuracy rises at every level, up to {ladder[-1]['model']} ({accuracy[-1]:.3f})"
    else:
        verdict = (f"val accuracy stops improving at {ladder[stop]['model']}: {accuracy[stop]:.3f} against "
                   f"{max(accuracy[:stop]):.3f} for the best level before it ({ladder[int(np.argmax(accuracy[:stop]))]['model']})")
    best_robust = ladder[int(np.argmax(robust))]["model"]
    return f"Along the ladder ({' < '.join(r['model'] for r in ladder)}), {verdict}; robust accuracy (the unseen crops, lighting and blur) is highest at {best_robust} ({max(robust):.3f})."


def why_strong_augmentation(run):
    cnn = [r for r in run.rows if r["model"].startswith("cnn-")]
    vit = [r for r in run.rows if r["model"].startswith("small-vit-")] or ladder_rows(run)
    if len(cnn) < 2 or len(vit) != len(cnn):
        return None

    def gain(rows, column):
        return float(rows[-1][column]) - float(rows[0][column])

    (v0, v1), (c0, c1) = ((float(rows[0]["val accuracy"]), float(rows[-1]["val accuracy"])) for rows in (vit, cnn))
    first, last = cnn[0]["augment"], cnn[-1]["augment"]
    ahead = gain(vit, "val accuracy") - gain(cnn, "val accuracy")
    verdict = (f"The ViT gains {ahead:.3f} more: it has no locality or translation equivariance built in and must learn "
               f"them from the data, and augmentation multiplies the shifted, cropped and recoloured views a convolution "
               f"takes for granted" if ahead > 0 else
               f"Here the ViT gains no more than the CNN ({ahead:+.3f}): at this size and budget the inductive-bias gap "
               f"(the CNN's locality and translation equivariance, which the ViT must learn from data) does not show")
    return (f"From scratch, everything else equal (the same levels, split, batches, {plural(run.config['epochs'], 'epoch')}, "
            f"learning rate), a ViT of {int(vit[0]['total params']):,} parameters against a CNN of "
            f"{int(cnn[0]['total params']):,} (four double 3x3 convolutions; ladder_vit_cnn.png): from {first} to {last}, val accuracy {v0:.3f} -> "
            f"{v1:.3f} ({v1 - v0:+.3f}) for the ViT against {c0:.3f} -> {c1:.3f} ({c1 - c0:+.3f}) for the CNN, robust "
            f"accuracy {gain(vit, 'robust accuracy'):+.3f} against {gain(cnn, 'robust accuracy'):+.3f}; without "
            f"augmentation the CNN reaches {c0:.3f}, the ViT {v0:.3f}. {verdict}.")


def rollout_before_after(run):
    found = run.metrics.get("rollout before and after")
    if not found or len(found) < 2:
        return None
    (first, a), (last, b) = found.items()
    spread = "more spread" if b["rollout entropy"] > a["rollout entropy"] else "more focused"
    return (f"The same {run.metrics['interpretation']['photos']} validation photos through {first} and {last} "
            f"(rollout_before_after.png): the rollout's entropy {a['rollout entropy']:.2f} against {b['rollout entropy']:.2f} "
            f"nats (spread evenly over the patches: {a['uniform entropy']:.2f}), its brightest patch {a['top patch share']:.1%} "
            f"against {b['top patch share']:.1%} of [CLS]'s attention, occlusion's largest drop {a['largest drop']:.2f} against "
            f"{b['largest drop']:.2f}: after augmentation the attention is {spread}.")


def dropout_and_unfreezing(run):
    frozen = [r for r in run.rows if r["model"].startswith("frozen-")]
    ladder = ladder_rows(run)
    if not frozen:
        return None

    by_head = {}
    for r in frozen:
        if r.get("dropout") not in (None, "", "-"):
            by_head.setdefault(r["model"].split("-drop")[0], []).append(r)
    compared = {name: rows for name, rows in by_head.items() if len(rows) > 1}
    def joined(rows, column, form):
        return " / ".join(format(float(r[column]), form) for r in rows)

    parts = ["; ".join(f"{name} with dropout {joined(rows, 'dropout', 'g')}: val accuracy {joined(rows, 'val accuracy', '.3f')} "
                       f"({', '.join(onset_text(r) for r in rows)})" for name, rows in compared.items())] if compared else []
    ladder_config = run.config.get("ladder", {})
    same = next((r for r in frozen if r["model"].split("-drop")[0] == f"frozen-{ladder_config.get('pool')}-{ladder_config.get('head')}"), None)
    if ladder and same is not None:
        first = ladder[0]
        parts.append(f"frozen ({same['model']}) against {first['stage']} trained ({first['model']}, the same head and "
                     f"pool): val accuracy {float(same['val accuracy']):.3f} against {float(first['val accuracy']):.3f}, "
                     f"{float(same['s / epoch']):.2f} against {float(first['s / epoch']):.2f} s an epoch")
    if not parts:
        return None
    return "Head dropout and what trains: " + "; ".join(parts) + "."


def figures_commented(run):
    ladder = ladder_rows(run)
    seen = run.metrics.get("interpretation")
    if not ladder or seen is None:
        return None
    best = max(ladder, key=lambda r: float(r["val accuracy"]))
    return (f"learning_curves.png: every model's loss and accuracy by epoch, {best['model']} ending at val accuracy "
            f"{float(best['val accuracy']):.3f}; augment_ladder.png: val and robust accuracy per level, from "
            f"{float(ladder[0]['val accuracy']):.3f} ({ladder[0]['model']}) to {float(ladder[-1]['val accuracy']):.3f} "
            f"({ladder[-1]['model']}); interpretation.png: on {seen['photos']} photos of {seen['model']}, the rollout's "
            f"brightest patch holds {seen['top rollout share']:.1%} of [CLS]'s attention, and hiding one patch lowers the "
            f"logit by up to {seen['largest drop']:.2f}.")


def training_and_metrics(run):
    ladder = ladder_rows(run)
    if not ladder:
        return None
    best = max(ladder, key=lambda r: r["val accuracy"])
    return (f"{run.config['optimizer']}, batch {run.config['batch_size']}, {plural(run.config['epochs'], 'epoch')}, "
            f"{run.config['schedule']}: the best level, {best['model']}, reaches val accuracy {best['val accuracy']:.3f} "
            f"(best epoch {best['best val accuracy']:.3f}), macro F1 {best['macro F1']:.3f}; curves in learning_curves.png, "
            f"its confusion matrix in confusion_{runs.slug(best['model'])}.png, every hyper-parameter in config.json.")


def the_ladder(run):
    ladder = ladder_rows(run)
    if len(ladder) < 2:
        return None
    parts = "; ".join(f"{r['model']}: val accuracy {r['val accuracy']:.3f}, macro F1 {r['macro F1']:.3f}, robust "
                      f"{r['robust accuracy']:.3f}, {r['s / epoch']:.2f} s / epoch" for r in ladder)
    return f"{len(ladder)} levels, everything else equal (the same split, batches, seed, learning rate): {parts}."


def soft_labels(run):
    mixed = next((r for r in run.rows if "+" in r["model"]), None)
    if mixed is None:
        return None
    return (f"{mixed['model']} trains on mixed images with soft labels (rows that sum to 1) and categorical cross-entropy; "
            f"its accuracy compares the argmax of the label with the prediction's: val accuracy {mixed['val accuracy']:.3f}.")


def occlusion(run):
    seen = run.metrics.get("interpretation")
    if seen is None:
        return None
    return (f"On {seen['photos']} validation photos of {seen['model']}, hiding one patch lowers the predicted logit by up to "
            f"{seen['largest drop']:.2f}; the patch attention rollout weighs most holds {seen['top rollout share']:.1%} of [CLS]'s "
            f"attention (interpretation.png).")


HANDOUT = (
    Item("001:31", "Dataset : hot dog / not hot dog (copie sur un hub)", "The data set: hot dog / not hot dog.", the_dataset,
         "kcourse.datasets.hotdogs"),
    Item("001:35", "pooler_output s'il existe, sinon le token [CLS]", "The pooler, if it exists: against [CLS] and the patch mean.",
         the_pooler, "kcourse.tasks.vit.pooler", needs="--pool cls mean pooler"),
    Item("001:51", "a) Baseline : Resize(256) → CenterCrop(224) + normalisation ImageNet.", "The baseline's normalisation: ImageNet's mean and "
         "std against the preset's own.", the_normalization, "kcourse.tasks.vit.input_statistics"),
    Item("001:41", "Comparez tête linéaire et tête MLP : écart de performance ; la tête MLP sur-apprend-elle plus vite ?",
         "A linear head against a hidden one: the gap, and which overfits first.", linear_against_hidden,
         "kcourse.tasks.vit.overfitting_onset", needs="--head linear D/2"),
    Item("001:48", "Quand le sur-apprentissage commence-t-il ? La tête linéaire est-elle plus rapide que la MLP ? (48-49)",
         "When overfitting starts, and whether the linear head is faster.", linear_against_hidden,
         "kcourse.tasks.vit.overfitting_onset", needs="--head linear D/2"),
    Item("001:42", "Dropout de la tête ; ViT gelé vs partiellement dégelé", "The head's dropout, frozen against partly "
         "unfrozen.", dropout_and_unfreezing, "kcourse.tasks.vit.train_frozen_heads", needs="--dropout 0 0.1 0.3"),
    Item("001:57", "Discussion qualitative des images augmentées", "What each augmentation level does to a photo.",
         augmented_images, "kcourse.tasks.vit.samples_figure"),
    Item("001:59", "À partir de quel niveau la performance chute-t-elle ?", "The level where performance stops improving.",
         where_the_ladder_stops, "kcourse.tasks.vit.report_ladder", needs="--augment all"),
    Item("001:58", "Pourquoi les ViT bénéficient-ils particulièrement d'augmentations fortes sur petits datasets ? (faible biais inductif vs CNN)",
         "Why a ViT benefits from strong augmentation: the same ladder on a CNN.", why_strong_augmentation,
         "kcourse.tasks.vit.ladder_on_a_cnn", needs="--augment all"),
    Item("001:61", "Rollout avant / après augmentation", "Attention rollout before and after augmentation.",
         rollout_before_after, "kcourse.tasks.vit.map_figures", needs="--augment all"),
    Item("001:65", "2-3 figures commentées", "The figures, each with its numbers.", figures_commented,
         "kcourse.tasks.vit.ladder_figure"),
    Item("000:10", "CV : 3 × 16 × 16 patches → conv2d(stride=16) → vecteurs de taille D_model",
         "Images as tokens: patches through a strided convolution.", patches_as_a_convolution, "kcourse.tasks.vit.describe"),
    Item("001:34", "Pour vit-base-patch16-224, calculez N et vérifiez que la taille de sortie est bien (B,197,768). Où apparaît le 197 ?",
         "N, and the (B, 197, 768) output of ViT-B/16.", token_count, "kcourse.tasks.vit.token_arithmetic"),
    Item("001:40", "Commencez par geler le ViT et n'entraîner que la tête.", "The head trained on the frozen backbone.",
         the_heads, "kcourse.tasks.vit.train_frozen_heads"),
    Item("001:46", "Suivis obligatoires : courbes perte/accuracy train vs val, matrice de confusion, F1 macro.",
         "Training and its metrics: curves, confusion matrix, macro F1, the hyper-parameters logged.", training_and_metrics,
         "kcourse.tasks.vit.evaluate"),
    Item("001:55", "Pour chaque configuration : meilleure accuracy val, F1 macro, temps par époque, et robustesse.",
         "Per augmentation level: best val accuracy, macro F1, time per epoch and robustness.", the_ladder,
         "kcourse.tasks.vit.train_ladder", needs="--augment all"),
    Item("001:60", "Mixup/CutMix changent la loi des labels. Comment adapter la perte et les métriques à ces labels mous ?",
         "Soft labels from MixUp / CutMix: the loss and the metrics.", soft_labels, "kcourse.tasks.vit.train_dataset",
         needs="--augment strong --mix cutmix"),
    Item("001:62", "Occlusion par patch : masquez un patch et observez la baisse du logit.",
         "Patch occlusion: the logit's drop when a patch is hidden.", occlusion, "kcourse.interpret.occlusion"),
    Item("001:50", "Comparez au moins 3 configurations, toutes choses égales par ailleurs (mêmes splits, seed, LR)",
         "At least three augmentation levels, everything else equal.", the_ladder, "kcourse.tasks.vit.train_ladder",
         needs="--augment all"),
    Item("001:64", "Tableau comparatif des configurations d'augmentation (accuracy, F1, temps/ép.)",
         "The augmentation levels' table (augment_ladder.csv).", the_ladder, "kcourse.tasks.vit.report_ladder",
         needs="--augment all"),
)


def levels_from(names):
    if "all" in names:
        return list(LEVELS)
    return list(dict.fromkeys(names))


def build_parser():
    """The lab's options: the shared ones, the data, the backbone and head (A, B), training (C), the ladder (D)."""
    parser = cli.lab_parser("vit", __doc__, epochs=5, batch_size=32, learning_rate=1e-3,
                            quick={"augment": ["baseline", "light"], "pool": ["cls"], "head": ["linear"]})
    images.add_folder_options(parser, "image folder instead of the hot dogs (the handout's hub copy, or any)")
    model_group = parser.add_argument_group("backbone and head (steps A, B)")
    model_group.add_argument("--preset", default=PRESET, help=f"keras-hub ViT preset, handle ({HF_PRESET}) or local folder (default: %(default)s)")
    model_group.add_argument("--pool", nargs="+", default=["cls", "mean", "pooler"], choices=POOLS,
                             help="features for the head: [CLS] token, mean of patch tokens, a trained pooler (Dense + tanh) "
                                  "on [CLS] (default: cls mean pooler)")
    model_group.add_argument("--head", nargs="+", default=["linear", "D/2"], choices=HEADS, help="linear, or one hidden layer of D/4, D/2 or D (default: linear D/2)")
    model_group.add_argument("--head-dim", type=cli.positive_int, help="feature size the head expects (default: D, read from the backbone)")
    model_group.add_argument("--dropout", nargs="+", type=cli.unit, default=[0.1],
                             help="the hidden head's dropout; several: each hidden head on the frozen backbone trained once per "
                                  "rate, the ladder with the first (default: 0.1)")
    model_group.add_argument("--unfreeze-last", type=cli.number(int, low=0), default=1, metavar="N",
                             help="fine-tune the last N encoder blocks + final norm; 0: head only (default: %(default)s)")
    model_group.add_argument("--finetune-learning-rate", type=cli.positive_float, help="learning rate when blocks are unfrozen (default: --learning-rate / 10)")
    train_group = parser.add_argument_group("training (step C)")
    train_group.add_argument("--warmup", type=cli.fraction, default=0.1, help="fraction of the steps spent warming up (default: %(default)s)")
    train_group.add_argument("--weight-decay", type=float, default=0.05, help="AdamW's (default: %(default)s)")
    aug_group = parser.add_argument_group("augmentation ladder (step D)")
    aug_group.add_argument("--augment", nargs="+", default=["all"], choices=[*LEVELS, "all"], help="levels to compare, everything else equal (default: all)")
    aug_group.add_argument("--cnn", action=argparse.BooleanOptionalAction, default=True,
                           help="repeat the ladder from scratch on a CNN of about the ViT's size (default: on)")
    aug_group.add_argument("--mix", default="none", choices=MIXES, help="MixUp or CutMix with soft labels on the strong level (default: %(default)s)")
    return parser


def run_lab(args):
    """Steps A to E from the parsed options: the backbone and its tokens, frozen heads on cached features, the
    ladder, rollout and occlusion of its best level (what `main` and the notebook run)."""
    run = runs.start("vit", args)

    # ---- step A: the backbone
    backbone, weights = load_backbone(args.preset)
    info = describe(backbone)
    print(f"\nA. backbone: {SMALL_VIT_TEXT if weights == 'random' else args.preset + ' (pretrained)'}, {info['params']:,} parameters")
    for line in token_arithmetic(info, backbone):
        print("   " + line)
    d, size = info["hidden_dim"], info["image_size"][0]
    build_head_model(d, 2, args.head[0], head_dim=args.head_dim)  # the handout's assert on D, before any data
    unfreeze_last = check_unfreeze(args.unfreeze_last, backbone, weights)
    normalize, norm_text = normalization(args.preset, weights)

    data = load_data(args.data_dir, size, args.val_split, args.quick, args.seed)
    load = data.x_train.shape[1]
    print(f"{data!r}; inputs normalised with {norm_text}")
    run.save_metrics(photos={"train": len(data.x_train), "val": len(data.x_val)})
    levels = levels_from(args.augment)
    lr = args.learning_rate if unfreeze_last in (0, "all") else (args.finetune_learning_rate or args.learning_rate / 10)
    pool, head = args.pool[0], args.head[0]
    run.note(data_used=data.name, classes=data.class_names, weights=weights, backbone=info, normalization=norm_text,
             load_size=load, image_size=size, head_learning_rate=args.learning_rate,
             ladder=dict(levels=levels, mix=args.mix, pool=pool, head=head, learning_rate=lr,
                         trains=stage_name(unfreeze_last), frozen="the patch embedding and the earlier blocks" if unfreeze_last not in (0, "all") else ("nothing" if unfreeze_last == "all" else "the whole backbone")),
             optimizer=f"AdamW(weight_decay={args.weight_decay})",
             schedule=f"linear warm-up over {args.warmup:.0%} of the steps to the learning rate, then cosine decay to 0")
    robust = robustness_set(data.x_val, data.y_val, args.seed)
    training = dict(dropout=args.dropout[0], head_dim=args.head_dim, warmup=args.warmup, weight_decay=args.weight_decay)
    run.outputs.update(backbone=backbone, info=info, weights=weights, normalize=normalize, data=data, robust=robust, levels=levels)

    # ---- step B: the backbone frozen, the head trained on features computed once
    results = train_frozen_heads(run, backbone, normalize, data, robust, args.pool, args.head, args.learning_rate,
                                 **{**training, "dropout": args.dropout})

    # ---- 001:51: the handout's ImageNet mean and std against the preset's own scaling, the same frozen head
    fed = {norm_text: normalize}
    if weights == "pretrained" and norm_text.startswith("the preset's own"):
        fed["ImageNet mean and std"] = images.imagenet_normalization(name="normalization")
        results.update(train_frozen_heads(run, backbone, fed["ImageNet mean and std"], data, robust, (pool,), ("linear",),
                                          args.learning_rate, **training, suffix=IMAGENET_NORM,
                                          title="B'. the same head, the inputs normalised with ImageNet's mean and std"))
    run.save_metrics(**{"inputs normalised": {text: input_statistics(n, data.x_train, size) for text, n in fed.items()}})

    # ---- step D: the augmentation ladder, everything else equal
    warm = results.get(frozen_name(pool, head, args.dropout[0], args.dropout), {}).get("model")
    ladder, tuned = train_ladder(run, backbone, normalize, data, robust, levels, args.mix, pool, head, unfreeze_last, lr,
                                 warm if unfreeze_last not in (0, "all") else None, seed=args.seed, **training)
    results.update(tuned)
    best = report_ladder(run, ladder, results, data, levels, size, args.seed)
    if args.cnn and len(levels) > 1:  # 001:58: why a ViT needs strong augmentation, against a CNN
        ladder_on_a_cnn(run, data, robust, levels, args.learning_rate, backbone if weights == "random" else None,
                        pool, head, args.seed, **training)

    # ---- step E: attention rollout and occlusion, on the best model of the ladder
    figure, maps = interpret_model(results[best]["model"], data)
    run.savefig(figure, "interpretation")
    rollout = maps["rollout"].reshape(len(maps["rollout"]), -1)
    run.save_metrics(interpretation={"model": best, "photos": len(rollout), "largest drop": float(maps["occlusion"].max()),
                                     "top rollout share": float(rollout.max(axis=1).mean())})
    run.outputs.update(results=results, ladder=ladder, best=best, maps=maps)
    print(f"\nE. attention rollout and occlusion of {best}: {run.file('interpretation.png')}")
    first, last = ladder[0]["augment"], ladder[-1]["augment"]
    if first != last:  # 001:61: the same photos through the least and the most augmented models
        before = maps if best == first else interpret_model(results[first]["model"], data)[1]
        after = maps if best == last else interpret_model(results[last]["model"], data)[1]
        run.save_metrics(**{"rollout before and after": {name: map_figures(m) for name, m in ((first, before), (last, after))}})
        shown = np.concatenate([np.flatnonzero(data.y_val == c)[:2] for c in range(len(data.class_names))])[:len(before["rollout"])]
        crops = augmentation("baseline", size, load, args.seed)(data.x_val[shown], training=False)
        from keras import ops

        from kcourse import interpret as ip

        run.savefig(ip.figure(np.clip(ops.convert_to_numpy(crops) / 255.0, 0, 1),
                              {f"rollout, {first}": before["rollout"], f"rollout, {last}": after["rollout"],
                               f"occlusion, {last}": after["occlusion"]},
                              [data.class_names[c] for c in data.y_val[shown]]), "rollout_before_after")
        run.outputs.update(before=before, after=after)
    return run.finish(f"ViT on {data.name}: {weights} backbone; frozen heads, then the augmentation ladder", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
