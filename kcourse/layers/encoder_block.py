import keras
from keras import layers, ops

from kcourse.layers.multi_head_self_attention import MultiHeadSelfAttention


@keras.saving.register_keras_serializable(package="kcourse")
class EncoderBlock(layers.Layer):
    """Pre-LayerNorm Transformer encoder block.

        x = x + Attn(LN1(x))
        x = x + MLP(LN2(x)),   MLP = Dense(h) -> GELU -> Dropout -> Dense(d) -> Dropout

    with `d = d_model`, `h = int(d_model * mlp_ratio)`, exact (erf) GELU and
    LayerNorm epsilon 1e-5 as in PyTorch. The attention has no bias (as in the
    course) and `drop` on its weights and output. Weight count:

        4 d^2 (attention) + 2 d h + h + d (MLP) + 4 d (two LayerNorms)

    i.e. `4 d^2 + 2 mlp_ratio d^2 + ...` for the course's formula.

    Args:
        d_model: int. Width of the token features.
        n_heads: int. Number of attention heads; must divide `d_model`.
        mlp_ratio: float. Hidden width of the MLP over `d_model`.
        drop: float. Dropout rate (attention weights, attention output, MLP).
        scaled: bool. Scale the attention scores by `1 / sqrt(d_head)`.
        activation: `"gelu"` (exact, the course's) or `"relu"`, in the MLP.
        norm: bool. The two pre-LayerNorms; False leaves them out.
        residual: bool. The two shortcuts `x + ...`; False gives
            `x = Attn(LN1(x)); x = MLP(LN2(x))`. (`norm`, `residual` and
            `activation` exist for the experiment that shows what each does:
            kcourse.tasks.blocks.)
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        x: float tensor `(B, L, d_model)`.
        mask: optional `(B, L)` padding mask (1 = token, 0 = padding) or
            `(B, L, L)` attention mask, as in `MultiHeadSelfAttention`.
        need_weights: bool. Also return the attention weights.
        training: bool. Whether dropout is active.

    Returns:
        `(B, L, d_model)`, or `(x, weights)` with `weights` of shape
        `(B, n_heads, L, L)` if `need_weights`.

    Example:
    >>> block = EncoderBlock(d_model=64, n_heads=2)
    >>> y, w = block(np.zeros((2, 10, 64)), need_weights=True)
    >>> y.shape, w.shape  # ((2, 10, 64), (2, 2, 10, 10))

    Reference:
        Xiong et al., "On Layer Normalization in the Transformer
        Architecture", ICML 2020 (pre-LN); Vaswani et al., NeurIPS 2017.
    """

    def __init__(self, d_model=64, n_heads=2, mlp_ratio=2.0, drop=0.1, scaled=True, activation="gelu", norm=True,
                 residual=True, **kwargs):
        super().__init__(**kwargs)
        hidden = int(d_model * mlp_ratio)
        if hidden <= 0:
            raise ValueError(
                f"int(d_model * mlp_ratio) must be positive, received d_model={d_model}, "
                f"mlp_ratio={mlp_ratio}."
            )
        self.d_model = d_model
        self.n_heads = n_heads
        self.mlp_ratio = mlp_ratio
        self.drop = drop
        if activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', received {activation!r}.")
        self.scaled = scaled
        self.activation, self.norm, self.residual = activation, norm, residual
        self.hidden = hidden
        p = dict(dtype=self.dtype_policy)
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1", **p)
        self.attn = MultiHeadSelfAttention(
            d_model, n_heads, attn_drop=drop, proj_drop=drop, scaled=scaled, name="attn", **p
        )
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2", **p)
        self.fc1 = layers.Dense(hidden, name="fc1", **p)
        self.fc2 = layers.Dense(d_model, name="fc2", **p)
        self.drop1 = layers.Dropout(drop, name="drop1", **p)
        self.drop2 = layers.Dropout(drop, name="drop2", **p)

    def build(self, input_shape):
        for layer in (self.norm1, self.attn, self.norm2, self.fc1):
            layer.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden,))

    def call(self, x, mask=None, need_weights=False, training=None):
        y, weights = self.attn(self.norm1(x) if self.norm else x, mask=mask, need_weights=True, training=training)
        x = x + y if self.residual else y
        h = self.fc1(self.norm2(x) if self.norm else x)  # (B, L, hidden)
        h = ops.gelu(h, approximate=False) if self.activation == "gelu" else ops.relu(h)
        h = self.drop2(self.fc2(self.drop1(h, training=training)), training=training)
        x = x + h if self.residual else h  # (B, L, d_model)
        return (x, weights) if need_weights else x

    def compute_mask(self, inputs, mask=None):
        return mask if mask is not None and len(mask.shape) == 2 else None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "d_model": self.d_model,
                "n_heads": self.n_heads,
                "mlp_ratio": self.mlp_ratio,
                "drop": self.drop,
                "scaled": self.scaled,
                "activation": self.activation,
                "norm": self.norm,
                "residual": self.residual,
            }
        )
        return config
