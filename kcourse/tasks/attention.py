"""TP4 part 1, step 3 by experiment: why attention divides by sqrt(d_k), what its masks do, its heads as slices.

The handout's flash questions on `MultiHeadSelfAttention`, each measured:

1. The scale (001:15). At initialisation, tokens of unit variance through
   Glorot projections give scores q.k of variance ~d_k: for d_k from 8 to 256,
   the softmax's entropy, its largest weight and the norm of its Jacobian
   (how much gradient reaches the scores), with and without 1/sqrt(d_k).
   Then the tiny Transformer of step 4 trained with and without it.
2. Masks (001:16, 001:3). The trained model's output for the same sentence as
   its padding grows: with the padding mask, without it (the same weights),
   and with left padding; a causal mask shown to hide the future (a later
   token changed, the earlier outputs unchanged).
3. Heads as slices (000:12). One d x d projection per Q, K, V cut into N_h
   heads equals N_h separate d x d/N_h matrices: the same weights rearranged,
   the same output, the same 4 d^2 weights.

    python -m kcourse.tasks.attention                 # 20,000 sentences, scaled and unscaled, 3 epochs
    python -m kcourse.tasks.attention --quick         # a smoke run in seconds

The run folder gets scale.csv / scale.png (1), padding.csv / padding.png and
causal.csv (2), heads.csv (3), and per model history_<name>.csv,
<name>.keras, summary.csv and the learning curves.
"""

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.attention: build_parser(), then run_lab(args)

MODELS = ("scaled", "unscaled")  # scores divided by sqrt(d_k), or not
D_KS = (8, 16, 32, 64, 128, 256)
PARITY = {"val accuracy": 0.03}
KEY_FIGURES = ("scale", "padding")


# ---------------------------------------------------------------- 1. the scale, at initialisation
def softmax_at_init(d_k, scaled, length=32, batch=64, seed=0):
    """One head of width d_k at initialisation on unit-variance tokens (B, L, d_k): what its softmax looks like.

    Returns {"entropy": mean entropy of a query's weights (nats; log L is uniform), "largest weight": their
    mean maximum, "jacobian norm": the mean Frobenius norm of the softmax's Jacobian diag(w) - w w^T per query}.
    """
    import keras

    from kcourse.layers import MultiHeadSelfAttention

    keras.utils.set_random_seed(seed)
    layer = MultiHeadSelfAttention(d_model=d_k, n_heads=1, scaled=scaled)
    x = np.random.default_rng(seed).standard_normal((batch, length, d_k)).astype("float32")
    _, weights = layer(x, need_weights=True)
    w = keras.ops.convert_to_numpy(weights)[:, 0].astype("float64")  # (B, L, L)
    entropy = -(w * np.log(np.maximum(w, 1e-300))).sum(-1)
    square = (w**2).sum(-1)  # ||diag(w) - ww^T||_F^2 = sum w^2 - 2 sum w^3 + (sum w^2)^2
    jacobian = np.sqrt(np.maximum(square - 2 * (w**3).sum(-1) + square**2, 0))
    return {"entropy": float(entropy.mean()), "largest weight": float(w.max(-1).mean()), "jacobian norm": float(jacobian.mean())}


def scale_table(d_ks=D_KS, length=32, seed=0):
    """softmax_at_init for each d_k, with and without the scale: rows {"d_k", "scaled", ...}."""
    return [{"d_k": d_k, "scaled": scaled, **softmax_at_init(d_k, scaled, length, seed=seed)}
            for d_k in d_ks for scaled in (True, False)]


def scale_figure(rows, length):
    """Entropy, largest weight and Jacobian norm against d_k, with and without 1/sqrt(d_k)."""
    import matplotlib.pyplot as plt

    from kcourse.plots import tidy

    keys = ("entropy", "largest weight", "jacobian norm")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key in zip(axes, keys):
        for scaled, style in ((True, "o-"), (False, "s--")):
            part = [r for r in rows if r["scaled"] == scaled]
            ax.plot([r["d_k"] for r in part], [r[key] for r in part], style, label="/ sqrt(d_k)" if scaled else "unscaled")
        ax.set(xscale="log", xlabel="d_k", title=key)
        ax.set_xticks([r["d_k"] for r in rows[::2]], [str(r["d_k"]) for r in rows[::2]])
    axes[0].axhline(np.log(length), color="grey", lw=0.8, label=f"uniform (log {length})")
    return tidy(fig, *axes)


