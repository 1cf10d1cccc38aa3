"""Image folders to NumPy, an embedded two-class set, and the augmentation pipeline.

Shared by the labs that classify photos (TP3 II fine-tuning, TP4's ViT):

    data = load_image_folder("hymenoptera_data", image_size=224)
    data.x_train   # (N, S, S, 3) float32 in [0, 255], S = load_size(224) = 256
    augment = augmentation(224, flip="horizontal", rotation=0.05)
    augment(data.x_train[:8], training=True)   # (8, 224, 224, 3)

Two folder layouts are read: `root/train/<class>/*.jpg` with `root/val/<class>/*.jpg`
(a split not asked for is not read), or `root/<class>/*.jpg` split with
`val_split`, each class keeping at least one image on each side. Images are
resized (shorter side) and centre-cropped to a square a little larger than the
model's input, `CROP_MARGIN` more, so that a crop of `image_size` is left to
augmentation (the handout's Resize(256) / CenterCrop(224)). Files that are not
readable images are skipped with one warning listing them; a missing folder,
an empty class or a single class is a one-line LabError.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kcourse.errors import LabError
from kcourse.splits import Splits

CROP_MARGIN = 1 / 7  # images loaded at 256 for 224: the handout's Resize(256) -> CenterCrop(224)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # of RGB in [0, 1]: what ImageNet presets expect
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageData(Splits):
    """Images (N, S, S, 3) float32 in [0, 255] and int32 labels, train and validation (kcourse.splits.Splits)."""

    class_names: list
    name: str
    skipped: list = field(default_factory=list)

    def __repr__(self):
        return (
            f"ImageData({self.name!r}: {len(self.x_train)} train / {len(self.x_val)} val images "
            f"{self.x_train.shape[1:]}, classes {self.class_names})"
        )


def load_size(image_size, crop_margin=CROP_MARGIN):
    """The square side images are loaded at: `image_size` plus the margin random crops use."""
    return int(round(image_size * (1 + crop_margin)))


def add_folder_options(parser, what="image folder"):
    """The options of a lab that reads image folders: --data-dir (checked at once) and --val-split."""
    from kcourse import cli

    group = parser.add_argument_group("data")
    group.add_argument("--data-dir", type=existing_folder, metavar="FOLDER",
                       help=f"{what}: train/ and val/ with one folder per class, or one folder per class")
    group.add_argument("--val-split", type=cli.fraction, default=0.2, help="held-out fraction without a val/ folder (default: %(default)s)")
    return group


def existing_folder(text):
    """An argparse type: the path of a folder that exists, or one line saying the layout expected."""
    import argparse

    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: no such folder; {layout_help(path)}")
    return path


def layout_help(root):
    return f"expected {root}/train/<class>/*.jpg and {root}/val/<class>/*.jpg, or {root}/<class>/*.jpg with --val-split"


def read_image(path, size):
    """One image as (size, size, 3) float32 in [0, 255]: shorter side resized, centre crop.

    Returns None when the file is not a readable image.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")  # decodes the whole file: truncated JPEGs fail here
    except Exception:
        return None
    width, height = image.size
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(new, Image.BILINEAR)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype="float32")


