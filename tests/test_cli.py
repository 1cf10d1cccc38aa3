"""The command line every lab shares: fast --help, backend choice, one-line errors."""

import os
import subprocess
import sys

import pytest

from kcourse import cli

FRAMEWORKS = ("keras", "jax", "torch", "tensorflow")


def run_python(*args, env=None):
    env = {**os.environ, **(env or {})}
    for name in ("TF_CPP_MIN_LOG_LEVEL", "KCOURSE_TF_LOG_LEVEL"):  # as a student starts it: kcourse chooses the log level
        env.pop(name, None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)


def test_help_imports_no_framework_in_any_lab():
    """--help stays instant: no lab imports keras, jax, torch or tensorflow before its options are read."""
    result = run_python("-m", "kcourse.tasks.mnist", "--help")
    assert result.returncode == 0, result.stderr
    assert "--backend" in result.stdout and "--quick" in result.stdout and "--out" in result.stdout

    probe = (
        "import importlib, sys\n"
        "from kcourse.__main__ import labs\n"
        "for lab in labs():\n"
        "    try:\n        importlib.import_module(f'kcourse.tasks.{lab}').main(['--help'])\n    except SystemExit:\n        pass\n"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])"
    )
    result = run_python("-c", probe)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_unknown_backend_is_a_one_line_error():
    result = run_python("-m", "kcourse.tasks.mnist", "--backend", "mxnet")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown backend 'mxnet': choose one of jax, torch, tensorflow"

    result = run_python("-m", "kcourse.tasks.mnist", env={"KERAS_BACKEND": "theano"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: unknown backend 'theano': choose one of jax, torch, tensorflow"]


def test_backend_that_is_not_installed_is_a_one_line_error():
    probe = (
        "import importlib.util, sys\n"
        "importlib.util.find_spec = lambda name, *a: None  # pretend nothing is installed\n"
        "from kcourse import cli\n"
        "cli.run(lambda argv: cli.use_backend('torch'))\n"
    )
    result = run_python("-c", probe)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: backend 'torch' is not installed"), lines


def test_switching_backend_after_keras_import_is_refused(backend):
    other = next(b for b in cli.BACKENDS if b != backend)
    assert cli.use_backend(backend) == backend
    with pytest.raises(cli.LabError, match=f"already imported with the {backend} backend"):
        cli.use_backend(other)


def test_kcourse_lists_labs_backend_devices_and_versions(backend):
    result = run_python("-m", "kcourse", env={"KERAS_BACKEND": backend})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mnist" in out and "TP3" in out
    assert f"backend: {backend}" in out
    devices = next(line for line in out.splitlines() if line.startswith("devices: "))
    assert devices[len("devices: "):].strip()  # whatever the machine has, named
    assert "keras 3." in out


def test_quick_start_prints_nothing_unasked_and_keeps_tensorflow_out(backend, tmp_path):
    """The main job's first screen: our lines only; on jax and torch TensorFlow is never imported."""
    probe = (
        "import sys\n"
        "from kcourse import cli\n"
        "from kcourse.tasks import mnist\n"
        f"cli.run(lambda argv: mnist.main(['--quick', '--dataset', 'digits', '--models', 'mlp', '--out', r'{tmp_path / 'run'}']))\n"
        "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={**env, "KERAS_BACKEND": backend}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    native = [line for line in result.stderr.splitlines() if line[:5] in ("I0000", "W0000", "E0000") or "absl::InitializeLog" in line]
    assert native == [], native
    assert result.stdout.strip().splitlines()[-1] == f"tensorflow imported: {backend == 'tensorflow'}"


def test_python_m_kcourse_runs_the_named_lab():
    result = run_python("-m", "kcourse", "mnist", "--help")
    assert result.returncode == 0 and "usage: python -m kcourse.tasks.mnist" in result.stdout, result.stderr


def test_tensorflow_devices_are_numbered_within_their_type():
    """The bug this catches: devices were numbered across types, so the first GPU was reported as gpu:1."""
    from kcourse import system

    assert system.tensorflow_names(["/device:CPU:0", "/device:GPU:0", "/device:GPU:1"]) == ["gpu:0", "gpu:1", "cpu:0"]
    assert system.tensorflow_names(["/job:localhost/replica:0/task:0/device:CPU:0"]) == ["cpu:0"]
