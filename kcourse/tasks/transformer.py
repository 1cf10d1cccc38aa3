"""TP4 part 1, steps 3-4: a tiny Transformer classifier, its attention maps and its weight count.

Does a sentence of the synthetic corpus name a European country? Each
sentence becomes `[CLS] w1 ... wn [PAD] ...` (right padding, so [CLS] is
always at position 0 and the padding mask hides the rest); the
`TinyTransformerClassifier` (2 encoder blocks, 2 heads, d_model 64) reads the
class from the [CLS] output, trained with AdamW and cross-entropy, validated
every epoch. Step 4 draws the attention of every layer and head on chosen
sentences and measures how much the maps move when one capital is swapped
for another (a label-preserving change), what each head looks at, and
whether the most attended word is the one the prediction depends on. The TP4 review: the weights of a
multi-head self-attention (4 d_model^2, whatever the number of heads) and of
an encoder block, by formula and by Keras' count_params().

    python -m kcourse.tasks.transformer                       # 20,000 sentences, 5 epochs
    python -m kcourse.tasks.transformer --quick               # a smoke run in seconds
    python -m kcourse.tasks.transformer --models sinusoidal learned   # the two positional encodings in turn
    python -m kcourse.tasks.transformer --embeddings runs/word2vec-.../embeddings.npz  # frozen word2vec vectors
    python -m kcourse.tasks.transformer --sentence "the capital of france is paris"

The variants (--models) are named by their positional encoding. The run
folder gets config.json, history_<pe>.csv and <pe>.keras per model
(keras.saving.load_model), metrics.json, summary.csv, the learning curves,
`attention_<k>.png` for each sentence, `stability.csv`, `head_roles.csv` / `head_roles.png` (what each head
looks at), `attention_vs_influence.png` (sentences where the most attended word is not the one the prediction
depends on), `qkv.png` (the first block's queries, keys and values) and `parameters.csv`.
"""

from pathlib import Path

import numpy as np

from kcourse import cli, datasets, parameters, runs, text
from kcourse.report import Item, plural

main = cli.lab_main(__name__)  # python -m kcourse.tasks.transformer: build_parser(), then run_lab(args)

SENTENCES = (
    "the capital of france is paris",
    "despite debates, tokyo remains the capital of japan",
    "people know that rome belongs to italy, but some mention ottawa incorrectly",
)
MODELS = ("sinusoidal", "learned", "scratch")  # the positional encodings compared; scratch: embeddings learnt here
PARITY = {"val accuracy": 0.02}
CLASS_SIZE = ("--models", *MODELS)
EMBEDDING_EPOCHS, EMBEDDING_DIM = 5, 50  # the word2vec lab's defaults, for the vectors trained in-run
KEY_FIGURES = ("learning_curves", "attention_1")


load_data = datasets.sentences  # the corpus as [CLS]-first token ids and labels, split train / val


def word_vectors(run, data, epochs=EMBEDDING_EPOCHS, dim=EMBEDDING_DIM):
    """The handout's embedding when no --embeddings is given (001:21): skip-gram vectors trained first, in this run,
    on the training sentences (kcourse.skipgram with the word2vec lab's defaults): the input vectors u (V, dim)."""
    from kcourse import skipgram

    flat, sentence = skipgram.token_stream(data.x_train, len(text.SPECIALS))  # the words, [CLS] and [PAD] left out
    counts = np.bincount(flat, minlength=len(data.vocab)).astype("float64")
    fitted = run.fit("word2vec", lambda: skipgram.build_model(len(data.vocab), dim),
                     skipgram.batches(flat, sentence, counts, 1024, run.seed), epochs=epochs, batch_size=1024)
    u, v = skipgram.vectors(fitted.model)
    text.save_embeddings(run.file("embeddings.npz"), u, v, data.vocab)
    run.save_metrics(**{"word2vec in-run": {"epochs": epochs, "dim": dim, "words": len(flat),
                                            "s": fitted.figures["s / epoch"] * epochs, "loss": fitted.history["loss"][-1]}})
    return u


