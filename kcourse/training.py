"""Training helpers every lab shares: seeding, compiling, epoch timing, the CPU speed-up, data parallelism."""

import time

import keras
import numpy as np

from kcourse.errors import LabError


def set_seed(seed):
    """Python's, NumPy's and Keras' generators (and the backend's): the same seed, the same run."""
    keras.utils.set_random_seed(seed)


# What measured fastest on a CPU (python -m kcourse.benchmark --backends tensorflow tensorflow:plain ...;
# BENCHMARKS.md): on tensorflow, 32 steps per compiled call (one Python round trip and one
# callback call per 32 batches instead of per batch). jax gained nothing from steps_per_execution
# (its step is one jitted call already) and keeps Keras' defaults; torch runs eager (Keras' torch
# backend has no steps_per_execution, and torch.compile took minutes to compile the Transformer
# for no measurable gain, see BENCHMARKS.md).
FAST = {"tensorflow": {"steps_per_execution": 32}, "jax": {}, "torch": {}}


def compile_options(backend=None):
    """The `model.compile` speed options the labs use on `backend` (the current one by default).

    `KCOURSE_COMPILE=plain` in the environment gives Keras' own defaults
    instead (one step per call, jit_compile="auto"): the "before" of the
    benchmark's before/after comparison.
    """
    import os

    if os.environ.get("KCOURSE_COMPILE", "fast") == "plain":
        return {}
    return dict(FAST.get(backend or keras.backend.backend(), {}))


def compile_model(model, optimizer, loss="sparse_categorical_logits", metrics=("accuracy",), **options):
    """`model.compile`, with the course's classifier loss and the fast settings unless told otherwise.

    Args:
        optimizer: a keras optimizer (the lab states which, with its learning rate).
        loss: a keras loss; "sparse_categorical_logits" is cross-entropy on
            logits with integer labels; None for a model with its own `add_loss`.
        options: more `model.compile` arguments; they win over `compile_options()`
            (e.g. `steps_per_execution=1` for a callback that needs every batch).
    """
    if loss == "sparse_categorical_logits":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    options = {**compile_options(), **options}
    steps = options.pop("steps_per_execution", 1)
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics) if loss is not None else None, **options)
    # Set after compile, not through it: the .keras file keeps Keras' default of 1 in its compile
    # config, so a model saved on tensorflow still loads and runs on torch (which refuses more).
    model.steps_per_execution = steps
    return model


def distribute(batch_size):
    """Data-parallel training over every visible device (keras.distribution.DataParallel); returns the devices.

    Keras 3.15 distributes on the jax backend only; call this before the model
    is built. Each batch is split across the devices, so the batch size must
    divide by their number: the runner cuts the data to a multiple of them
    (`for_devices`), and `predict` pads it.
    """
    backend = keras.backend.backend()
    if backend != "jax":
        raise LabError(f"--distribute: Keras 3.15 trains data-parallel on the jax backend only (this is {backend}); use --backend jax")
    devices = keras.distribution.list_devices()
    if batch_size % len(devices):
        raise LabError(f"--distribute: --batch-size {batch_size} does not divide over {len(devices)} devices; use a multiple of {len(devices)}")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    print(f"data-parallel over {len(devices)} devices: {', '.join(devices)}")
    return devices


def _rows(x):
    first = next(iter(x.values())) if isinstance(x, dict) else x
    return len(first) if hasattr(first, "shape") else None


def _take(x, n):
    if isinstance(x, dict):
        return {k: _take(v, n) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_take(v, n) for v in x)
    return x[:n] if hasattr(x, "shape") else x


def device_count():
    """The devices a batch is split over: those of the distribution, or 1."""
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else len(distribution.device_mesh.devices.flatten())


