"""What a Vision Transformer looks at: attention rollout and patch occlusion (TP4 part 2, step E).

    tokens, maps = attention_maps(backbone, images)   # replays keras-hub's ViT blocks, keeps the attention
    flow = rollout(maps)                               # (B, T, T), each row sums to 1
    cls_map = cls_to_patches(flow, grid)               # (B, gh, gw): where [CLS] takes its information from
    drop = occlusion(classifier, images, patch)        # (B, gh, gw): how much the predicted logit falls

keras-hub's `ViTEncoderBlock` calls its `keras.layers.MultiHeadAttention`
without `return_attention_scores`, so the maps are thrown away. `AttentionReplay`
runs the same blocks again, sublayer by sublayer, on the same weights
(pre-norm: x + MHA(LN1(x)), then + MLP(LN2(x))), asking MultiHeadAttention
for its scores; its tokens equal the backbone's output (tested). Rebuilding a
functional model from the blocks' sublayers would fail on duplicate layer
names (every block has its own "mha", "ln_1"...); replaying them in a layer
does not.
"""

import keras
import numpy as np
from keras import ops

from kcourse.training import predict


def _encoder_parts(backbone):
    try:
        return backbone.get_layer("vit_patching_and_embedding"), backbone.get_layer("vit_encoder")
    except ValueError:
        raise ValueError(
            f"{type(backbone).__name__} is not a keras-hub ViTBackbone "
            "(no vit_patching_and_embedding / vit_encoder layers)"
        ) from None


