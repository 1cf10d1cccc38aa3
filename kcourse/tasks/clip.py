"""The lectures' last slide: CLIP classifies zero-shot, from the classes' names, with no training.

CLIP (Radford et al., 2021) trains an image encoder and a text encoder so that
an image and its caption land close together in one latent space. To classify
without training, each class name becomes a sentence ("a photo of a bee."),
both sides are encoded and L2-normalised, and each image goes to the class
whose text is nearest by cosine:

    scores = softmax(logit_scale * cos(image, class text))    # (N images, C classes)

Prompt ensembling (the paper's section 3.1.4): each class is said in several
templates ("a photo of the small {}.", "art of the {}." ...); the normalised
text embeddings of the templates are averaged, and the mean renormalised.

- the model: keras-hub's CLIPBackbone and CLIPPreprocessor
  (`clip_vit_base_patch32` by default; `--preset` any other keras-hub CLIP
  preset or handle, a local folder saved with `save_to_preset`, or `tiny`);
- the data: the fine-tuning lab's ants and bees and the ViT lab's hot dogs
  (kcourse.datasets, the loaders those labs use; only the validation photos
  are read and classified), or any folder with `--data-dir`;
- the table: accuracy and macro F1 with one prompt and with the ensemble;
  `--compare RUN_DIR ...` adds the best row of earlier finetune or vit runs on
  the same classes (their fine-tuned ResNet18 and ViT) beside them;
- the figure `zero_shot_<data>.png`: photos with their top prompts and scores.

    python -m kcourse.tasks.clip                        # ants/bees and hot dogs, CLIP ViT-B/32
    python -m kcourse.tasks.clip --quick                # a smoke run in seconds
    python -m kcourse.tasks.clip --dataset hotdog --compare runs/vit-...  runs/finetune-...
    python -m kcourse.tasks.clip --preset clip_vit_large_patch14 --data-dir my_photos
    python -m kcourse.tasks.clip --classes names.txt --templates templates.txt

`--classes FILE`: one readable name per class, one a line in the folders'
(sorted) order, or JSON (a list, or {"folder name": "readable name"}).
`--templates FILE`: one template a line (or a JSON list), each with `{}` where
the name goes; the first is the "single prompt". Offline, one line says so
for each thing that could not be downloaded: the photos become the embedded
sets of those labs, the model a tiny CLIP with random weights (a 2-block ViT
on 32 px and a 2-block text Transformer over a small BPE vocabulary learnt
here from the prompts), which runs every step but whose predictions mean nothing.

The run folder gets config.json (preset, templates, the prompts per class,
logit scale), metrics.json, summary.csv and zero_shot_<data>.png. Nothing is
trained: there is no --epochs, and --batch-size is the encoding batch.
"""

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kcourse import cli, datasets, images, metrics, presets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.clip: build_parser(), then run_lab(args)