# ---------------------------------------------------------------- 2. masks and padding
def unmasked(model):
    """The same classifier with its padding mask off: pad_id -1 matches no token, so [PAD] is attended as a word."""
    clone = type(model).from_config({**model.get_config(), "pad_id": -1})
    clone.build((None, model.max_len))
    clone.set_weights(model.get_weights())
    return clone


def padding_effect(model, vocab, sentences):
    """How the logits of each sentence move as its padding grows, for right padding with and without the mask and
    left padding with it: rows {"padding", "setting", "largest |d logit|"} (against the same sentence padded least).

    Also returns the accuracy of each setting at the model's full length.
    """
    from kcourse.text import label_from_sentence, tokenize
    from kcourse.training import predict

    fits = max(len(tokenize(s)) + 1 for s in sentences)  # the shortest length every sentence fits in, with [CLS]
    lengths = sorted({min(fits + extra, model.max_len) for extra in (0, 1, 2, 4, 8, 16, 32, 64)})
    settings = {"right, masked": (model, "right"), "right, no mask": (unmasked(model), "right"), "left, masked": (model, "left")}
    labels = np.array([label_from_sentence(s) for s in sentences])
    rows, accuracy = [], {}
    for setting, (net, side) in settings.items():
        logits = [predict(net, vocab.encode_batch(sentences, n, padding=side), 256) for n in lengths]
        for n, out in zip(lengths, logits):
            rows.append({"padding": n - fits, "setting": setting, "largest |d logit|": float(np.abs(out - logits[0]).max())})
        accuracy[setting] = float((logits[-1].argmax(-1) == labels).mean())
    return rows, accuracy


def padding_figure(rows):
    import matplotlib.pyplot as plt

    from kcourse.plots import tidy

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for setting in dict.fromkeys(r["setting"] for r in rows):
        part = [r for r in rows if r["setting"] == setting]
        ax.plot([r["padding"] for r in part], [r["largest |d logit|"] for r in part], "o-", ms=3, label=setting)
    ax.set(xlabel="[PAD] tokens added", ylabel="largest |change of a logit|", title="the same sentences, more padding")
    return tidy(fig, ax)


def causal_check(d_model=32, n_heads=2, length=10, changed=6, seed=0):
    """Token `changed` of a random sequence replaced: the largest change of the outputs before it and from it on,
    with the causal mask and without. Rows {"mask", "positions", "largest |d output|"}."""
    import keras

    from kcourse.layers import MultiHeadSelfAttention

    keras.utils.set_random_seed(seed)
    layer = MultiHeadSelfAttention(d_model, n_heads)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, length, d_model)).astype("float32")
    y = x.copy()
    y[:, changed] = rng.standard_normal((4, d_model))
    rows = []
    for causal in (True, False):
        diff = np.abs(keras.ops.convert_to_numpy(layer(x, causal=causal)) - keras.ops.convert_to_numpy(layer(y, causal=causal)))
        for positions, part in ((f"0..{changed - 1} (before)", diff[:, :changed]), (f"{changed}..{length - 1} (from it on)", diff[:, changed:])):
            rows.append({"mask": "causal" if causal else "none", "positions": positions, "largest |d output|": float(part.max())})
    return rows


# ---------------------------------------------------------------- 3. heads as slices of one projection
def heads_as_slices(d_model=64, n_heads=4, length=12, seed=0):
    """The layer's output against N_h separate heads, each with its own d x d/N_h matrices (the layer's columns),
    computed in NumPy and concatenated: {"largest difference", "fused weights", "separate weights"}."""
    import keras

    from kcourse.layers import MultiHeadSelfAttention

    keras.utils.set_random_seed(seed)
    layer = MultiHeadSelfAttention(d_model, n_heads)
    x = np.random.default_rng(seed).standard_normal((2, length, d_model)).astype("float32")
    fused = keras.ops.convert_to_numpy(layer(x))
    wq, wk, wv, wo = (keras.ops.convert_to_numpy(d.kernel) for d in (layer.wq, layer.wk, layer.wv, layer.wo))
    d_head, outs, separate = d_model // n_heads, [], 0
    for h in range(n_heads):
        cut = slice(h * d_head, (h + 1) * d_head)
        q, k, v = x @ wq[:, cut], x @ wk[:, cut], x @ wv[:, cut]  # (B, L, d_head): head h's own d x d/N_h matrices
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d_head)
        a = np.exp(scores - scores.max(-1, keepdims=True))
        outs.append((a / a.sum(-1, keepdims=True)) @ v)
        separate += 3 * d_model * d_head
    by_hand = np.concatenate(outs, -1) @ wo  # the concatenated heads, then Wo (d x d)
    return {"d_model": d_model, "heads": n_heads, "largest difference": float(np.abs(by_hand - fused).max()),
            "fused weights": layer.count_params(), "separate weights": separate + d_model * d_model}


