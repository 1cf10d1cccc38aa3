"""Training helpers every lab shares: seeding, compiling, epoch timing, the CPU speed-up, data parallelism."""

import time

import keras
import numpy as np


def set_seed(seed):
    """Python's, NumPy's and Keras' generators (and the backend's): the same seed, the same run."""
    keras.utils.set_random_seed(seed)


def compile_model(model, optimizer, loss="sparse_categorical_logits", metrics=("accuracy",)):
    """`model.compile`, with the course's classifier loss unless told otherwise.

    Args:
        optimizer: a keras optimizer (the lab states which, with its learning rate).
        loss: a keras loss; "sparse_categorical_logits" is cross-entropy on
            logits with integer labels; None for a model with its own `add_loss`.
    """
    if loss == "sparse_categorical_logits":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics) if loss is not None else None)
    return model


def distribute(batch_size):
    """Data-parallel training over every visible device (keras.distribution.DataParallel); returns the devices.

    Keras 3.15 distributes on the jax backend only. The global batch is split
    across devices, so it must divide by their number.
    """
    backend = keras.backend.backend()
    if backend != "jax":
        from kcourse.cli import LabError

        raise LabError(f"--distribute: Keras 3.15 trains data-parallel on the jax backend only (this is {backend}); use --backend jax")
    devices = keras.distribution.list_devices()
    if batch_size % len(devices):
        from kcourse.cli import LabError

        raise LabError(f"--distribute: --batch-size {batch_size} does not divide over {len(devices)} devices; use a multiple of {len(devices)}")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    print(f"data-parallel over {len(devices)} devices: {', '.join(devices)}")
    return devices


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch's training pass (validation left out) and counts its steps."""

    def __init__(self):
        super().__init__()
        self.times, self.steps, self._start = [], 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self.steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

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