PRESET = "clip_vit_base_patch32"
TINY = "tiny"
DATASETS = ("ants-bees", "hotdog")
PARITY = {"val accuracy": 0.05}
KEY_FIGURES = ("zero_shot_ants-bees", "zero_shot_hotdog")
# The CLIP notebook's ("Prompt_Engineering_for_ImageNet") best 7 of its 80 ImageNet templates, after the plain one.
TEMPLATES = (
    "a photo of a {}.",
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
# Folder names as a caption would say them (the embedded offline sets included).
READABLE = {
    "ants": "ant",
    "bees": "bee",
    "hotdog": "hot dog",
    "not-hotdog": "food other than a hot dog",
    "china": "chinese temple",
    "flower": "flower",
    "dahlia": "dahlia flower",
    "not-dahlia": "garden or temple without a dahlia",
}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # of RGB in [0, 1], as OpenAI's CLIP was trained
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TINY_CLIP = dict(image_size=32, patch_size=8, width=32, layers=2, heads=2, mlp=64, projection=16, max_length=32)
TINY_TEXT = ("a tiny CLIP with random weights (32 px, 2-block ViT and text Transformer, width 32, a small BPE vocabulary: "
             "its predictions mean nothing)")


# ---------------------------------------------------------------- the model
@dataclass
class Clip:
    """A CLIP model ready for zero-shot use: keras-hub's backbone and preprocessor, and where they come from.

    `weights` is "pretrained" or "random" (the tiny CLIP); `image_size` and
    `logit_scale` (exp of the learnt temperature, 100 for OpenAI's CLIP) are
    read from the backbone.
    """

    backbone: object
    preprocessor: object
    weights: str
    preset: str
    models: dict = field(default_factory=dict, repr=False)
    embedded: dict = field(default_factory=dict, repr=False)  # {id(images): (images, embeddings)}, the last ones encoded

    @property
    def image_size(self):
        return int(self.backbone.vision_encoder.image_shape[0])

    @property
    def logit_scale(self):
        from keras import ops

        return float(np.exp(ops.convert_to_numpy(self.backbone.clip_head.logit_scale)))

    def encoder(self, side):
        """The image ("image") or text ("text") tower up to the shared space, as a keras Model (made once)."""
        import keras

        if side not in self.models:
            b = self.backbone
            if side == "image":
                images = keras.Input(b.vision_encoder.image_shape, name="images")
                out = b.vision_projection(b.vision_pooler(b.vision_encoder({"images": images})))  # (B, P)
                self.models[side] = keras.Model(images, out, name="image_encoder")
            else:
                tokens = keras.Input((None,), dtype="int32", name="token_ids")
                out = b.text_projection(b.text_pooler(b.text_encoder({"token_ids": tokens}), tokens))  # (B, P)
                self.models[side] = keras.Model(tokens, out, name="text_encoder")
        return self.models[side]


def check_preset(preset):
    """A LabError unless `preset` is `tiny`, a known CLIP preset, a handle (kaggle://, hf://) or a CLIP preset folder
    (the backbone's config.json and the preprocessor's tokenizer.json)."""
    presets.check(preset, "CLIPBackbone", files=("config.json", "tokenizer.json"), also=(TINY,))


def load_model(preset=PRESET, seed=0):
    """A `Clip` from a keras-hub preset (name, handle or local folder), or `tiny`.

    Offline, one line says so and the tiny CLIP is built instead; the tiny
    CLIP, asked for or not, says in that line that its predictions mean nothing.
    """
    from kcourse import system

    check_preset(preset)
    keras_hub = system.keras_hub()  # ~7 s, and imports TensorFlow: only here
    if preset == TINY:
        print(f"model: {TINY_TEXT}", flush=True)
        return build_tiny_clip(seed)

    def load():
        return keras_hub.models.Backbone.from_preset(preset), keras_hub.models.CLIPPreprocessor.from_preset(preset)

    loaded = presets.load(preset, load, TINY_TEXT)
    if loaded is None:
        return build_tiny_clip(seed)
    backbone, preprocessor = loaded
    return Clip(presets.expect(backbone, keras_hub.models.CLIPBackbone, preset), preprocessor, "pretrained", preset)


def bytes_to_unicode():
    """GPT-2's reversible map of the 256 bytes to printable characters, which CLIP's byte-level BPE reads."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def learn_bpe(texts, num_merges=200):
    """Byte-pair encoding learnt on `texts`: the `num_merges` most frequent adjacent pairs, merged in turn.

    Words are split as CLIP does (letters, digits, punctuation), written in
    byte-level characters with `</w>` on the last one. Returns the merges
    ["a b", ...] in the order they were learnt (ties: the pair first in sort order).
    """
    table = bytes_to_unicode()
    words = Counter(w for text in texts for w in re.findall(r"[^\W\d_]+|\d|[^\s\w]+", text.lower()))
    splits = {}
    for word in words:
        chars = [table[b] for b in word.encode("utf-8")]
        splits[word] = [*chars[:-1], chars[-1] + "</w>"]
    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(splits[word], splits[word][1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(" ".join(best))
        for word, parts in splits.items():
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            splits[word] = merged
    return merges


def tiny_vocabulary(texts, num_merges=200):
    """CLIP's vocabulary layout on a small scale: the 256 byte characters, each with `</w>`, the merged
    tokens learnt on `texts`, then <|startoftext|> and <|endoftext|> (the highest id: CLIP's text
    pooler takes the embedding at the argmax of the token ids). Returns (vocabulary, merges)."""
    merges = learn_bpe(texts, num_merges)
    chars = list(bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), *(m.replace(" ", "") for m in merges)]
    vocabulary = {}
    for token in [*tokens, "<|startoftext|>", "<|endoftext|>"]:
        vocabulary.setdefault(token, len(vocabulary))
    return vocabulary, merges


def build_tiny_clip(seed=0, texts=None):
    """A randomly initialised CLIP built from constructor arguments (TINY_CLIP), with its preprocessor.

    The BPE vocabulary is learnt on `texts` (by default the templates filled
    with the readable class names). Its predictions mean nothing: it checks
    that the pipeline runs, offline, in seconds.
    """
    import keras

    from kcourse import system

    keras_hub = system.keras_hub()
    t = TINY_CLIP
    texts = texts or [template.format(name) for template in TEMPLATES for name in READABLE.values()]
    vocabulary, merges = tiny_vocabulary(texts)
    keras.utils.set_random_seed(seed)
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=t["patch_size"], hidden_dim=t["width"], num_layers=t["layers"], num_heads=t["heads"],
        intermediate_dim=t["mlp"], image_shape=(t["image_size"], t["image_size"], 3))
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(vocabulary), embedding_dim=t["width"], hidden_dim=t["width"], num_layers=t["layers"],
        num_heads=t["heads"], intermediate_dim=t["mlp"], max_sequence_length=t["max_length"])
    backbone = keras_hub.models.CLIPBackbone(vision_encoder=vision, text_encoder=text, projection_dim=t["projection"], name="tiny_clip")
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=merges)
    converter = keras_hub.layers.CLIPImageConverter(
        image_size=(t["image_size"], t["image_size"]), scale=[1 / (255 * s) for s in CLIP_STD],
        offset=[-m / s for m, s in zip(CLIP_MEAN, CLIP_STD)], interpolation="bicubic")
    preprocessor = keras_hub.models.CLIPPreprocessor(tokenizer, converter, sequence_length=t["max_length"])
    return Clip(backbone, preprocessor, "random", TINY)


# ---------------------------------------------------------------- data and prompts
def load_data(names=DATASETS, data_dir=None, image_size=224, val_split=0.2, quick=False, seed=0):
    """{name: images.ImageData} of the validation photos only, each square at `image_size` (centre crop), in [0, 255].

    `names`: "ants-bees" (the Hymenoptera zip, offline its embedded
    china/flower crops) and "hotdog" (d2l's hot dogs, offline the embedded
    dahlia set), read by kcourse.datasets; `data_dir`: any image folder
    instead (its name is the key). Only the validation photos are classified,
    so only they are read (an embedded stand-in is made whole).
    """
    loaders = {"ants-bees": datasets.ants_bees, "hotdog": datasets.hotdogs}
    if data_dir is not None:
        return {Path(data_dir).name: images.load_image_folder(data_dir, image_size, val_split, seed, 0.0, 16 if quick else None, ("val",))}
    for name in names:
        if name not in loaders:
            raise cli.LabError(f"--dataset {name}: choose among {', '.join(DATASETS)}, or give --data-dir")
    return {name: loaders[name](image_size, None, val_split, quick, seed, crop_margin=0.0, splits=("val",)) for name in names}


def read_list(path, option):
    """A text file (one entry a line, blank lines and # comments skipped) or a JSON list / object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = getattr(error, "strerror", None) or type(error).__name__
        raise cli.LabError(f"{option} {path}: cannot read it ({why}); give a text file, one entry a line, or a JSON list") from None
    if path.suffix == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise cli.LabError(f"{option} {path}: not valid JSON ({error.msg}, line {error.lineno})") from None
        if not isinstance(value, (list, dict)) or not all(isinstance(v, str) for v in (value.values() if isinstance(value, dict) else value)):
            raise cli.LabError(f"{option} {path}: expected a JSON list of strings (or an object of strings)")
        return value
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_templates(path):
    """The templates of `--templates FILE`, each with one `{}`; LabError otherwise."""
    templates = read_list(path, "--templates")
    if isinstance(templates, dict) or not templates:
        raise cli.LabError(f"--templates {path}: no templates; give one a line (or a JSON list), each with {{}} for the class name")
    for template in templates:
        if template.count("{}") != 1:
            raise cli.LabError(f"--templates {path}: {template!r} must hold exactly one {{}} where the class name goes, e.g. 'a photo of a {{}}.'")
    return list(templates)


def class_prompts(class_names, names=None, source="--classes"):
    """The readable name of each class: from `names` (a list in class order, or {folder: name}), else READABLE.

    A list of the wrong length or a mapping that misses a class is a LabError.
    """
    if names is None:
        return [READABLE.get(c, c.replace("_", " ").replace("-", " ")) for c in class_names]
    if isinstance(names, dict):
        missing = [c for c in class_names if c not in names]
        if missing:
            raise cli.LabError(f"{source}: no name for the class(es) {', '.join(missing)} of the data (classes: {', '.join(class_names)})")
        return [names[c] for c in class_names]
    if len(names) != len(class_names):
        raise cli.LabError(f"{source}: {len(names)} names for the {len(class_names)} classes of the data ({', '.join(class_names)}); "
                           f"give one a line in that order, or a JSON {{\"folder\": \"name\"}}")
    return list(names)


# ---------------------------------------------------------------- zero-shot
def encode_images(model, x, batch_size=32, chunk=256):
    """Image embeddings (N, P), not normalised: the preset's image converter (resize, CLIP mean/std), then the image tower.

    The last images encoded are kept on the model, so that each prompt set is scored against the same embeddings.
    """
    from keras import ops

    from kcourse.training import predict

    if id(x) in model.embedded:
        return model.embedded[id(x)][1]
    out = []
    for start in range(0, len(x), chunk):
        pixels = ops.convert_to_numpy(model.preprocessor.image_converter(x[start : start + chunk]))  # (n, S, S, 3)
        out.append(predict(model.encoder("image"), pixels, batch_size))
    embeddings = np.concatenate(out).astype("float32")
    model.embedded.clear()
    model.embedded[id(x)] = (x, embeddings)
    return embeddings


def encode_prompts(model, names, templates=TEMPLATES, batch_size=64):
    """Text embeddings (C, T, P), not normalised: every template filled with every class name, tokenised, encoded."""
    from keras import ops

    from kcourse.training import predict

    prompts = [template.format(name) for name in names for template in templates]
    tokens = ops.convert_to_numpy(model.preprocessor({"prompts": prompts, "images": None})["token_ids"])  # (C * T, L)
    embeddings = predict(model.encoder("text"), tokens, batch_size).astype("float32")
    return embeddings.reshape(len(names), len(templates), -1)


def normalize(v, axis=-1):
    """v / ||v||, along `axis`."""
    v = np.asarray(v, "float64")
    return v / np.linalg.norm(v, axis=axis, keepdims=True)


def class_embeddings(text_embeddings):
    """One unit vector per class from its templates' embeddings (C, T, P) -> (C, P).

    Each template's embedding is normalised first, so that none weighs more
    for its length; their mean is normalised again (CLIP's prompt ensembling).
    """
    return normalize(normalize(text_embeddings).mean(axis=1))


def zero_shot_scores(image_embeddings, class_emb, logit_scale=100.0):
    """softmax over the classes of logit_scale * cos(image, class): (N, P), (C, P) -> (N, C), rows sum to 1."""
    logits = logit_scale * normalize(image_embeddings) @ normalize(class_emb).T  # (N, C)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def zero_shot(model, data, names, templates=TEMPLATES, batch_size=32):
    """The zero-shot scores (N, C) of the validation photos against the classes said in `templates` (one: a single prompt)."""
    images = encode_images(model, data.x_val, batch_size)
    return zero_shot_scores(images, class_embeddings(encode_prompts(model, names, templates)), model.logit_scale)


def evaluate(model, data, names, templates=TEMPLATES, batch_size=32):
    """{"val accuracy", "macro F1"} of zero-shot classification of `data`'s validation photos with `templates`."""
    return metrics.classification(data.y_val, zero_shot(model, data, names, templates, batch_size).argmax(1), len(names))


def images_per_second(model, data, batch_size=32):
    """The image tower's speed once compiled: images / s over the validation photos (a first batch compiles)."""
    encode_images(model, data.x_val[:batch_size].copy(), batch_size)
    start = time.perf_counter()
    encode_images(model, data.x_val, batch_size)
    return len(data.x_val) / (time.perf_counter() - start)


def top_prompts_figure(x, scores, names, y, template=TEMPLATES[0], top=3, title=None, ncols=4):
    """The photos (n, S, S, 3) in [0, 255], each above a bar chart of its `top` prompts and their scores.

    Green bar: the true class; the photo's title says whether the top prompt is right.
    """
    import textwrap

    import matplotlib.pyplot as plt

    n, top = len(x), min(top, scores.shape[1])
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(2.6 * ncols, 3.9 * nrows), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.4] * nrows})
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        image, bars = axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]
        image.imshow(np.clip(x[i] / 255.0, 0, 1))
        best = np.argsort(scores[i])[::-1][:top]  # (top,) classes, best first
        right = best[0] == y[i]
        image.set_title(textwrap.fill(f"true: {names[y[i]]}", 32) + ("" if right else "\n" + textwrap.fill(f"predicted: {names[best[0]]}", 32)),
                        fontsize=7, color="green" if right else "red")
        rows = np.arange(top)[::-1]  # the best on top
        bars.barh(rows, scores[i][best], color=["C2" if c == y[i] else "C0" for c in best], alpha=0.35)
        for row, c in zip(rows, best):
            bars.text(0.02, row, f"{scores[i][c]:.2f}  " + textwrap.fill(template.format(names[c]), 30), va="center", fontsize=6)
        bars.set(xlim=(0, 1), ylim=(-0.6, top - 0.4))
    if title:
        fig.suptitle(textwrap.fill(title, 40 * ncols), fontsize=9)
    fig.tight_layout()
    return fig