# ---------------------------------------------------------------- the handout's questions, answered by the run
def why_the_scale(run):
    rows = {(r["d_k"], r["scaled"]): r for r in run.metrics["scale"]}
    low, high = min(r[0] for r in rows), max(r[0] for r in rows)
    un, sc = rows[(high, False)], rows[(high, True)]
    text = (f"At initialisation the scores q.k have a variance of about d_k: without the scale the softmax's entropy falls "
            f"from {rows[(low, False)]['entropy']:.2f} nats at d_k = {low} to {un['entropy']:.2f} at d_k = {high} (uniform: "
            f"{np.log(run.metrics['scale length']):.2f}), its largest weight reaches {un['largest weight']:.2f} and the norm of "
            f"its Jacobian, the gradient that reaches the scores, {un['jacobian norm']:.3f}; with 1/sqrt(d_k) the entropy "
            f"stays at {sc['entropy']:.2f} and the Jacobian at {sc['jacobian norm']:.3f}: without it the softmax saturates "
            f"and its gradients vanish as d_k grows.")
    scaled, unscaled = run.row("scaled"), run.row("unscaled")
    if scaled and unscaled:
        h_s, h_u = run.metrics["curves"]["scaled"], run.metrics["curves"]["unscaled"]
        text += (f" Trained (d_k = {run.config['d_model'] // run.config['heads']}): val loss after epoch 1 "
                 f"{h_s[0]:.3g} scaled against {h_u[0]:.3g} unscaled, val accuracy at the end {scaled['val accuracy']:.3f} "
                 f"against {unscaled['val accuracy']:.3f}.")
    return text


def masked_against_unmasked(run):
    rows, acc = run.metrics["padding"], run.metrics["padding accuracy"]
    largest = {s: max(r["largest |d logit|"] for r in rows if r["setting"] == s) for s in acc}
    most = max(r["padding"] for r in rows)
    causal = {(r["mask"], r["positions"].split()[-1]): r["largest |d output|"] for r in run.metrics["causal"]}
    return (f"With the padding mask the output of a sentence moves by at most {largest['right, masked']:.1e} as up to "
            f"{most} [PAD] tokens are added; without it (the same weights) by up to {largest['right, no mask']:.2f}, "
            f"accuracy {acc['right, masked']:.3f} against {acc['right, no mask']:.3f}. Masked (decoder) attention adds a "
            f"causal mask: a later token changed leaves the earlier outputs within {causal[('causal', '(before)')]:.1e} "
            f"(without it they move by {causal[('none', '(before)')]:.2f}), so each position sees only its past, as "
            f"autoregressive decoding needs; the encoder's unmasked attention sees the whole sentence.")


def left_or_right(run):
    rows, acc = run.metrics["padding"], run.metrics["padding accuracy"]
    left = max(r["largest |d logit|"] for r in rows if r["setting"] == "left, masked")
    return (f"Right padding keeps [CLS] at position 0 and every word at its position whatever the length: accuracy "
            f"{acc['right, masked']:.3f}. Left padding, with the same mask, moves [CLS] and every word by the padding "
            f"(new positional encodings) and puts [PAD] where the classifier reads: the logits move by up to {left:.2f} "
            f"and accuracy falls to {acc['left, masked']:.3f}. The mask hides [PAD] as a key; it cannot undo the shift.")


def heads_are_slices(run):
    h = run.metrics["heads"]
    return (f"MultiHeadSelfAttention(d={h['d_model']}, {h['heads']} heads) against {h['heads']} separate heads, each with "
            f"its own d x d/N_h = {h['d_model']} x {h['d_model'] // h['heads']} matrices Wq, Wk, Wv (the columns of the "
            f"layer's), concatenated then Wo: outputs equal to {h['largest difference']:.1e}; {h['fused weights']:,} "
            f"weights against {h['separate weights']:,}. The lecture's N_h matrices and the code's one sliced matrix are "
            f"the same function.")


