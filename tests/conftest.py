"""Shared test set-up. One pytest process per backend: KERAS_BACKEND=jax|torch|tensorflow.

- matplotlib draws off-screen (Agg);
- `nox` runs a worker per core (pytest-xdist), each test module whole on one of them;
- an autouse fixture seeds Python, NumPy and Keras before every test;
- any attempt to open a network connection is refused, and fails the test unless
  it is marked `offline` (it checks a lab's fallback to embedded data).
"""

import atexit
import os
import random
import shutil
import socket
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")
# Two test processes share the cores (pytest -n 2): `import kcourse` makes torch's
# OpenMP threads sleep at barriers (OMP_WAIT_POLICY=PASSIVE), before torch starts.
import kcourse  # noqa: E402,F401
# A fresh, empty keras cache: a dataset or preset downloaded on this machine
# must not hide what a lab does offline.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="kcourse-keras-home-")
atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], ignore_errors=True)

import numpy as np
import pytest


class NetworkBlocked(ConnectionRefusedError):
    """Raised by any connection a test attempts: tests make their own data."""


_attempts = []


def _refuse(*args, **kwargs):
    _attempts.append(args[1] if args and isinstance(args[0], socket.socket) else args[:2])
    raise NetworkBlocked("tests must not reach the network")


# Blocked for the whole session (module-scoped fixtures included), not per test.
socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = socket.getaddrinfo = _refuse


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "offline: the test exercises a lab's offline fallback; its refused downloads are expected"
    )


def pytest_collection_modifyitems(items):
    """The notebooks first: under `nox` (pytest-xdist, --dist loadscope --no-loadscope-reorder, a module
    whole on one worker) they are the longest module, and started last they would run alone at the end."""
    items.sort(key=lambda item: "test_notebooks.py" not in item.nodeid)  # stable: modules stay in order


@pytest.fixture(autouse=True)
def no_network(request):
    """Any test that tries to open a connection fails, unless marked `offline`."""
    _attempts.clear()
    yield
    if _attempts and request.node.get_closest_marker("offline") is None:
        pytest.fail(
            f"the test tried to reach the network ({_attempts[0]}); tests make their own data "
            "(mark it @pytest.mark.offline if it checks a lab's offline fallback)"
        )


@pytest.fixture(autouse=True)
def seeded():
    import keras

    random.seed(0)
    np.random.seed(0)
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def backend():
    import keras

    return keras.backend.backend()
