"""TP3 part I: the MLP and the vanilla CNN of the course, on embedded digits."""

import contextlib
import csv
import io
import json

import numpy as np
import pytest

from kcourse import cli
from kcourse.tasks import mnist


def test_parameter_counts_match_the_course():
    assert mnist.build_mlp().count_params() == 101_770
    assert mnist.build_cnn().count_params() == 27_830


def test_embedded_digits_look_like_mnist():
    ((x_train, y_train), (x_test, y_test)), name = mnist.load_data("digits")
    assert name == "digits"
    assert x_train.shape[1:] == (28, 28, 1) and x_train.dtype == np.float32
    assert len(x_train) + len(x_test) == 10 * 1797  # each digit at ten places
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))


def test_embedded_test_digits_are_never_seen_in_training():
    def unplaced(x):  # the digit cut out of its frame, whatever its offset
        rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
        return x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].tobytes()

    (x_train, _), (x_test, _) = mnist.embedded_digits()
    train, test = {unplaced(x) for x in x_train}, {unplaced(x) for x in x_test}
    assert (len(train), len(test)) == (1437, 360)
    assert not train & test


def test_cnn_beats_mlp_on_embedded_digits():
    data, _ = mnist.load_data("digits")
    accuracy = {}
    for name in ("mlp", "cnn"):
        model = mnist.build_model(name)
        model.fit(*data[0], epochs=2, batch_size=64, verbose=0)
        accuracy[name] = mnist.evaluate(model, data)[0]
    assert accuracy["mlp"] > 0.7, accuracy  # both learn...
    assert accuracy["cnn"] > accuracy["mlp"], accuracy  # ...and the shared filters win


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`python -m kcourse.tasks.mnist --quick` offline (the conftest blocks the network)."""
    out = tmp_path_factory.mktemp("mnist") / "run"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        run = mnist.main(["--quick", "--out", str(out)])
    return run, stderr.getvalue()


@pytest.mark.offline
def test_offline_run_says_so_in_one_line(quick_run):
    _, stderr = quick_run
    notices = [line for line in stderr.splitlines() if line.startswith("offline:")]
    assert notices == ["offline: could not download MNIST; using scikit-learn's embedded 8x8 digits instead"]


@pytest.mark.offline
def test_run_folder_holds_what_a_student_hands_in(quick_run, backend):
    run, _ = quick_run
    files = {p.name for p in run.path.iterdir()}
    expected = {
        "config.json", "metrics.json", "summary.csv", "history_mlp.csv", "history_cnn.csv",
        "learning_curves.png", "confusion_cnn.png", "misclassified_cnn.png", "mlp.keras", "cnn.keras",
    }
    assert expected <= files, expected - files
    config = json.loads(run.file("config.json").read_text())
    assert config["backend"] == backend and config["epochs"] == 1 and config["quick"] is True
    assert config["data_used"] == "digits" and config["versions"]["keras"].startswith("3.")
    metrics = json.loads(run.file("metrics.json").read_text())
    assert metrics["cnn"]["total params"] == 27_830 and metrics["mlp"]["total params"] == 101_770
    assert metrics["mlp"]["s / epoch"] > 0 and metrics["cnn"]["device"] == "cpu:0"
    with open(run.file("history_cnn.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    for png in ("learning_curves.png", "confusion_cnn.png", "misclassified_cnn.png"):
        assert run.file(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.offline
def test_existing_run_folder_is_never_overwritten(quick_run):
    run, _ = quick_run
    with pytest.raises(cli.LabError, match="already exists and is not empty"):
        mnist.main(["--quick", "--dataset", "digits", "--out", str(run.path)])


def test_local_npz_in_keras_layout(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 50),
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 20),
    )
    ((x_train, y_train), (x_test, _)), name = mnist.load_data(path=path)
    assert name == str(path)
    assert x_train.shape == (50, 28, 28, 1) and x_test.shape == (20, 28, 28, 1)
    assert x_train.max() <= 1.0 and y_train.dtype == np.int32


def test_bad_data_path_is_a_one_line_error(tmp_path):
    from tests.test_cli import run_python

    result = run_python("-m", "kcourse.tasks.mnist", "--data", str(tmp_path / "missing.npz"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --data {tmp_path / 'missing.npz'}: no such file"), lines
    assert "x_train (N, 28, 28)" in lines[0]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.zeros((4, 28, 28))}, "array 'y_train' is missing"),
        (
            {"x_train": np.zeros((4, 32, 32)), "y_train": np.zeros(4), "x_test": np.zeros((2, 32, 32)), "y_test": np.zeros(2)},
            "got x_train (4, 32, 32)",
        ),
    ],
)
def test_malformed_npz_names_what_is_wrong(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(cli.LabError) as error:
        mnist.load_data(path=path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_corrupt_file_is_an_error_not_a_traceback(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(cli.LabError, match="not a readable .npz"):
        mnist.load_data(path=path)
