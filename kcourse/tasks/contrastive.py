"""Lecture 004's CLIP, trained from scratch: two encoders, one space, the symmetric InfoNCE loss.

CLIP (Radford et al. 2021) trains an image encoder and a text encoder
together on captioned images, so that an image lands near its own caption
and far from the batch's others; a class is then named by its text alone
(zero-shot). The clip lab uses keras-hub's pretrained CLIP; this one shows
the training, at a scale a laptop CPU trains in a couple of minutes:

- the images: two handwritten digits side by side, each cropped to its
  central 24 x 24 pixels and halved to 12 x 12 (a 12 x 24 canvas: a CPU
  trains it in seconds), captioned
  "a three and a seven" (no label anywhere); 9 of the 45 pairs are never
  shown together in training (HELD_OUT: a + b divisible by 5), though every
  digit is, in other pairs;
- the model (kcourse.models.tiny_clip): a small CNN whose last 1x1
  convolution gives each 4x4 patch an embedding (the image's is their mean),
  a text encoder (word embeddings, one kcourse EncoderBlock, the mean of the
  words), and kcourse.layers.ContrastiveLogits: cosine similarities times a
  learnt inverse temperature, trained with `contrastive_loss`, the
  cross-entropy of each image against the batch's captions and of each
  caption against its images, averaged;
- zero-shot (004:26): held-out images of the unseen pairs, classified among
  the 45 pairs' prompts, against a supervised classifier of the same image
  encoder trained on the same images with the 36 seen pairs as labels (it
  has no output for a pair it never saw); per-pair accuracy and the
  similarity matrix as a figure;
- text-to-patch maps (004:30): "a seven" against each patch embedding, a
  map that finds the digit named: zero-shot localisation, the idea behind
  the VLMs' grounding, at the lab's scale.

    python -m kcourse.tasks.contrastive              # 12,000 captioned pairs, 8 epochs
    python -m kcourse.tasks.contrastive --quick      # 4,000 pairs, 6 epochs: the lesson already
    python -m kcourse.tasks.contrastive --data mnist.npz

The digits are MNIST's (keras.datasets, cached), offline scikit-learn's
embedded ones, said in one line. The run folder gets config.json,
history_<model>.csv and <model>.keras (reload with keras.saving.load_model
after `import kcourse.models`), metrics.json, summary.csv, zero_shot.csv,
the learning curves, similarity.png and patch_maps.png.
"""

import itertools

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.contrastive: build_parser(), then run_lab(args)

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOCAB = ("[PAD]", "a", "and", *NAMES)  # id 0 pads
MAX_LEN = 5  # "a three and a seven"
PAIRS = tuple(itertools.combinations(range(10), 2))  # the 45 unordered pairs of different digits
HELD_OUT = tuple(p for p in PAIRS if sum(p) % 5 == 0)  # 9 pairs never captioned in training
SEEN = tuple(p for p in PAIRS if p not in HELD_OUT)  # 36
PARITY = {"accuracy, held-out pairs": 0.15}
KEY_FIGURES = ("similarity", "patch_maps")


# ---------------------------------------------------------------- the captioned images
def shrink(x):
    """(N, 28, 28, 1) digits -> (N, 12, 12, 1): the central 24 x 24 pixels, averaged 2 x 2."""
    return x[:, 2:26, 2:26].reshape(len(x), 12, 2, 12, 2, x.shape[-1]).mean(axis=(2, 4))


def canvases(x, y, n, pairs, seed=0):
    """`n` images of two digits side by side, each pair drawn from `pairs`, its order at random.

    x: (N, 28, 28, 1) digits in [0, 1], y: (N,) their classes. Returns
    images (n, 12, 24, 1) (`shrink`) and digits (n, 2): the left one, the right one.
    """
    x = shrink(x)
    rng = np.random.default_rng(seed)
    by_digit = [np.flatnonzero(y == d) for d in range(10)]
    chosen = np.array(pairs)[rng.integers(len(pairs), size=n)]  # (n, 2)
    flip = rng.random(n) < 0.5
    digits = np.where(flip[:, None], chosen[:, ::-1], chosen)
    left = np.array([rng.choice(by_digit[d]) for d in digits[:, 0]])
    right = np.array([rng.choice(by_digit[d]) for d in digits[:, 1]])
    return np.concatenate([x[left], x[right]], axis=2).astype("float32"), digits


