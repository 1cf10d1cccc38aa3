"""Lectures 003-004 by hand: the convolution and max-pooling formulas in NumPy against Keras, the lecture's hyper-parameters, tensors on each backend.

1. Tensors (003): the lecture's shape table (a scalar [] ... an image batch)
   filled with `keras.ops` tensors on the backend at hand, with what it
   calls them (type, device, where the gradient goes); then the lecture's
   hand-written `Value` scalars against tensors on one large dot product.
2. The convolution (004): Y[i, j, c'] = sum_c sum_u sum_v X[i S + u, j S + v, c]
   K[u, v, c, c'] + b[c'] computed with NumPy loops and compared with Keras'
   `Conv2D` for several kernels, strides and paddings; the output size
   (W - K + 2P) / S + 1 checked for each; what P = 0 and 'same' padding do
   at the border; and the lecture's "S = 0", which cannot be.
3. Max-pooling (003, 004): a 4x4 -> 2x2 example by hand and by Keras, four
   times fewer values, and what pooling does to a one-pixel shift of digits.

    python -m kcourse.tasks.convolution              # seconds, no training
    python -m kcourse.tasks.convolution --backend torch

The run folder gets metrics.json, tensors.csv, convolutions.csv (each
configuration: the largest difference, the output sizes), border.png and
pooling.png.
"""

import time

import numpy as np

from kcourse import cli, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.convolution: build_parser(), then run_lab(args)

KEY_FIGURES = ("border", "pooling")
# The lecture's table (003): an object, its PyTorch shape and what it is for; Keras puts an image's channels last.
SHAPES = (("scalar", (), "the loss L"), ("vector", (10,), "a bias, an output"), ("matrix", (784, 128), "weights W"),
          ("batch", (32, 784), "a mini-batch"), ("image batch", (128, 224, 224, 3), "128 RGB images of 224 x 224"))
CONFIGS = [(k, s, p) for k in (1, 3, 5) for s in (1, 2, 3) for p in ("valid", "same")]  # kernel, stride, padding
SIZES = ((3, 1, 0), (3, 1, 1), (5, 1, 2), (3, 2, 0), (3, 2, 1), (5, 2, 2), (7, 2, 3), (2, 2, 0))  # K, S, P on 28 pixels
# The max-pooling example: the seed's matrix is garbled in its text; this one gives its legible output [[5, 5], [4, 6]].
POOL_EXAMPLE = np.array([[1, 3, 2, 1], [2, 5, 1, 5], [4, 1, 2, 6], [3, 1, 1, 2]], "float32")


# ---------------------------------------------------------------- 1. tensors
def tensor_table():
    """The lecture's shapes as `keras.ops` tensors on this backend: {"object", "PyTorch shape", "Keras shape",
    "use", "type", "dtype", "device"} per row."""
    import keras
    from keras import ops

    rows = []
    for name, shape, use in SHAPES:
        t = ops.zeros(shape)
        torch_shape = shape if len(shape) < 4 else (shape[0], shape[3], shape[1], shape[2])  # [B, C, H, W]
        rows.append({"object": name, "PyTorch shape": list(torch_shape), "Keras shape": list(t.shape), "use": use,
                     "type": f"{type(t).__module__.split('.')[0]}.{type(t).__name__}", "dtype": keras.backend.standardize_dtype(t.dtype),
                     "device": tensor_device(t)})
    return rows


