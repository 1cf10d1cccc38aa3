import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kcourse")
class MultiHeadSelfAttention(layers.Layer):
    """Multi-head self-attention, the core of the Transformer.

    Each of the `n_heads` heads attends over the sequence with its own slice of
    `d_head = d_model // n_heads` features:

        Q, K, V = x Wq, x Wk, x Wv                  # (B, L, d_model) each
        A = softmax(Q_h K_h^T / sqrt(d_head))       # (B, n_heads, L, L)
        out = concat_h(A_h V_h) Wo                  # (B, L, d_model)

    With a `context` (B, S, d_model), the same layer is the decoder's
    cross-attention: queries from `x`, keys and values from the context
    (the encoder's output), weights `(B, n_heads, L, S)`.

    The heads are made by reshaping `(B, L, d_model)` to
    `(B, n_heads, L, d_head)`, so the four projections are `d_model x d_model`
    whatever `n_heads` is: `4 * d_model**2` weights without bias.

    Masked keys get exactly zero weight. A query whose keys are all masked
    (e.g. a padding query under a causal and padding mask) gets an all-zero
    row of weights and a zero output (before `wo`'s bias): never NaN.

    Args:
        d_model: int. Width of the input and output features.
        n_heads: int. Number of heads; must divide `d_model`.
        attn_drop: float. Dropout rate on the attention weights.
        proj_drop: float. Dropout rate on the output projection.
        use_bias: bool. Whether `wq`, `wk`, `wv`, `wo` have a bias.
        scaled: bool. Divide the scores by `sqrt(d_head)` (the Transformer's
            choice); False leaves them unscaled, for the experiment that
            shows why (kcourse.tasks.attention).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        x: float tensor `(B, L, d_model)`.
        mask: optional padding mask `(B, L)`, 1 for a token and 0 for padding
            (masks the keys), or a full mask `(B, L, L)`, 1 where query `i`
            may attend to key `j`. A Keras mask (e.g. from
            `Embedding(mask_zero=True)`) is picked up automatically. With a
            `context`, `mask` is the context's `(B, S)`.
        need_weights: bool. Also return the attention weights.
        causal: bool. Add the autoregressive mask: query `i` sees keys `j <= i`
            (self-attention only).
        context: optional float tensor `(B, S, d_model)`: attend to it
            (cross-attention) instead of to `x`.
        training: bool. Whether dropout is active.

    Returns:
        `(B, L, d_model)`, or `(out, weights)` with `weights` of shape
        `(B, n_heads, L, L)` (before attention dropout) if `need_weights`.

    Example:
    >>> attn = MultiHeadSelfAttention(d_model=64, n_heads=4)
    >>> out, w = attn(np.zeros((2, 10, 64)), need_weights=True)
    >>> out.shape, w.shape  # ((2, 10, 64), (2, 4, 10, 10))

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(
        self,
        d_model=64,
        n_heads=4,
        attn_drop=0.0,
        proj_drop=0.0,
        use_bias=False,
        scaled=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if d_model <= 0 or n_heads <= 0 or d_model % n_heads:
            raise ValueError(
                f"d_model={d_model} is not divisible by n_heads={n_heads}: "
                "choose n_heads among the positive divisors of d_model."
            )
        self.d_model = d_model
        self.n_heads = n_heads
        self.attn_drop = attn_drop
        self.proj_drop = proj_drop
        self.use_bias = use_bias
        self.scaled = scaled
        self.d_head = d_model // n_heads
        dense = dict(use_bias=use_bias, dtype=self.dtype_policy)
        self.wq = layers.Dense(d_model, name="wq", **dense)
        self.wk = layers.Dense(d_model, name="wk", **dense)
        self.wv = layers.Dense(d_model, name="wv", **dense)
        self.wo = layers.Dense(d_model, name="wo", **dense)
        self.attn_dropout = layers.Dropout(
            attn_drop, dtype=self.dtype_policy, name="attn_dropout"
        )
        self.proj_dropout = layers.Dropout(
            proj_drop, dtype=self.dtype_policy, name="proj_dropout"
        )

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.d_model:
            raise ValueError(
                f"MultiHeadSelfAttention(d_model={self.d_model}) received "
                f"inputs of shape {input_shape}: the last axis must be "
                f"{self.d_model}."
            )
        for dense in (self.wq, self.wk, self.wv, self.wo):
            dense.build(input_shape)

    def call(self, x, mask=None, need_weights=False, causal=False, context=None, training=None):
        if causal and context is not None:
            raise ValueError("causal=True masks a sequence attending to itself; cross-attention (a context) takes no causal mask.")
        B, L = ops.shape(x)[0], ops.shape(x)[1]
        source = x if context is None else context  # (B, S, d_model): the keys and values

        def heads(t):  # (B, L, d_model) -> (B, H, L, d_head)
            t = ops.reshape(t, (B, ops.shape(t)[1], self.n_heads, self.d_head))
            return ops.transpose(t, (0, 2, 1, 3))

        q, k, v = heads(self.wq(x)), heads(self.wk(source)), heads(self.wv(source))
        scale = ops.cast(self.d_head**-0.5 if self.scaled else 1.0, self.compute_dtype)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * scale  # (B, H, L, S)

        allowed = None  # bool, broadcastable to (B, H, L, S)
        if mask is not None:
            mask = ops.cast(mask, "bool")
            if len(mask.shape) == 2:
                allowed = mask[:, None, None, :]  # (B, 1, 1, S): keys
            else:
                allowed = mask[:, None, :, :]  # (B, 1, L, S)
        if causal:
            i = ops.arange(L)
            tril = (i[:, None] >= i[None, :])[None, None]  # (1, 1, L, L): j <= i
            allowed = tril if allowed is None else ops.logical_and(allowed, tril)

        if allowed is None:
            weights = ops.softmax(scores, axis=-1)
        else:
            # A finite large negative keeps all-masked rows free of NaN (also
            # in the gradient); the second `where` makes masked weights 0.
            big = 3e4 if self.compute_dtype == "float16" else 1e9
            scores = ops.where(allowed, scores, ops.cast(-big, scores.dtype))
            weights = ops.softmax(scores, axis=-1)
            weights = ops.where(allowed, weights, ops.zeros_like(weights))

        out = ops.matmul(self.attn_dropout(weights, training=training), v)  # (B, H, L, d_head)
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (B, L, self.d_model))
        out = self.proj_dropout(self.wo(out), training=training)  # (B, L, d_model)
        return (out, weights) if need_weights else out

    def compute_mask(self, inputs, mask=None):
        # A padding mask (B, L) carries on to the next layer; a (B, L, L) does not.
        return mask if mask is not None and len(mask.shape) == 2 else None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "d_model": self.d_model,
                "n_heads": self.n_heads,
                "attn_drop": self.attn_drop,
                "proj_drop": self.proj_drop,
                "use_bias": self.use_bias,
                "scaled": self.scaled,
            }
        )
        return config
