"""The receptive field ("champ réceptif") of every layer of a Keras model, from the layers' own configs.

A value deep in a CNN depends on a square of input pixels, its receptive
field. Layer after layer, with `r` the field, `j` the jump (input pixels
between two adjacent outputs: the cumulative stride) and a layer of kernel
`k`, stride `s` and dilation `d`:

    r_out = r_in + (d * (k - 1)) * j_in        j_out = j_in * s

(a pooling layer is a kernel too). Three 3x3 convolutions see 7x7 pixels:
"a small kernel with many layers: a large receptive field".

    from kcourse import receptive_field
    rows = receptive_field.receptive_fields(model)        # one dict per layer
    print(receptive_field.table(rows))
    field, jump = receptive_field.receptive_field_of(model)
    receptive_field.probe_receptive_field(model)           # the same field, read off a gradient

The fields are the theoretical ones (not clipped to the image): with 'same'
padding a layer looks beyond the border of its input, into the zeros. The
gradient probe checks them on an input large enough to hold the field.
"""

import math
from fractions import Fraction

COLUMNS = ("layer", "type", "kernel", "stride", "padding", "dilation", "jump", "receptive field", "output size")

# Element-wise, normalisation, activation, regularisation layers: the field goes through unchanged.
_CONVS = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"}
_POOLS = {"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D"}
_TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
_STOPS = {"Flatten", "Reshape", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
          "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"}


class _State:
    """What a tensor's pixels see: field r, jump j, the centre of pixel 0 in input coordinates, the size (H, W)."""

    def __init__(self, field, jump, start, size, spatial=True):
        self.field, self.jump, self.start, self.size, self.spatial = field, jump, start, size, spatial


def receptive_fields(model, input_size=None):
    """One row per layer, in graph order: its kernel, stride, padding, dilation, jump, field and output size.

    Args:
        model: a keras Sequential or functional model (nested models, such as
            a keras-hub backbone inside a functional model, are walked into:
            their layers are named `outer/inner`).
        input_size: (H, W) to use where the model's input shape leaves the
            spatial size open (a fully convolutional model has (None, None, C)).

    Returns:
        A list of dicts with exactly the keys of COLUMNS: "layer" (name),
        "type" (class name), "kernel", "stride", "padding", "dilation" (None
        for a layer without them), "jump" (input pixels between adjacent
        outputs), "receptive field" (side, input pixels), "output size" ((H, W)
        of the layer's output for the model's input, None where unknown or not
        spatial). The first row is the input (field 1, jump 1).

    The configs read: Conv1D/2D/3D, DepthwiseConv, SeparableConv, ConvTranspose,
    Max/AveragePooling, ZeroPadding2D, Cropping2D, UpSampling2D; element-wise,
    normalisation and activation layers pass the field through. A layer with
    several inputs (a residual Add, a Concatenate) takes the largest field and
    the jump of that path. Flatten, Reshape, global pooling and Dense on a flat
    tensor end the spatial part: their field is the whole input (its larger
    side, None when the input size is open), their jump None. A Dense on a
    feature map (rank 4) acts per pixel, as a 1x1 convolution. Kernels and
    strides that are not square are summarised by their larger side (the
    field of the larger side is given). A layer this module does not know
    keeps the field and jump it receives.
    """
    size = _input_size(model, input_size)
    start = _State(1, Fraction(1), Fraction(0), size)
    rows = [_row("input", "InputLayer", None, None, None, None, start)]
    whole = max(size) if size and None not in size else None
    _walk(model, [start], rows, prefix="", whole=whole)
    return rows


def receptive_field_of(model, input_size=None):
    """(field, jump) of the model's last spatial layer (before any Flatten, Dense or global pooling)."""
    row = last_spatial_row(receptive_fields(model, input_size))
    return row["receptive field"], row["jump"]


def field_centre(model, input_size=None):
    """Where output pixel (0, 0) of the last spatial layer is centred, in input pixels (a float).

    Output pixel (i, j) is centred on input pixel (centre + i * jump, centre + j * jump):
    how a map of predictions is drawn back onto the image.
    """
    state = _walk(model, [_State(1, Fraction(1), Fraction(0), _input_size(model, input_size))], [], "", None, last_spatial=True)
    return float(state.start)


def last_spatial_row(rows):
    spatial = [row for row in rows if row["jump"] is not None]
    return spatial[-1]


def table(rows):
    """The rows as a plain-text table, one line per layer."""
    text = [[_text(row[key]) for key in COLUMNS] for row in rows]
    widths = [max(len(key), *(len(line[i]) for line in text)) for i, key in enumerate(COLUMNS)]
    lines = ["  ".join(key.ljust(w) for key, w in zip(COLUMNS, widths))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in text]
    return "\n".join(lines)