def tensor_device(t):
    """Where a tensor lives, as its backend says it."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return ", ".join(str(d) for d in t.devices())
    return str(t.device)


def gradient_attributes():
    """The lecture's `grad` and `requires_grad` (PyTorch's attributes) on this backend: where a trainable weight's
    gradient is asked for and kept. A backend-specific fact, so each backend is asked in its own words."""
    import keras

    backend = keras.backend.backend()
    weight = keras.Variable(np.ones(3, "float32"))
    if backend == "torch":
        value = weight.value
        return {"requires_grad": str(value.requires_grad), "grad": f"{value.grad} before backward(): the tensor keeps "
                "its gradient, loss.backward() fills it"}
    if backend == "jax":
        return {"requires_grad": "no such attribute: jax.Array has none",
                "grad": "not kept on the array: jax.grad(f) is a new function that returns the gradients"}
    return {"requires_grad": f"tf.Variable.trainable = {weight.value.trainable}",
            "grad": "not kept on the tensor: tf.GradientTape records the computation, tape.gradient returns them"}


class Value:
    """The lecture's hand-written autograd scalar (J3-AM's `Value`): a number, its gradient, how to pass it back."""

    def __init__(self, data, parents=()):
        self.data, self.grad, self._parents, self._back = data, 0.0, parents, lambda: None

    def __add__(self, other):
        out = Value(self.data + other.data, (self, other))

        def back():
            self.grad += out.grad
            other.grad += out.grad

        out._back = back
        return out

    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other))

        def back():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._back = back
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:  # a topological order, without recursion (a long sum is a deep graph)
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents)
        self.grad = 1.0
        for node in reversed(order):
            node._back()


def python_against_tensors(n=50_000, seed=0):
    """One dot product w . x of `n` numbers and its gradient: with `Value` scalars, then as one tensor operation.
    Returns {"n", "Value s", "tensor s", "ratio", "equal"}."""
    from keras import ops

    rng = np.random.default_rng(seed)
    w, x = rng.standard_normal(n), rng.standard_normal(n)
    start = time.perf_counter()
    ws = [Value(float(a)) for a in w]
    total = Value(0.0)
    for a, b in zip(ws, x):
        total = total + a * Value(float(b))
    total.backward()  # d(w . x) / dw = x
    by_hand = time.perf_counter() - start
    tw, tx = ops.convert_to_tensor(w, "float32"), ops.convert_to_tensor(x, "float32")
    float(ops.sum(tw * tx))  # a first call: the backend warms up
    start = time.perf_counter()
    dot = float(ops.sum(tw * tx))
    tensor = time.perf_counter() - start
    return {"n": n, "Value s": by_hand, "tensor s": tensor, "ratio": by_hand / max(tensor, 1e-9),
            "equal": abs(dot - total.data) < 1e-3 * max(1.0, abs(dot)),
            "gradient right": bool(np.allclose([v.grad for v in ws[:100]], x[:100]))}


# ---------------------------------------------------------------- 2. the convolution
def same_padding(size, kernel, stride):
    """Keras' (and TensorFlow's) 'same': the output has ceil(size / stride) places; the zeros split before / after,
    the odd one after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d_by_hand(x, kernel, bias, stride=1, padding="valid"):
    """The lecture's formula with loops over the output's places: x (H, W, C_in), kernel (k, k, C_in, C_out), bias
    (C_out,); padding "valid" (P = 0), "same" (Keras') or a number P of zeros on each side. Returns (H', W', C_out)."""
    k = kernel.shape[0]
    if padding == "same":
        x = np.pad(x, [same_padding(x.shape[0], k, stride), same_padding(x.shape[1], k, stride), (0, 0)])
    elif padding != "valid":
        x = np.pad(x, [(padding, padding), (padding, padding), (0, 0)])
    height, width = (x.shape[0] - k) // stride + 1, (x.shape[1] - k) // stride + 1
    y = np.zeros((height, width, kernel.shape[3]), "float64")
    for i in range(height):
        for j in range(width):
            window = x[i * stride : i * stride + k, j * stride : j * stride + k, :]  # (k, k, C_in)
            y[i, j] = np.tensordot(window, kernel, axes=3) + bias  # sum over u, v and c
    return y


def keras_conv(x, kernel, bias, stride=1, padding="valid"):
    """Keras' Conv2D with these weights on one image (H, W, C_in); P zeros by a ZeroPadding2D before a 'valid' one."""
    import keras
    from keras import ops

    layers = [] if padding in ("valid", "same") else [keras.layers.ZeroPadding2D(padding)]
    conv = keras.layers.Conv2D(kernel.shape[3], kernel.shape[0], strides=stride,
                               padding=padding if padding in ("valid", "same") else "valid")
    model = keras.Sequential([keras.Input(x.shape), *layers, conv])
    conv.set_weights([kernel, bias])
    return ops.convert_to_numpy(model(x[None].astype("float32")))[0]


