import keras
from keras import layers, ops

from kcourse.layers.conv_block import ConvBlock


@keras.saving.register_keras_serializable(package="kcourse")
class UpBlock(layers.Layer):
    """A U-Net decoder step (channels-last, NHWC): upsample x2, match the skip's
    size, concatenate the skip, `ConvBlock`.

        x (B, h, w, C) -> up -> (B, 2h, 2w, C') -> pad/crop to (B, H, W, C')
          -> concat skip (B, H, W, C_skip) -> ConvBlock -> (B, H, W, filters)

    `mode="transpose"` upsamples with a learned 2x2 stride-2 transposed
    convolution to `filters` channels; `mode="bilinear"` with a fixed bilinear
    x2 upsampling (channels unchanged, no weights).

    Odd sizes: after a floor max-pooling (15 -> 7) the upsampled map is one
    pixel short of the skip (14 vs 15). It is zero-padded to the skip's size,
    the extra row/column at the bottom/right (`pad = diff // 2` on top/left,
    the rest on bottom/right, as in common PyTorch U-Nets); a larger map is
    cropped at the bottom/right. This works on static and dynamic shapes; the
    output always has the skip's spatial size. (One Keras limit: inside a
    TensorFlow graph traced with unknown height and width, e.g. `fit` on
    images of varying sizes, `"bilinear"` fails in Keras' `UpSampling2D`;
    `"transpose"` works.)

    Args:
        filters: int. Output channels.
        mode: `"transpose"` or `"bilinear"`.
        norm: `"batch"` or `"none"`, passed to `ConvBlock`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        x: float tensor `(B, h, w, C)`, the coarser map.
        skip: float tensor `(B, H, W, C_skip)`, the encoder map, with
            `H in {2h, 2h + 1}` in a U-Net.
        training: bool. Passed to the BatchNorms.

    Returns:
        `(B, H, W, filters)`.

    Example:
    >>> up = UpBlock(32)
    >>> up(np.zeros((2, 7, 7, 64)), np.zeros((2, 15, 15, 32))).shape  # (2, 15, 15, 32)

    Reference:
        Ronneberger et al., "U-Net: Convolutional Networks for Biomedical
        Image Segmentation", MICCAI 2015.
    """

    MODES = ("transpose", "bilinear")

    def __init__(self, filters, mode="transpose", norm="batch", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, received mode={mode!r}.")
        self.filters = filters
        self.mode = mode
        self.norm = norm
        p = dict(dtype=self.dtype_policy)
        if mode == "transpose":
            self.up = layers.Conv2DTranspose(filters, 2, strides=2, name="up", **p)
        else:
            self.up = layers.UpSampling2D(2, interpolation="bilinear", name="up", **p)
        self.conv = ConvBlock(filters, norm=norm, name="conv", **p)

    def build(self, x_shape, skip_shape):
        self.up.build(x_shape)
        up_channels = self.filters if self.mode == "transpose" else x_shape[-1]
        self.conv.build((None, None, None, up_channels + skip_shape[-1]))

    def call(self, x, skip, training=None):
        x = self.up(x)  # (B, 2h, 2w, C')
        H, W = ops.shape(skip)[1], ops.shape(skip)[2]
        x = x[:, :H, :W, :]  # crop if larger (never in a floor-pooled U-Net)
        dh, dw = H - ops.shape(x)[1], W - ops.shape(x)[2]
        pad = [[0, 0], [dh // 2, dh - dh // 2], [dw // 2, dw - dw // 2], [0, 0]]
        x = ops.pad(x, pad)  # (B, H, W, C')
        x = ops.concatenate([x, skip], axis=-1)  # (B, H, W, C' + C_skip)
        return self.conv(x, training=training)  # (B, H, W, filters)

    def compute_output_shape(self, x_shape, skip_shape):
        return tuple(skip_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "mode": self.mode, "norm": self.norm})
        return config
