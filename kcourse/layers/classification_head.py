import keras
from keras import layers


@keras.saving.register_keras_serializable(package="kcourse")
class ClassificationHead(layers.Layer):
    """Classification head on a feature vector (e.g. a ViT's [CLS] token).

        logits = Dense(C)(x)                                          (linear)
        logits = Dense(C)(Dropout(ReLU(Dense(H)(x))))     (hidden_dim=H given)

    Give `input_dim=D` to guard against the wrong feature size: building on
    inputs whose last axis is not `D` raises an error naming both sizes.

    Args:
        num_classes: int. Number of classes `C`.
        hidden_dim: optional int. Width `H` of the hidden layer; `None` for a
            linear head.
        dropout: float. Dropout rate after the hidden layer.
        input_dim: optional int. Expected feature size `D`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        x: float tensor `(B, D)` (or `(..., D)`).
        training: bool. Whether dropout is active.

    Returns:
        Logits `(B, C)` (or `(..., C)`).

    Example:
    >>> head = ClassificationHead(num_classes=2, hidden_dim=192, input_dim=768)
    >>> head(np.zeros((4, 768))).shape  # (4, 2)

    Reference:
        Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021.
    """

    def __init__(self, num_classes, hidden_dim=None, dropout=0.0, input_dim=None, **kwargs):
        super().__init__(**kwargs)
        sizes = dict(num_classes=num_classes, hidden_dim=hidden_dim, input_dim=input_dim)
        for arg, value in sizes.items():
            if value is not None and value <= 0:
                raise ValueError(f"{arg} must be a positive int, received {arg}={value}.")
        self.num_classes = num_classes
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.input_dim = input_dim
        p = dict(dtype=self.dtype_policy)
        if hidden_dim is not None:
            self.hidden = layers.Dense(hidden_dim, activation="relu", name="hidden", **p)
            self.drop = layers.Dropout(dropout, name="drop", **p)
        self.out = layers.Dense(num_classes, name="out", **p)

    def build(self, input_shape):
        d = input_shape[-1]
        if self.input_dim is not None and d != self.input_dim:
            raise ValueError(
                f"ClassificationHead expected features of size input_dim={self.input_dim}, "
                f"received {d} (input shape {input_shape}): take D from the backbone "
                "(e.g. its hidden_size) or fix the pooling."
            )
        if self.hidden_dim is not None:
            self.hidden.build(input_shape)
            input_shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
        self.out.build(input_shape)

    def call(self, x, training=None):
        if self.hidden_dim is not None:
            x = self.drop(self.hidden(x), training=training)  # (B, H)
        return self.out(x)  # (B, C)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "hidden_dim": self.hidden_dim,
                "dropout": self.dropout,
                "input_dim": self.input_dim,
            }
        )
        return config
