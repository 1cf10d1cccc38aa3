"""Shared test set-up. One pytest process per backend: KERAS_BACKEND=jax|torch|tensorflow.

- matplotlib draws off-screen (Agg);
- an autouse fixture seeds Python, NumPy and Keras before every test;
- any attempt to open a network connection fails the test: tests make their own data.
"""

import os
import random
import socket
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A fresh, empty keras cache: a dataset or preset downloaded on this machine
# must not hide what a lab does offline.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="kcourse-keras-home-")

import numpy as np
import pytest


class NetworkBlocked(OSError):
    """Raised by any socket connection a test attempts."""


def _refuse(*args, **kwargs):
    raise NetworkBlocked("tests must not reach the network")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)


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
