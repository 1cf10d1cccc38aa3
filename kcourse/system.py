"""What this process runs on: the Keras backend, its devices, library versions.

The one module that asks the frameworks directly, because the device list is
a backend-specific fact (keras.distribution.list_devices covers JAX only).
"""

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
        import tensorflow as tf

        return [f"{d.device_type.lower()}:{i}" for i, d in enumerate(tf.config.list_logical_devices())]
    return ["cpu:0"]


def accelerator():
    """The first non-CPU device the backend sees, or None on a CPU-only machine."""
    return next((d for d in devices() if not d.startswith("cpu")), None)


def describe():
    """Backend, devices and versions, as saved in every run's config.json."""
    import keras

    return {"backend": keras.backend.backend(), "devices": devices(), "versions": versions()}