def evaluate(model, data):
    """{"val accuracy", "majority rate"}: on the validation sentences, and the rate it must beat (always the commoner class)."""
    from kcourse.training import predict_classes

    y_pred = predict_classes(model, data.x_val, 256)
    majority = max(float(data.y_val.mean()), 1.0 - float(data.y_val.mean()))
    return {"val accuracy": float((y_pred == data.y_val).mean()), "majority rate": majority}


def check_sentences(sentences, max_len):
    """A LabError for a sentence longer than max_len tokens with [CLS] (before anything is trained)."""
    for sentence in sentences:
        n = len(text.tokenize(sentence)) + 1
        if n > max_len:
            raise cli.LabError(
                f"the sentence {sentence[:60]!r} has {n} tokens with [CLS], more than the maximum length {max_len}; "
                f"shorten it or raise --max-len"
            )


def attention(model, vocab, sentences):
    """Token ids (N, L), the tokens of each sentence (with [CLS], no padding) and the maps.

    Returns ids, tokens, logits (N, C) and a list of per-layer maps (N, H, L, L).
    A sentence longer than the model's max_len is a LabError.
    """
    ids = vocab.encode_batch(list(sentences), model.max_len, add_cls=True, padding="right")
    logits, maps = model.logits_and_attention(ids)
    tokens = [[vocab.itos[i] for i in row if i != vocab.pad_id] for row in ids]
    return ids, tokens, logits, maps