# ---------------------------------------------------------------- the walk
def _walk(model, inputs, rows, prefix, whole, last_spatial=False):
    """Propagate the states of `inputs` through `model`, appending rows; return the output state."""
    last = inputs[0]
    if hasattr(model, "_nodes_by_depth") and not _is_sequential(model):
        states = {id(x): state for x, state in zip(model.inputs, inputs)}
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.is_input or not node.operation:
                    continue
                received = [states[id(x)] for x in node.input_tensors if id(x) in states]
                if not received:
                    continue
                out = _layer(node.operation, received, node.input_tensors, node.outputs, rows, prefix, whole)
                for x in node.outputs:
                    states[id(x)] = out
                if out.spatial:
                    last = out
        outputs = [states[id(x)] for x in model.outputs if id(x) in states]
        return last if last_spatial else (outputs[0] if outputs else last)
    state = inputs[0]
    for layer in model.layers:
        tensors = _tensors(layer)
        state = _layer(layer, [state], *tensors, rows, prefix, whole)
        if state.spatial:
            last = state
    return last if last_spatial else state


def _layer(layer, received, input_tensors, output_tensors, rows, prefix, whole):
    kind = type(layer).__name__
    name = prefix + layer.name
    state = max(received, key=lambda s: (s.spatial, s.field))  # a merge: the widest path
    if not state.spatial:
        out = _State(state.field, None, None, None, spatial=False)
        rows.append(_row(name, kind, None, None, None, None, out))
        return out
    if hasattr(layer, "layers") and (hasattr(layer, "_nodes_by_depth") or _is_sequential(layer)):
        out = _walk(layer, received, rows, prefix=f"{name}/", whole=whole)
        return out
    config = layer.get_config()
    rank = _rank(input_tensors)
    if kind in _STOPS or (kind in ("Dense", "EinsumDense") and rank is not None and rank < 4):
        out = _State(whole, None, None, None, spatial=False)
        rows.append(_row(name, kind, None, None, None, None, out))
        return out
    if kind in _CONVS or kind in _POOLS:
        k = _side(config.get("kernel_size", config.get("pool_size")))
        s = _side(config.get("strides") or k)
        d = _side(config.get("dilation_rate", 1))
        padding = config.get("padding", "valid")
        size = _conv_size(state.size, k, s, d, padding)
        pad = _pad_before(state.size, k, s, d, padding)
        out = _State(state.field + d * (k - 1) * state.jump, state.jump * s,
                     state.start + (Fraction(d * (k - 1), 2) - pad) * state.jump, size)
        rows.append(_row(name, kind, k, s, padding, d, out))
        return out
    if kind in _TRANSPOSED:
        k, s = _side(config["kernel_size"]), _side(config["strides"])
        padding = config.get("padding", "valid")
        size = None if state.size is None else tuple(
            None if n is None else (n * s if padding == "same" else (n - 1) * s + k) for n in state.size)
        taps = math.ceil(k / s)  # an output pixel is a sum over at most ceil(k / s) input pixels per side
        out = _State(state.field + (taps - 1) * state.jump, state.jump / s, state.start, size)
        rows.append(_row(name, kind, k, s, padding, _side(config.get("dilation_rate", 1)), out))
        return out
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = config["padding"]
        size = _add(state.size, (top + bottom, left + right))
        out = _State(state.field, state.jump, state.start - max(top, left) * state.jump, size)
        rows.append(_row(name, kind, None, None, config["padding"], None, out))
        return out
    if kind == "Cropping2D":
        (top, bottom), (left, right) = config["cropping"]
        size = _add(state.size, (-top - bottom, -left - right))
        out = _State(state.field, state.jump, state.start + max(top, left) * state.jump, size)
        rows.append(_row(name, kind, None, None, None, None, out))
        return out
    if kind == "UpSampling2D":
        s = _side(config["size"])
        extra = state.jump if config.get("interpolation", "nearest") != "nearest" else 0  # bilinear reads 2 pixels
        size = None if state.size is None else tuple(None if n is None else n * s for n in state.size)
        out = _State(state.field + extra, state.jump / s, state.start, size)
        rows.append(_row(name, kind, s, None, config.get("interpolation"), None, out))
        return out
    # element-wise, normalisation, activation, merges, and the layers this module does not know
    size = state.size
    sizes = [s.size for s in received if s.size is not None]
    if kind == "Concatenate" or sizes:
        size = sizes[0] if sizes else None
    out = _State(state.field, state.jump, state.start, size)
    rows.append(_row(name, kind, None, None, None, None, out))
    return out


# ---------------------------------------------------------------- helpers
def _row(name, kind, kernel, stride, padding, dilation, state):
    return {
        "layer": name,
        "type": kind,
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "jump": _number(state.jump),
        "receptive field": _number(state.field),
        "output size": state.size if state.spatial and state.size and None not in state.size else None,
    }


def _number(value):
    if value is None:
        return None
    value = Fraction(value)
    return int(value) if value.denominator == 1 else float(value)


def _text(value):
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _side(value):
    """An int, or the larger side of a tuple (square kernels are the course's; others are summarised)."""
    return max(value) if isinstance(value, (tuple, list)) else int(value)


def _is_sequential(model):
    return type(model).__name__ == "Sequential"


