import keras
from keras import layers, ops

from kcourse.layers.decoder_block import DecoderBlock
from kcourse.layers.encoder_block import EncoderBlock
from kcourse.layers.positional_encoding import PositionalEncoding


@keras.saving.register_keras_serializable(package="kcourse")
class TinyTranslator(keras.Model):
    """Lecture 000's translation architecture at the scale of TP4: an encoder-decoder Transformer.

        memory = LN(EncoderBlock^n(sqrt(d) Embed_src(source) + PE))           # (B, S, d_model)
        y      = LN(DecoderBlock^n(sqrt(d) Embed_tgt(target) + PE, memory))   # (B, T, d_model)
        logits = Dense(target_vocab)(y)                                   # (B, T, target_vocab)

    The decoder's self-attention is causal (a target word sees the words
    before it) and its cross-attention reads the whole source; both
    paddings are masked. The embeddings are scaled by sqrt(d_model) before
    the positions are added, as in the paper (section 3.4): Keras' embedding
    starts uniform in +-0.05, and the words would start drowned in their
    positions (the sinusoids have unit amplitude). Trained with teacher forcing: `target` is the
    translation shifted right behind a start token, the labels the
    translation itself (`translate` decodes greedily, word after word).

    Args:
        source_vocab, target_vocab: int. Vocabulary sizes.
        max_len: int. Longest source or target, in tokens.
        d_model, n_heads, n_layers, mlp_ratio, drop: as `EncoderBlock`
            (`n_layers` encoder blocks and as many decoder blocks).
        pad_id: int. The padding id of both vocabularies (masked).
        **kwargs: Base model arguments (`name`, ...).

    Call arguments:
        inputs: `{"source": (B, S), "target": (B, T)}` integer ids.
        need_weights: bool. Also return the attention weights,
            `{"encoder": [(B, H, S, S)], "decoder": [(B, H, T, T)],
            "cross": [(B, H, T, S)]}`, one per block.
        training: bool. Whether dropout is active.

    Example:
    >>> model = TinyTranslator(source_vocab=90, target_vocab=91, max_len=32)
    >>> ids = {"source": np.full((2, 32), 5), "target": np.full((2, 32), 5)}
    >>> model(ids).shape  # (2, 32, 91)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, figure 1.
    """

    def __init__(self, source_vocab, target_vocab, max_len=32, d_model=64, n_heads=2, n_layers=2, mlp_ratio=2.0,
                 drop=0.1, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.source_vocab, self.target_vocab, self.max_len = source_vocab, target_vocab, max_len
        self.d_model, self.n_heads, self.n_layers, self.mlp_ratio, self.drop = d_model, n_heads, n_layers, mlp_ratio, drop
        self.pad_id = pad_id
        p = dict(dtype=self.dtype_policy)
        self.source_embed = layers.Embedding(source_vocab, d_model, name="source_embed", **p)
        self.target_embed = layers.Embedding(target_vocab, d_model, name="target_embed", **p)
        self.pos = PositionalEncoding(max_len, d_model, name="pos", **p)  # sinusoidal: no weights, shared
        self.encoder = [EncoderBlock(d_model, n_heads, mlp_ratio, drop, name=f"encoder_{i}", **p) for i in range(n_layers)]
        self.decoder = [DecoderBlock(d_model, n_heads, mlp_ratio, drop, name=f"decoder_{i}", **p) for i in range(n_layers)]
        self.encoder_norm = layers.LayerNormalization(epsilon=1e-5, name="encoder_norm", **p)
        self.decoder_norm = layers.LayerNormalization(epsilon=1e-5, name="decoder_norm", **p)
        self.head = layers.Dense(target_vocab, name="head", **p)

    def build(self, input_shape):
        source, target = tuple(input_shape["source"]), tuple(input_shape["target"])
        memory, hidden = source + (self.d_model,), target + (self.d_model,)
        self.source_embed.build(source)
        self.target_embed.build(target)
        self.pos.build(hidden)
        for block in self.encoder:
            block.build(memory)
        for block in self.decoder:
            block.build(hidden, memory)
        self.encoder_norm.build(memory)
        self.decoder_norm.build(hidden)
        self.head.build(hidden)

    def call(self, inputs, need_weights=False, training=None):
        source, target = inputs["source"], inputs["target"]
        source_mask, target_mask = ops.not_equal(source, self.pad_id), ops.not_equal(target, self.pad_id)  # (B, S), (B, T)
        maps = {"encoder": [], "decoder": [], "cross": []}
        scale = ops.cast(self.d_model**0.5, self.compute_dtype)
        memory = self.pos(self.source_embed(source) * scale)  # (B, S, d_model)
        for block in self.encoder:
            memory, weights = block(memory, mask=source_mask, need_weights=True, training=training)
            maps["encoder"].append(weights)
        memory = self.encoder_norm(memory)
        y = self.pos(self.target_embed(target) * scale)  # (B, T, d_model)
        for block in self.decoder:
            y, weights, cross = block(y, memory, target_mask, source_mask, need_weights=True, training=training)
            maps["decoder"].append(weights)
            maps["cross"].append(cross)
        logits = self.head(self.decoder_norm(y))  # (B, T, target_vocab)
        return (logits, maps) if need_weights else logits

    def get_config(self):
        config = super().get_config()
        config.update({"source_vocab": self.source_vocab, "target_vocab": self.target_vocab, "max_len": self.max_len,
                       "d_model": self.d_model, "n_heads": self.n_heads, "n_layers": self.n_layers,
                       "mlp_ratio": self.mlp_ratio, "drop": self.drop, "pad_id": self.pad_id})
        return config


@keras.saving.register_keras_serializable(package="kcourse")
def token_accuracy(y_true, y_pred):
    """The share of each target's tokens predicted right, its padding (id 0) left out: (B,)."""
    real = ops.cast(ops.not_equal(y_true, 0), "float32")  # (B, T)
    right = ops.cast(ops.equal(ops.cast(y_true, "int32"), ops.cast(ops.argmax(y_pred, axis=-1), "int32")), "float32")
    return ops.sum(right * real, axis=-1) / ops.maximum(ops.sum(real, axis=-1), 1.0)


def build_translator(source_vocab, target_vocab, max_len=32, d_model=64, n_heads=2, n_layers=2, learning_rate=1e-3,
                     drop=0.1, pad_id=0):
    """A compiled TinyTranslator: AdamW, cross-entropy on the target's words (padding ignored), token accuracy."""
    from kcourse.cli import check_heads
    from kcourse.training import compile_model

    check_heads(d_model, n_heads)
    model = TinyTranslator(source_vocab, target_vocab, max_len, d_model, n_heads, n_layers, drop=drop, pad_id=pad_id,
                           name="translator")
    model.build({"source": (None, max_len), "target": (None, max_len)})
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=pad_id)
    return compile_model(model, keras.optimizers.AdamW(learning_rate), loss=loss, metrics=[token_accuracy])
