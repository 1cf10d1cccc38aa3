"""The lab runner: every variant saved and reloadable, runs resumable, options resolved alike in every lab."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kcourse import cli, runs
from kcourse.tasks import mnist
from kcourse.training import epoch_time_on


def _digits(n=512):
    ((x_train, y_train), (x_test, y_test)), _ = mnist.load_data("digits")
    return (x_train[:n], y_train[:n]), (x_test[:128], y_test[:128])


class StopAfter:
    """A callback that presses Ctrl-C at the end of an epoch (after BackupAndRestore saved it)."""

    def __new__(cls, epoch):
        import keras

        class _Stop(keras.callbacks.Callback):
            def on_epoch_end(self, e, logs=None):
                if e == epoch:
                    raise KeyboardInterrupt

        return _Stop()


def test_saved_model_reloads_to_the_same_predictions(tmp_path):
    import keras

    train, val = _digits()
    run = runs.start("mnist", epochs=1, batch_size=64, out=tmp_path / "run")
    fitted = run.fit("cnn", lambda: mnist.build_model("cnn"), train, val, verbose=0)
    reloaded = keras.saving.load_model(run.file("cnn.keras"))
    np.testing.assert_allclose(reloaded.predict(val[0], verbose=0), fitted.model.predict(val[0], verbose=0), atol=1e-6)


def test_interrupted_run_resumes_from_its_last_finished_epoch(tmp_path):
    train, val = _digits()
    whole = runs.start("mnist", epochs=3, batch_size=64, out=tmp_path / "whole")
    uninterrupted = whole.fit("mlp", lambda: mnist.build_model("mlp"), train, val, verbose=0).history

    folder = tmp_path / "cut"
    run = runs.start("mnist", epochs=3, batch_size=64, out=folder)
    with pytest.raises(KeyboardInterrupt):
        run.fit("mlp", lambda: mnist.build_model("mlp"), train, val, callbacks=[StopAfter(0)], verbose=0)
    assert len(runs.read_history(folder / "history_mlp.csv")["loss"]) == 1 and not (folder / "mlp.keras").exists()

    resumed = runs.start("mnist", epochs=3, batch_size=64, resume=folder)
    history = resumed.fit("mlp", lambda: mnist.build_model("mlp"), train, val, verbose=0).history
    assert len(history["loss"]) == 3  # epoch 1 from the first try, epochs 2 and 3 resumed
    assert history["loss"][0] == pytest.approx(uninterrupted["loss"][0], rel=1e-6)
    # the weights after epoch 1 were restored: epoch 2 continues where the first try stopped
    np.testing.assert_allclose(history["val_loss"], uninterrupted["val_loss"], rtol=0.05)
    assert (folder / "mlp.keras").exists() and not (folder / "backup").exists()


def test_resume_on_the_command_line_continues_with_the_runs_own_options(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    real_fit = runs.Run.fit

    def fit_then_stop(self, name, *args, callbacks=(), **kwargs):
        return real_fit(self, name, *args, callbacks=[*callbacks, StopAfter(0)], **kwargs)

    monkeypatch.setattr(runs.Run, "fit", fit_then_stop)
    with pytest.raises(KeyboardInterrupt):
        mnist.main(["--quick", "--dataset", "digits", "--epochs", "2", "--models", "mlp", "--out", str(folder)])
    monkeypatch.setattr(runs.Run, "fit", real_fit)
    run = mnist.main(["--resume", str(folder)])
    assert [row["model"] for row in run.rows] == ["mlp"]
    assert len(runs.read_history(folder / "history_mlp.csv")["loss"]) == 2
    assert (folder / "summary.csv").exists() and (folder / "learning_curves.png").exists()


def test_quick_keeps_what_is_asked_explicitly():
    parser = cli.lab_parser("mnist", mnist.__doc__, epochs=5, batch_size=64, quick={"batch_size": 16})
    assert (parser.parse_args(["--quick"]).epochs, parser.parse_args(["--quick"]).batch_size) == (1, 16)
    args = parser.parse_args(["--quick", "--epochs", "3", "--batch-size", "64"])
    assert (args.epochs, args.batch_size) == (3, 64)
    assert parser.parse_args([]).epochs == 5


def test_out_is_checked_before_any_data_is_loaded(tmp_path, monkeypatch):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("an earlier run")
    monkeypatch.setattr(mnist, "load_data", lambda *a, **k: pytest.fail("data loaded before --out was checked"))
    with pytest.raises(cli.LabError, match="already exists and is not empty"):
        mnist.main(["--out", str(tmp_path / "taken")])


def test_cpu_epoch_time_leaves_compilation_out():
    (x, y), _ = _digits(256)
    seconds = epoch_time_on("cpu", lambda: mnist.build_model("mlp"), x, y, batch_size=64)
    assert 0.0 < seconds < 30.0


def test_a_model_saved_on_one_backend_loads_on_another(tmp_path, backend):
    """Saved here, reloaded in a process of every other backend: the same logits."""
    import keras

    (x, y), _ = _digits(128)
    model = mnist.build_model("cnn")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "cnn.keras")
    np.save(tmp_path / "x.npy", x[:16])
    np.save(tmp_path / "expected.npy", keras.ops.convert_to_numpy(model.predict(x[:16], verbose=0)))
    probe = (
        "import sys, numpy as np, keras\n"
        f"m = keras.saving.load_model(r'{tmp_path / 'cnn.keras'}')\n"
        f"got = m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0)\n"
        f"print(float(np.abs(got - np.load(r'{tmp_path / 'expected.npy'}')).max()))\n"
    )
    for other in cli.BACKENDS:
        if other == backend:
            continue
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**__import__("os").environ, "KERAS_BACKEND": other}, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert float(result.stdout.strip().splitlines()[-1]) < 1e-4, (other, result.stdout)
