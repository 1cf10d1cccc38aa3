"""The lab runner: every variant saved and reloadable, runs resumable, options resolved alike in every lab."""

import subprocess
import sys

import numpy as np
import pytest

from kcourse import cli, datasets, runs
from kcourse.tasks import mnist


def _digits(n=512):
    data = datasets.digits("digits")
    return (data.x_train[:n], data.y_train[:n]), (data.x_val[:128], data.y_val[:128])


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
    assert "000:2" in (folder / "report.md").read_text()  # the report, written again when the resumed run finishes


def test_quick_keeps_what_is_asked_explicitly():
    parser = cli.lab_parser("mnist", mnist.__doc__, epochs=5, batch_size=64, quick={"batch_size": 16})
    assert (parser.parse_args(["--quick"]).epochs, parser.parse_args(["--quick"]).batch_size) == (1, 16)
    args = parser.parse_args(["--quick", "--epochs", "3", "--batch-size", "64"])
    assert (args.epochs, args.batch_size) == (3, 64)
    assert parser.parse_args([]).epochs == 5


def test_out_is_checked_before_any_data_is_loaded(tmp_path, monkeypatch):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("an earlier run")
    monkeypatch.setattr(datasets, "digits", lambda *a, **k: pytest.fail("data loaded before --out was checked"))
    with pytest.raises(cli.LabError, match="already exists and is not empty"):
        mnist.main(["--out", str(tmp_path / "taken")])