def caption(left, right=None):
    """'a three and a seven' (or 'a seven' for one digit)."""
    return f"a {NAMES[left]}" if right is None else f"a {NAMES[left]} and a {NAMES[right]}"


def tokenize(texts):
    """Captions -> (N, MAX_LEN) int32 ids of VOCAB, 0-padded; a word outside VOCAB is a one-line error."""
    ids = np.zeros((len(texts), MAX_LEN), "int32")
    for i, text in enumerate(texts):
        words = text.split()
        unknown = [w for w in words if w not in VOCAB]
        if unknown or len(words) > MAX_LEN:
            raise cli.LabError(f"caption {text!r}: use at most {MAX_LEN} words among {', '.join(VOCAB[1:])}")
        ids[i, : len(words)] = [VOCAB.index(w) for w in words]
    return ids


def pair_index(digits):
    """(n, 2) digits -> (n,) the index of their unordered pair in PAIRS: the caption's id."""
    lookup = {p: i for i, p in enumerate(PAIRS)}
    return np.array([lookup[tuple(sorted(d))] for d in digits.tolist()])


# ---------------------------------------------------------------- zero-shot, from the trained encoders
def embed_texts(model, texts):
    """(len(texts), E), L2-normalised."""
    from kcourse.training import predict

    t = predict(model.get_layer("text_encoder"), tokenize(texts), batch_size=256)
    return t / np.linalg.norm(t, axis=-1, keepdims=True)


def embed_images(model, images):
    """The images' embeddings (N, E) and their patches' (N, h, w, E), L2-normalised."""
    from kcourse.training import predict

    pooled, patches = predict(model.get_layer("image_encoder"), images, batch_size=256)
    return (pooled / np.linalg.norm(pooled, axis=-1, keepdims=True),
            patches / np.linalg.norm(patches, axis=-1, keepdims=True))


def zero_shot(model, images, pairs=PAIRS):
    """Cosine similarity of each image with the prompt of each pair: (N, len(pairs)); argmax = the prediction."""
    prompts = [caption(a, b) for a, b in pairs]
    pooled, _ = embed_images(model, images)
    return pooled @ embed_texts(model, prompts).T


def patch_maps(model, images, digits):
    """004:30: for each image, the map of its left digit's prompt ("a seven") and of its right one's against
    every patch embedding: (N, 2, h, w) cosine similarities."""
    _, patches = embed_images(model, images)  # (N, h, w, E)
    words = embed_texts(model, [caption(d) for d in range(10)])  # (10, E)
    return np.stack([np.einsum("nhwe,ne->nhw", patches, words[digits[:, k]]) for k in (0, 1)], axis=1)


def found_where(maps):
    """The share of maps that peak on the half of the image where their digit is (chance: 0.5)."""
    half = maps.shape[-1] / 2
    columns = maps.reshape(*maps.shape[:2], -1).argmax(-1) % maps.shape[-1]  # (N, 2): the peak's column
    return float(np.mean(np.concatenate([columns[:, 0] < half, columns[:, 1] >= half])))


def per_pair(true, predicted, pairs):
    """{pair caption: accuracy} over the test images of each pair in `pairs` (PAIRS indices in `true`)."""
    return {caption(*p): float(np.mean(predicted[true == PAIRS.index(p)] == PAIRS.index(p))) for p in pairs}


# ---------------------------------------------------------------- figures
def similarity_figure(similarity, true, clip_right, supervised_right):
    """One held-out image per unseen pair against the unseen pairs' prompts, and the per-pair accuracies."""
    import matplotlib.pyplot as plt

    from kcourse import plots

    held = [PAIRS.index(p) for p in HELD_OUT]
    shown = [int(np.flatnonzero(true == k)[0]) for k in held]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1, 1.2]})
    image = left.imshow(similarity[np.ix_(shown, held)], cmap="viridis")
    labels = [f"{NAMES[a]}+{NAMES[b]}" for a, b in HELD_OUT]
    left.set(xticks=range(len(held)), yticks=range(len(held)), xlabel="prompt", ylabel="image (one per unseen pair)",
             title="cosine similarity, pairs never seen together")
    left.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    left.set_yticklabels(labels, fontsize=8)
    fig.colorbar(image, ax=left, fraction=0.046)
    at = np.arange(len(held))
    right.bar(at - 0.2, [clip_right[caption(*p)] for p in HELD_OUT], 0.4, label="tiny CLIP, zero-shot (45 prompts)")
    right.bar(at + 0.2, [supervised_right[caption(*p)] for p in HELD_OUT], 0.4, label="supervised (36 seen pairs)")
    right.axhline(1 / len(PAIRS), color="grey", ls=":", label="chance (1/45)")
    right.set(xticks=at, ylim=(0, 1), ylabel="accuracy", title="held-out pairs, per pair")
    right.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    right.legend(fontsize=8)
    return plots.tidy(fig, right)


