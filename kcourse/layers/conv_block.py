import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kcourse")
class ConvBlock(layers.Layer):
    """The U-Net double convolution (channels-last, NHWC).

        x -> Conv3x3 -> Norm -> ReLU -> Conv3x3 -> Norm -> ReLU

    with 'same' padding, so the spatial size is kept. With `norm="batch"`
    the convolutions have no bias (BatchNorm's offset replaces it).

    Args:
        filters: int. Output channels of both convolutions.
        norm: `"batch"` (BatchNormalization) or `"none"`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        x: float tensor `(B, H, W, C)`.
        training: bool. BatchNorm uses batch statistics when True.

    Returns:
        `(B, H, W, filters)`.

    Example:
    >>> block = ConvBlock(32)
    >>> block(np.zeros((2, 64, 64, 3))).shape  # (2, 64, 64, 32)

    Reference:
        Ronneberger et al., "U-Net: Convolutional Networks for Biomedical
        Image Segmentation", MICCAI 2015.
    """

    NORMS = ("batch", "none")

    def __init__(self, filters, norm="batch", **kwargs):
        super().__init__(**kwargs)
        if filters <= 0:
            raise ValueError(f"filters must be a positive int, received filters={filters}.")
        if norm not in self.NORMS:
            raise ValueError(f"norm must be one of {self.NORMS}, received norm={norm!r}.")
        self.filters = filters
        self.norm = norm
        p = dict(dtype=self.dtype_policy)
        conv = dict(kernel_size=3, padding="same", use_bias=norm == "none", **p)
        self.conv1 = layers.Conv2D(filters, name="conv1", **conv)
        self.conv2 = layers.Conv2D(filters, name="conv2", **conv)
        if norm == "batch":
            self.norm1 = layers.BatchNormalization(name="norm1", **p)
            self.norm2 = layers.BatchNormalization(name="norm2", **p)

    def build(self, input_shape):
        out_shape = tuple(input_shape[:-1]) + (self.filters,)
        self.conv1.build(input_shape)
        self.conv2.build(out_shape)
        if self.norm == "batch":
            self.norm1.build(out_shape)
            self.norm2.build(out_shape)

    def call(self, x, training=None):
        x = self.conv1(x)  # (B, H, W, filters)
        if self.norm == "batch":
            x = self.norm1(x, training=training)
        x = self.conv2(ops.relu(x))
        if self.norm == "batch":
            x = self.norm2(x, training=training)
        return ops.relu(x)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "norm": self.norm})
        return config
