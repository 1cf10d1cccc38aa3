"""The test suite once per Keras backend, each in its own process: `nox`.

    nox                        # jax, torch and tensorflow in turn, then one line per backend
    nox -s "tests(backend='torch')" -- -k attention   # one backend, pytest arguments after --

Each session runs its tests in up to four pytest-xdist workers (one per core), a lab's tests
together on one of them.
Sessions run in the current environment (set up with the README's command),
not in fresh virtualenvs: the three frameworks are installed once.
"""

import os
import sys

import nox

nox.options.default_venv_backend = "none"


@nox.session
@nox.parametrize("backend", ["jax", "torch", "tensorflow"])
def tests(session, backend):
    # A worker per core (pytest-xdist), a lab's tests whole on each (its scope: conftest.group_of), so that
    # the lab's run and module fixtures are built once; the notebooks' groups first (conftest orders them):
    # much of a test is single-threaded (compiling, Python), so two workers on 2 cores ran jax's suite 1.4x
    # faster. At most 4: each holds ~3 GiB.
    workers = min(4, os.cpu_count() or 1)
    session.run(sys.executable, "-m", "pytest", "-n", str(workers), "--dist", "loadscope", "--no-loadscope-reorder", *session.posargs,
                env={"KERAS_BACKEND": backend})
