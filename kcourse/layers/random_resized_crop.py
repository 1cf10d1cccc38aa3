import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kcourse")
class RandomResizedCrop(layers.Layer):
    """A random crop of random area and aspect ratio, resized to a fixed size.

    In training, for each image of side `H x W`, independently:

        area  ~ U(scale[0], scale[1]) * H * W           (fraction of the image)
        ratio = exp(U(log ratio[0], log ratio[1]))      (crop width / height)
        w = sqrt(area * ratio),  h = sqrt(area / ratio)  (clipped to W and H)
        the (h, w) box at a uniform random place, resized to (height, width)

    (torchvision's `RandomResizedCrop` draws again up to ten times when the
    box does not fit and then falls back to a centre crop; here the box is
    clipped to the image, so one draw suffices and the batch stays vectorised.)
    At inference the central box with the output's aspect ratio, shrunk to
    `inference_crop` of the side, is resized: `inference_crop=224/256` on a
    256 image is the classic Resize(256) -> CenterCrop(224). Whatever the
    input size, the output is `(height, width)`.

    Args:
        height: int. Output height.
        width: int. Output width.
        scale: (float, float). Range of the crop's area, as a fraction of the
            image's, in (0, 1]. Defaults to `(0.08, 1.0)`.
        ratio: (float, float). Range of the crop's width / height. Defaults to
            `(3/4, 4/3)`.
        inference_crop: float in (0, 1]. Fraction of the side kept by the
            centre crop at inference. Defaults to `1.0` (the largest box).
        interpolation: `"bilinear"` or `"nearest"`.
        seed: optional int. Seeds the layer's `keras.random.SeedGenerator`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        images: float tensor `(B, H, W, C)` or `(H, W, C)`, channels last.
        training: bool. Random crops when true, the centre crop otherwise.

    Returns:
        `(B, height, width, C)` (or `(height, width, C)`), in the input's value range.

    Example:
    >>> crop = RandomResizedCrop(224, 224, seed=0)
    >>> crop(np.zeros((2, 300, 400, 3)), training=True).shape  # (2, 224, 224, 3)

    Reference:
        Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (the
        "Inception" crop), as torchvision's RandomResizedCrop implements it.
    """

    @property
    def supports_jit(self):
        """False on tensorflow: its ImageProjectiveTransformV3 has no XLA kernel (jit_compile="auto" keeps graph mode)."""
        return keras.backend.backend() != "tensorflow"

    @supports_jit.setter
    def supports_jit(self, value):  # keras.Layer.__init__ sets True; the backend decides here
        pass

    def __init__(
        self,
        height,
        width,
        scale=(0.08, 1.0),
        ratio=(3.0 / 4.0, 4.0 / 3.0),
        inference_crop=1.0,
        interpolation="bilinear",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{arg} must be a positive int, received {arg}={value!r}.")
        scale, ratio = tuple(float(s) for s in scale), tuple(float(r) for r in ratio)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, received scale={scale}.")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, received ratio={ratio}.")
        if not 0.0 < inference_crop <= 1.0:
            raise ValueError(f"inference_crop must be in (0, 1], received inference_crop={inference_crop}.")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', received interpolation={interpolation!r}.")
        self.height = height
        self.width = width
        self.scale = scale
        self.ratio = ratio
        self.inference_crop = float(inference_crop)
        self.interpolation = interpolation
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.supports_jit = True

    def build(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise ValueError(f"RandomResizedCrop expects images (B, H, W, C) or (H, W, C), received shape {input_shape}.")

    def call(self, images, training=None):
        unbatched = len(images.shape) == 3
        if unbatched:
            images = ops.expand_dims(images, 0)  # (1, H, W, C)
        images = ops.cast(images, self.compute_dtype)
        if training:
            out = self._random_crops(images)
        else:
            out = self._centre_crop(images)
        return out[0] if unbatched else out  # (B, height, width, C)

    def _random_crops(self, images):
        shape = ops.shape(images)
        batch = shape[0]
        h_in, w_in = ops.cast(shape[1], "float32"), ops.cast(shape[2], "float32")
        seed = self.seed_generator
        area = keras.random.uniform((batch,), self.scale[0], self.scale[1], seed=seed) * h_in * w_in
        log_ratio = keras.random.uniform((batch,), math.log(self.ratio[0]), math.log(self.ratio[1]), seed=seed)
        ratio = ops.exp(log_ratio)
        w = ops.minimum(ops.sqrt(area * ratio), w_in)  # (B,) crop sides in pixels
        h = ops.minimum(ops.sqrt(area / ratio), h_in)
        x0 = keras.random.uniform((batch,), 0.0, 1.0, seed=seed) * (w_in - w)
        y0 = keras.random.uniform((batch,), 0.0, 1.0, seed=seed) * (h_in - h)
        transform = _box_transform(x0, y0, w, h, w_in, h_in)  # (B, 8)
        boxes = ops.image.affine_transform(
            ops.cast(images, "float32"), transform, interpolation=self.interpolation, fill_mode="nearest"
        )  # (B, H, W, C)
        out = ops.image.resize(boxes, (self.height, self.width), interpolation=self.interpolation)
        return ops.cast(out, self.compute_dtype)

    def _centre_crop(self, images):
        h_in, w_in = images.shape[1], images.shape[2]
        if h_in is None or w_in is None:  # unknown sides (a graph with dynamic shapes): the same as a random crop's path
            return self._affine_centre(images)
        target = self.width / self.height
        box_h, box_w = (h_in, h_in * target) if w_in / h_in > target else (w_in / target, w_in)
        box_h = max(1, int(round(box_h * self.inference_crop)))
        box_w = max(1, int(round(box_w * self.inference_crop)))
        top, left = (h_in - box_h) // 2, (w_in - box_w) // 2
        crop = images[:, top : top + box_h, left : left + box_w, :]  # (B, box_h, box_w, C)
        if (box_h, box_w) == (self.height, self.width):
            return crop
        return ops.cast(ops.image.resize(crop, (self.height, self.width), interpolation=self.interpolation), self.compute_dtype)

    def _affine_centre(self, images):
        shape = ops.shape(images)
        h_in, w_in = ops.cast(shape[1], "float32"), ops.cast(shape[2], "float32")
        target = self.width / self.height
        wide = ops.cast(w_in / h_in > target, "float32")
        box_h = (wide * h_in + (1.0 - wide) * w_in / target) * self.inference_crop
        box_w = (wide * h_in * target + (1.0 - wide) * w_in) * self.inference_crop
        ones = ops.ones((shape[0],), "float32")
        transform = _box_transform((w_in - box_w) / 2.0 * ones, (h_in - box_h) / 2.0 * ones, box_w * ones, box_h * ones, w_in, h_in)
        boxes = ops.image.affine_transform(ops.cast(images, "float32"), transform, interpolation=self.interpolation)
        return ops.cast(ops.image.resize(boxes, (self.height, self.width), interpolation=self.interpolation), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        if len(input_shape) == 3:
            return (self.height, self.width, input_shape[-1])
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "scale": self.scale,
                "ratio": self.ratio,
                "inference_crop": self.inference_crop,
                "interpolation": self.interpolation,
                "seed": self.seed,
            }
        )
        return config


def _box_transform(x0, y0, w, h, w_in, h_in):
    """`ops.image.affine_transform` rows that stretch the box (x0, y0, w, h) over the whole frame.

    Output pixel centre x + 1/2 (of W) reads the input at x0 + (x + 1/2) w / W,
    i.e. pixel index x0 + (x + 1/2) w / W - 1/2 (bilinear, half-pixel centres).
    """
    sx, sy = w / w_in, h / h_in
    zeros = ops.zeros_like(sx)
    return ops.stack([sx, zeros, x0 + 0.5 * sx - 0.5, zeros, sy, y0 + 0.5 * sy - 0.5, zeros, zeros], axis=1)  # (B, 8)