def shown(y, count=8):
    """Indices of up to `count` photos, taken in turn from each class."""
    per_class = [list(np.flatnonzero(y == c)) for c in np.unique(y)]
    picked = []
    while len(picked) < count and any(per_class):
        for members in per_class:
            if members and len(picked) < count:
                picked.append(members.pop(0))
    return np.asarray(picked, int)


# ---------------------------------------------------------------- other runs, beside CLIP
def read_run(folder):
    """The best row (by val accuracy) of an earlier run's summary.csv, with its lab, classes and data.

    `folder`: a run folder of another lab (finetune, vit...), as runs.Run writes it.
    """
    import csv

    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "summary.csv").is_file():
        raise cli.LabError(f"--compare {folder}: not a finished run folder (needs config.json and summary.csv); "
                           f"give the folder a finetune or vit run printed at its end")
    config = json.loads((folder / "config.json").read_text())
    with open(folder / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "val accuracy" not in rows[0]:
        raise cli.LabError(f"--compare {folder}: its summary.csv has no 'val accuracy' column (a {config.get('lab')} run); "
                           f"compare finetune or vit runs")
    best = max(rows, key=lambda row: (float(row["val accuracy"]), float(row.get("macro F1") or 0)))
    return dict(folder=folder, lab=config.get("lab"), classes=config.get("classes"), data=config.get("data_used"),
                backend=config.get("backend"), row=best)


def compared_row(other, like):
    """An earlier run's best row with the keys of `like` (one of this run's rows), for the summary table."""
    row = other["row"]
    values = {
        "model": f"{other['lab']}: {row['model']}",
        "trainable params": int(row["trainable params"]) if row.get("trainable params") else "",
        "total params": int(row["total params"]) if row.get("total params") else "",
        "prompts": "trained",
        "val images": "",
        "val accuracy": float(row["val accuracy"]),
        "macro F1": float(row["macro F1"]) if row.get("macro F1") else "",
        "run": other["folder"].name,
        "samples / s": "",
        "device": row.get("device", ""),
    }
    return {key: values.get(key, "") for key in like}


# ---------------------------------------------------------------- the lab
# ---------------------------------------------------------------- the handout's questions, answered by the run
def zero_shot_accuracy(run):
    mine = [r for r in run.rows if r.get("run") == "this run"]
    if not mine:
        return None
    by_data = {}
    for r in mine:
        by_data.setdefault(r["model"].split(": ")[0], {})[r["model"].split(": ")[1]] = r
    parts = "; ".join(f"{data}: val accuracy {v['single prompt']['val accuracy']:.3f} with one prompt, "
                      f"{v['ensemble']['val accuracy']:.3f} with the ensemble of {len(run.config['templates'])} templates"
                      for data, v in by_data.items())
    random = " (random weights, offline: the scores mean nothing)" if run.config["weights"] == "random" else ""
    return f"No training, the classes' names only: {parts}{random}."


def beside_fine_tuned(run):
    theirs = [r for r in run.rows if r.get("prompts") == "trained"]
    mine = [r for r in run.rows if r.get("run") == "this run" and r["model"].endswith("ensemble")]
    if not theirs or not mine:
        return None
    parts = ", ".join(f"{r['model']} {r['val accuracy']:.3f}" for r in theirs)
    return (f"CLIP zero-shot {mine[0]['val accuracy']:.3f} beside the trained models on the same classes: {parts} "
            f"({run.config['weights']} CLIP weights).")


HANDOUT = (
    Item("004:27", "Classification zero-shot : pas besoin de réentraînement ; description textuelle des classes",
         "Zero-shot classification from text descriptions of the classes.", zero_shot_accuracy, "kcourse.tasks.clip.evaluate"),
    Item("004:29", "Modèle à utiliser en pratique de nos jours", "CLIP beside the models trained on the same classes.",
         beside_fine_tuned, "kcourse.tasks.clip.compared_row", needs="--compare <finetune run> <vit run>"),
)


def build_parser():
    """The lab's options: the shared ones that mean something here (nothing trains), the data, the model and prompts."""
    parser = cli.lab_parser("clip", __doc__, trains=False, batch_size=32, batch_help="images per encoding batch (default: %(default)s)")
    data = images.add_folder_options(parser, "any image folder instead of the labs' photos")
    data.add_argument("--dataset", nargs="+", default=list(DATASETS), choices=DATASETS,
                      help="the labs' photos to classify (default: both); the validation split of each")
    model = parser.add_argument_group("model and prompts")
    model.add_argument("--preset", default=PRESET, help=f"keras-hub CLIP preset, handle, local folder or {TINY} (default: %(default)s)")
    model.add_argument("--classes", type=Path, metavar="FILE", help="readable class names: one a line in folder order, or JSON (list or {folder: name})")
    model.add_argument("--templates", type=Path, metavar="FILE", help="prompt templates with {}, one a line or a JSON list; the first is the single prompt")
    model.add_argument("--compare", type=Path, nargs="+", default=[], metavar="RUN_DIR",
                       help="finetune or vit run folders whose best rows go beside CLIP's")
    return parser


def run_lab(args):
    """Zero-shot from the parsed options: the class names said in the templates, every validation photo scored
    with one prompt and with the ensemble, beside earlier runs (what `main` and the notebook run)."""
    if args.resume is not None:
        raise cli.LabError(f"--resume {args.resume}: the clip lab trains nothing, so there is nothing to resume; run it again with --out")
    names_given = read_list(args.classes, "--classes") if args.classes is not None else None
    templates = read_templates(args.templates) if args.templates is not None else list(TEMPLATES)
    others = [read_run(folder) for folder in args.compare]  # before anything slow: a wrong folder is one line
    run = runs.start("clip", args)

    model = load_model(args.preset, args.seed)
    photos = load_data(args.dataset, args.data_dir, model.image_size, args.val_split, args.quick, args.seed)
    prompts = {key: class_prompts(data.class_names, names_given, f"--classes {args.classes}") for key, data in photos.items()}
    print(f"model {model.preset} ({model.weights} weights), {model.backbone.count_params():,} parameters, "
          f"images at {model.image_size} px, logit scale {model.logit_scale:.4g}")
    run.note(preset=model.preset, weights=model.weights, logit_scale=model.logit_scale, templates=templates,
             data_used={key: data.name for key, data in photos.items()},
             classes={key: data.class_names for key, data in photos.items()}, prompts=prompts)
    run.outputs.update(model=model, photos=photos, prompts=prompts, scores={})

    matched = set()
    for key, data in photos.items():
        names = prompts[key]
        print(f"\n{data!r}: {len(data.x_val)} validation photos; classes said as {', '.join(repr(n) for n in names)}")
        speed = images_per_second(model, data, args.batch_size)
        figures = {"trainable params": 0, "total params": model.backbone.count_params()}
        for variant, used in (("single prompt", templates[:1]), ("ensemble", templates)):
            scores = evaluate(model, data, names, used, args.batch_size)
            fitted = runs.Fitted(f"{'/'.join(data.class_names)}: {variant}", model.backbone, {}, dict(figures))
            row = run.record(fitted, prompts=f"{len(used)} template{'s' if len(used) > 1 else ''}",
                             **{"val images": len(data.x_val), **scores}, run="this run",
                             **{"samples / s": speed, "device": run.device})
            print(f"zero-shot, {variant}: val accuracy {scores['val accuracy']:.3f}, macro F1 {scores['macro F1']:.3f}")
        for i, other in enumerate(others):  # the fine-tuned models on the same classes, beside
            if other["classes"] == data.class_names:
                run.rows.append(compared_row(other, row))
                matched.add(i)
        pick = shown(data.y_val)
        ensemble = run.outputs["scores"][key] = zero_shot(model, data, names, templates, args.batch_size)
        title = f"CLIP {model.preset} zero-shot on {data.name}: ensemble of {len(templates)} templates" + (
            " (random weights: the scores mean nothing)" if model.weights == "random" else "")
        path = run.savefig(top_prompts_figure(data.x_val[pick], ensemble[pick], names, data.y_val[pick], templates[0], title=title),
                           f"zero_shot_{key}")
        print(f"figure {path}")
    for i, other in enumerate(others):
        if i not in matched:
            print(f"--compare {other['folder']}: its classes {other['classes']} are not those of any data here; shown last")
            run.rows.append(compared_row(other, run.rows[0]))
    return run.finish(f"CLIP zero-shot ({model.preset}, {model.weights} weights)"
                      + (" beside the fine-tuned runs" if others else ""), handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