def maps_figure(images, digits, maps, count=4):
    """Each image, then its two prompts' text-to-patch maps."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(count, 3, figsize=(8, 1.5 * count + 0.6), squeeze=False)
    for i in range(count):
        axes[i, 0].imshow(images[i, ..., 0], cmap="gray")
        for k in (0, 1):
            axes[i, 1 + k].imshow(maps[i, k], cmap="magma")
            axes[i, 1 + k].set_title(f"\"{caption(digits[i, k])}\"", fontsize=9)
        for ax in axes[i]:
            ax.set(xticks=[], yticks=[])
    fig.suptitle("text-to-patch similarity: where is the digit named?", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the handout's questions, answered by the run
def contrastive_training(run):
    scores = run.metrics.get("zero-shot")
    if scores is None:
        return None
    t = run.metrics["temperature"]
    return (f"Trained from scratch for {run.config['epochs']} epochs on {scores['train images']:,} captioned images of "
            f"the {len(SEEN)} seen pairs (no label: the caption is the target), the tiny CLIP names the {len(HELD_OUT)} pairs "
            f"it never saw together from their prompts alone: {scores['zero-shot held out']:.1%} of their "
            f"{scores['held-out images']:,} test images right among {len(PAIRS)} prompts (chance {1 / len(PAIRS):.1%}). "
            f"The supervised classifier of the same encoder, trained on the same images with the seen pairs as labels, "
            f"gets {scores['supervised seen']:.1%} of the seen pairs' test images (CLIP zero-shot: "
            f"{scores['zero-shot seen']:.1%}) and {scores['supervised held out']:.1%} of the unseen ones: it has no output "
            f"for them. The learnt temperature went from {t['start']:.3f} to {t['end']:.3f} (similarity.png)."
            + (" On the seen pairs too the captions teach more than the labels: a caption's words are shared with "
               "other pairs, a label is one class among 36 with nothing in common." if scores["zero-shot seen"] >
               scores["supervised seen"] else ""))


def zero_shot_localisation(run):
    scores = run.metrics.get("zero-shot")
    if scores is None:
        return None
    return (f"Text-to-patch: the prompt of one digit (\"a seven\") against each patch embedding peaks on the half of the "
            f"image where that digit is in {scores['map on the digit']:.1%} of the held-out pairs' maps (chance 50%), "
            f"though no caption ever said where a digit was: the shared space localises, the idea behind the VLMs' "
            f"grounding (patch_maps.png).")


HANDOUT = (
    Item("004:26", "CLIP : deux encodeurs, un espace partagé, apprentissage contrastif sur 400 M de paires",
         "CLIP's contrastive training, shown from scratch.", contrastive_training, "kcourse.models.tiny_clip.contrastive_loss"),
    Item("004:30", "VLM : VQA, captioning, localisation", "Beyond classification: zero-shot localisation from text.",
         zero_shot_localisation, "kcourse.tasks.contrastive.patch_maps"),
)


def build_parser():
    """The lab's options: the shared ones, the digits, the number of captioned images."""
    parser = cli.lab_parser("contrastive", __doc__, epochs=8, batch_size=64, learning_rate=3e-3,
                            quick={"train_size": 4000, "test_size": 600, "epochs": 6})
    parser.add_argument("--data", metavar="NPZ", help="digits in keras' mnist.npz layout (default: MNIST, offline the embedded digits)")
    parser.add_argument("--train-size", type=cli.positive_int, default=12_000,
                        help="captioned training images, seen pairs only (default: %(default)s, 4000 with --quick)")
    parser.add_argument("--test-size", type=cli.positive_int, default=1_800,
                        help="test images, half of them of the held-out pairs (default: %(default)s, 600 with --quick)")
    parser.add_argument("--embed-dim", type=cli.positive_int, default=32, help="the shared space's size (default: %(default)s)")
    parser.add_argument("--width", type=cli.positive_int, default=16,
                        help="channels of the image encoder's first convolution, twice that after (default: %(default)s)")
    return parser


