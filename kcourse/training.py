"""Training helpers every lab shares: seeding, compiling, epoch timing, the CPU speed-up, data parallelism."""

import time

import keras
import numpy as np


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
    if keras.distribution.distribution() is not None:
        _whole_batches(model)
    return model


def distribute(batch_size):
    """Data-parallel training over every visible device (keras.distribution.DataParallel); returns the devices.

    Keras 3.15 distributes on the jax backend only; call this before the model
    is built. Each batch is split across the devices, so the batch size must
    divide by their number; `compile_model` then makes fit and evaluate drop
    the last partial batch and predict pad it (see `_whole_batches`).
    """
    from kcourse.cli import LabError

    backend = keras.backend.backend()
    if backend != "jax":
        raise LabError(f"--distribute: Keras 3.15 trains data-parallel on the jax backend only (this is {backend}); use --backend jax")
    devices = keras.distribution.list_devices()
    if batch_size % len(devices):
        raise LabError(f"--distribute: --batch-size {batch_size} does not divide over {len(devices)} devices; use a multiple of {len(devices)}")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    print(f"data-parallel over {len(devices)} devices: {', '.join(devices)}")
    return devices


def _whole_batches(model):
    """Under a distribution, make `model.fit` / `evaluate` drop the last partial batch and `predict` pad it.

    Keras' DataParallel splits every batch along its first axis over the
    devices and fails (jax's IndivisibleError) on a batch that does not
    divide; arrays are cut to whole batches (DataLoader's drop_last) for
    fit, its validation and evaluate, and padded for predict (the padding's
    outputs are cut off again). Datasets are passed on as they are.
    """
    fit, evaluate, predict = model.fit, model.evaluate, model.predict

    def cut(data, n):
        if isinstance(data, dict):
            return {k: cut(v, n) for k, v in data.items()}
        if isinstance(data, (tuple, list)):
            return type(data)(cut(v, n) for v in data)
        return data[:n] if hasattr(data, "shape") else data

    def whole(x, batch_size):
        first = next(iter(x.values())) if isinstance(x, dict) else x
        return len(first) // batch_size * batch_size if hasattr(first, "shape") else None

    def fit_whole(x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        batch_size = batch_size or 32
        n = whole(x, batch_size)
        if n is not None:
            x, y = cut(x, n), cut(y, n)
        if isinstance(validation_data, tuple) and whole(validation_data[0], batch_size) is not None:
            validation_data = cut(validation_data, whole(validation_data[0], batch_size))
        return fit(x, y, batch_size=batch_size, validation_data=validation_data, **kwargs)

    def evaluate_whole(x=None, y=None, batch_size=None, **kwargs):
        n = whole(x, batch_size or 32)
        return evaluate(*((cut(x, n), cut(y, n)) if n is not None else (x, y)), batch_size=batch_size, **kwargs)

    def predict_padded(x, batch_size=None, **kwargs):
        first = next(iter(x.values())) if isinstance(x, dict) else x
        if not hasattr(first, "shape"):
            return predict(x, batch_size=batch_size, **kwargs)
        size, n = batch_size or 32, len(first)
        pad = lambda a: np.concatenate([a, np.repeat(a[-1:], -n % size, axis=0)]) if n % size else a
        out = predict({k: pad(np.asarray(v)) for k, v in x.items()} if isinstance(x, dict) else pad(np.asarray(x)),
                      batch_size=size, **kwargs)
        return cut(out, n)

    model.fit, model.evaluate, model.predict = fit_whole, evaluate_whole, predict_padded
    return model


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


def epoch_time_on(device, build_model, x, y, batch_size):
    """Seconds for one compiled training epoch of a fresh `build_model()` on `device`.

    `device` as keras.device takes it: "cpu", "gpu:0"... (plain "cpu", since
    torch's backend loses its gradients under "cpu:0").

    Two epochs run; the second is timed so that compilation is left out.
    """
    with keras.device(device):
        model = build_model()
        timer = EpochTimer()
        model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0, callbacks=[timer])
    return timer.times[-1]
