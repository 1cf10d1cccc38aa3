"""What this process runs on: the Keras backend, its devices, library versions.

The one module that asks the frameworks directly, because the device list is
a backend-specific fact (keras.distribution.list_devices covers JAX only).
"""

import contextlib
import os
from importlib import metadata

LIBRARIES = ("keras", "keras-hub", "jax", "torch", "tensorflow", "numpy")


def versions():
    """Installed versions, read from package metadata (imports nothing)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@contextlib.contextmanager
def quiet_tensorflow():
    """Hide what TensorFlow's C++ code writes to stderr while importing or probing devices.

    TensorFlow >= 2.20 logs through absl before absl is initialised, so
    TF_CPP_MIN_LOG_LEVEL no longer hides its oneDNN notice and CUDA probing
    ("failed call to cuInit" on every CPU machine). A user who sets
    TF_CPP_MIN_LOG_LEVEL themselves sees everything. Python errors still show.
    """
    import kcourse

    if not kcourse.QUIET_TENSORFLOW:
        yield
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved), os.close(devnull)


def keep_tensorflow_out():
    """On jax and torch, stop Keras from importing TensorFlow only to ask whether it is there.

    `keras.utils.set_random_seed` and `.keras` saving test `tf.available`,
    which imports TensorFlow (about 5 s, its start-up lines, and on a Colab
    TPU TensorFlow can take the TPU from jax). Until something imports it,
    Keras is told it is absent; `import_tensorflow()` and `keras_hub()` undo this.
    """
    import sys

    from keras.src.utils import module_utils

    if "tensorflow" not in sys.modules:
        module_utils.tensorflow._available = False


def import_tensorflow():
    """`import tensorflow`, quietly, and visible to Keras again.

    Its devices are probed here too, inside the quiet block: otherwise the
    first TensorFlow op (a tf.data pipeline, keras-hub's preprocessing) prints
    "failed call to cuInit" on every machine without a GPU.
    """
    with quiet_tensorflow():
        import tensorflow

        tensorflow.config.list_physical_devices()

    from keras.src.utils import module_utils

    module_utils.tensorflow._available = None
    return tensorflow


def keras_hub():
    """`import keras_hub` (about 7 s; it imports TensorFlow), quietly: only where a lab needs a preset."""
    import_tensorflow()
    import keras_hub

    return keras_hub


def devices():
    """The devices the current backend sees, e.g. ['cpu:0'] or ['cuda:0', 'cpu:0']."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices()]
    if backend == "torch":
        import torch

        gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return gpus + ["cpu:0"]
    if backend == "tensorflow":
        tf = import_tensorflow()
        with quiet_tensorflow():
            found = tf.config.list_logical_devices()
        return tensorflow_names([d.name for d in found])
    return ["cpu:0"]


def tensorflow_names(names):
    """TensorFlow's device names ('/device:GPU:0') as kcourse writes them ('gpu:0'), accelerators first:
    numbered within each type, as TensorFlow numbers them (not across types: the first GPU is gpu:0)."""
    short = [name.split("device:")[-1].lower() for name in names]  # 'cpu:0', 'gpu:0'
    return sorted(short, key=lambda name: name.startswith("cpu"))


def accelerator():
    """The first non-CPU device the backend sees, or None on a CPU-only machine."""
    return next((d for d in devices() if not d.startswith("cpu")), None)


def report():
    """One line for the top of a notebook or a run: backend, accelerator, keras version."""
    import keras

    found = accelerator()
    where = f"accelerator {found}" if found else "no accelerator (CPU only)"
    return f"backend {keras.backend.backend()}, {where}; keras {versions()['keras']}"


def describe():
    """Backend, devices and versions, as saved in every run's config.json."""
    import keras

    return {"backend": keras.backend.backend(), "devices": devices(), "versions": versions()}


# ---------------------------------------------------------------- memory: where the backend computes
def memory_mib():
    """(in use, peak since `reset_peak`) in MiB where the backend computes: its accelerator's allocator
    statistics, else this process's resident memory (Linux: /proc/self/status); (None, None) where neither
    can be read. JAX cannot reset an accelerator's peak: there it is the peak since the start."""
    import keras

    found, backend = accelerator(), keras.backend.backend()
    try:
        if found and backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats()
            return stats["bytes_in_use"] / 2**20, stats["peak_bytes_in_use"] / 2**20
        if found and backend == "torch":
            import torch

            return torch.cuda.memory_allocated() / 2**20, torch.cuda.max_memory_allocated() / 2**20
        if found and backend == "tensorflow":
            info = import_tensorflow().config.experimental.get_memory_info("GPU:0")
            return info["current"] / 2**20, info["peak"] / 2**20
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError, RuntimeError):  # a device without statistics, not Linux
        return None, None


def reset_peak():
    """Restart the peak `memory_mib` reads at what is in use now, where it can be (not JAX on an accelerator).
    On a CPU the freed memory is handed back to the system first (glibc's malloc_trim), so that what an
    earlier model left in the allocator does not hide the next one's."""
    import ctypes
    import gc

    import keras

    gc.collect()
    found, backend = accelerator(), keras.backend.backend()
    try:
        if found and backend == "torch":
            import torch

            torch.cuda.reset_peak_memory_stats()
        elif found and backend == "tensorflow":
            import_tensorflow().config.experimental.reset_memory_stats("GPU:0")
        elif not found:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to VmRSS (Linux >= 4.0)
    except (OSError, RuntimeError, ValueError):
        pass
