"""The TP4 review (002): what GELU, LayerNorm and the residual connections of the encoder block do, measured.

The course's block is `x = x + Attn(LN1(x)); x = x + MLP(LN2(x))` with a GELU
in the MLP. Each variant changes one piece of it, everything else equal:

    block         the block as the course writes it
    relu          ReLU instead of GELU in the MLP
    no-norm       without the two LayerNorms
    no-residual   without the two shortcuts: x = Attn(LN1(x)); x = MLP(LN2(x))

each as the tiny Transformer of step 4 at two depths (2 blocks, the lab's, and
8), on the European-country task. For each: the gradient that reaches every
block at initialisation (kcourse.training.gradients, on one batch) and the
validation accuracy after training.

    python -m kcourse.tasks.blocks                     # 20,000 sentences, 3 epochs, depths 2 and 8
    python -m kcourse.tasks.blocks --quick             # a smoke run

The run folder gets gradients.csv / gradients.png (the gradient norm per
block, at initialisation), activations.png (GELU and ReLU), and per model
history_<variant>-<depth>.csv, .keras, summary.csv and the learning curves.
"""

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.blocks: build_parser(), then run_lab(args)

VARIANTS = {"block": {}, "relu": {"activation": "relu"}, "no-norm": {"norm": False}, "no-residual": {"residual": False}}
PARITY = {"val accuracy": 0.05}
CLASS_SIZE = ("--sentences", "3000")  # 8 models, four of 8 blocks: a few minutes a backend on 2 cores
KEY_FIGURES = ("gradients", "learning_curves")


def block_gradients(model, x, y):
    """The norm of the loss's gradient over each block's weights, first block first: [float] * n_layers."""
    from kcourse.training import gradients

    grads = gradients(model, x, y)
    norms = []
    for i in range(model.n_layers):
        mine = [g for v, g in zip(model.trainable_variables, grads) if f"block_{i}/" in v.path]
        norms.append(float(np.sqrt(sum((g.astype("float64") ** 2).sum() for g in mine))))
    return norms


def gradients_figure(rows):
    import matplotlib.pyplot as plt

    from kcourse.plots import tidy

    depths = sorted({r["depth"] for r in rows})
    fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 3.4), squeeze=False)
    for ax, depth in zip(axes[0], depths):
        for r in (r for r in rows if r["depth"] == depth):
            ax.plot(np.arange(1, depth + 1), r["per block"], "o-", ms=3, label=r["variant"])
        ax.set(xlabel="block (1 = first)", ylabel="gradient norm at initialisation", yscale="log", title=f"{depth} blocks")
        ax.set_xticks(np.arange(1, depth + 1))
    return tidy(fig, *axes[0])


def activations_figure():
    """GELU (x Phi(x), smooth, slightly negative below 0) against ReLU (max(0, x))."""
    import keras
    import matplotlib.pyplot as plt

    from kcourse.plots import tidy

    x = np.linspace(-4, 4, 401).astype("float32")
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(x, keras.ops.convert_to_numpy(keras.ops.gelu(x, approximate=False)), label="GELU: x Phi(x)")
    ax.plot(x, np.maximum(x, 0), "--", label="ReLU: max(0, x)")
    ax.set(xlabel="x", title="the MLP's activation")
    return tidy(fig, ax)


# ---------------------------------------------------------------- the handout's questions, answered by the run
def _grads(run):
    return {(g["variant"], g["depth"]): g for g in run.metrics["gradients"]}


def gelu_and_layernorm(run):
    acc = {(r["variant"], r["depth"]): r["val accuracy"] for r in run.rows}
    grads, deep = _grads(run), max(r["depth"] for r in run.metrics["gradients"])
    parts = [f"{variant} {acc[(variant, depth)]:.3f}" for variant in VARIANTS for depth in (deep,) if (variant, depth) in acc]
    text = (f"GELU is x Phi(x): a smooth ReLU that lets a little negative signal through; LayerNorm rescales each "
            f"token's features to mean 0 and variance 1, so that the residual stream keeps one scale from block to "
            f"block. Val accuracy at {deep} blocks: {', '.join(parts)}.")
    if ("block", deep) in grads and ("no-norm", deep) in grads:
        text += (f" The gradient reaching the first of {deep} blocks at initialisation: {grads[('block', deep)]['first']:.3g} "
                 f"with the LayerNorms, {grads[('no-norm', deep)]['first']:.3g} without.")
    if ("block", deep) in acc and ("relu", deep) in acc:
        gap = acc[("block", deep)] - acc[("relu", deep)]
        text += f" GELU against ReLU: {gap:+.3f} of accuracy."
    return text


