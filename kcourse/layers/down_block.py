import keras
from keras import layers

from kcourse.layers.conv_block import ConvBlock


@keras.saving.register_keras_serializable(package="kcourse")
class DownBlock(layers.Layer):
    """A U-Net encoder step (channels-last, NHWC): 2x2 max-pooling, then a
    `ConvBlock`.

        (B, H, W, C) -> MaxPool2 -> (B, H//2, W//2, C) -> ConvBlock -> (B, H//2, W//2, filters)

    An odd size is floored (15 -> 7); `UpBlock` pads it back to the skip's size.

    Args:
        filters: int. Output channels.
        norm: `"batch"` or `"none"`, passed to `ConvBlock`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        x: float tensor `(B, H, W, C)`.
        training: bool. Passed to the BatchNorms.

    Returns:
        `(B, H // 2, W // 2, filters)`.

    Example:
    >>> down = DownBlock(64)
    >>> down(np.zeros((2, 15, 15, 32))).shape  # (2, 7, 7, 64)

    Reference:
        Ronneberger et al., "U-Net: Convolutional Networks for Biomedical
        Image Segmentation", MICCAI 2015.
    """

    def __init__(self, filters, norm="batch", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.norm = norm
        p = dict(dtype=self.dtype_policy)
        self.pool = layers.MaxPooling2D(2, name="pool", **p)
        self.conv = ConvBlock(filters, norm=norm, name="conv", **p)

    def build(self, input_shape):
        self.pool.build(input_shape)
        self.conv.build(self.pool.compute_output_shape(input_shape))

    def call(self, x, training=None):
        return self.conv(self.pool(x), training=training)  # (B, H//2, W//2, filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "norm": self.norm})
        return config
