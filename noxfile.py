"""The test suite once per Keras backend, each in its own process: `nox`.

    nox                        # jax, torch and tensorflow in turn, then one line per backend
    nox -s "tests(backend='torch')" -- -k attention   # one backend, pytest arguments after --

Sessions run in the current environment (set up with the README's command),
not in fresh virtualenvs: the three frameworks are installed once.
"""

import sys

import nox

nox.options.default_venv_backend = "none"


@nox.session
@nox.parametrize("backend", ["jax", "torch", "tensorflow"])
def tests(session, backend):
    session.run(sys.executable, "-m", "pytest", *session.posargs, env={"KERAS_BACKEND": backend})
