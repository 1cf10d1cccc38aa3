"""Shared test set-up. One pytest process per backend: KERAS_BACKEND=jax|torch|tensorflow.

- matplotlib draws off-screen (Agg);
- `nox` runs a worker per core (pytest-xdist): the tests of one lab (its modules
  and its notebook) run whole on one worker, as one scope (pytest_xdist_make_scheduler),
  so that a lab's run is made once and shared (the `lab_run` fixture);
- an autouse fixture seeds Python, NumPy and Keras before every test;
- any attempt to open a network connection is refused, and fails the test unless
  it is marked `offline` (it checks a lab's fallback to embedded data).
"""

import atexit
import contextlib
import importlib
import io
import os
import random
import shutil
import socket
import tempfile
from types import SimpleNamespace

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")
# jax compiles each new step once per process; the tests build the same small models again and again (a lab's
# run, its notebook, the 8-device run), so XLA's executables are kept on disk (jax's persistent cache) in the
# checkout: a fresh clone starts empty, as CI does, and still saves a sixth (the vit tests on jax, one run each:
# 197 s without the cache, 164 s from an empty one, 98 s warm). One folder per xdist worker: jax locks a shared
# one only with a size limit, and then lists the whole folder at every write.
_JAX_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax",
                          os.environ.get("PYTEST_XDIST_WORKER", "main"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _JAX_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
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


# The lab each notebook walks through: its tests and the lab's run in one xdist scope (tests/notebooks.py).
NOTEBOOK_GROUP = {"tp3_mnist": "mnist", "tp3_finetune": "finetune", "tp4_part1_word2vec_transformer": "tp4",
                  "tp4_part2_vit": "vit", "tp5_fcn_unet": "tp5", "lectures": "lectures", "backend_comparison": "benchmark"}
MODULE_GROUP = {"test_word2vec": "tp4", "test_transformer": "tp4", "test_attention": "tp4", "test_loop": "tp4", "test_blocks": "tp4", "test_fcn": "tp5", "test_unet": "tp5",
                "test_zoo": "lectures", "test_clip": "lectures", "test_sequences": "lectures", "test_translation": "lectures", "test_convolution": "lectures", "test_degradation": "lectures", "test_contrastive": "lectures", "test_report": "mnist"}


def group_of(nodeid):
    """The group of a test: its lab's (see NOTEBOOK_GROUP, MODULE_GROUP), else its module's."""
    path, _, rest = nodeid.partition("::")
    module = path.rsplit("/", 1)[-1].removesuffix(".py")
    if module == "test_notebooks" and "[" in rest:
        return NOTEBOOK_GROUP.get(rest[rest.index("[") + 1 : -1], module)
    return MODULE_GROUP.get(module, module.removeprefix("test_"))


def pytest_xdist_make_scheduler(config, log):
    """xdist's loadscope, with a lab's group as the scope: the group runs whole on one worker, in the order
    collected (--no-loadscope-reorder), so that its lab runs and module fixtures are built once."""
    from xdist.scheduler import LoadScopeScheduling

    class LabScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return group_of(nodeid)

    return LabScheduling(config, log)


# The longest groups first (measured on jax, 2 workers on 2 cores): started last, one would run alone at the end.
LONGEST = ("distribute", "lectures", "tp4", "mnist", "vit", "tp5", "finetune", "benchmark")


def pytest_collection_modifyitems(items):
    """The longest groups first (LONGEST, the notebooks' among them), then the others in module order."""
    order = {group: i for i, group in enumerate(LONGEST)}
    items.sort(key=lambda item: order.get(group_of(item.nodeid), len(order)))  # stable: modules stay in order


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


@pytest.fixture(scope="session")
def lab_run(tmp_path_factory):
    """`lab_run("mnist", "--quick")`: the lab's `main` run once per worker with these options (offline), shared.

    Returns a namespace: run (the finished Run), stdout, stderr, argv. A lab's
    tests and its notebook ask for the same run, so it trains once.
    """
    cache = {}

    def get(lab, *argv):
        if (lab, argv) not in cache:
            module = importlib.import_module(f"kcourse.tasks.{lab}")
            out, err = io.StringIO(), io.StringIO()
            folder = tmp_path_factory.mktemp(lab) / "run"
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                run = module.main([*argv, "--out", str(folder)])
            _attempts.clear()  # the lab's offline fallback, expected: tests make their own data
            cache[(lab, argv)] = SimpleNamespace(run=run, stdout=out.getvalue(), stderr=err.getvalue(), argv=argv)
        return cache[(lab, argv)]

    get.cache = cache
    return get