def _input_size(model, input_size):
    if input_size is not None:
        return tuple(int(n) for n in input_size)
    try:
        shape = model.inputs[0].shape
    except (AttributeError, IndexError, ValueError):
        return None
    if len(shape) < 4:
        return (shape[1], None) if len(shape) == 3 else None
    return tuple(shape[1:3])


def _tensors(layer):
    """The symbolic input and output tensors of a layer of a built Sequential, or Nones."""
    try:
        return [layer.input], [layer.output]
    except (AttributeError, ValueError):
        return [None], [None]


def _rank(tensors):
    shapes = [t.shape for t in tensors if t is not None and hasattr(t, "shape")]
    return len(shapes[0]) if shapes else None


def _conv_size(size, k, s, d, padding):
    if size is None:
        return None
    span = d * (k - 1) + 1
    return tuple(None if n is None else (-(-n // s) if padding == "same" else (n - span) // s + 1) for n in size)


def _pad_before(size, k, s, d, padding):
    """Keras' 'same' padding: the total is split with the extra pixel after (bottom, right)."""
    if padding != "same":
        return 0
    span = d * (k - 1) + 1
    n = size[0] if size is not None and size[0] is not None else None
    total = max(span - s, 0) if n is None else max((-(-n // s) - 1) * s + span - n, 0)
    return total // 2


def _add(size, extra):
    if size is None:
        return None
    return tuple(None if n is None else n + e for n, e in zip(size, extra))


# ---------------------------------------------------------------- the gradient probe
def probe_receptive_field(model, layer=None, input_size=None, samples=32, seed=0):
    """The receptive field read off a gradient: which input pixels one output pixel depends on.

    The gradient of the centre pixel of `layer`'s output (summed over its
    channels) with respect to the input is non-zero exactly inside that
    pixel's receptive field. A dead ReLU or the max of a max-pooling window
    makes some in-field gradients zero for a given input, so the probe takes
    `samples` random normal inputs at once and keeps the union of the
    non-zero pixels: the field's edges then show in every sample batch tried.

    Args:
        model: a keras model with one image input (channels last).
        layer: name of a top-level layer to probe (default: the last spatial
            layer; a nested model is probed at its output).
        input_size: (H, W) of the probe input, for a model whose input size
            is open (default: 2 * field + 1 per side, so that the field fits).
            A model with a fixed input size is probed at that size.

    Returns:
        dict with "layer" (the name probed), "field" (height, width) of the non-zero region, "box"
        ((top, bottom), (left, right)) in input pixels, inclusive, "pixel"
        the output pixel probed, "mask" the (H, W) bool array of non-zeros.
    """
    import keras
    import numpy as np

    rows = receptive_fields(model, input_size)
    name = (layer or last_spatial_row(rows)["layer"]).split("/")[0]  # a nested model is probed at its output
    inside = [r for r in rows if r["layer"] == name or r["layer"].startswith(name + "/")]
    if not inside or inside[-1]["jump"] is None:
        raise ValueError(f"{name!r} is not a spatial layer at the top level of {model.name}")
    row = inside[-1]
    own = _input_size(model, None)
    if own is not None and None not in own:
        if input_size is not None and tuple(input_size) != tuple(own):
            raise ValueError(f"{model.name} takes {own[0]}x{own[1]} inputs only, not {input_size[0]}x{input_size[1]}")
        size = tuple(own)
    elif input_size is not None:
        size = tuple(int(n) for n in input_size)
    else:
        side = 2 * int(row["receptive field"]) + 1
        size = (side, side)
    target = model if name == model.layers[-1].name else keras.Model(model.inputs, model.get_layer(name).output)
    channels = model.inputs[0].shape[-1]
    x = np.random.default_rng(seed).normal(size=(samples, *size, channels)).astype("float32")
    out_h, out_w = target.compute_output_shape((samples, *size, channels))[1:3]
    pixel = (out_h // 2, out_w // 2)
    gradient = _gradient(target, x, pixel)
    mask = np.abs(gradient).sum(axis=(0, 3)) > 0  # (H, W): union over samples and channels
    rows_hit, cols_hit = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = ((int(rows_hit[0]), int(rows_hit[-1])), (int(cols_hit[0]), int(cols_hit[-1])))
    field = (box[0][1] - box[0][0] + 1, box[1][1] - box[1][0] + 1)
    return {"layer": name, "field": field, "box": box, "pixel": pixel, "mask": mask}


def _gradient(model, x, pixel):
    """d sum(model(x)[:, i, j, :]) / dx with the backend's own autodiff (the backend fact is the point)."""
    import keras
    import numpy as np

    i, j = pixel
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        grad = jax.grad(lambda inputs: model(inputs, training=False)[:, i, j, :].sum())(jax.numpy.asarray(x))
        return np.asarray(grad)
    if backend == "torch":
        inputs = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        model(inputs, training=False)[:, i, j, :].sum().backward()
        return inputs.grad.detach().cpu().numpy()
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = tf.reduce_sum(model(inputs, training=False)[:, i, j, :])
        return tape.gradient(total, inputs).numpy()
    raise ValueError(f"probe_receptive_field: no gradient for the {backend} backend")