def why_residuals(run):
    acc = {(r["variant"], r["depth"]): r["val accuracy"] for r in run.rows}
    grads = _grads(run)
    deep = max(depth for variant, depth in grads if variant == "no-residual")
    plain, res = grads[("no-residual", deep)], grads[("block", deep)]
    text = (f"Without the shortcuts, the gradient reaching the first of {deep} blocks at initialisation is "
            f"{plain['first']:.3g}, {plain['first'] / plain['last']:.2g} times the last block's; with them "
            f"{res['first']:.3g}, {res['first'] / res['last']:.2g} times: x + f(x) passes the gradient through "
            f"unchanged (the identity's derivative is 1), whatever f does to it.")
    if ("no-residual", deep) in acc and ("block", deep) in acc:
        text += f" Trained: val accuracy {acc[('block', deep)]:.3f} with them, {acc[('no-residual', deep)]:.3f} without."
    return text


HANDOUT = (
    Item("002:4", "Ce que sont nn.GELU(), nn.LayerNorm et pourquoi les utilise-t-on ?", "What GELU and LayerNorm are, and why.",
         gelu_and_layernorm, "kcourse.tasks.blocks.block_gradients"),
    Item("002:5", "x = x + self.attn(self.ln1(x)) ; x = x + self.mlp(self.ln2(x)) : pourquoi les connexions résiduelles ?",
         "Why the residual connections?", why_residuals, "kcourse.tasks.blocks.block_gradients",
         needs="--variants block no-residual"),
)


def build_parser():
    """The lab's options: the shared ones, the corpus and model, the variants and depths."""
    parser = cli.lab_parser("blocks", __doc__, epochs=3, batch_size=64, learning_rate=1e-3, quick={"sentences": 1000})
    cli.add_transformer_options(parser)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS, help="default: all four")
    parser.add_argument("--depths", nargs="+", type=cli.positive_int, default=[2, 8], help="blocks (default: 2 8)")
    return parser


def run_lab(args):
    """Every variant at every depth: its gradients at initialisation, then trained (what `main` and the notebook run)."""
    cli.check_heads(args.d_model, args.heads)
    run = runs.start("blocks", args)
    from kcourse.models import build_classifier  # imports keras: after the backend is chosen

    data = datasets.sentences(args.sentences, args.seed, args.max_len)
    batch = data.x_train[:args.batch_size], data.y_train[:args.batch_size]
    print(f"{len(data.x_train):,} train / {len(data.x_val):,} val sentences")
    run.savefig(activations_figure(), "activations")
    measured = []
    for depth in dict.fromkeys(args.depths):
        for variant in dict.fromkeys(args.variants):
            def build(variant=variant, depth=depth):  # the model fit trains, measured first at initialisation
                model = build_classifier(data.vocab, args.max_len, args.d_model, args.heads, depth, learning_rate=args.learning_rate,
                                         name=f"{variant}-{depth}", **VARIANTS[variant])
                norms = block_gradients(model, *batch)
                measured.append({"variant": variant, "depth": depth, "first": norms[0], "last": norms[-1], "per block": norms})
                print(f"{variant} x{depth}: gradient norm at initialisation, first block {norms[0]:.3g}, last {norms[-1]:.3g}")
                return model

            fitted = run.fit(f"{variant}-{depth}", build, data.train, data.val)
            run.record(fitted, variant=variant, depth=depth, **{"val accuracy": fitted.history["val_accuracy"][-1]})
    run.save_metrics(gradients=measured)
    run.save_table("gradients", [{k: v for k, v in g.items() if k != "per block"} for g in measured])
    run.savefig(gradients_figure(measured), "gradients")
    return run.finish("The encoder block, piece by piece", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