def test_the_cpu_speed_up_times_a_few_steps_not_whole_epochs(monkeypatch):
    """The "speed-up vs CPU" column: a few steps on the CPU, scaled to the epoch, instead of two extra epochs."""
    import keras

    from kcourse import training

    seen, real_fit = [], keras.Model.fit

    def counting_fit(self, x=None, y=None, *args, **kwargs):
        seen.append(len(x))
        return real_fit(self, x, y, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", counting_fit)
    (x, y), _ = _digits(512)
    seconds = training.cpu_epoch_seconds(lambda: mnist.build_model("mlp"), x, y, batch_size=32, steps=3)
    assert seen == [4 * 32]  # one step that compiles, three timed: 128 of the 512 samples
    timer = training.StepTimer()
    timer.marks = [[0.0, 5.0], [5.0, 5.5], [5.5, 6.1], [6.1, 6.5]]  # the first step compiles: left out
    assert timer.per_step == pytest.approx(0.5) and seconds > 0


def test_a_resumed_variant_keeps_its_figures_and_its_fresh_results(tmp_path):
    """The bug this catches: on --resume, a frozen part's parameters were added twice, and stale results won."""
    train, val = _digits(256)
    folder = tmp_path / "run"
    run = runs.start("mnist", epochs=1, batch_size=64, out=folder)
    fitted = run.fit("mlp", lambda: mnist.build_model("mlp"), train, val, frozen_params=1_000, verbose=0)
    assert fitted.figures["total params"] == 101_770 + 1_000
    run.record(fitted, **{"val accuracy": 0.25})
    resumed = runs.start("mnist", epochs=1, batch_size=64, resume=folder)
    again = resumed.fit("mlp", lambda: mnist.build_model("mlp"), train, val, frozen_params=1_000, verbose=0)
    assert again.figures["total params"] == 101_770 + 1_000 and "val accuracy" not in again.figures
    row = resumed.record(again, **{"val accuracy": 0.5})
    assert row["total params"] == 101_770 + 1_000 and row["val accuracy"] == 0.5
    again.figures["total params"] += 1  # the figures are the run's copy, not its metrics.json
    assert resumed.metrics["mlp"]["total params"] == 101_770 + 1_000


def test_a_table_takes_the_union_of_its_rows_columns(tmp_path):
    """The bug this catches: a loaded variant (no s / epoch) lost summary.csv and the final table."""
    import csv

    run = runs.start("mnist", out=tmp_path / "run")
    run.rows = [{"model": "cnn", "loaded from": "cnn.keras"}, {"model": "background", "s / epoch": 1.5}]
    run.finish("a loaded and a trained variant")
    with open(run.file("summary.csv")) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["model", "loaded from", "s / epoch"]
    assert rows[0]["s / epoch"] == "" and rows[1]["loaded from"] == "" and rows[1]["s / epoch"] == "1.5"


def test_file_names_are_file_safe_and_predictable():
    assert runs.slug("strong+cutmix") == "strong-cutmix" and runs.slug("frozen-cls-D/2") == "frozen-cls-d-2"
    assert runs.slug("lr/10") == "lr-10" and runs.slug("fine-tuned") == "fine-tuned"


def test_a_run_that_writes_nothing_leaves_no_folder(tmp_path):
    run = runs.start("mnist", out=tmp_path / "run")
    assert not run.path.exists()  # reserved, not made: a bad input found now leaves nothing behind
    run.save_metrics(x=1)
    assert {p.name for p in run.path.iterdir()} == {"config.json", "metrics.json"}


SAVE_AND_LOAD = """
import sys, numpy as np, keras
from kcourse.tasks import mnist
folder = sys.argv[1]
x = np.load(folder + "/x.npy")
for name in sys.argv[2:]:  # files saved on other backends: the same logits here
    m = keras.saving.load_model(f"{folder}/{name}.keras")
    print(name, float(np.abs(m.predict(x, verbose=0) - np.load(f"{folder}/{name}.npy")).max()))
if keras.backend.backend() == "tensorflow":  # saved with the labs' 32 steps per execution, which torch refuses
    model = mnist.build_model("cnn")
    model.fit(x, np.arange(len(x)) % 10, epochs=1, batch_size=8, verbose=0)
    model.save(folder + "/tensorflow.keras")
    np.save(folder + "/tensorflow.npy", model.predict(x, verbose=0))
"""


def test_a_model_saved_on_one_backend_loads_on_the_others(tmp_path, backend):
    """Saved on jax, loaded on tensorflow; saved on tensorflow (32 steps per execution), loaded on torch, with jax's.

    Once per `make test` (the jax session): every direction a student meets, in two subprocesses.
    """
    import os

    import keras

    if backend != "jax":
        pytest.skip("checked once, from the jax session, across the three backends")
    (x, y), _ = _digits(128)
    model = mnist.build_model("cnn")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "jax.keras")
    np.save(tmp_path / "x.npy", x[:16])
    np.save(tmp_path / "jax.npy", keras.ops.convert_to_numpy(model.predict(x[:16], verbose=0)))
    for other, loads in (("tensorflow", ["jax"]), ("torch", ["jax", "tensorflow"])):
        result = subprocess.run([sys.executable, "-c", SAVE_AND_LOAD, str(tmp_path), *loads], capture_output=True, text=True,
                                env={**os.environ, "KERAS_BACKEND": other}, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        differences = dict(line.split() for line in result.stdout.strip().splitlines()[-len(loads):])
        assert set(differences) == set(loads) and all(float(d) < 1e-4 for d in differences.values()), (other, differences)


def test_quick_runs_train_on_whole_batches_and_predictions_come_in_few_shapes(tmp_path, backend):
    """A partial last batch compiles every step again on jax (tensorflow traces again): --quick cuts it off, and
    `training.predict` pads to a power of two up to the batch, then to whole batches, and cuts the outputs back."""
    import keras

    from kcourse import training

    x, y = np.arange(70 * 3, dtype="float32").reshape(70, 3) / 100, np.arange(70) % 2
    cut, _, val = training.whole_batches(x, y, (x[:40], y[:40]), batch_size=32)
    assert len(cut) == 64 and len(val[0]) == 32 and len(training.whole_batches(x[:20], batch_size=32)[0]) == 20

    seen = []  # the batch sizes the model is traced with (every call on torch, which does not compile)

    class Watch(keras.layers.Layer):
        def call(self, inputs):
            seen.append(inputs.shape[0])
            return inputs

    build = lambda: training.compile_model(  # noqa: E731
        keras.Sequential([keras.Input((3,)), Watch(), keras.layers.Dense(2)]), keras.optimizers.SGD(0.1), steps_per_execution=1)
    steps = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: steps.append(batch))
    run = runs.start("mnist", epochs=1, batch_size=32, quick=True, out=tmp_path / "run")
    model = run.fit("m", build, (x, y), callbacks=[counter]).model
    assert len(steps) == (3 if backend == "torch" else 2)  # 64 of the 70 in two batches of 32; torch compiles nothing
    seen.clear()
    for n in (1, 5, 33, 70):
        np.testing.assert_allclose(training.predict(model, x[:n], batch_size=32), keras.ops.convert_to_numpy(model(x[:n])),
                                   rtol=1e-6, atol=1e-6)
    if backend != "torch":  # a model called eagerly above adds its own sizes; predict's are powers of two up to 32
        predicted = {s for s in seen if s is not None} - {1, 5, 33, 70}
        assert predicted <= {1, 8, 32}, seen