def _class_folders(folder, root):
    if not folder.is_dir():
        raise LabError(f"{folder}: no such folder; {layout_help(root)}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only one class folder ({classes[0]})" if classes else "no class folder"
        raise LabError(f"{folder}: {found}, need at least two; {layout_help(root)}")
    return classes


def _files(folder, classes, root):
    """(paths, labels) of every file in folder/<class>/, classes in order."""
    paths, labels = [], []
    for label, name in enumerate(classes):
        if not (folder / name).is_dir():
            raise LabError(f"{folder / name}: no such folder (class {name!r} is in train/); {layout_help(root)}")
        found = sorted(p for p in (folder / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if not found:
            raise LabError(f"{folder / name}: no images in this class folder; {layout_help(root)}")
        paths += found
        labels += [label] * len(found)
    return paths, np.asarray(labels, "int32")


def _read(paths, labels, size, root, skipped, limit=None):
    """The images of `paths` (at most `limit` per class), unreadable files skipped: (x, y)."""
    x, y, kept = [], [], {}
    for path, label in zip(paths, labels):
        if limit is not None and kept.get(label, 0) >= limit:
            continue
        image = read_image(path, size)
        if image is None:
            skipped.append(str(path))
            continue
        x.append(image)
        y.append(label)
        kept[label] = kept.get(label, 0) + 1
    for label in np.unique(labels):
        if not kept.get(label):
            raise LabError(f"{Path(paths[list(labels).index(label)]).parent}: no readable images in this class folder; {layout_help(root)}")
    return np.stack(x), np.asarray(y, "int32")


def split_indices(labels, val_split, seed=0, names=None):
    """A seeded split per class: (train indices, val indices), about `val_split` of each class held out.

    Every class keeps at least one item on each side; a class with a single
    item cannot, and is a LabError (`names`: the class names, for the message).
    """
    if not 0.0 < val_split < 1.0:
        raise LabError(f"--val-split {val_split}: must be between 0 and 1 (exclusive)")
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < 2:
            name = names[label] if names is not None else label
            raise LabError(f"class {name!r} has a single image: it cannot be both trained on and held out; "
                           f"add images or give a val/ folder")
        val += list(members[: min(max(int(round(len(members) * val_split)), 1), len(members) - 1)])
    val = np.sort(np.asarray(val, int))
    return np.setdiff1d(np.arange(len(labels)), val), val


def split(x, y, val_split, seed=0):
    """Arrays split per class by `split_indices`: x_train, y_train, x_val, y_val."""
    train, val = split_indices(y, val_split, seed)
    return x[train], y[train], x[val], y[val]


def load_image_folder(root, image_size=224, val_split=0.2, seed=0, crop_margin=CROP_MARGIN, max_per_class=None,
                      splits=("train", "val")):
    """Read an image folder into an ImageData (see the module docstring for the layouts).

    Args:
        root: `root/train/<class>` and `root/val/<class>`, or `root/<class>`.
        image_size: the model's input side; images are loaded at
            `load_size(image_size, crop_margin)`.
        val_split: fraction of each class held out when there is no `val/` folder.
        max_per_class: keep at most this many images per class and split (quick runs).
        splits: the splits to read; ("val",) reads the validation images only
            (the train arrays are then empty).
    """
    root = Path(root)
    if not root.is_dir():
        raise LabError(f"{root}: no such folder; {layout_help(root)}")
    size, skipped = load_size(image_size, crop_margin), []
    empty = (np.zeros((0, size, size, 3), "float32"), np.zeros(0, "int32"))
    if (root / "train").is_dir() and (root / "val").is_dir():  # each split read only if asked for
        classes = _class_folders(root / "train", root)
        x_train, y_train = _read(*_files(root / "train", classes, root), size, root, skipped, max_per_class) if "train" in splits else empty
        x_val, y_val = _read(*_files(root / "val", classes, root), size, root, skipped, max_per_class) if "val" in splits else empty
    else:  # every readable image, then a split per class
        folder = root / "train" if (root / "train").is_dir() else root
        classes = _class_folders(folder, root)
        x, y = _read(*_files(folder, classes, root), size, root, skipped)
        train, val = split_indices(y, val_split, seed, classes)
        keep = lambda part: part[np.concatenate([part[y[part] == c][:max_per_class] for c in range(len(classes))])]  # noqa: E731
        train, val = (keep(train), keep(val)) if max_per_class is not None else (train, val)
        x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
    if skipped:
        print(f"warning: skipped {len(skipped)} file(s) that are not readable images: {', '.join(skipped)}",
              file=sys.stderr, flush=True)
    return ImageData(x_train, y_train, x_val, y_val, classes, str(root), skipped)


def embedded_two_class(image_size=224, per_class=60, val_split=0.25, seed=0, crop_margin=CROP_MARGIN):
    """Two classes cut from scikit-learn's two sample photos: china.jpg and flower.jpg.

    Each image is a random square crop (a quarter to all of the photo's
    height), flipped at random: a small real-photo set that needs no network.
    Easy (two photos), so it checks that a pipeline works, not how good a model is.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    names = [Path(f).stem for f in photos.filenames]  # ['china', 'flower']
    size, rng = load_size(image_size, crop_margin), np.random.default_rng(seed)
    x, y = [], []
    for label, photo in enumerate(photos.images):  # (427, 640, 3) uint8
        height, width = photo.shape[:2]
        for _ in range(per_class):
            side = int(rng.integers(height // 4, height + 1))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size), Image.BILINEAR)
            crop = np.asarray(crop, "float32")
            x.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
            y.append(label)
    x_train, y_train, x_val, y_val = split(np.stack(x), np.asarray(y, "int32"), val_split, seed)
    return ImageData(x_train, y_train, x_val, y_val, names, "embedded china/flower crops")


def augmentation(image_size, crop=True, flip="horizontal", rotation=0.0, zoom=0.0, contrast=0.0, seed=0, input_size=None):
    """The augmentation pipeline (course II.A): Keras preprocessing layers, active in training only.

    Args:
        image_size: output side. `crop=True`: a random `image_size` window of
            each image in training, the centre one at inference; `crop=False`: a resize.
        flip: "horizontal", "vertical", "horizontal_and_vertical" or "none".
        rotation: the largest rotation, as a fraction of a full turn (0.05 = 18 degrees).
        zoom: the largest zoom in or out, as a fraction of the side.
        contrast: the largest contrast change, as a fraction.
        input_size: the side of the images it gets (by default `load_size(image_size)`).

    Returns:
        a keras.Sequential (B, S, S, 3) -> (B, image_size, image_size, 3), values kept in [0, 255].
    """
    import keras
    from keras import layers

    flips = ("horizontal", "vertical", "horizontal_and_vertical", "none")
    if flip not in flips:
        raise LabError(f"--flip {flip!r}: choose one of {', '.join(flips)}")
    for name, value in (("rotation", rotation), ("zoom", zoom), ("contrast", contrast)):
        if not 0.0 <= value < 1.0:
            raise LabError(f"--{name} {value}: must be in [0, 1)")
    if crop:
        # A random window of each image in training, the centre one at inference: a shift of up to the margin
        # (whole pixels), then the centre crop. Keras' RandomCrop would draw one window for the whole batch
        # (torchvision's RandomCrop draws one per image), and its dynamic slice hangs XLA's CPU collectives
        # under --distribute (8 virtual devices).
        side = input_size or load_size(image_size)
        shift = (side - image_size) / 2 / side  # the margin each side, as a fraction of the input's side
        steps = [layers.RandomTranslation(shift, shift, fill_mode="reflect", interpolation="nearest", seed=seed),
                 layers.CenterCrop(image_size, image_size)]
    else:
        steps = [layers.Resizing(image_size, image_size)]
    if flip != "none":
        steps.append(layers.RandomFlip(flip, seed=seed + 1))
    if rotation:
        steps.append(layers.RandomRotation(rotation, fill_mode="reflect", seed=seed + 2))
    if zoom:
        steps.append(layers.RandomZoom(zoom, fill_mode="reflect", seed=seed + 3))
    if contrast:
        steps.append(layers.RandomContrast(contrast, value_range=(0, 255), seed=seed + 4))
    if keras.backend.backend() == "jax":
        # Keras flags its affine layers (translation, rotation, zoom) as not jittable on every backend, for
        # TensorFlow's ImageProjectiveTransformV3, which has no XLA kernel; jit_compile="auto" then trains the whole
        # model eagerly, op by op (the fine-tuning lab's ResNet18 on jax). On jax they compile.
        for step in steps:
            step.supports_jit = True
    return keras.Sequential(steps, name="augmentation")


def imagenet_normalization(name="imagenet_normalization"):
    """(x / 255 - mean) / std per channel, as ImageNet-pretrained presets expect (the handout's baseline)."""
    from keras import layers

    mean = [255.0 * m for m in IMAGENET_MEAN]
    variance = [(255.0 * s) ** 2 for s in IMAGENET_STD]
    return layers.Normalization(mean=mean, variance=variance, name=name)


def augmented_samples(images, augment, copies=4):
    """Each of `images` followed by `copies` augmented versions: (N * (1 + copies), S, S, 3) in [0, 1]."""
    from keras import ops

    rows = []
    for image in images:
        batch = np.repeat(image[None], copies, axis=0)
        shown = ops.convert_to_numpy(augment(batch, training=True))
        original = ops.convert_to_numpy(augment(image[None], training=False))
        rows += [original[0], *shown]
    return np.clip(np.stack(rows) / 255.0, 0.0, 1.0)


def augmentation_figure(images, augment, class_names=None, labels=None, copies=4):
    """A grid: per row, one image (as the model sees it at inference) and `copies` augmented versions."""
    from kcourse import plots

    grid = augmented_samples(images, augment, copies)
    titles = []
    for i in range(len(images)):
        name = class_names[labels[i]] if class_names is not None and labels is not None else f"image {i}"
        titles += [name] + [f"augmented {k + 1}" for k in range(copies)]
    return plots.image_grid(grid, titles, ncols=1 + copies)


def embedded_dahlia_or_not(image_size=224, per_class=150, val_split=0.3, seed=0, crop_margin=CROP_MARGIN):
    """Dahlia / not dahlia: a harder two-class set from scikit-learn's two sample photos (no network).

    The offline stand-in for hot dog / not hot dog. "dahlia": square crops of
    flower.jpg that show a good part of its orange dahlia (at least 15% of the
    crop's pixels are petals); "not-dahlia": crops of the same photo's green
    background (no petal) and of china.jpg, whose orange-red temple roofs keep
    colour alone from deciding. Crops of 15% to 60% of the photo's height,
    flipped at random, with a random brightness and contrast: the classes
    differ in texture and shape as much as in colour, so that augmentation
    has something to show. Half the "not" crops come from each photo.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images  # (427, 640, 3) uint8 each
    f = flower.astype("int32")
    petals = (f[..., 0] > 150) & (f[..., 0] - f[..., 2] > 70) & (f[..., 1] > 70)  # orange: the dahlias
    integral = np.pad(petals.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    size, rng = load_size(image_size, crop_margin), np.random.default_rng(seed)
    height, width = flower.shape[:2]

    def crop(photo, want):  # want: "petals", "no petals" or "any"
        while True:
            side = int(rng.integers(int(0.15 * height), int(0.6 * height) + 1))
            top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
            share = (integral[top + side, left + side] - integral[top, left + side] - integral[top + side, left]
                     + integral[top, left]) / side**2
            if want == "any" or (want == "petals" and share >= 0.15) or (want == "no petals" and share == 0):
                break
        image = Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size), Image.BILINEAR)
        image = np.asarray(image, "float32")
        image = image[:, ::-1] if rng.random() < 0.5 else image
        mean = image.mean()
        image = (image - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.7, 1.3)  # contrast, brightness
        return np.clip(image, 0, 255)

    x = [crop(flower, "petals") for _ in range(per_class)]
    x += [crop(flower, "no petals") for _ in range(per_class // 2)]
    x += [crop(china, "any") for _ in range(per_class - per_class // 2)]
    y = np.repeat(np.asarray([0, 1], "int32"), per_class)
    x_train, y_train, x_val, y_val = split(np.stack(x).astype("float32"), y, val_split, seed)
    return ImageData(x_train, y_train, x_val, y_val, ["dahlia", "not-dahlia"], "embedded dahlia / not-dahlia crops")