def attention_figure(tokens, maps, index=0, title=""):
    """Heatmaps of every layer (rows) and head (columns) for one sentence, padding hidden."""
    import matplotlib.pyplot as plt

    n = len(tokens)
    n_layers, n_heads = len(maps), maps[0].shape[1]
    size = 0.28 * n + 1.5
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(size * n_heads, size * n_layers), squeeze=False)
    for layer, layer_maps in enumerate(maps):
        for head in range(n_heads):
            ax = axes[layer, head]
            ax.imshow(layer_maps[index, head, :n, :n], cmap="viridis", vmin=0)  # (n, n), padding cut
            ax.set_xticks(range(n), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(n), tokens, fontsize=7)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
    ax.figure.supxlabel("attended (keys)", fontsize=8)
    ax.figure.supylabel("attending (queries)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def swap_capital(sentence, rng):
    """The sentence with its first capital replaced by another capital, or None if it has none."""
    capitals = [d["capital"] for d in text.COUNTRIES.values()]
    tokens = sentence.split()
    for k, token in enumerate(tokens):
        word = token.strip(text.PUNCTUATION)
        if word in capitals:
            other = rng.choice([c for c in capitals if c != word])
            tokens[k] = token.replace(word, other)
            return " ".join(tokens)
    return None


def attention_stability(model, vocab, sentences, n=200, seed=0):
    """How much the attention moves when one capital is swapped for another, per layer.

    For up to `n` sentences holding a capital: the mean absolute difference of
    the maps over heads and real (non-padding) query/key pairs, and the total
    variation 0.5 * sum |a - b| of the [CLS] row (0: same attention, 1: disjoint).
    """
    rng = np.random.default_rng(seed)
    pairs = [(s, t) for s in sentences if (t := swap_capital(s, rng)) is not None][:n]
    if not pairs:
        raise cli.LabError("no sentence with a capital to swap")
    ids, _, logits_a, maps_a = attention(model, vocab, [s for s, _ in pairs])
    _, _, logits_b, maps_b = attention(model, vocab, [t for _, t in pairs])
    real = (ids != vocab.pad_id).astype("float32")  # (N, L)
    pair_mask = real[:, None, :, None] * real[:, None, None, :]  # (N, 1, L, L)
    rows = []
    for layer, (a, b) in enumerate(zip(maps_a, maps_b)):
        diff = np.abs(a - b)  # (N, H, L, L)
        mad = float((diff * pair_mask).sum() / (pair_mask.sum() * a.shape[1]))
        tv = float(0.5 * diff[:, :, 0, :].sum(-1).mean())
        rows.append({"layer": layer + 1, "mean |dA|": mad, "TV of [CLS] row": tv})
    same_prediction = float((logits_a.argmax(-1) == logits_b.argmax(-1)).mean())
    return rows, same_prediction, len(pairs)


KINDS = ("[CLS]", *text.CATEGORIES, "other", "[PAD]")


def token_kinds(vocab, ids):
    """The kind of every token of `ids` (N, L): "[CLS]", "[PAD]", a kcourse.text.CATEGORIES key, or "other"."""
    kind_of = {word: kind for kind, words in text.CATEGORIES.items() for word in words}
    table = np.array([w if w in (text.CLS, text.PAD) else kind_of.get(w, "other") for w in vocab.itos])
    return table[ids]


def head_roles(model, vocab, sentences):
    """Do the heads specialise? Per layer and head: the entropy of its attention (real queries, nats), and for each
    kind of token (KINDS) the share of the [CLS] query's attention it gets over its share of the tokens (1: no
    preference, 3: three times its share), and the attention on [PAD] (0 under the mask)."""
    ids, _, _, maps = attention(model, vocab, sentences)
    kinds, real = token_kinds(vocab, ids), ids != vocab.pad_id  # (N, L)
    present = [k for k in KINDS if k != "[PAD]" and (kinds[real] == k).any()]
    rows = []
    for layer, maps_l in enumerate(maps):
        for head in range(maps_l.shape[1]):
            a = maps_l[:, head].astype("float64")  # (N, L, L): queries, keys
            entropy = -(a * np.log(np.maximum(a, 1e-30))).sum(-1)  # (N, L)
            cls_row = a[:, 0, :]  # what [CLS] reads, (N, L)
            lift = {k: float(cls_row[kinds == k].sum() / cls_row[real].sum() / (kinds[real] == k).mean()) for k in present}
            rows.append({"layer": layer + 1, "head": head + 1, "entropy": float(entropy[real].mean()), **lift,
                         "[PAD] share": float(cls_row[~real].sum() / len(ids))})
    return rows


def roles_figure(rows):
    """For each head, how much more than its share [CLS] attends to each kind of token."""
    import matplotlib.pyplot as plt

    kinds = [k for k in KINDS if k in rows[0]]
    lift = np.array([[r[k] for k in kinds] for r in rows])
    fig, ax = plt.subplots(figsize=(0.75 * len(kinds) + 2.5, 0.45 * len(rows) + 1.6))
    ax.imshow(lift, cmap="viridis", vmin=0)
    ax.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), [f"layer {r['layer']} head {r['head']} (H={r['entropy']:.2f})" for r in rows])
    for (i, j), v in np.ndenumerate(lift):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7, color="white" if v < lift.max() / 2 else "black")
    ax.set_title("[CLS]'s attention on each kind of token, over its share (1 = no preference)")
    fig.tight_layout()
    return fig


def queries_keys_values(model, vocab, sentences):
    """Q, K and V of the first block for every real token of `sentences`, and each token's kind.

    Returns ({"Q", "K", "V"}: (T, d_model) arrays, kinds (T,)), T the tokens, [PAD] left out.
    """
    import keras

    ids = vocab.encode_batch(list(sentences), model.max_len, add_cls=True, padding="right")
    h = model.embed(ids)
    h = model.pos(model.proj(h) if model.proj is not None else h)
    block = model.blocks[0]
    x = block.norm1(h) if block.norm else h  # what the first attention reads, (N, L, d_model)
    real = ids != vocab.pad_id
    out = {name: keras.ops.convert_to_numpy(dense(x))[real] for name, dense in (("Q", block.attn.wq), ("K", block.attn.wk),
                                                                                ("V", block.attn.wv))}
    return out, token_kinds(vocab, ids)[real]


def kind_share(vectors, kinds):
    """The share of the vectors' variance that their token kind explains (between-kind over total, 0 to 1)."""
    centred = vectors - vectors.mean(0)
    between = sum((kinds == k).sum() * ((vectors[kinds == k].mean(0) - vectors.mean(0)) ** 2).sum() for k in set(kinds))
    return float(between / max((centred**2).sum(), 1e-12))