class AttentionReplay(keras.layers.Layer):
    """keras-hub's ViT encoder run block by block on the backbone's own weights, keeping each attention map.

    Args:
        backbone: a keras-hub `ViTBackbone` (its layers are shared, not copied).

    Call arguments:
        images: what the backbone takes, `(B, H, W, 3)` (normalised).

    Returns:
        `{"tokens": (B, T, D), "attention": (B, L, heads, T, T)}` with `T = 1 + N`
        tokens and `L` blocks; the tokens are the backbone's output.

    Example:
    >>> replay = AttentionReplay(backbone)
    >>> out = replay(images)   # out["tokens"] == backbone(images)
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.embedding, self.encoder = _encoder_parts(backbone)

    def call(self, images):
        x = self.embedding(images)  # (B, T, D): patches + [CLS] + positions
        maps = []
        for block in self.encoder.encoder_layers:  # pre-norm blocks, dropout off
            h = block.layer_norm_1(x)
            h, scores = block.mha(h, h, return_attention_scores=True, training=False)  # scores (B, heads, T, T)
            x = x + h
            x = x + block.mlp(block.layer_norm_2(x), training=False)
            maps.append(scores)
        tokens = self.encoder.layer_norm(x)  # (B, T, D)
        return {"tokens": tokens, "attention": ops.stack(maps, axis=1)}  # (B, L, heads, T, T)


def attention_maps(backbone, images, batch_size=16):
    """The backbone's tokens and every block's attention maps, for NumPy images.

    Args:
        backbone: a keras-hub ViTBackbone.
        images: `(B, H, W, 3)`, already normalised as the backbone expects.

    Returns:
        tokens `(B, T, D)` and attention `(B, L, heads, T, T)`, NumPy arrays.
    """
    import keras

    inputs = keras.Input(tuple(images.shape[1:]), name="images")
    model = keras.Model(inputs, AttentionReplay(backbone, name="attention_replay")(inputs))
    out = predict(model, np.asarray(images, "float32"), batch_size)
    return out["tokens"], out["attention"]


def rollout(attention):
    """Attention rollout (Abnar & Zuidema 2020): how information flows from every token to every token.

    For each block, the heads are averaged, the identity added (the residual
    connection) and the rows renormalised; the blocks are multiplied through:

        R = A_L' ... A_2' A_1',   A' = rownorm(mean_heads(A) + I)

    Args:
        attention: `(B, L, heads, T, T)` (or a list of L arrays `(B, heads, T, T)`).

    Returns:
        `(B, T, T)`: row i is token i's share of every input token; each row sums to 1.
    """
    attention = np.stack(attention, axis=1) if isinstance(attention, (list, tuple)) else np.asarray(attention)
    attention = attention.astype("float64")
    tokens = attention.shape[-1]
    flow = np.broadcast_to(np.eye(tokens), (attention.shape[0], tokens, tokens)).copy()
    for block in range(attention.shape[1]):
        a = attention[:, block].mean(axis=1) + np.eye(tokens)  # (B, T, T)
        a /= a.sum(axis=-1, keepdims=True)
        flow = a @ flow  # the later block reads the earlier one's mixture
    return flow


def cls_to_patches(flow, grid):
    """Row [CLS] of a rollout, without [CLS] itself, as a map over the patch grid.

    Args:
        flow: `(B, 1 + N, 1 + N)` from `rollout`.
        grid: `(gh, gw)` with `gh * gw = N`.

    Returns:
        `(B, gh, gw)`, one value per patch, renormalised to sum to 1.
    """
    patches = flow[:, 0, 1:]  # (B, N)
    if patches.shape[1] != grid[0] * grid[1]:
        raise ValueError(f"rollout has {patches.shape[1]} patch tokens, the grid {grid} has {grid[0] * grid[1]}")
    patches = patches / patches.sum(axis=1, keepdims=True)
    return patches.reshape(-1, *grid)


def occlusion(classifier, images, patch, target=None, fill=None, batch_size=64):
    """Patch occlusion: the drop of one logit when each patch is hidden.

    Every `patch x patch` square of the grid (the ViT's own patches when
    `patch` is its patch size) is replaced by `fill` (by default the image's
    mean colour), and the classifier's logit for `target` (by default the
    class predicted on the whole image) is compared with the original:

        drop[i, j] = logit(image) - logit(image with patch (i, j) hidden)

    Args:
        classifier: a keras model, images -> logits.
        images: `(B, H, W, C)` NumPy array, as the classifier takes them.
        patch: the square's side in pixels; H and W are divided by it.
        target: `(B,)` classes whose logit is watched, or None.

    Returns:
        drop `(B, H // patch, W // patch)` and the targets `(B,)`.
    """
    images = np.asarray(images, "float32")
    batch, height, width, _ = images.shape
    gh, gw = height // patch, width // patch
    logits = predict(classifier, images, batch_size)
    target = logits.argmax(-1) if target is None else np.asarray(target)
    base = logits[np.arange(batch), target]
    drops = np.zeros((batch, gh, gw), "float32")
    for b in range(batch):
        colour = images[b].mean(axis=(0, 1)) if fill is None else fill
        hidden = np.repeat(images[b][None], gh * gw, axis=0)  # (gh * gw, H, W, C)
        for k in range(gh * gw):
            i, j = divmod(k, gw)
            hidden[k, i * patch : (i + 1) * patch, j * patch : (j + 1) * patch] = colour
        occluded = predict(classifier, hidden, batch_size)[:, target[b]]
        drops[b] = (base[b] - occluded).reshape(gh, gw)
    return drops, target


def upsample(maps, size):
    """Patch maps `(B, gh, gw)` to pixels `(B, H, W)` (nearest: one block per patch)."""
    maps = np.asarray(maps)
    return np.repeat(np.repeat(maps, size[0] // maps.shape[1], axis=1), size[1] // maps.shape[2], axis=2)


def figure(images, maps, titles, row_titles=None, alpha=0.55):
    """Images with each map overlaid: one row per image, the image then one column per map.

    Args:
        images: `(B, H, W, 3)` in [0, 1].
        maps: {column title: (B, gh, gw)}; each map is scaled to [0, 1] per image.
        titles: per-image titles (first column).
    """
    import matplotlib.pyplot as plt

    columns = 1 + len(maps)
    fig, axes = plt.subplots(len(images), columns, figsize=(2.4 * columns, 2.4 * len(images)), squeeze=False)
    for b, image in enumerate(images):
        axes[b, 0].imshow(np.clip(image, 0, 1))
        axes[b, 0].set_title(titles[b], fontsize=8)
        for c, (name, values) in enumerate(maps.items(), start=1):
            m = upsample(values[b : b + 1], image.shape[:2])[0]
            m = (m - m.min()) / (m.max() - m.min() + 1e-12)
            axes[b, c].imshow(np.clip(image, 0, 1))
            axes[b, c].imshow(m, cmap="jet", alpha=alpha, extent=(0, image.shape[1], image.shape[0], 0))
            axes[b, c].set_title(name if row_titles is None else f"{name}\n{row_titles[b]}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
