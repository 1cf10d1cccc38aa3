"""Training helpers every lab shares: epoch timing and the CPU-vs-accelerator speed-up."""

import time

import keras
import numpy as np


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch's training pass (validation left out)."""

    def __init__(self):
        super().__init__()
        self.times, self._start = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

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