def qkv_figure(qkv, kinds):
    """Q, K and V of the first block, each projected on its first two principal components, coloured by kind."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (name, vectors) in zip(axes, qkv.items()):
        xy = PCA(2).fit_transform(vectors)
        for i, kind in enumerate(k for k in KINDS if (kinds == k).any()):
            ax.scatter(*xy[kinds == kind].T, s=6, alpha=0.5, color=f"C{i}", label=kind)
        ax.set_title(f"{name}: {kind_share(vectors, kinds):.0%} of the variance by kind", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(fontsize=7, markerscale=2, loc="best")
    fig.suptitle("the first block's queries, keys and values, PCA 2-D per token", fontsize=10)
    fig.tight_layout()
    return fig


def attention_against_influence(model, vocab, sentences):
    """When attention misleads: per sentence, the word [CLS] attends to most (last layer, mean over heads) against
    the word whose removal changes the predicted class's logit most (occlusion: the sentence re-encoded without it).

    Returns {"sentences", "agree" (share where both are the same word), "examples": the sentences where they
    differ, each {"sentence", "most attended", "attention", "most influential", "influence", "words", ...}}.
    """
    from kcourse.training import predict

    words = [text.tokenize(s) for s in sentences]
    ids, _, logits, maps = attention(model, vocab, sentences)
    predicted = logits.argmax(-1)
    attended = maps[-1].mean(1)[:, 0, 1:]  # (N, L - 1): [CLS]'s attention on each word, mean over heads
    shortened = [" ".join(w[:k] + w[k + 1:]) for w in words for k in range(len(w))]
    dropped = predict(model, vocab.encode_batch(shortened, model.max_len), 256)  # (sum of lengths, C)
    examples, agree, at = [], 0, 0
    for i, w in enumerate(words):
        influence = logits[i, predicted[i]] - dropped[at:at + len(w), predicted[i]]  # how much each word supports the class
        at += len(w)
        a, f = int(attended[i, :len(w)].argmax()), int(influence.argmax())
        agree += a == f
        if a != f:
            examples.append({"sentence": sentences[i], "words": w, "most attended": w[a], "attention": float(attended[i, a]),
                             "most influential": w[f], "influence": float(influence[f]),
                             "its attention": float(attended[i, f]), "attended word's influence": float(influence[a]),
                             "attention per word": attended[i, :len(w)].tolist(), "influence per word": influence.tolist()})
    examples.sort(key=lambda ex: ex["influence"] - ex["attended word's influence"], reverse=True)  # most striking first
    return {"sentences": len(words), "agree": agree / max(len(words), 1), "examples": examples}


def influence_figure(examples, n=2):
    """For a few sentences where they differ: [CLS]'s attention and each word's influence (occlusion), side by side."""
    import matplotlib.pyplot as plt

    shown = examples[:n]
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.4 * len(shown)), squeeze=False)
    for ax, ex in zip(axes[:, 0], shown):
        k = np.arange(len(ex["words"]))
        ax.bar(k - 0.2, ex["attention per word"], 0.4, label="[CLS] attention")
        ax2 = ax.twinx()
        ax2.bar(k + 0.2, ex["influence per word"], 0.4, color="C1", label="logit drop without the word")
        ax.set_xticks(k, ex["words"], rotation=30, fontsize=8)
        ax.set_ylabel("attention")
        ax2.set_ylabel("influence")
        ax.set_title(f"most attended {ex['most attended']!r}, most influential {ex['most influential']!r}", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the handout's questions, answered by the run
def attention_shapes(run):
    c = run.config
    d, h, length = c["d_model"], c["heads"], c["max_len"]
    return (f"For inputs (B, {length}, {d}) and {h} heads: Q, K and V are (B, {length}, {d}), reshaped to (B, {h}, {length}, "
            f"{d // h}) for the heads; the attention matrix A = softmax(QK^T / sqrt({d // h})) is (B, {h}, {length}, {length}).")


def learned_against_sinusoidal(run):
    sin, learned = run.row("sinusoidal"), run.row("learned")
    if sin is None or learned is None:
        return None
    return (f"Val accuracy {sin['val accuracy']:.3f} with sinusoidal encodings against {learned['val accuracy']:.3f} with "
            f"learned ones (+{learned['total params'] - sin['total params']:,} parameters, max_len x d_model); val loss "
            f"{sin['val loss']:.3f} against {learned['val loss']:.3f}.")


def the_classifier(run):
    row, sizes = run.rows[0], run.metrics.get("sentences")
    if sizes is None:
        return None
    return (f"{sizes['train']:,} training / {sizes['val']:,} validation sentences, [CLS] first and right padding; AdamW and "
            f"cross-entropy, validated every epoch: after {plural(run.config['epochs'], 'epoch')}, val accuracy {row['val accuracy']:.3f} "
            f"(loss {row['val loss']:.3f}) against {row['majority rate']:.3f} for always the commoner class.")


def frozen_word2vec(run):
    rows = {r["model"]: r for r in run.rows}
    pretrained = next((r for r in run.rows if r["embeddings"] != "learnt from scratch"), None)
    if pretrained is None:
        return None
    made = run.metrics.get("word2vec in-run")
    source = (f"word2vec vectors trained first in this run ({made['epochs']} epochs on the {made['words']:,} words of the "
              f"training sentences, {made['s']:.1f} s of training)" if made else f"word2vec vectors from {run.config['embeddings']}")
    kept = "frozen" if run.config["freeze"] else "fine-tuned"
    text_ = (f"The handout's model reads {source}, {kept}: {pretrained['trainable params']:,} trainable "
             f"weights of {pretrained['total params']:,}; val accuracy {pretrained['val accuracy']:.3f} after "
             f"{plural(run.config['epochs'], 'epoch')} ({pretrained['first epoch']:.3f} after the first)")
    if "table unchanged" in pretrained:
        unchanged = str(pretrained["table unchanged"]) == "True"  # text when read back from summary.csv
        text_ += f"; the frozen table is {'bit-identical after training' if unchanged else 'changed'}"
    if scratch := rows.get("scratch"):
        text_ += (f". Embeddings learnt from scratch instead: {scratch['trainable params']:,} trainable weights, val accuracy "
                  f"{scratch['val accuracy']:.3f} ({scratch['first epoch']:.3f} after the first epoch)")
    return text_ + "."


def attention_maps(run):
    drawn = run.metrics.get("attention figures")
    if not drawn:
        return None
    return (f"{len(drawn)} sentences drawn, every layer and head ({run.config['layers']} x {run.config['heads']} maps each, "
            f"padding cut): {', '.join(drawn)}.")


def stability_under_a_swap(run):
    rows, same, n = run.metrics["stability"], run.metrics["same_prediction_after_swap"], run.metrics["swapped_sentences"]
    moves = "; ".join(f"layer {r['layer']}: TV of the [CLS] row {r['TV of [CLS] row']:.3f}" for r in rows)
    return (f"One capital swapped for another (the label kept) in {n} validation sentences: the prediction stays the same "
            f"for {same:.1%}; {moves}.")


def weights_by_formula(run):
    rows = run.metrics.get("formulas")
    if not rows:
        return None
    attention, block = rows[0], next(r for r in rows if r["part"].startswith("EncoderBlock"))
    one_head = next((r for r in rows if "n_heads=1" in r["part"]), attention)
    return (f"{attention['part']}: 4 d^2 = {attention['computed']:,} weights, Keras counts {attention['keras count_params']:,}, "
            f"the same with one head ({one_head['keras count_params']:,}): the heads slice Q, K and V, they add no matrix; "
            f"an encoder block: 4d^2 + 2r d^2 + biases and LayerNorms = {block['computed']:,}, Keras counts "
            f"{block['keras count_params']:,}.")


def heads_specialise(run):
    rows = run.metrics.get("head roles")
    if not rows:
        return None
    kinds = [k for k in KINDS if k in rows[0]]
    top = {(r["layer"], r["head"]): max(kinds, key=lambda k: r[k]) for r in rows}
    parts = [f"layer {r['layer']} head {r['head']}: {top[(r['layer'], r['head'])]} ({r[top[(r['layer'], r['head'])]]:.1f}x "
             f"its share), entropy {r['entropy']:.2f}" for r in rows]
    kinds_seen = set(top.values())
    verdict = (f"the heads prefer {len(kinds_seen)} different kinds of token" if len(kinds_seen) > 1
               else f"every head prefers {kinds_seen.pop()}: no division of labour at this size")
    return (f"The kind of token [CLS] attends to most, over its share of the tokens: {'; '.join(parts)}; [PAD] gets "
            f"{max(r['[PAD] share'] for r in rows):.0%} of it (the mask). So {verdict}.")


def queries_keys_values_shown(run):
    shares = run.metrics.get("qkv by kind")
    if not shares:
        return None
    return (f"Q, K and V of the first block for {shares['tokens']:,} tokens, projected in 2-D (qkv.png): the kind of "
            f"word (country, capital, [CLS]...) explains {shares['Q']:.0%} of the queries' variance, {shares['K']:.0%} "
            f"of the keys', {shares['V']:.0%} of the values'. A query meets the keys of the words it should read: "
            f"the attention maps are these dot products, softmaxed.")


def when_attention_misleads(run):
    found = run.metrics.get("attention vs influence")
    if not found:
        return None
    text_ = (f"In {found['sentences']} validation sentences, the word [CLS] attends to most (last layer) is the word "
             f"whose removal moves the prediction most in {found['agree']:.0%} of them.")
    if found["examples"]:
        ex = found["examples"][0]
        attended_influence = ex["attended word's influence"]
        text_ += (f" Not in {ex['sentence']!r}: {ex['most attended']!r} takes {ex['attention']:.2f} of the attention "
                  f"but removing it changes the logit by {attended_influence:+.2f}, while "
                  f"{ex['most influential']!r}, with {ex['its attention']:.2f} of it, changes it by {ex['influence']:+.2f}: "
                  f"attention says where information is read, not what the decision depends on.")
    return text_


HANDOUT = (
    Item("001:14", "Si l'entrée est (B, L, d_model), quelles sont les formes de Q, K, V et de la matrice d'attention ?",
         "The shapes of Q, K, V and of the attention matrix.", attention_shapes, "kcourse.layers.MultiHeadSelfAttention"),
    Item("001:17", "À quoi sert l'encodage positionnel ? Testez un encodage appris vs sinusoidal : observez l'impact.",
         "Learned against sinusoidal positional encodings.", learned_against_sinusoidal, "kcourse.tasks.transformer.evaluate",
         needs="--models sinusoidal learned"),
    Item("001:26", "Évaluez la performance (perte et précision) sur l'ensemble de validation à la fin de chaque époque.",
         "The classifier on [CLS], trained with AdamW, validated every epoch.", the_classifier, "kcourse.tasks.transformer.evaluate"),
    Item("001:21", "la couche d'embedding (figée), l'encodage positionnel, une ou plusieurs couches d'encodeur, et la tête "
         "de classification finale", "The tiny Transformer on frozen word2vec embeddings, against embeddings learnt "
         "from scratch.", frozen_word2vec, "kcourse.tasks.transformer.word_vectors", needs="--models sinusoidal scratch"),
    Item("001:27", "Utilisez la sortie attn_maps pour visualiser ce que le modèle a appris.", "The attention maps, drawn.",
         attention_maps, "kcourse.tasks.transformer.attention_figure"),
    Item("001:30", "Mesurez la stabilité des cartes d'attention lorsque vous perturbez légèrement l'entrée.",
         "How stable are the attention maps under a small change of the input?", stability_under_a_swap,
         "kcourse.tasks.transformer.attention_stability"),
    Item("001:28", "Les têtes se spécialisent-elles sur des motifs linguistiques distincts (négation, accord, entités) ?", "Do the heads specialise?", heads_specialise,
         "kcourse.tasks.transformer.head_roles"),
    Item("001:29", "L'attention explique-t-elle vraiment la prédiction ? Cherchez un contre-exemple où la carte d'attention "
         "est trompeuse.", "A counter-example where attention misleads.",
         when_attention_misleads, "kcourse.tasks.transformer.attention_against_influence"),
    Item("000:14", "Visualisation des Q, K, V", "Q, K and V themselves, visualised.", queries_keys_values_shown,
         "kcourse.tasks.transformer.queries_keys_values"),
    Item("002:1", "Pourquoi le nombre de self.Wq, self.Wk, self.Wv n'est pas proportionnel au nombre de têtes ? "
         "Calculer le nombre de poids dans une instance de MultiHeadSelfAttention, de TransformerBlock ?",
         "Why Wq, Wk, Wv do not grow with the heads; the weights of an attention layer and of a block.", weights_by_formula,
         "kcourse.parameters.transformer_formulas"),
    Item("000:11", "« attention = produit scalaire » en trois phases : projection Q, K, V ; score S = Q tK ; moyenne pondérée",
         "Attention in three phases: the projections, the scores, the weighted mean.", attention_shapes,
         "kcourse.layers.MultiHeadSelfAttention"),
    Item("000:15", "MultiHead Layers : N_h têtes attentionnelles ; ajout d'une dimension, concaténation en sortie",
         "Multi-head layers: the heads as one more dimension, concatenated.", weights_by_formula,
         "kcourse.parameters.transformer_formulas"),
    Item("002:2", "Calculer le nombre de poids dans une instance de MultiHeadSelfAttention ?  = 4 * d_model**2",
         "The weights of a MultiHeadSelfAttention.", weights_by_formula, "kcourse.parameters.transformer_formulas"),
    Item("002:3", "Calculer le nombre de poids dans une instance de TransformerBlock ?  = 4 * d_model**2 + 2 * d_model**2 * mlp_ratio",
         "The weights of a Transformer block.", weights_by_formula, "kcourse.parameters.transformer_formulas"),
)


def build_parser():
    """The lab's options: the shared ones, the corpus, the model and the sentences to draw."""
    parser = cli.lab_parser("transformer", __doc__, epochs=5, batch_size=64, learning_rate=1e-3, quick={"sentences": 1000})
    cli.add_transformer_options(parser)
    parser.add_argument("--models", nargs="+", default=["sinusoidal"], choices=MODELS,
                        help="one model each, trained in turn: sinusoidal or learned positions on the word2vec vectors, or "
                             "scratch (sinusoidal positions, embeddings learnt from scratch) (default: sinusoidal)")
    parser.add_argument("--embeddings", type=Path, help="embeddings.npz from kcourse.tasks.word2vec (its vocabulary is used; "
                                                        "default: word2vec vectors trained first in this run)")
    frozen = parser.add_mutually_exclusive_group()
    frozen.add_argument("--freeze-embeddings", dest="freeze", action="store_true", default=True,
                        help="keep the word2vec embeddings fixed (default, the course's set-up)")
    frozen.add_argument("--train-embeddings", dest="freeze", action="store_false", help="fine-tune them")
    parser.add_argument("--sentence", action="append", help="sentence whose attention to draw (repeatable)")
    return parser


