"""FLOPs per image, counted from the layers' configs and output shapes (nothing is run).

The convention: one multiply-add (MAC) is 2 FLOPs. Published tables mostly
give MACs under the name "FLOPs" (torchvision's "GFLOPS" column, fvcore,
ptflops): VGG16 is 15.5 GMACs = 31 GFLOPs, ResNet-50 4.1 GMACs = 8.2 GFLOPs.
Only the multiply-adds of the layers with weights are counted, as in those
tables; biases, activations, pooling, normalisation (folded into the
convolution at inference) and additions are left out.

    conv:   MACs = k_h k_w (C_in / groups) C_out  x  H_out W_out   (kernel size x output pixels)
    dense:  MACs = n_in n_out  x  positions                         (1 on a flat vector, L on L tokens)
    encoder layer on L tokens of width d, MLP width m:
            4 L d^2 (Q, K, V, O)  +  2 L^2 d (Q K^T and A V)  +  2 L d m (the MLP)

    from kcourse import flops
    flops.count_macs(model)                   # a Sequential or functional CNN / MLP
    flops.count_macs_run(unet, images)        # any model, custom blocks included: the shapes seen on one sample
    flops.encoder_macs(tokens=197, d_model=768, mlp_dim=3072, n_layers=12)
"""

import math

_CONVS = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D"}
_TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
_SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}
_FREE = {"Embedding", "BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization"}  # no MACs


def count_macs(model):
    """Multiply-adds for one sample through a Sequential or functional model (nested ones walked into).

    Raises ValueError for a layer with weights that no rule here covers (a
    custom block, attention): count those with `encoder_macs` instead.
    """
    return sum(layer_macs(layer) for layer in leaf_layers(model))


def leaf_layers(model):
    """The layers of a model, nested Sequential / functional models replaced by their own layers."""
    for layer in model.layers:
        if _is_graph(layer):
            yield from leaf_layers(layer)
        else:
            yield layer


def layer_macs(layer, shapes=None):
    """Multiply-adds of one layer for one sample, from its kernel shape and its output (or input) shape.

    `shapes`: (input shape, output shape) as the layer saw them; by default its place in a functional graph.
    """
    kind = type(layer).__name__
    if not layer.weights or kind in _FREE:
        return 0
    shape = (lambda which: shapes[which == "output"]) if shapes else (lambda which: _shape(layer, which))
    if kind in _CONVS or kind == "Dense":  # kernel (k..., C_in / groups, C_out) or (n_in, n_out)
        return _size(layer.kernel.shape) * _positions(shape("output"))
    if kind in _TRANSPOSED:  # every input pixel spreads its kernel over the output
        return _size(layer.kernel.shape) * _positions(shape("input"))
    if kind in _SEPARABLE:
        positions = _positions(shape("output"))
        return (_size(layer.depthwise_kernel.shape) + _size(layer.pointwise_kernel.shape)) * positions
    raise ValueError(
        f"no FLOP rule for layer {layer.name!r} ({kind}); count it by formula (flops.encoder_macs for attention blocks)"
    )


def count_macs_run(model, x):
    """Multiply-adds for one sample of `x`, read from the shapes each layer with weights sees when `model` runs on it.

    For models whose layers are not in a graph (a subclassed model such as
    kcourse's UNet, custom blocks such as ConvBlock): every innermost layer's
    `call` is watched during one forward pass on `x[:1]`, then counted by the
    rules of `layer_macs`. A layer called twice is counted twice.
    """
    innermost = [layer for layer in model._flatten_layers(include_self=False)  # Keras' own walk over tracked layers
                 if not list(layer._flatten_layers(include_self=False, recursive=False))]
    seen = []

    def watch(layer):
        call = layer.call

        def watched(inputs, *args, **kwargs):
            outputs = call(inputs, *args, **kwargs)
            seen.append((layer, (tuple(inputs.shape), tuple(outputs.shape))))
            return outputs

        layer.call = watched  # on the instance: the class's call is untouched

    for layer in innermost:
        watch(layer)
    try:
        model(x[:1], training=False)
    finally:
        for layer in innermost:
            del layer.call
    return sum(layer_macs(layer, shapes) for layer, shapes in seen)


def encoder_macs(tokens, d_model, mlp_dim, n_layers=1):
    """Multiply-adds of `n_layers` Transformer encoder layers on `tokens` tokens.

    Per layer: the Q, K, V and output projections (4 L d^2), the scores Q K^T
    and the weighted sum A V (L^2 d each, whatever the number of heads: each
    head does L^2 d / n_heads), the MLP d -> m -> d (2 L d m).
    """
    L, d, m = tokens, d_model, mlp_dim
    return n_layers * (4 * L * d * d + 2 * L * L * d + 2 * L * d * m)


def vit_macs(image_shape, patch_size, hidden_dim, mlp_dim, num_layers, classes, **_):
    """A ViT classifier's multiply-adds for one image: the patches' convolution, the encoder on N + 1 tokens,
    a linear head on [CLS] (the arguments of keras-hub's ViTBackbone)."""
    patches = (image_shape[0] // patch_size) * (image_shape[1] // patch_size)
    patchify = patch_size**2 * image_shape[2] * hidden_dim * patches  # a P x P convolution of stride P
    return patchify + encoder_macs(patches + 1, hidden_dim, mlp_dim, num_layers) + hidden_dim * classes


def tiny_transformer_macs(model):
    """kcourse's TinyTransformerClassifier, for one sequence of its max_len tokens: the embedding is a lookup
    (an input projection only when its width differs from d_model), then the encoder, then the head on [CLS]."""
    d, hidden = model.d_model, int(model.d_model * model.mlp_ratio)
    projection = model.embed_dim * d * model.max_len if model.embed_dim != d else 0
    return projection + encoder_macs(model.max_len, d, hidden, model.n_layers) + d * model.num_classes


def flops(macs):
    """FLOPs from multiply-adds: 2 each."""
    return 2 * macs


# ---------------------------------------------------------------- helpers
def _is_graph(layer):
    """A Sequential or functional model (a keras-hub backbone is one), not a subclassed model or a layer."""
    return type(layer).__name__ == "Sequential" or hasattr(layer, "_nodes_by_depth")


def _shape(layer, which):
    try:
        return tuple(getattr(layer, which).shape)
    except (AttributeError, ValueError) as error:  # a layer called more than once, or never in a graph
        raise ValueError(f"layer {layer.name!r}: its {which} shape is not known ({error}); build the model on an Input") from None


def _positions(shape):
    """The number of places a kernel is applied: the product of the dimensions between batch and channels."""
    dims = shape[1:-1]
    if any(n is None for n in dims):
        raise ValueError(f"output shape {shape}: the spatial size is open; give the model a fixed input size")
    return math.prod(dims)


def _size(shape):
    return math.prod(int(n) for n in shape)
