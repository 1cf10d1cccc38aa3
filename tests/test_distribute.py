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
    x, y = rng.random((250, 28, 28, 1), dtype="float32"), rng.integers(0, 10, 250)  # 250 = 7 x 32 + 26 = 31 x 8 + 2

    def train():
        training.set_seed(0)
        model = mnist.build_model("mlp")
        xs, ys, _ = training.for_devices(x, y)  # what the runner does under a distribution: 248 of the 250
        history = model.fit(xs, ys, batch_size=32, epochs=3, verbose=0, shuffle=False)
        return model, history.history["loss"]

    _, single = train()  # one device (cpu:0) first
    training.set_seed(0)
    plain = mnist.build_model("mlp")
    cut = plain.fit(x[:248], y[:248], batch_size=32, epochs=3, verbose=0, shuffle=False).history["loss"]
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
    predictions = training.predict(model, x[:13], batch_size=8)
    print("RESULT " + json.dumps({"devices": len(devices), "single": single, "cut": cut, "parallel": parallel,
                                  "shardings": shardings, "mesh": mesh, "batch spec": list(batch.spec),
                                  "predictions": list(predictions.shape), "refused": refused}))
""")


def run_on_8_devices(args, tmp_path):
    # 8 devices' threads on 2 cores beside the other test worker: XLA's collectives may wait past their 40 s default
    # before every device arrives; they are given 5 minutes (a real deadlock would still be one).
    flags = "--xla_force_host_platform_device_count=8 --xla_cpu_collective_call_terminate_timeout_seconds=300"
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": flags}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


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
    # The data is cut to a multiple of the 8 devices (the last batch of 24 splits 3 per device): the run follows
    # the single-device run on those 248 samples...
    assert result["parallel"] == pytest.approx(result["cut"], rel=1e-4)
    # ...and stays close to the one that also trains on the 2 left over.
    assert result["parallel"] == pytest.approx(result["single"], rel=0.05)
    assert result["parallel"][-1] < result["parallel"][0]
    assert result["predictions"] == [13, 10]  # predict pads the partial batch and cuts it off again
    assert result["refused"] == "--distribute: --batch-size 60 does not divide over 8 devices; use a multiple of 8"


EVERY_LAB = textwrap.dedent("""
    import json, socket, sys
    def refuse(*args, **kwargs):  # as the suite's conftest: the labs fall back to their embedded data
        raise ConnectionRefusedError("tests must not reach the network")
    socket.socket.connect = socket.socket.connect_ex = socket.create_connection = socket.getaddrinfo = refuse
    from kcourse.tasks import degradation, fcn, finetune, mnist, transformer, translation, unet, vit, word2vec
    from kcourse import system
    out = sys.argv[1]
    # a two-stack ResNet: ResNet18 stalls XLA's CPU collectives with 8 virtual devices on 2 cores (a thread per device)
    system.keras_hub().models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block").save_to_preset(f"{out}/tiny_resnet")
    import time
    import numpy as np
    rng = np.random.default_rng(0)  # 100 digits, in keras' mnist.npz layout: every step of mnist and fcn, on little data
    np.savez(f"{out}/digits.npz", x_train=rng.integers(0, 256, (100, 28, 28)), y_train=np.arange(100) % 10,
             x_test=rng.integers(0, 256, (40, 28, 28)), y_test=np.arange(40) % 10)
    sizes = {"mnist": ["--data", f"{out}/digits.npz"], "fcn": ["--data", f"{out}/digits.npz", "--canvases", "1", "--models", "cnn"],
             "transformer": ["--sentences", "300"],
             "word2vec": ["--sentences", "300", "--batch-size", "256"], "translation": ["--sentences", "300"],
             "degradation": ["--train-size", "200", "--depths", "2"],
             "unet": ["--batch-size", "8", "--train-size", "32", "--test-size", "16", "--models", "image-labels"],  # + its CAMs
             "finetune": ["--batch-size", "8", "--preset", f"{out}/tiny_resnet"], "vit": ["--batch-size", "8", "--augment", "light"]}
    done = {}
    for name, lab in (("mnist", mnist), ("fcn", fcn), ("transformer", transformer), ("translation", translation),
                      ("degradation", degradation), ("word2vec", word2vec), ("unet", unet), ("finetune", finetune), ("vit", vit)):
        start = time.perf_counter()
        run = lab.main(["--quick", "--distribute", "--epochs", "1", *sizes.get(name, []), "--out", f"{out}/{name}"])
        done[name] = len(json.load(open(f"{out}/{name}/config.json"))["distributed over"])
        print(f"{name}: {time.perf_counter() - start:.1f} s on 8 devices", file=sys.stderr)
    print("RESULT " + json.dumps(done))
""")


def test_every_lab_with_its_own_data_path_runs_on_8_devices(jax_only, tmp_path):
    """Each lab that feeds, predicts or computes beyond `run.fit` in its own way (features, maps, embeddings,
    decoding, gradients, a keras-hub backbone) trains, validates and predicts with --distribute on 8 devices.
    attention, loop, blocks and sequences train and predict through the same runner as mnist and transformer, and
    blocks' gradients are degradation's `training.gradients` (40 s of the suite's budget spared)."""
    done = run_on_8_devices(["-c", EVERY_LAB, str(tmp_path)], tmp_path)
    finished = [line for line in done.stderr.splitlines() if line.endswith("s on 8 devices")]
    assert done.returncode == 0, (finished, done.stderr[-1500:])
    assert "data-parallel over 8 devices" in done.stdout
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    labs = ("mnist", "fcn", "transformer", "translation", "degradation", "word2vec", "unet", "finetune", "vit")
    assert result == {lab: 8 for lab in labs}


def test_distribute_elsewhere_is_one_line(backend, capsys):
    if backend == "jax":
        pytest.skip("jax distributes (the tests above)")
    from kcourse.tasks import mnist

    with pytest.raises(SystemExit) as stop:
        cli.run(mnist.main, ["--quick", "--distribute"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --distribute: Keras 3.15 trains data-parallel on the jax backend only (this is {backend}); use --backend jax"]
