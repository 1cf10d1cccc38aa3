"""The data sets several labs read, each through the ecosystem's loader, cached, with an offline stand-in.

    digits = datasets.digits()            # MNIST (keras.datasets), offline scikit-learn's 8x8 digits: mnist, fcn
    photos = datasets.ants_bees(224)      # the Hymenoptera ants and bees, offline china/flower crops: finetune, clip
    photos = datasets.hotdogs(224)        # d2l's hot dogs, offline dahlia / not-dahlia crops: vit, clip
    corpus = datasets.sentences(20_000)   # the synthetic corpus as [CLS]-first token ids: transformer, attention

Offline, each says so in one line (kcourse.downloads.offline_notice) and
returns its stand-in, named as such in `.name`.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kcourse import downloads, images, text
from kcourse.errors import LabError
from kcourse.splits import Splits

DIGITS_SOURCES = ("auto", "mnist", "digits")


@dataclass
class Digits(Splits):
    """Digit images (N, 28, 28, 1) float32 in [0, 1] with int32 labels: train, validation (held out of train) and test."""

    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    def __repr__(self):
        return f"Digits({self.name!r}: {len(self.x_train):,} train / {len(self.x_val):,} val / {len(self.x_test):,} test)"


def digits(source="auto", path=None, quick=False, seed=0, val_fraction=1 / 12):
    """The digits: MNIST (60,000 / 10,000, downloaded once), a local .npz, or scikit-learn's embedded ones.

    Args:
        source: "mnist" (keras.datasets, cached; no fallback), "digits" (the
            embedded 8x8 digits, made to look like MNIST) or "auto" (MNIST,
            else the embedded digits, saying so in one line).
        path: a local `.npz` in keras' mnist.npz layout (x_train, y_train,
            x_test, y_test); overrides `source`.
        quick: a slice (12,000 train / 1,000 val / 1,000 test) for a smoke run.
        val_fraction: the end of the training digits held out for validation
            (5,000 of MNIST's 60,000), so that the test digits are seen once, at the end.
    """
    if path is not None:
        (x_train, y_train), (x_test, y_test) = _read_npz(Path(path))
        name, val = str(path), None
    elif source in ("auto", "mnist"):
        import keras

        if source == "mnist":  # asked for by name: no fallback, and no notice of one
            try:
                loaded = keras.datasets.mnist.load_data()
            except Exception as error:
                if not downloads.is_network_error(error):
                    raise
                raise LabError("MNIST could not be downloaded (offline?); give a local copy with --data mnist.npz") from None
        else:
            loaded = downloads.download_or_none(keras.datasets.mnist.load_data, "MNIST", "scikit-learn's embedded 8x8 digits")
        if loaded:
            ((x_train, y_train), (x_test, y_test)), name, val = loaded, "mnist", None
        else:
            (x_train, y_train), val, (x_test, y_test) = embedded_digits(seed, val_fraction=val_fraction)
            name = "digits"
    elif source == "digits":
        (x_train, y_train), val, (x_test, y_test) = embedded_digits(seed, val_fraction=val_fraction)
        name = "digits"
    else:
        raise LabError(f"unknown --dataset {source!r}: choose one of {', '.join(DIGITS_SOURCES)}")

    if val is None:  # the end of the training digits
        n_val = max(1, int(round(len(x_train) * val_fraction)))
        val, x_train, y_train = (x_train[-n_val:], y_train[-n_val:]), x_train[:-n_val], y_train[:-n_val]
    (x_val, y_val) = val
    if quick:
        x_train, y_train, x_val, y_val = x_train[:12000], y_train[:12000], x_val[:1000], y_val[:1000]
        x_test, y_test = x_test[:1000], y_test[:1000]
    prepare = lambda x: (np.asarray(x, "float32") / 255.0)[..., None]  # noqa: E731  (N, 28, 28, 1)
    label = lambda y: np.asarray(y, "int32")  # noqa: E731
    return Digits(prepare(x_train), label(y_train), prepare(x_val), label(y_val), prepare(x_test), label(y_test), name)


def embedded_digits(seed=0, test_fraction=0.2, val_fraction=1 / 12, copies=10):
    """scikit-learn's 1,797 real 8x8 digits, made to look like MNIST: (train, val, test), each (images, labels).

    Each 0-16 image is resized to 16x16 and placed in a 28x28 frame of 0-255
    values at a random offset of up to 6 pixels from the centre (seeded):
    handwriting never sits at exactly the same place, and this is where the
    CNN's shared filters beat the MLP's per-pixel weights (at +-4 px the MLP
    came within a point of the CNN after a few epochs).
    Each digit is placed `copies` times at different offsets (13,170 train /
    1,200 val / 3,600 test images by default); a digit of one split is never
    in another, whatever its offset.
    """
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = (digits.images * (255.0 / 16.0)).astype("uint8")  # (1797, 8, 8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((16, 16), Image.BILINEAR)) for im in small])
    train, test, y_train, y_test = train_test_split(big, digits.target, test_size=test_fraction, random_state=seed,
                                                    stratify=digits.target)
    train, val, y_train, y_val = train_test_split(train, y_train, test_size=val_fraction, random_state=seed, stratify=y_train)
    rng = np.random.default_rng(seed)

    def place(digits_16, labels):  # (N, 16, 16) -> (N * copies, 28, 28), shuffled
        order = rng.permutation(len(digits_16) * copies)
        digits_16, labels = np.repeat(digits_16, copies, axis=0)[order], np.repeat(labels, copies)[order]
        images = np.zeros((len(digits_16), 28, 28), "uint8")
        for image, digit, (dy, dx) in zip(images, digits_16, rng.integers(0, 13, size=(len(images), 2))):
            image[dy : dy + 16, dx : dx + 16] = digit  # offsets 0..12: +-6 px
        return images, labels

    return place(train, y_train), place(val, y_val), place(test, y_test)


def _read_npz(path):
    expected = "an .npz file with arrays x_train (N, 28, 28), y_train (N,), x_test (M, 28, 28), y_test (M,)"
    if not path.is_file():
        raise LabError(f"--data {path}: no such file; expected {expected}")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path) as f:
            missing = [k for k in keys if k not in f.files]
            arrays = [f[k] for k in keys if k in f.files]
    except Exception as error:
        raise LabError(f"--data {path}: not a readable .npz ({error}); expected {expected}") from None
    if missing:
        raise LabError(f"--data {path}: array {missing[0]!r} is missing; expected {expected}")
    x_train, y_train, x_test, y_test = arrays
    if x_train.shape[1:] != (28, 28) or x_test.shape[1:] != (28, 28) or len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise LabError(
            f"--data {path}: got x_train {x_train.shape}, y_train {y_train.shape}, "
            f"x_test {x_test.shape}, y_test {y_test.shape}; expected {expected}"
        )
    return (x_train, y_train), (x_test, y_test)


def ants_bees(image_size=224, data_dir=None, val_split=0.2, quick=False, seed=0, crop_margin=images.CROP_MARGIN,
              splits=("train", "val")):
    """Ants and bees (the PyTorch tutorial's Hymenoptera set: 244 train / 153 val photos) as an images.ImageData.

    Photos in [0, 255], loaded at `images.load_size(image_size, crop_margin)`.
    `data_dir`: any image folder instead; offline, random crops of
    scikit-learn's two sample photos (china.jpg vs flower.jpg). `quick`: at
    most 16 images per class and split; `splits`: ("val",) reads the validation photos only.
    """
    limit = 16 if quick else None
    if data_dir is not None:
        return images.load_image_folder(data_dir, image_size, val_split, seed, crop_margin, limit, splits)
    root = downloads.download_or_none(
        downloads.hymenoptera, "the Hymenoptera ants/bees photos",
        "an embedded two-class set (random crops of scikit-learn's two sample photos, china.jpg vs flower.jpg)")
    if root is None:
        return images.embedded_two_class(image_size, 12 if quick else 60, seed=seed, crop_margin=crop_margin)
    return images.load_image_folder(root, image_size, val_split, seed, crop_margin, limit, splits)


def hotdogs(image_size=224, data_dir=None, val_split=0.2, quick=False, seed=0, crop_margin=images.CROP_MARGIN,
            splits=("train", "val")):
    """Hot dog / not hot dog (d2l's hotdog.zip: 2,000 train / 1,000 test photos, the test ones as validation).

    The handout names a copy on a hub; d2l's zip is the same task, fetched with
    keras.utils.get_file and checked against d2l's SHA-1. `data_dir`: either
    copy, or any image folder; offline, dahlia / not-dahlia crops of
    scikit-learn's two sample photos. `quick`: at most 24 images per class and
    split (offline: 64 train / 32 val).
    """
    limit = 24 if quick else None
    if data_dir is not None:
        return images.load_image_folder(data_dir, image_size, val_split, seed, crop_margin, limit, splits)
    root = downloads.download_or_none(
        downloads.hotdog, "d2l's hot dog / not hot dog photos (hotdog.zip)",
        "an embedded dahlia / not-dahlia set (crops of scikit-learn's two sample photos)")
    if root is None:
        return images.embedded_dahlia_or_not(image_size, 48 if quick else 144, val_split=1 / 3, seed=seed, crop_margin=crop_margin)
    data = images.load_image_folder(root, image_size, val_split, seed, crop_margin, limit, splits)
    data.name = "d2l hotdog (train / test)"
    return data


@dataclass
class Sentences(Splits):
    """The corpus as token ids (N, max_len), [CLS] first, and labels (N,), split train / val; the val sentences' text."""

    val_sentences: list
    vocab: object
    corpus: list


def sentences(n_sentences=20_000, seed=0, max_len=32, vocab=None, val_fraction=0.2):
    """The synthetic corpus's sentences (kcourse.text) as a `Sentences`, split at random into train and validation.

    Does a sentence name a European country? (label 1.) `vocab` (e.g. the word2vec lab's) is used as given;
    otherwise one is built on the corpus. Right padding: [CLS] is always at position 0.
    """
    corpus = text.build_synthetic_corpus(n_sentences, seed)
    if vocab is None:
        vocab = text.Vocabulary.build([text.tokenize(s) for s in corpus])
    x = vocab.encode_batch(corpus, max_len, add_cls=True, padding="right")  # (N, L)
    y = np.array([text.label_from_sentence(s) for s in corpus], "int32")  # (N,)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, int(len(x) * val_fraction))
    val, tr = order[:n_val], order[n_val:]
    return Sentences(x[tr], y[tr], x[val], y[val], [corpus[i] for i in val], vocab, corpus)
