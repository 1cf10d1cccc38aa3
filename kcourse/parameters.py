"""Parameter counts: what trains, and the lectures' formulas next to Keras' count_params().

    parameters.trainable(model)            # what PyTorch's sum(p.numel() for p in model.parameters()) counts
    parameters.transformer_formulas(64, 2)  # the TP4 review: MHSA = 4 d^2 whatever the heads, ...
    parameters.vit_block(768, 3072)         # one pre-norm ViT encoder block: 7,087,872
"""

import math


def trainable(model):
    """The trainable weights' count (BatchNorm's moving statistics, frozen layers and buffers left out)."""
    return sum(math.prod(int(n) for n in w.shape) for w in model.trainable_weights)


def vit_block(d, mlp):
    """Parameters of one pre-norm encoder block from D and the MLP width M.

    attention: Q, K, V and output projections, 4 (D*D + D); MLP: D*M + M + M*D + D;
    two LayerNorms: 2 * 2D. Total 4D^2 + 2DM + 9D + M.
    """
    return 4 * (d * d + d) + (d * mlp + mlp + mlp * d + d) + 2 * 2 * d


def transformer_formulas(d_model=64, n_heads=2, mlp_ratio=2.0, n_layers=2, vocab_size=None, max_len=32,
                         num_classes=2, pe="sinusoidal", embed_dim=None):
    """The TP4 review questions: the weights of kcourse's layers, by formula and by Keras' count_params().

    - MultiHeadSelfAttention: Wq, Wk, Wv, Wo are d x d each, 4 d^2 weights
      (4 d^2 + 4 d with biases), whatever `n_heads` is: the heads do not get
      matrices of their own, each is a slice of d / n_heads of the same d
      outputs (Q is reshaped (B, L, d) -> (B, n_heads, L, d / n_heads)).
    - EncoderBlock: 4 d^2 + 2 r d^2 (the MLP d -> r d -> d, r = mlp_ratio),
      plus the MLP's biases r d + d and two LayerNorms' gamma and beta, 4 d.
    - TinyTransformerClassifier (with `vocab_size`): the embedding V e (and a
      projection e d + d when e != d), learned positions max_len d,
      n_layers blocks, the final LayerNorm 2 d and the head d C + C.

    Returns a list of rows {"part", "formula", "computed", "keras count_params"},
    the count of the real kcourse layer next to the formula's.
    """
    from kcourse.layers import EncoderBlock, MultiHeadSelfAttention
    from kcourse.models import TinyTransformerClassifier

    d, r, hidden = d_model, mlp_ratio, int(d_model * mlp_ratio)

    def counted(layer, shape):
        layer.build(shape)
        return layer.count_params()

    tokens = (None, None, d)  # (B, L, d_model)
    rows = [
        {"part": f"MultiHeadSelfAttention(d_model={d}, n_heads={n_heads})", "formula": "4 d^2 (Wq, Wk, Wv, Wo: d x d, no bias)",
         "computed": 4 * d * d, "keras count_params": counted(MultiHeadSelfAttention(d, n_heads), tokens)},
    ]
    if n_heads != 1:
        rows.append({"part": f"MultiHeadSelfAttention(d_model={d}, n_heads=1)", "formula": "4 d^2 also: heads slice Q, K, V, no new matrices",
                     "computed": 4 * d * d, "keras count_params": counted(MultiHeadSelfAttention(d, 1), tokens)})
    rows += [
        {"part": f"MultiHeadSelfAttention(d_model={d}, n_heads={n_heads}, use_bias=True)", "formula": "4 d^2 + 4 d",
         "computed": 4 * d * d + 4 * d, "keras count_params": counted(MultiHeadSelfAttention(d, n_heads, use_bias=True), tokens)},
        {"part": f"EncoderBlock(d_model={d}, n_heads={n_heads}, mlp_ratio={r:g})",
         "formula": "4 d^2 + 2 r d^2 + (r d + d) MLP biases + 4 d LayerNorms",
         "computed": 4 * d * d + 2 * d * hidden + hidden + d + 4 * d,
         "keras count_params": counted(EncoderBlock(d, n_heads, r), tokens)},
    ]
    if vocab_size is not None:
        e = d if embed_dim is None else embed_dim
        block = rows[-1]["computed"]
        parts = ["V e" + (" + e d + d" if e != d else ""), *(["max_len d"] if pe == "learned" else []),
                 f"{n_layers} blocks", "2 d", "d C + C"]
        computed = (vocab_size * e + (e * d + d if e != d else 0) + (max_len * d if pe == "learned" else 0)
                    + n_layers * block + 2 * d + d * num_classes + num_classes)
        model = TinyTransformerClassifier(vocab_size, max_len, d, n_heads, n_layers, num_classes, embed_dim=e,
                                          mlp_ratio=r, pe=pe)
        rows.append({"part": f"TinyTransformerClassifier(V={vocab_size}, e={e}, n_layers={n_layers}, pe={pe})",
                     "formula": " + ".join(parts), "computed": computed,
                     "keras count_params": counted(model, (None, max_len))})
    return rows