def run_lab(args):
    """The captioned pairs, the tiny CLIP and the supervised classifier trained on them, zero-shot and the
    text-to-patch maps on held-out pairs (what `main` and the notebook run)."""
    run = runs.start("contrastive", args)
    from kcourse.models import build_supervised, build_tiny_clip

    data = datasets.digits(path=args.data, quick=args.quick, seed=args.seed)
    x, digits = canvases(data.x_train, data.y_train, args.train_size, SEEN, args.seed)
    x_val, digits_val = canvases(*data.val, max(args.test_size // 4, args.batch_size), SEEN, args.seed + 1)
    half = args.test_size // 2
    x_seen, digits_seen = canvases(data.x_test, data.y_test, half, SEEN, args.seed + 2)
    x_held, digits_held = canvases(data.x_test, data.y_test, half, HELD_OUT, args.seed + 3)
    texts = tokenize([caption(a, b) for a, b in digits])
    run.note(data_used=data.name, held_out=[caption(*p) for p in HELD_OUT])
    print(f"{data.name}: {len(x):,} captioned pairs of digits, e.g. {caption(*digits[0])!r}; "
          f"{len(HELD_OUT)} pairs never shown together: {', '.join(f'{a}+{b}' for a, b in HELD_OUT)}")

    def clip():
        return build_tiny_clip(len(VOCAB), MAX_LEN, x.shape[1:], args.embed_dim, args.width, args.learning_rate)

    start = float(clip().get_layer("logits").scale())
    val = ({"image": x_val, "text": tokenize([caption(a, b) for a, b in digits_val])}, pair_index(digits_val))
    fitted = run.fit("tiny-clip", clip, ({"image": x, "text": texts}, pair_index(digits)), val)
    model = fitted.model
    seen_index = {PAIRS.index(p): i for i, p in enumerate(SEEN)}
    supervised = run.fit("supervised", lambda: build_supervised(len(SEEN), x.shape[1:], args.embed_dim, args.width,
                                                                args.learning_rate),
                         (x, np.array([seen_index[k] for k in pair_index(digits)])),
                         (x_val, np.array([seen_index[k] for k in pair_index(digits_val)])))

    # zero-shot against the supervised classifier, on the seen and the held-out pairs' test images
    from kcourse.training import predict_classes

    x_test, digits_test = np.concatenate([x_seen, x_held]), np.concatenate([digits_seen, digits_held])
    true = pair_index(digits_test)
    similarity = zero_shot(model, x_test)
    clip_pred = similarity.argmax(1)
    supervised_pred = np.array([PAIRS.index(SEEN[k]) for k in predict_classes(supervised.model, x_test, 256)])
    held = np.isin(true, [PAIRS.index(p) for p in HELD_OUT])
    maps = patch_maps(model, x_held, digits_held)
    scores = {"train images": len(x), "held-out images": int(held.sum()),
              "zero-shot held out": float(np.mean(clip_pred[held] == true[held])),
              "zero-shot seen": float(np.mean(clip_pred[~held] == true[~held])),
              "supervised held out": float(np.mean(supervised_pred[held] == true[held])),
              "supervised seen": float(np.mean(supervised_pred[~held] == true[~held])),
              "map on the digit": found_where(maps)}
    run.save_metrics(**{"zero-shot": scores, "temperature": {"start": 1 / start, "end": 1 / float(model.get_layer("logits").scale())}})
    clip_right, supervised_right = per_pair(true, clip_pred, PAIRS), per_pair(true, supervised_pred, PAIRS)
    run.save_table("zero_shot", [{"pair": caption(*p), "held out": p in HELD_OUT, "tiny CLIP zero-shot": clip_right[caption(*p)],
                                  "supervised": supervised_right[caption(*p)]} for p in PAIRS])
    run.record(fitted, **{"accuracy, held-out pairs": scores["zero-shot held out"], "accuracy, seen pairs": scores["zero-shot seen"],
                          "map on the digit": scores["map on the digit"]})
    run.record(supervised, **{"accuracy, held-out pairs": scores["supervised held out"],
                              "accuracy, seen pairs": scores["supervised seen"]})
    run.savefig(similarity_figure(similarity, true, clip_right, supervised_right), "similarity")
    run.savefig(maps_figure(x_held, digits_held, maps), "patch_maps")
    run.outputs.update(model=model, supervised=supervised.model, x_test=x_test, digits_test=digits_test, true=true,
                       similarity=similarity, held=held, maps=maps, x_held=x_held, digits_held=digits_held)
    return run.finish(f"A tiny CLIP trained from scratch on captioned pairs of digits ({data.name})", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