def convolution_checks(seed=0, shape=(9, 11, 3), channels_out=4):
    """Every (kernel, stride, padding) of CONFIGS: the hand convolution against Conv2D on one random image.
    Rows {"kernel", "stride", "padding", "output", "largest difference"}."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype("float32")
    rows = []
    for k, s, p in CONFIGS:
        kernel = rng.standard_normal((k, k, shape[2], channels_out)).astype("float32")
        bias = rng.standard_normal(channels_out).astype("float32")
        mine, theirs = conv2d_by_hand(x, kernel, bias, s, p), keras_conv(x, kernel, bias, s, p)
        rows.append({"kernel": k, "stride": s, "padding": p, "output": list(mine.shape),
                     "largest difference": float(np.abs(mine - theirs).max()) if mine.shape == theirs.shape else float("inf")})
    return rows


def output_sizes(width=28):
    """(W - K + 2P) / S + 1, rounded down, against the output Keras gives, for each (K, S, P) of SIZES."""
    x = np.zeros((width, width, 1), "float32")
    rows = []
    for k, s, p in SIZES:
        kernel, bias = np.zeros((k, k, 1, 1), "float32"), np.zeros(1, "float32")
        rows.append({"W": width, "K": k, "S": s, "P": p, "formula": (width - k + 2 * p) // s + 1,
                     "Keras": keras_conv(x, kernel, bias, s, p).shape[0]})
    return rows


def border(width=28, k=3):
    """What each padding does at the border of a width x width image, kernel k (stride 1).

    P = 0: the times each input pixel enters an output (a corner once, the
    interior k^2 times). 'same': the real pixels each output sums (a corner
    output mixes in zeros). Returns the two maps and their figures.
    """
    ones = np.ones((width, width, 1), "float32")
    kernel, bias = np.ones((k, k, 1, 1), "float32"), np.zeros(1, "float32")
    windows = np.zeros((width, width))
    for i in range(width - k + 1):
        for j in range(width - k + 1):
            windows[i : i + k, j : j + k] += 1  # the pixels this output reads
    same = keras_conv(ones, kernel, bias, 1, "same")[..., 0]  # (width, width): real pixels under each window
    return {"valid output": width - k + 1, "corner seen": int(windows[0, 0]), "interior seen": int(windows[k, k]),
            "same output": width, "corner real": float(same[0, 0]), "edge real": float(same[0, width // 2]),
            "window": k * k}, windows, same


def stride_zero():
    """The lecture's "S = 0": what Keras says to it (a stride of 0 would never move the window)."""
    import keras

    try:
        keras.layers.Conv2D(1, 3, strides=0)
    except ValueError as error:
        return str(error).replace("Received strides=0, including", "Received 0,")
    return None


def border_figure(windows, same):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, a, title in ((axes[0], windows, "P = 0: outputs each input pixel enters"),
                         (axes[1], same, "'same': real pixels under each output's window")):
        im = ax.imshow(a, cmap="viridis")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 3. max-pooling
def max_pool_by_hand(x, size=2):
    """Y[i, j] = max over the size x size window at (i size, j size): the lecture's formula on a (H, W) matrix."""
    h, w = x.shape[0] // size, x.shape[1] // size
    return x[: h * size, : w * size].reshape(h, size, w, size).max(axis=(1, 3))


def keras_max_pool(x, times=1):
    """Keras' MaxPooling2D(2), `times` in a row, on images (N, H, W, C)."""
    import keras
    from keras import ops

    model = keras.Sequential([keras.Input(x.shape[1:]), *[keras.layers.MaxPooling2D(2) for _ in range(times)]])
    return ops.convert_to_numpy(model(x.astype("float32")))


def shift_right(images, pixels=1):
    """Images (N, H, W, C) moved `pixels` to the right, zeros coming in on the left."""
    out = np.zeros_like(images)
    out[:, :, pixels:] = images[:, :, :-pixels]
    return out


def pooling_and_shift(images):
    """How much a one-pixel shift changes the values: the input's, after one 2x2 max-pool, after two. Relative
    change ||f(shifted) - f(x)|| / ||f(x)||, over the digits given (N, 28, 28, 1)."""
    moved = shift_right(images)
    change = {"input": float(np.linalg.norm(moved - images) / np.linalg.norm(images))}
    for times in (1, 2):
        a, b = keras_max_pool(images, times), keras_max_pool(moved, times)
        change[f"after {times} max-pool{'s' if times > 1 else ''}"] = float(np.linalg.norm(b - a) / np.linalg.norm(a))
    return change


def pooling_figure(example, pooled, digit, shifted):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    for ax, a, title in ((axes[0], example, "input 4 x 4"), (axes[1], pooled, "MaxPooling2D(2): 2 x 2")):
        ax.imshow(a, cmap="Blues")
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, f"{v:g}", ha="center", va="center")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, (a, title) in zip(axes[2:], ((digit, "a digit"), (shifted, "moved one pixel to the right"))):
        ax.imshow(a, cmap="gray")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the handout's questions, answered by the run
