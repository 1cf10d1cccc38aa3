import keras
import numpy as np
from keras import layers, ops

from kcourse.layers import ClassificationHead, EncoderBlock, PositionalEncoding


@keras.saving.register_keras_serializable(package="kcourse")
class TinyTransformerClassifier(keras.Model):
    """A small encoder-only Transformer that classifies a sequence from its
    first token ([CLS]).

        mask = token_ids != pad_id                                   # (B, L)
        h = Embedding(token_ids) [-> Dense(d_model)] + PE            # (B, L, d_model)
        h = EncoderBlock(h, mask) x n_layers                         # (B, L, d_model)
        logits = ClassificationHead(LayerNorm(h)[:, 0])              # (B, num_classes)

    The embedding can start from a given `(vocab_size, embed_dim)` matrix
    (e.g. the SkipGram vectors) and be frozen. A Dense projection
    `embed_dim -> d_model` (with bias) is added only when `embed_dim != d_model`;
    otherwise the embeddings enter the encoder as they are.

    Attention maps: `model(token_ids, need_weights=True)` returns
    `(logits, [A_1, ..., A_n_layers])`, each `A_i` of shape
    `(B, n_heads, L, L)`; `logits_and_attention(token_ids)` does the same in
    inference mode and returns NumPy arrays, ready to plot. Keys at padding
    positions get exactly zero attention.

    Args:
        vocab_size: int. Number of token ids.
        max_len: int. Longest sequence (with [CLS]).
        d_model: int. Width of the encoder.
        n_heads: int. Attention heads per block; must divide `d_model`.
        n_layers: int. Number of `EncoderBlock`s.
        num_classes: int. Number of classes.
        embed_dim: optional int. Embedding width; defaults to the width of
            `embeddings` if given, else `d_model`.
        mlp_ratio: float. MLP hidden width over `d_model` in each block.
        drop: float. Dropout rate in each block.
        pe: `"sinusoidal"` or `"learned"` positional encoding.
        pad_id: int. The padding token id, masked out of the attention.
        scaled: bool. Scale the attention scores by `1 / sqrt(d_head)`.
        activation, norm, residual: each block's MLP activation, LayerNorms
            and shortcuts (`EncoderBlock`).
        embeddings: optional `(vocab_size, embed_dim)` array to initialise the
            embedding (not part of the config: the saved weights carry it).
        freeze_embeddings: bool. Keep the embedding fixed during training.
        **kwargs: Base model arguments (`name`, `dtype`, ...).

    Call arguments:
        token_ids: int tensor `(B, L)`, `L <= max_len`, [CLS] first.
        need_weights: bool. Also return the per-layer attention maps.
        training: bool. Whether dropout is active.

    Returns:
        Logits `(B, num_classes)`, or `(logits, attention_maps)`.

    Example:
    >>> model = TinyTransformerClassifier(vocab_size=1000, max_len=32)
    >>> token_ids = np.full((4, 32), 5)  # [CLS] first in real use; pad_id=0 is masked out
    >>> logits, maps = model.logits_and_attention(token_ids)
    >>> logits.shape, maps[0].shape  # ((4, 2), (4, 2, 32, 32))

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017; Devlin et
        al., "BERT", NAACL 2019 (the [CLS] token).
    """

    def __init__(
        self,
        vocab_size,
        max_len,
        d_model=64,
        n_heads=2,
        n_layers=2,
        num_classes=2,
        embed_dim=None,
        mlp_ratio=2.0,
        drop=0.1,
        pe="sinusoidal",
        pad_id=0,
        scaled=True,
        activation="gelu",
        norm=True,
        residual=True,
        embeddings=None,
        freeze_embeddings=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if embeddings is not None:
            shape = tuple(np.shape(embeddings))
            embed_dim = shape[-1] if embed_dim is None else embed_dim
            if shape != (vocab_size, embed_dim):
                raise ValueError(
                    f"embeddings must have shape (vocab_size, embed_dim) = "
                    f"({vocab_size}, {embed_dim}), received {shape}."
                )
        embed_dim = d_model if embed_dim is None else embed_dim
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.mlp_ratio = mlp_ratio
        self.drop = drop
        self.pe = pe
        self.pad_id = pad_id
        self.scaled = scaled
        self.activation, self.norm_blocks, self.residual = activation, norm, residual
        self.freeze_embeddings = freeze_embeddings

        p = dict(dtype=self.dtype_policy)
        self.embed = layers.Embedding(
            vocab_size, embed_dim, weights=embeddings, trainable=not freeze_embeddings,
            name="embed", **p,
        )
        self.proj = layers.Dense(d_model, name="proj", **p) if embed_dim != d_model else None
        self.pos = PositionalEncoding(max_len, d_model, mode=pe, name="pos", **p)
        self.blocks = [
            EncoderBlock(d_model, n_heads, mlp_ratio, drop, scaled, activation, norm, residual, name=f"block_{i}", **p)
            for i in range(n_layers)
        ]
        self.norm = layers.LayerNormalization(epsilon=1e-5, name="norm", **p)
        self.head = ClassificationHead(num_classes, input_dim=d_model, name="head", **p)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        hidden = input_shape + (self.d_model,)  # (B, L, d_model)
        self.embed.build(input_shape)
        if self.proj is not None:
            self.proj.build(input_shape + (self.embed_dim,))
        self.pos.build(hidden)
        for block in self.blocks:
            block.build(hidden)
        self.norm.build(hidden)
        self.head.build((input_shape[0], self.d_model))

    def call(self, token_ids, need_weights=False, training=None):
        mask = ops.not_equal(token_ids, self.pad_id)  # (B, L)
        h = self.embed(token_ids)  # (B, L, embed_dim)
        if self.proj is not None:
            h = self.proj(h)  # (B, L, d_model)
        h = self.pos(h)
        maps = []
        for block in self.blocks:
            h, weights = block(h, mask=mask, need_weights=True, training=training)
            maps.append(weights)  # (B, n_heads, L, L)
        logits = self.head(self.norm(h)[:, 0, :], training=training)  # (B, num_classes)
        return (logits, maps) if need_weights else logits

    def logits_and_attention(self, token_ids):
        """Inference-mode logits `(B, num_classes)` and the list of per-layer
        attention maps `(B, n_heads, L, L)`, as NumPy arrays."""
        logits, maps = self(token_ids, need_weights=True, training=False)
        return ops.convert_to_numpy(logits), [ops.convert_to_numpy(a) for a in maps]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "max_len": self.max_len,
                "d_model": self.d_model,
                "n_heads": self.n_heads,
                "n_layers": self.n_layers,
                "num_classes": self.num_classes,
                "embed_dim": self.embed_dim,
                "mlp_ratio": self.mlp_ratio,
                "drop": self.drop,
                "pe": self.pe,
                "pad_id": self.pad_id,
                "scaled": self.scaled,
                "activation": self.activation,
                "norm": self.norm_blocks,
                "residual": self.residual,
                "freeze_embeddings": self.freeze_embeddings,
            }
        )
        return config
