import keras
from keras import layers, ops

from kcourse.layers.multi_head_self_attention import MultiHeadSelfAttention


@keras.saving.register_keras_serializable(package="kcourse")
class DecoderBlock(layers.Layer):
    """Pre-LayerNorm Transformer decoder block: the translation architecture's (lecture 000).

        y = y + CausalSelfAttn(LN1(y))           # each target word sees the ones before it
        y = y + CrossAttn(LN2(y), memory)        # and the whole source, through the encoder's output
        y = y + MLP(LN3(y)),   MLP = Dense(h) -> GELU -> Dropout -> Dense(d) -> Dropout

    with `d = d_model`, `h = int(d_model * mlp_ratio)`, as `EncoderBlock`
    (exact GELU, LayerNorm epsilon 1e-5, attention without bias).

    Args:
        d_model: int. Width of the token features.
        n_heads: int. Number of heads in each attention; must divide `d_model`.
        mlp_ratio: float. Hidden width of the MLP over `d_model`.
        drop: float. Dropout rate (attention weights and outputs, MLP).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        y: float tensor `(B, T, d_model)`, the target so far.
        memory: float tensor `(B, S, d_model)`, the encoder's output.
        target_mask: optional `(B, T)` padding mask of the target.
        memory_mask: optional `(B, S)` padding mask of the source.
        need_weights: bool. Also return both attentions' weights.
        training: bool. Whether dropout is active.

    Returns:
        `(B, T, d_model)`, or `(y, self_weights, cross_weights)` with
        `self_weights (B, n_heads, T, T)` and `cross_weights (B, n_heads, T, S)`
        if `need_weights`.

    Example:
    >>> block = DecoderBlock(d_model=32, n_heads=2)
    >>> y, a, c = block(np.zeros((2, 7, 32)), np.zeros((2, 9, 32)), need_weights=True)
    >>> y.shape, a.shape, c.shape  # ((2, 7, 32), (2, 2, 7, 7), (2, 2, 7, 9))

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, figure 1.
    """

    def __init__(self, d_model=64, n_heads=2, mlp_ratio=2.0, drop=0.1, **kwargs):
        super().__init__(**kwargs)
        hidden = int(d_model * mlp_ratio)
        if hidden <= 0:
            raise ValueError(f"int(d_model * mlp_ratio) must be positive, received d_model={d_model}, mlp_ratio={mlp_ratio}.")
        self.d_model, self.n_heads, self.mlp_ratio, self.drop, self.hidden = d_model, n_heads, mlp_ratio, drop, hidden
        p = dict(dtype=self.dtype_policy)
        attention = dict(attn_drop=drop, proj_drop=drop, **p)
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1", **p)
        self.self_attn = MultiHeadSelfAttention(d_model, n_heads, name="self_attn", **attention)
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2", **p)
        self.cross_attn = MultiHeadSelfAttention(d_model, n_heads, name="cross_attn", **attention)
        self.norm3 = layers.LayerNormalization(epsilon=1e-5, name="norm3", **p)
        self.fc1 = layers.Dense(hidden, name="fc1", **p)
        self.fc2 = layers.Dense(d_model, name="fc2", **p)
        self.drop1 = layers.Dropout(drop, name="drop1", **p)
        self.drop2 = layers.Dropout(drop, name="drop2", **p)

    def build(self, y_shape, memory_shape=None):
        for layer in (self.norm1, self.self_attn, self.norm2, self.cross_attn, self.norm3, self.fc1):
            layer.build(y_shape)
        self.fc2.build(tuple(y_shape[:-1]) + (self.hidden,))

    def call(self, y, memory, target_mask=None, memory_mask=None, need_weights=False, training=None):
        h, self_weights = self.self_attn(self.norm1(y), mask=target_mask, causal=True, need_weights=True, training=training)
        y = y + h
        h, cross_weights = self.cross_attn(self.norm2(y), mask=memory_mask, context=memory, need_weights=True, training=training)
        y = y + h
        h = ops.gelu(self.fc1(self.norm3(y)), approximate=False)  # (B, T, hidden)
        y = y + self.drop2(self.fc2(self.drop1(h, training=training)), training=training)  # (B, T, d_model)
        return (y, self_weights, cross_weights) if need_weights else y

    def get_config(self):
        config = super().get_config()
        config.update({"d_model": self.d_model, "n_heads": self.n_heads, "mlp_ratio": self.mlp_ratio, "drop": self.drop})
        return config
