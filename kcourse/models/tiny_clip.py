"""Lecture 004's CLIP at the scale of a CPU: an image encoder and a text encoder trained into one space.

    image (B, H, W, 1) -> CNN -> patches (B, H/4, W/4, E) -> mean -> (B, E) --\\
                                                                              ContrastiveLogits -> (B, B)
    text  (B, L) ids  -> Embedding -> EncoderBlock -> mean of the words -> Dense -> (B, E) --/

The image encoder's last layer is a 1x1 convolution into the shared space,
so that every 4x4 patch has an embedding of its own and the image's is their
mean: a caption can be compared with each patch (text-to-patch maps). The
text encoder has no positions: a caption of this lab names a set of digits.
"""

import keras
from keras import layers, ops

from kcourse.layers.contrastive_logits import ContrastiveLogits
from kcourse.layers.encoder_block import EncoderBlock


@keras.saving.register_keras_serializable(package="kcourse")
def contrastive_loss(caption_ids, logits):
    """The symmetric InfoNCE loss of CLIP, where captions may repeat within a batch.

    Args:
        caption_ids: int `(B,)`, one id per distinct caption (here: the pair of digits).
        logits: `(B, B)` image-against-text logits of the batch (ContrastiveLogits).

    Each image's target is its caption; a caption that appears k times in the
    batch shares the target among its k copies (1/k each), instead of
    pushing identical captions apart. The loss is the mean of the image-to-text
    and text-to-image cross-entropies, per image: `(B,)`.
    """
    ids = ops.reshape(caption_ids, (-1,))
    same = ops.cast(ops.equal(ops.expand_dims(ids, 1), ops.expand_dims(ids, 0)), logits.dtype)  # (B, B)
    targets = same / ops.sum(same, axis=1, keepdims=True)
    images_to_texts = keras.losses.categorical_crossentropy(targets, logits, from_logits=True)
    texts_to_images = keras.losses.categorical_crossentropy(targets, ops.transpose(logits), from_logits=True)
    return (images_to_texts + texts_to_images) / 2


def image_encoder(image_shape=(12, 24, 1), embed_dim=32, width=16, name="image_encoder"):
    """(B, H, W, C) -> [(B, E) the image's embedding, (B, H/4, W/4, E) its patches']."""
    x = inputs = keras.Input(image_shape, name="image")
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)  # (B, H/2, W/2, width)
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)  # (B, H/4, W/4, 2 width)
    patches = layers.Conv2D(embed_dim, 1, name="patch_embeddings")(x)  # (B, H/4, W/4, E), each seeing 10 x 10 px
    return keras.Model(inputs, [layers.GlobalAveragePooling2D(name="mean_of_patches")(patches), patches], name=name)


def text_encoder(vocab_size, max_len=5, embed_dim=32, width=32, name="text_encoder"):
    """(B, L) token ids, 0 = padding -> (B, E)."""
    inputs = keras.Input((max_len,), dtype="int32", name="text")
    x = layers.Embedding(vocab_size, width, mask_zero=True, name="words")(inputs)  # (B, L, width), its mask with it
    x = EncoderBlock(width, n_heads=2, drop=0.0, name="block")(x)  # each word in the context of the others
    x = layers.GlobalAveragePooling1D(name="mean_of_words")(x)  # the padding masked out
    return keras.Model(inputs, layers.Dense(embed_dim, name="to_shared_space")(x), name=name)


def build_tiny_clip(vocab_size, max_len=5, image_shape=(12, 24, 1), embed_dim=32, width=16, learning_rate=3e-3):
    """The two encoders and ContrastiveLogits, compiled with `contrastive_loss` (Adam).

    Inputs `{"image": (B, H, W, C), "text": (B, L)}`, output the `(B, B)` logits;
    labels: the caption ids. `model.get_layer("image_encoder")` and
    `model.get_layer("text_encoder")` embed each side alone.
    """
    images, texts = image_encoder(image_shape, embed_dim, width), text_encoder(vocab_size, max_len, embed_dim, width)
    image_in = keras.Input(image_shape, name="image")
    text_in = keras.Input((max_len,), dtype="int32", name="text")
    pooled, _ = images(image_in)
    logits = ContrastiveLogits(name="logits")(pooled, texts(text_in))
    from kcourse.training import compile_model

    model = keras.Model({"image": image_in, "text": text_in}, logits, name="tiny_clip")
    return compile_model(model, keras.optimizers.Adam(learning_rate), loss=contrastive_loss, metrics=())


def build_supervised(num_classes, image_shape=(12, 24, 1), embed_dim=32, width=16, learning_rate=3e-3):
    """The same image encoder with Dense(num_classes) on its embedding: the classifier CLIP is compared with."""
    from kcourse.training import compile_model

    inputs = keras.Input(image_shape, name="image")
    pooled, _ = image_encoder(image_shape, embed_dim, width)(inputs)
    model = keras.Model(inputs, layers.Dense(num_classes, name="head")(pooled), name="supervised")
    return compile_model(model, keras.optimizers.Adam(learning_rate))