def tensors_and_attributes(run):
    rows, grads = run.metrics["tensors"], run.metrics["gradients"]
    image = rows[-1]
    return (f"On {run.config['backend']}, a keras.ops tensor is a {image['type']} on {image['device']}, dtype {image['dtype']}; "
            f"the lecture's table: " + ", ".join(f"{r['object']} {r['Keras shape']}" for r in rows) +
            f" (Keras puts the channels last: PyTorch's [B, C, H, W] = {image['PyTorch shape']} is {image['Keras shape']} "
            f"here). requires_grad: {grads['requires_grad']}; grad: {grads['grad']}.")


def python_is_slow(run):
    s = run.metrics["python against tensors"]
    return (f"The dot product of {s['n']:,} numbers and its gradient with the lecture's Value scalars: {s['Value s']:.3f} s "
            f"({s['n'] / s['Value s']:,.0f} products a second); the product alone as one tensor operation "
            f"{s['tensor s'] * 1e3:.3f} ms, {s['ratio']:,.0f}x less, {'the same' if s['equal'] else 'a different'} result. The same graph, the same "
            f"backward, but on whole arrays in compiled code.")


def convolution_formula(run):
    rows = run.metrics["convolutions"]
    worst = max(rows, key=lambda r: r["largest difference"])
    return (f"The formula with NumPy loops against Keras' Conv2D, {len(rows)} configurations (kernels 1, 3, 5; strides "
            f"1, 2, 3; 'valid' and 'same'): the largest difference is {worst['largest difference']:.1e} (kernel "
            f"{worst['kernel']}, stride {worst['stride']}, {worst['padding']}), float32 rounding: Conv2D computes "
            f"exactly Y[i, j, c'] = sum_c sum_u sum_v X[iS + u, jS + v, c] K[u, v, c, c'] + b[c'].")


def hyper_parameters(run):
    sizes, b = run.metrics["output sizes"], run.metrics["border"]
    agree = sum(r["formula"] == r["Keras"] for r in sizes)
    said = "; ".join(f"K={r['K']} S={r['S']} P={r['P']}: {r['Keras']}" for r in sizes)
    field = run.metrics.get("three 3x3 field")
    return (f"Output size (W - K + 2P) / S + 1, rounded down, on W = 28: {said}; the formula agrees with Keras in "
            f"{agree} of {len(sizes)}. At the border, P = 0 (the lecture's advice) shrinks 28 to {b['valid output']} and a "
            f"corner pixel enters {b['corner seen']} output against {b['interior seen']} for an interior one; 'same' "
            f"(TP3's code) keeps {b['same output']} but a corner output reads {b['corner real']:g} real pixels of "
            f"{b['window']} and zeros for the rest (border.png). k = 3 suffices because layers add up: three 3x3 "
            f"convolutions see {field} x {field} pixels. \"S = 0\" cannot be: Keras answers \"{run.metrics['stride 0']}\"; "
            f"the lecture means S = 1, leaving the downsampling to pooling.")


def max_pooling(run):
    p, shift = run.metrics["pooling"], run.metrics["shift"]
    return (f"The seed's 4x4 matrix is garbled in its text; {p['input']}, which gives its legible output, becomes "
            f"{p['by hand']} by hand and {p['keras']} by MaxPooling2D(2): "
            f"{p['values in']} values become {p['values out']}, 4x fewer. A one-pixel shift of {shift['digits']} digits "
            f"changes the input by {shift['input']:.0%} (relative norm), the pooled map by "
            f"{shift['after 1 max-pool']:.0%} after one max-pool and {shift['after 2 max-pools']:.0%} after two: the "
            f"invariance to small translations grows with each pooling (pooling.png).")