HANDOUT = (
    Item("001:15", "Pourquoi normalise-t-on par sqrt(d_k) dans le produit scalaire ? Que se passe-t-il si on oublie cette "
         "normalisation ?", "Why divide by sqrt(d_k), and what happens without it?", why_the_scale,
         "kcourse.tasks.attention.softmax_at_init"),
    Item("001:16", "Quelle est la différence entre self-attention masquée (décodage autorégressif) et non-masquée (encodeur) ?",
         "Masked (autoregressive) against unmasked (encoder) self-attention.", masked_against_unmasked,
         "kcourse.tasks.attention.padding_effect"),
    Item("001:3", "Comment gérez-vous le padding : à gauche ou à droite ? Pourquoi est-ce important pour l'attention masquée ?",
         "Left or right padding, and why it matters for masked attention.", left_or_right,
         "kcourse.tasks.attention.padding_effect"),
    Item("000:12", "N_h têtes attentionnelles = N_h matrices W_q, W_k, W_v = N_h calculs d'attention",
         "N_h heads as N_h matrices, against one matrix sliced into heads.", heads_are_slices,
         "kcourse.tasks.attention.heads_as_slices"),
)


def build_parser():
    """The lab's options: the shared ones, the corpus and the model (the transformer lab's defaults)."""
    parser = cli.lab_parser("attention", __doc__, epochs=3, batch_size=64, learning_rate=1e-3, quick={"sentences": 1000})
    cli.add_transformer_options(parser)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="the tiny Transformer with its scores scaled by 1/sqrt(d_k), without, or both (default)")
    return parser


def run_lab(args):
    """Step 3 from the parsed options: the scale at initialisation, the models trained, masks, heads (what `main`
    and the notebook run)."""
    cli.check_heads(args.d_model, args.heads)
    run = runs.start("attention", args)
    from kcourse.models import build_classifier  # imports keras: after the backend is chosen

    print("1. the scale: one head at initialisation, unit-variance tokens")
    scale = scale_table(length=args.max_len, seed=args.seed)
    run.save_table("scale", scale)
    run.save_metrics(scale=scale, **{"scale length": args.max_len})
    run.savefig(scale_figure(scale, args.max_len), "scale")
    for row in scale:
        print(f"  d_k {row['d_k']:>3} {'scaled  ' if row['scaled'] else 'unscaled'}  entropy {row['entropy']:.3f}  "
              f"largest weight {row['largest weight']:.3f}  jacobian norm {row['jacobian norm']:.4f}")

    data = datasets.sentences(args.sentences, args.seed, args.max_len)
    run.outputs.update(data=data)
    print(f"\n{len(data.x_train):,} train / {len(data.x_val):,} val sentences; the tiny Transformer of step 4, trained")
    for name in dict.fromkeys(args.models):
        build = lambda name=name: build_classifier(data.vocab, args.max_len, args.d_model, args.heads, args.layers,  # noqa: E731
                                                   learning_rate=args.learning_rate, scaled=name == "scaled", name=name)
        fitted = run.fit(name, build, data.train, data.val)
        accuracy = float(fitted.history["val_accuracy"][-1])
        run.record(fitted, **{"val accuracy": accuracy, "val loss": fitted.history["val_loss"][-1]})
    run.save_metrics(curves={name: [float(v) for v in f.history["val_loss"]] for name, f in run.fitted.items()})

    print("\n2. masks: the same validation sentences with more and more padding")
    model = run.fitted[args.models[0]].model
    padding, accuracy = padding_effect(model, data.vocab, data.val_sentences[:256])
    causal = causal_check(seed=args.seed)
    run.save_table("padding", padding)
    run.save_table("causal", causal)
    run.savefig(padding_figure(padding), "padding")
    run.save_metrics(padding=padding, causal=causal, **{"padding accuracy": accuracy})
    for setting, value in accuracy.items():
        largest = max(r["largest |d logit|"] for r in padding if r["setting"] == setting)
        print(f"  {setting:<15} accuracy {value:.3f}, the logits move by up to {largest:.2e}")
    for row in causal:
        print(f"  {row['mask']:<6} mask, a later token changed: positions {row['positions']:<22} move by {row['largest |d output|']:.2e}")

    heads = heads_as_slices(args.d_model, args.heads, seed=args.seed)
    run.save_table("heads", [heads])
    run.save_metrics(heads=heads)
    print(f"\n3. heads as slices: {args.heads} separate heads against one sliced projection, outputs equal to "
          f"{heads['largest difference']:.1e}; {heads['fused weights']:,} weights either way")
    return run.finish("Self-attention: the scale, the masks, the heads", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
