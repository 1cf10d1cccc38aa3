import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kcourse")
class ContrastiveLogits(keras.layers.Layer):
    """CLIP's similarity logits between a batch of images and a batch of texts, with a learnt temperature.

        logits[i, j] = exp(t) * cos(image_i, text_j),   t learnt, exp(t) <= 100

    Both embeddings are L2-normalised, so that only their directions count;
    `t` starts at log(1 / 0.07) (exp(t) = 14.3) and is clipped at log(100), as
    in CLIP (Radford et al. 2021, section 2.5): a sharper softmax as training
    separates the pairs, never a runaway one.

    Args:
        initial_temperature: float. 1 / exp(t) at the start (CLIP's 0.07).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        images: float tensor `(B_i, E)`, the image embeddings.
        texts: float tensor `(B_t, E)`, the text embeddings.

    Returns:
        `(B_i, B_t)`: row i scores image i against every text.

    Example:
    >>> logits = ContrastiveLogits()(np.eye(3, 8), np.eye(3, 8))  # 14.3 on the diagonal, 0 elsewhere
    >>> logits.shape  # (3, 3)
    """

    def __init__(self, initial_temperature=0.07, **kwargs):
        super().__init__(**kwargs)
        self.initial_temperature = initial_temperature

    def build(self, images_shape, texts_shape):
        self.log_scale = self.add_weight(shape=(), name="log_scale",
                                         initializer=keras.initializers.Constant(math.log(1 / self.initial_temperature)))

    def call(self, images, texts):
        images = images / ops.maximum(ops.norm(images, axis=-1, keepdims=True), 1e-12)
        texts = texts / ops.maximum(ops.norm(texts, axis=-1, keepdims=True), 1e-12)
        return self.scale() * ops.matmul(images, ops.transpose(texts))

    def scale(self):
        """exp(t), clipped at 100: the inverse temperature."""
        return ops.exp(ops.minimum(self.log_scale, math.log(100.0)))

    def compute_output_shape(self, images_shape, texts_shape):
        return (images_shape[0], texts_shape[0])

    def get_config(self):
        return {**super().get_config(), "initial_temperature": self.initial_temperature}
