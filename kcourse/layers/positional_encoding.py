import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kcourse")
class PositionalEncoding(layers.Layer):
    """Adds position information to a sequence of embeddings.

    `mode="sinusoidal"` adds the fixed table of Vaswani et al. (no weights):

        PE[p, 2i]   = sin(p / 10000^(2i / d_model))
        PE[p, 2i+1] = cos(p / 10000^(2i / d_model))

    computed in float32 for the positions `0 .. L-1` of each input.
    `mode="learned"` adds rows `0 .. L-1` of a trainable `(max_len, d_model)`
    table instead (initialised from N(0, 0.02^2)).

    Args:
        max_len: int. Longest sequence the layer accepts.
        d_model: int. Width of the embeddings.
        mode: `"sinusoidal"` or `"learned"`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        x: float tensor `(B, L, d_model)`, `L <= max_len`.

    Returns:
        `x + PE[:L]`, shape `(B, L, d_model)`. A Keras mask on `x` is kept.

    `L > max_len` is an error when the layer is built, i.e. on its first
    call (eager or symbolic) with a known length. Later calls are not checked
    (the check would fire on the placeholder lengths Keras traces with): the
    learned table then fails to broadcast, the sinusoidal one extends.

    Example:
    >>> pe = PositionalEncoding(max_len=32, d_model=64)
    >>> pe(np.zeros((2, 10, 64))).shape  # (2, 10, 64)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, sec. 3.5.
    """

    MODES = ("sinusoidal", "learned")

    def __init__(self, max_len, d_model, mode="sinusoidal", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, received mode={mode!r}.")
        if max_len <= 0 or d_model <= 0:
            raise ValueError(
                f"max_len and d_model must be positive, received max_len={max_len}, "
                f"d_model={d_model}."
            )
        self.max_len = max_len
        self.d_model = d_model
        self.mode = mode
        self.supports_masking = True

    def build(self, input_shape):
        length, width = input_shape[-2], input_shape[-1]
        if length is not None and length > self.max_len:
            raise ValueError(
                f"PositionalEncoding(max_len={self.max_len}) received a sequence of "
                f"length {length} (input shape {input_shape}): truncate the inputs "
                f"to {self.max_len} tokens or build the layer with max_len >= {length}."
            )
        if width is not None and width != self.d_model:
            raise ValueError(
                f"PositionalEncoding(d_model={self.d_model}) received inputs of "
                f"shape {input_shape}: the last axis must be {self.d_model}."
            )
        if self.mode == "learned":
            self.table = self.add_weight(
                shape=(self.max_len, self.d_model),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
                name="table",
            )

    def call(self, x):
        L = ops.shape(x)[-2]
        if self.mode == "learned":
            pe = self.table[:L]  # (L, d_model)
        else:
            d = self.d_model  # static frequencies: exact in float64, then float32
            freq = [10000.0 ** (-2 * (j // 2) / d) for j in range(d)]
            freq = ops.convert_to_tensor(freq, "float32")  # (d_model,)
            even = ops.convert_to_tensor([j % 2 == 0 for j in range(d)])  # (d_model,)
            angle = ops.cast(ops.arange(L), "float32")[:, None] * freq[None, :]  # (L, d_model)
            pe = ops.where(even, ops.sin(angle), ops.cos(angle))
        return x + ops.cast(pe, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"max_len": self.max_len, "d_model": self.d_model, "mode": self.mode})
        return config