def draw_attention(run, model, vocab, sentences):
    """Step 4: one figure per sentence, every layer and head; the predicted class in the title."""
    _, tokens, logits, maps = attention(model, vocab, sentences)
    for k, sentence in enumerate(sentences):
        p = float(np.exp(logits[k]).max() / np.exp(logits[k]).sum())
        title = f"{sentence!r}: class {int(logits[k].argmax())} (p={p:.2f}, true {text.label_from_sentence(sentence)})"
        run.savefig(attention_figure(tokens[k], maps, k, title), f"attention_{k + 1}")


def run_lab(args):
    """Steps 3-4 from the parsed options: the sentences, each positional encoding fitted, attention maps and their
    stability, the weights by formula (what `main` and the notebook run)."""
    shown = args.sentence or list(SENTENCES)
    cli.check_heads(args.d_model, args.heads)
    check_sentences(shown, args.max_len)
    run = runs.start("transformer", args)
    from kcourse.models import build_classifier  # imports keras: after the backend is chosen
    embeddings, vocab = text.load_embeddings(args.embeddings) if args.embeddings else (None, None)
    data = load_data(args.sentences, args.seed, args.max_len, vocab)
    vocab = data.vocab
    print(f"{len(data.x_train):,} train / {len(data.x_val):,} val sentences of {args.max_len} tokens; "
          f"vocabulary {len(vocab)}; European share {data.y_train.mean():.3f}")
    run.outputs.update(data=data)
    run.save_metrics(sentences={"train": len(data.x_train), "val": len(data.x_val)})
    if embeddings is None and set(args.models) - {"scratch"}:
        embeddings = word_vectors(run, data)  # the handout's set-up: word2vec first
    for name in dict.fromkeys(args.models):
        pe, table = ("sinusoidal", None) if name == "scratch" else (name, embeddings)
        build = lambda pe=pe, table=table, name=name: build_classifier(  # noqa: E731
            vocab, args.max_len, args.d_model, args.heads, args.layers, pe, embeddings=table,
            freeze_embeddings=args.freeze, learning_rate=args.learning_rate, name=f"transformer_{name}")
        fitted = run.fit(name, build, data.train, data.val)
        kept = {}
        if table is not None and args.freeze:  # the frozen table, read back from the trained model
            kept["table unchanged"] = bool(np.array_equal(fitted.model.embed.embeddings.numpy(), table))
        run.record(fitted, **evaluate(fitted.model, data), **{
            "val loss": fitted.history["val_loss"][-1], "first epoch": fitted.history["val_accuracy"][0],
            "embeddings": "learnt from scratch" if table is None else f"word2vec, {'frozen' if args.freeze else 'fine-tuned'}",
            **kept})

    model = run.fitted[args.models[0]].model
    draw_attention(run, model, vocab, shown)
    stability, same, n = attention_stability(model, vocab, data.val_sentences, seed=args.seed)
    run.save_table("stability", stability)
    run.save_metrics(stability=stability, same_prediction_after_swap=same, swapped_sentences=n)
    print(f"\nstep 4, stability: one capital swapped for another in {n} validation sentences "
          f"({args.models[0]} model); the prediction stays the same for {same:.1%}")
    for row in stability:
        print(f"  layer {row['layer']}: mean |dA| {row['mean |dA|']:.4f}, TV of the [CLS] row {row['TV of [CLS] row']:.4f}")
    roles = head_roles(model, vocab, data.val_sentences[:500])
    misleads = attention_against_influence(model, vocab, data.val_sentences[:200])
    run.save_table("head_roles", roles)
    run.savefig(roles_figure(roles), "head_roles")
    if misleads["examples"]:
        run.savefig(influence_figure(misleads["examples"]), "attention_vs_influence")
    qkv, kinds = queries_keys_values(model, vocab, data.val_sentences[:300])
    run.savefig(qkv_figure(qkv, kinds), "qkv")
    run.save_metrics(**{"head roles": roles, "attention vs influence": misleads,
                        "qkv by kind": {"tokens": len(kinds), **{name: kind_share(v, kinds) for name, v in qkv.items()}}})
    print(f"\nwhen attention misleads: the most attended word is the most influential in {misleads['agree']:.0%} of "
          f"{misleads['sentences']} sentences")
    embed_dim = None if args.models[0] == "scratch" else embeddings.shape[1]
    formulas = parameters.transformer_formulas(args.d_model, args.heads, model.mlp_ratio, args.layers, len(vocab), args.max_len,
                                               pe="sinusoidal" if args.models[0] == "scratch" else args.models[0], embed_dim=embed_dim)
    run.save_table("parameters", formulas)
    run.save_metrics(formulas=formulas, **{"attention figures": [f"attention_{k + 1}.png" for k in range(len(shown))]})
    run.outputs.update(formulas=formulas, stability=stability)
    print("\nthe TP4 review: weights by formula (d = d_model, r = mlp_ratio, V = vocabulary, C = classes) and by count_params()")
    for row in formulas:
        print(f"  {row['part']:<62} {row['formula']:<56} {row['computed']:>9,} {row['keras count_params']:>9,}")
    return run.finish(f"Tiny Transformer, European country? ({len(data.corpus):,} sentences)", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
