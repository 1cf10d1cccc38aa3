import keras
from keras import layers, ops

from kcourse.layers import ConvBlock, DownBlock, UpBlock


@keras.saving.register_keras_serializable(package="kcourse")
class UNet(keras.Model):
    """The U-Net: a convolutional encoder, a decoder that upsamples back to
    the input's size, and skip connections that hand each decoder step the
    encoder's map of the same size (channels-last, NHWC).

        e_0 = ConvBlock(x)                         # (B, H, W, F)
        e_i = DownBlock(e_{i-1}), i = 1..depth     # (B, H / 2^i, W / 2^i, F 2^i)
        d_depth = e_depth
        d_i = UpBlock(d_{i+1}, e_i)                # (B, H / 2^i, W / 2^i, F 2^i): concat e_i
        y = Conv1x1(d_0)                           # (B, H, W, num_outputs)

    With `skips=False` it is the plain encoder-decoder (an FCN) with the
    same blocks: each `UpBlock` receives an empty skip, `e_i[..., :0]`, that
    gives the size to restore and none of the encoder's content (so the
    first convolution of each decoder step has fewer input channels, and
    nothing else changes). The fine detail lost by the max-poolings then has
    to come back from the bottleneck alone.

    `num_outputs` logits per pixel (segmentation, with the loss on logits)
    or values (a regression head: denoising). Any input size of at least
    `2^depth` works (odd sizes are floored by the poolings and padded back
    by the `UpBlock`s); `kcourse.tasks.unet.predict_any_size` pads to a
    multiple of `2^depth` instead, so that every level is aligned.

    Args:
        num_outputs: int. Output channels (classes, or 1 for a grey image).
        depth: int. Number of poolings (and of upsamplings).
        base_filters: int. Channels at full resolution, doubled at each level.
        skips: bool. The U-Net's skip connections, or none (encoder-decoder).
        mode: `"transpose"` or `"bilinear"` upsampling, passed to `UpBlock`.
        norm: `"batch"` or `"none"`, passed to the blocks.
        **kwargs: Base model arguments (`name`, `dtype`, ...).

    Call arguments:
        x: float tensor `(B, H, W, C)`.
        training: bool. Passed to the BatchNorms.

    Returns:
        `(B, H, W, num_outputs)`.

    Example:
    >>> unet = UNet(num_outputs=4, depth=3, base_filters=8)
    >>> unet(np.zeros((2, 64, 64, 1))).shape  # (2, 64, 64, 4)
    >>> unet(np.zeros((1, 45, 37, 1))).shape  # (1, 45, 37, 4)

    Reference:
        Ronneberger et al., "U-Net: Convolutional Networks for Biomedical
        Image Segmentation", MICCAI 2015; Long et al., "Fully Convolutional
        Networks for Semantic Segmentation", CVPR 2015 (the encoder-decoder).
    """

    def __init__(self, num_outputs, depth=3, base_filters=16, skips=True, mode="transpose", norm="batch", **kwargs):
        super().__init__(**kwargs)
        if depth < 1:
            raise ValueError(f"depth must be 1 or more, received depth={depth}.")
        if base_filters < 1 or num_outputs < 1:
            raise ValueError(f"base_filters and num_outputs must be positive, received {base_filters} and {num_outputs}.")
        self.num_outputs = num_outputs
        self.depth = depth
        self.base_filters = base_filters
        self.skips = skips
        self.mode = mode
        self.norm = norm
        p = dict(dtype=self.dtype_policy)
        widths = [base_filters * 2**i for i in range(depth + 1)]  # F, 2F, ..., 2^depth F
        self.stem = ConvBlock(widths[0], norm=norm, name="stem", **p)
        self.downs = [DownBlock(widths[i], norm=norm, name=f"down_{i}", **p) for i in range(1, depth + 1)]
        self.ups = [UpBlock(widths[i], mode=mode, norm=norm, name=f"up_{i}", **p) for i in reversed(range(depth))]
        self.head = layers.Conv2D(num_outputs, 1, name="head", **p)

    def build(self, input_shape):
        batch, channels = input_shape[0], input_shape[-1]
        shape = lambda width: (batch, None, None, width)
        widths = [self.base_filters * 2**i for i in range(self.depth + 1)]
        self.stem.build(shape(channels))
        for i, down in enumerate(self.downs):
            down.build(shape(widths[i]))
        for up, i in zip(self.ups, reversed(range(self.depth))):
            up.build(shape(widths[i + 1]), shape(widths[i] if self.skips else 0))
        self.head.build(shape(widths[0]))

    def encode(self, x, training=None):
        """The encoder's maps `[e_0, ..., e_depth]`, finest first; `e_depth` is the bottleneck."""
        features = [self.stem(x, training=training)]  # (B, H, W, F)
        for down in self.downs:
            features.append(down(features[-1], training=training))  # (B, H / 2^i, W / 2^i, F 2^i)
        return features

    def call(self, x, training=None):
        features = self.encode(x, training=training)
        h = features[-1]  # (B, H / 2^depth, W / 2^depth, F 2^depth)
        for up, skip in zip(self.ups, reversed(features[:-1])):
            if not self.skips:
                skip = skip[..., :0]  # (B, H_i, W_i, 0): the size to restore, no content
            h = up(h, skip, training=training)  # (B, H_i, W_i, F 2^i)
        return self.head(h)  # (B, H, W, num_outputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_outputs": self.num_outputs,
                "depth": self.depth,
                "base_filters": self.base_filters,
                "skips": self.skips,
                "mode": self.mode,
                "norm": self.norm,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="kcourse")
class MeanIoU(keras.metrics.MeanIoU):
    """`keras.metrics.MeanIoU`, its confusion matrix counted as a product of one-hot matrices.

    Keras 3.15 counts it with `ops.scatter`, which the torch backend runs as a
    Python loop over every pixel: 7 s of the 8 s of four U-Net steps of 32
    48x48 images. `one_hot(true)^T @ one_hot(predicted)` counts the same pairs
    with one small matmul on every backend (jit included). Same arguments and
    result; class ids outside [0, num_classes) and `ignore_class` are not supported.

    Example:
    >>> iou = MeanIoU(num_classes=4, sparse_y_pred=False)
    >>> iou.update_state(np.zeros((2, 48, 48)), np.zeros((2, 48, 48, 4)))
    >>> iou.total_cm.shape  # (4, 4)
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is not None:
            raise ValueError("kcourse.models.MeanIoU does not support ignore_class; use keras.metrics.MeanIoU.")
        if not self.sparse_y_true:
            y_true = ops.argmax(y_true, axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = ops.argmax(y_pred, axis=self.axis)
        true = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), [-1]), self.num_classes)  # (pixels, n)
        predicted = ops.one_hot(ops.reshape(ops.cast(y_pred, "int32"), [-1]), self.num_classes)  # (pixels, n)
        if sample_weight is not None:
            weights = ops.cast(ops.cast(sample_weight, self.dtype), "float32")  # as keras: in the metric's dtype
            predicted = predicted * ops.reshape(ops.broadcast_to(weights, ops.shape(y_true)), [-1, 1])
        counts = ops.matmul(ops.transpose(true), predicted)  # (n, n): [true class, predicted class]
        return self.total_cm.assign_add(ops.cast(counts, self.total_cm.dtype))
