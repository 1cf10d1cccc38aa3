"""--distribute: data-parallel training over 8 virtual CPU devices (jax), a one-line error elsewhere.

The jax checks run in a subprocess, because XLA_FLAGS must be set before jax
is first imported: `--xla_force_host_platform_device_count=8` makes the CPU
look like 8 devices, as a TPU or a GPU box would.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from kcourse import cli

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    from kcourse import training
    from kcourse.tasks import mnist

    rng = np.random.default_rng(0)
    x, y = rng.random((250, 28, 28, 1), dtype="float32"), rng.integers(0, 10, 250)  # 250 = 7 x 32 + 26: a partial batch

    def train():
        training.set_seed(0)
        model = mnist.build_model("mlp")
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False)
        return model, history.history["loss"]

    _, single = train()  # one device (cpu:0) first
    training.set_seed(0)
    plain = mnist.build_model("mlp")
    cut = plain.fit(x[:224], y[:224], batch_size=32, epochs=3, verbose=0, shuffle=False).history["loss"]
    from kcourse.cli import LabError
    try:
        training.distribute(60)
    except LabError as error:
        refused = str(error)
    devices = training.distribute(32)
    model, parallel = train()
    shardings = {w.path: list(w.value.sharding.spec) for w in model.weights}
    mesh = model.weights[0].value.sharding.mesh.devices.size
    batch = keras.distribution.distribution().get_data_layout((32, 28, 28, 1)).backend_layout
    predictions = model.predict(x[:13], batch_size=8, verbose=0)
    print("RESULT " + json.dumps({"devices": len(devices), "single": single, "cut": cut, "parallel": parallel,
                                  "shardings": shardings, "mesh": mesh, "batch spec": list(batch.spec),
                                  "predictions": list(predictions.shape), "refused": refused}))
""")


def run_on_8_devices(args, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=500)


@pytest.fixture
def jax_only(backend):
    if backend != "jax":
        pytest.skip("Keras 3.15 distributes on jax only (the other backends: test_distribute_elsewhere_is_one_line)")


def test_data_parallel_replicates_weights_and_follows_the_single_device_run(jax_only, tmp_path):
    done = run_on_8_devices(["-c", SCRIPT], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["devices"] == 8 and result["mesh"] == 8
    assert len(result["shardings"]) == 4 and all(set(spec) <= {None} for spec in result["shardings"].values())  # replicated
    assert result["batch spec"] == ["batch", None, None, None]  # each batch split over the devices
    # The last partial batch is dropped: the run follows the single-device run on the 224 whole-batch samples...
    assert result["parallel"] == pytest.approx(result["cut"], rel=1e-4)
    # ...and stays close to the one that also trains on the 26 left over.
    assert result["parallel"] == pytest.approx(result["single"], rel=0.05)
    assert result["parallel"][-1] < result["parallel"][0]
    assert result["predictions"] == [13, 10]  # predict pads the partial batch and cuts it off again
    assert result["refused"] == "--distribute: --batch-size 60 does not divide over 8 devices; use a multiple of 8"


def test_a_lab_trains_on_8_devices_and_records_them(jax_only, tmp_path):
    out = tmp_path / "run"
    done = run_on_8_devices(["-m", "kcourse.tasks.mnist", "--quick", "--distribute", "--models", "mlp", "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "data-parallel over 8 devices" in done.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["distribute"] is True and len(config["distributed over"]) == 8
    summary = json.loads((out / "metrics.json").read_text())["mlp"]
    assert summary["test accuracy"] > 0.25  # 2,000 digits, one epoch, batches of 64 split 8 ways: well above chance (0.1)


def test_distribute_elsewhere_is_one_line(backend, capsys):
    if backend == "jax":
        pytest.skip("jax distributes (the tests above)")
    from kcourse.tasks import mnist

    with pytest.raises(SystemExit) as stop:
        cli.run(mnist.main, ["--quick", "--distribute"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --distribute: Keras 3.15 trains data-parallel on the jax backend only (this is {backend}); use --backend jax"]
