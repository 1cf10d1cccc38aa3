import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kcourse")
class SkipGram(layers.Layer):
    """Word2Vec skip-gram with negative sampling (SGNS).

    Two tables: input vectors `u = in_embed` (the word embeddings, initialised
    uniform in `[-0.5/dim, 0.5/dim]`) and output vectors `v = out_embed`
    (initialised to zero). For a centre word `c`, `P` context words `p` and
    `K` noise words `n`, the per-example loss is

        loss = -[ sum_p log sigma(u_c . v_p) + sum_k log sigma(-u_c . v_n) ]

    computed with `log_sigmoid` for stability. Without noise words (no
    `"neg"`), the loss is the exact softmax over the whole vocabulary,

        loss = -sum_p log softmax(u_c . V^T)[p]

    the objective negative sampling approximates (V: every output vector).
    The layer returns the
    per-example loss and registers its batch mean with `add_loss`, so a model
    whose output is this layer trains with `compile(optimizer)` and `fit(x)`,
    no `loss` and no `y`:

        inputs = {"center": keras.Input((), dtype="int32"),
                  "pos": keras.Input((P,), dtype="int32"),
                  "neg": keras.Input((K,), dtype="int32")}
        sg = SkipGram(vocab_size, dim=50, name="skip_gram")
        model = keras.Model(inputs, sg(inputs))
        model.compile(optimizer="adam")
        model.fit({"center": c, "pos": p, "neg": n}, batch_size=256)
        vectors = sg.embeddings()  # (vocab_size, dim) NumPy, unit rows

    Args:
        vocab_size: int. Number of words.
        dim: int. Embedding width.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a dict `{"center": (B,), "pos": (B, P), "neg": (B, K)}` of
            integer word ids, or the tuple `(center, pos, neg)`; without
            `"neg"` (or `neg=None`), the full softmax.

    Returns:
        The per-example loss, shape `(B,)`.

    Example:
    >>> sg = SkipGram(vocab_size=100, dim=8)
    >>> sg({"center": np.array([1, 2]), "pos": np.ones((2, 2), "int32"),
    ...     "neg": np.zeros((2, 5), "int32")}).shape  # (2,)

    Reference:
        Mikolov et al., "Distributed Representations of Words and Phrases
        and their Compositionality", NeurIPS 2013.
    """

    def __init__(self, vocab_size, dim=50, **kwargs):
        super().__init__(**kwargs)
        if vocab_size <= 0 or dim <= 0:
            raise ValueError(
                f"vocab_size and dim must be positive, received vocab_size={vocab_size}, "
                f"dim={dim}."
            )
        self.vocab_size = vocab_size
        self.dim = dim
        p = dict(dtype=self.dtype_policy)
        init = keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim)
        self.in_embed = layers.Embedding(vocab_size, dim, init, name="in_embed", **p)
        self.out_embed = layers.Embedding(vocab_size, dim, "zeros", name="out_embed", **p)

    def build(self, input_shape=None):
        self.in_embed.build()
        self.out_embed.build()

    def call(self, inputs):
        if isinstance(inputs, dict):
            center, pos, neg = inputs["center"], inputs["pos"], inputs.get("neg")
        else:
            center, pos, neg = inputs
        u = self.in_embed(center)  # (B, D)
        if neg is None:  # the exact softmax over the vocabulary
            log_p = ops.log_softmax(ops.matmul(u, ops.transpose(self.out_embed.embeddings)), axis=-1)  # (B, V)
            loss = -ops.sum(ops.take_along_axis(log_p, ops.cast(pos, "int32"), axis=-1), axis=-1)  # (B,)
            self.add_loss(ops.mean(ops.cast(loss, "float32")))
            return loss
        pos_score = ops.einsum("bd,bpd->bp", u, self.out_embed(pos))  # (B, P)
        neg_score = ops.einsum("bd,bkd->bk", u, self.out_embed(neg))  # (B, K)
        loss = -(
            ops.sum(ops.log_sigmoid(pos_score), axis=-1)
            + ops.sum(ops.log_sigmoid(-neg_score), axis=-1)
        )  # (B,)
        self.add_loss(ops.mean(ops.cast(loss, "float32")))
        return loss

    def embeddings(self, normalize=True):
        """The input vectors (the word embeddings) as a NumPy `(vocab_size, dim)`
        array, each row scaled to unit L2 norm if `normalize` (for cosine
        similarity: `E @ E[i]`); zero rows stay zero."""
        w = self.in_embed.embeddings
        return ops.convert_to_numpy(ops.normalize(w, axis=-1) if normalize else w)

    def output_embeddings(self):
        """The output (context) vectors as a NumPy `(vocab_size, dim)` array."""
        return ops.convert_to_numpy(self.out_embed.embeddings)

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, "dim": self.dim})
        return config