def for_devices(x, y=None, val=None):
    """Under a distribution, the arrays cut to a multiple of the device count; unchanged otherwise.

    Keras' DataParallel splits every batch along its first axis over the
    devices and fails (jax's IndivisibleError) on a batch that does not
    divide: with a batch size that divides (`distribute` checks it) and
    arrays cut to a multiple of the device count, the last, partial batch
    divides too (at most devices - 1 samples are left out). Datasets
    (tf.data, PyDataset) make whole batches themselves. Returns (x, y, val).
    """
    devices = device_count()
    if devices == 1:
        return x, y, val
    n = _rows(x)
    if n is not None:
        x, y = _take(x, n // devices * devices), _take(y, n // devices * devices)
    if isinstance(val, tuple) and _rows(val[0]) is not None:
        val = _take(val, _rows(val[0]) // devices * devices)
    return x, y, val


def whole_batches(x, y=None, val=None, batch_size=32):
    """The arrays cut to a whole number of batches (those smaller than one batch kept): every step the same shape.

    jax compiles a step once per input shape (tensorflow traces it again): a
    last, partial batch compiles the training step a second time, and the
    validation step too, seconds each on a CPU. `--quick` runs on jax and
    tensorflow train on whole batches (at most batch_size - 1 samples left
    out). Returns (x, y, val).
    """
    def cut(n):
        return n if n is None or n < batch_size else n // batch_size * batch_size

    n = _rows(x)
    if n is not None:
        x, y = _take(x, cut(n)), _take(y, cut(n))
    if isinstance(val, tuple) and _rows(val[0]) is not None:
        val = _take(val, cut(_rows(val[0])))
    return x, y, val


def predict(model, x, batch_size=32):
    """`model.predict` as NumPy, the inputs padded (their last row repeated) and the outputs cut back.

    Every prediction in kcourse goes through here, so that each lab runs under
    --distribute: every batch is padded to a multiple of the devices. On jax
    and tensorflow, which compile the step once per input shape, the rows are
    also padded to a power of two up to the batch size, then to whole batches:
    a model predicts in a few shapes, not one per size asked (at most twice the
    rows computed).
    """
    n, devices = _rows(x), device_count()
    batch_size = -(-batch_size // devices) * devices  # every batch, the last one too, split over the devices
    if n is None:
        return _numpy(model.predict(x, batch_size=batch_size, verbose=0))
    rows = -(-n // devices) * devices
    if keras.backend.backend() in ("jax", "tensorflow") and n:
        bucket = min(batch_size, 2 ** (n - 1).bit_length())
        rows = -(-n // bucket) * -(-bucket // devices) * devices
    if rows == n:
        return _numpy(model.predict(x, batch_size=batch_size, verbose=0))
    pad = lambda a: np.concatenate([np.asarray(a), np.repeat(np.asarray(a)[-1:], rows - n, axis=0)])  # noqa: E731
    padded = {k: pad(v) for k, v in x.items()} if isinstance(x, dict) else pad(x)
    return _take(_numpy(model.predict(padded, batch_size=batch_size, verbose=0)), n)


def predict_classes(model, x, batch_size=32):
    """The class of each input (N,): the argmax of the model's logits (`predict`)."""
    return predict(model, x, batch_size).argmax(-1)


def _numpy(out):
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(np.asarray(v) for v in out)
    return np.asarray(out)


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch's training pass (validation left out) and counts its steps."""

    def __init__(self):
        super().__init__()
        self.times, self.steps, self._start = [], 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self.steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        # with steps_per_execution, called once per call with the call's last batch (which Keras
        # reports past the epoch's end on a short last call: capped by the epoch's step count)
        self.steps = min(batch + 1, (self.params or {}).get("steps") or batch + 1)

    def on_test_begin(self, logs=None):
        self._stop()  # validation begins: the training pass is over

    def on_epoch_end(self, epoch, logs=None):
        self._stop()  # epochs without validation

    def _stop(self):
        if self._start is not None:
            self.times.append(time.perf_counter() - self._start)
            self._start = None

    @property
    def steady(self):
        """Time of an epoch once compiled: the median of epochs after the first (or the first)."""
        later = self.times[1:] or self.times
        return float(np.median(later)) if later else float("nan")


def cpu_epoch_seconds(build_model, x, y, batch_size, steps=5):
    """Seconds one training epoch of a fresh `build_model()` would take on the CPU, from `steps` timed steps.

    The course's "GPU speed-up" asks for the same epoch on the CPU: rather
    than training whole epochs there, one step compiles, then `steps` are
    timed (their median) and scaled to the epoch's batch count. It says what it costs.
    """
    n = _rows(x)
    batches = -(-n // batch_size)
    take = min(n, (steps + 1) * batch_size)
    print(f"speed-up vs CPU: timing {min(steps, batches - 1) or 1} steps of {batch_size} on the CPU, after one that compiles", flush=True)
    with keras.device("cpu"):  # plain "cpu": torch's backend loses its gradients under "cpu:0"
        model = build_model()
        model.steps_per_execution = 1  # a time per step
        timer = StepTimer()
        model.fit(_take(x, take), _take(y, take), batch_size=batch_size, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
    return timer.per_step * batches


class StepTimer(keras.callbacks.Callback):
    """Times each training step; `per_step`: the median after the first (which compiles), in seconds."""

    def __init__(self):
        super().__init__()
        self.marks = []

    def on_train_batch_begin(self, batch, logs=None):
        self.marks.append([time.perf_counter(), None])

    def on_train_batch_end(self, batch, logs=None):
        self.marks[-1][1] = time.perf_counter()

    @property
    def steps(self):
        return len(self.marks)

    @property
    def per_step(self):
        times = [end - begin for begin, end in self.marks if end is not None]
        return float(np.median(times[1:] if len(times) > 1 else times))


def gradients(model, x, y, loss=None):
    """The gradient of the loss on one batch for each of `model.trainable_variables`, as NumPy arrays (dropout off).

    Written per backend, as its users write it: jax differentiates a pure function of the weights
    (`stateless_call`), torch fills each parameter's `.grad` (`backward`), tensorflow records a `GradientTape`.
    `loss`: a keras loss; cross-entropy on logits by default.
    """
    loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        fixed = [v.value for v in model.non_trainable_variables]
        grads = jax.grad(lambda weights: loss(y, model.stateless_call(weights, fixed, x, training=False)[0]))(
            [v.value for v in variables])
    elif backend == "torch":
        for v in variables:
            v.value.grad = None
        loss(y, model(x, training=False)).backward()
        grads = [v.value.grad for v in variables]
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=False))
        grads = tape.gradient(value, variables)
    return [keras.ops.convert_to_numpy(g) for g in grads]


def input_gradient(function, x):
    """d sum(function(x)) / dx as NumPy, `x` a NumPy batch and `function` keras ops on it (a model's layer, a
    logit): what saliency maps and feature visualisation climb. Written per backend, as `gradients`."""
    backend = keras.backend.backend()
    x = keras.ops.convert_to_tensor(np.asarray(x, "float32"))
    if backend == "jax":
        import jax

        grad = jax.grad(lambda z: keras.ops.sum(function(z)))(x)
    elif backend == "torch":
        x.requires_grad_(True)
        keras.ops.sum(function(x)).backward()
        grad = x.grad
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value = keras.ops.sum(function(x))
        grad = tape.gradient(value, x)
    return keras.ops.convert_to_numpy(grad)


OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}  # the lecture's three (003), by Keras' names


def optimizer(name, learning_rate):
    """A fresh Keras optimizer by its lower-case name ("sgd": plain, no momentum, as the seeds' torch.optim.SGD)."""
    if name not in OPTIMIZERS:
        raise LabError(f"unknown optimizer {name!r}: choose among {', '.join(OPTIMIZERS)}")
    return getattr(keras.optimizers, OPTIMIZERS[name])(learning_rate)