HANDOUT = (
    Item("003:1", "Notre classe Value est pédagogique mais lente ; Python pur : quelques milliers d'opérations/s",
         "Hand-written Python scalars against tensors.", python_is_slow, "kcourse.tasks.convolution.python_against_tensors"),
    Item("003:2", "shape, device, grad, requires_grad ; Scalaire [], Vecteur [n], Matrice [n, m], Batch [B, n], Image [B, C, H, W]",
         "The tensors' attributes and the lecture's shape table, on this backend.", tensors_and_attributes,
         "kcourse.tasks.convolution.tensor_table"),
    Item("004:4", "Y[i,j,c'] = sum_c sum_u sum_v X[i s + u, j s + v, c] K[u,v,c,c'] + b", "The convolution formula, by hand "
         "against Conv2D.", convolution_formula, "kcourse.tasks.convolution.conv2d_by_hand"),
    Item("004:7", "Taille k = 3 ; Stride S = 0 ; Padding P = 0, information sur les bords de mauvaise qualité",
         "The lecture's hyper-parameters: k, S, P and the output size.", hyper_parameters, "kcourse.tasks.convolution.output_sizes"),
    Item("004:8", "Y[i,j] = max X[i s + u, j s + v] ; entrée 4 x 4, sortie 2 x 2", "Max-pooling: the 4x4 -> 2x2 example "
         "and a shift.", max_pooling, "kcourse.tasks.convolution.max_pool_by_hand"),
    Item("003:10", "MaxPool 2x2 : 4x moins de valeurs", "Max-pooling: four times fewer values.", max_pooling,
         "kcourse.tasks.convolution.keras_max_pool"),
)


def build_parser():
    """The shared options that mean something here (nothing is trained) and the digits' source."""
    parser = cli.lab_parser("convolution", __doc__, trains=False)
    parser.add_argument("--digits", type=cli.positive_int, default=200, help="test digits shifted by one pixel (default: %(default)s)")
    return parser


def run_lab(args):
    """Tensors, the convolution and max-pooling, each computed by hand and by Keras (what `main` and the notebook run)."""
    run = runs.start("convolution", args)
    import keras

    from kcourse import datasets, receptive_field

    tensors, gradients = tensor_table(), gradient_attributes()
    run.save_table("tensors", tensors)
    print("1. tensors: " + "; ".join(f"{r['object']} {r['Keras shape']}" for r in tensors) + f" ({tensors[0]['type']})")
    speed = python_against_tensors()
    print(f"   Value scalars {speed['Value s']:.3f} s against one tensor op {speed['tensor s'] * 1e3:.3f} ms for "
          f"{speed['n']:,} products")

    checks, sizes = convolution_checks(args.seed), output_sizes()
    run.save_table("convolutions", checks)
    print(f"2. convolution by hand against Conv2D: largest difference {max(r['largest difference'] for r in checks):.1e} "
          f"over {len(checks)} configurations; output sizes: " + ", ".join(f"{r['formula']}/{r['Keras']}" for r in sizes))
    facts, windows, same = border()
    run.savefig(border_figure(windows, same), "border")
    stack = keras.Sequential([keras.Input((28, 28, 1)), *[keras.layers.Conv2D(1, 3) for _ in range(3)]])
    field, _ = receptive_field.receptive_field_of(stack)

    pooled = max_pool_by_hand(POOL_EXAMPLE)
    by_keras = keras_max_pool(POOL_EXAMPLE[None, :, :, None])[0, :, :, 0]
    digits = datasets.digits(quick=True, seed=args.seed).x_test[: args.digits]
    shift = {"digits": len(digits), **pooling_and_shift(digits)}
    run.savefig(pooling_figure(POOL_EXAMPLE, by_keras, digits[0, :, :, 0], shift_right(digits[:1])[0, :, :, 0]), "pooling")
    print(f"3. max-pooling: {POOL_EXAMPLE.astype(int).tolist()} -> {by_keras.astype(int).tolist()}; a one-pixel shift "
          f"changes the input by {shift['input']:.0%}, the pooled maps by {shift['after 1 max-pool']:.0%} and "
          f"{shift['after 2 max-pools']:.0%}")
    run.save_metrics(**{
        "tensors": tensors, "gradients": gradients, "python against tensors": speed, "convolutions": checks,
        "output sizes": sizes, "border": facts, "stride 0": stride_zero(), "three 3x3 field": int(field),
        "pooling": {"input": POOL_EXAMPLE.astype(int).tolist(), "by hand": pooled.astype(int).tolist(),
                    "keras": by_keras.astype(int).tolist(), "values in": POOL_EXAMPLE.size, "values out": by_keras.size},
        "shift": shift,
    })
    run.outputs.update(tensors=tensors, checks=checks, sizes=sizes, border=facts, digits=digits)
    return run.finish("Convolution and pooling by hand, tensors on this backend", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)
