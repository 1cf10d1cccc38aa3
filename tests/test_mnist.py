"""TP3 part I: the MLP and the vanilla CNN of the course, on embedded digits."""

import csv
import json

import numpy as np
import pytest

from kcourse import cli, datasets
from kcourse.models import build_cnn, build_mlp
from kcourse.tasks import mnist


def test_parameter_counts_match_the_course():
    assert build_mlp().count_params() == 101_770
    assert build_cnn().count_params() == 27_830


def test_embedded_digits_look_like_mnist():
    data = datasets.digits("digits")
    assert data.name == "digits"
    assert data.x_train.shape[1:] == (28, 28, 1) and data.x_train.dtype == np.float32
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 10 * 1797  # each digit at ten places
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert set(np.unique(data.y_train)) == set(range(10)) == set(np.unique(data.y_val)) == set(np.unique(data.y_test))


def test_embedded_validation_and_test_digits_are_never_seen_in_training():
    def unplaced(x):  # the digit cut out of its frame, whatever its offset
        rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
        return x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].tobytes()

    (x_train, _), (x_val, _), (x_test, _) = datasets.embedded_digits()
    train, val, test = ({unplaced(x) for x in xs} for xs in (x_train, x_val, x_test))
    assert (len(train), len(val), len(test)) == (1317, 120, 360)
    assert not train & test and not train & val and not val & test


# The notebook's run: the quick one, the CNN also trained with SGD and RMSprop (003:4).
QUICK = ("--quick", "--optimizers", "adam", "sgd", "rmsprop")


@pytest.fixture(scope="module")
def quick_run(lab_run):
    """`python -m kcourse.tasks.mnist --quick --optimizers adam sgd rmsprop` offline (the conftest blocks the
    network): shared with the notebook."""
    made = lab_run("mnist", *QUICK)
    return made.run, made.stderr


def test_cnn_beats_mlp_with_a_quarter_of_the_weights(quick_run):
    run, _ = quick_run
    rows = {row["model"]: row for row in run.rows}
    assert rows["cnn"]["test accuracy"] > rows["mlp"]["test accuracy"], rows  # the shared filters win...
    assert rows["mlp"]["test accuracy"] > 0.7  # ...over an MLP that learns too (12,000 digits, 3 epochs)
    assert rows["cnn"]["total params"] * 3 < rows["mlp"]["total params"]


def test_the_cnn_loses_less_than_the_mlp_as_the_digits_move(quick_run):
    """003:7 and 004:2: the test digits moved by 0 to 8 pixels."""
    run, _ = quick_run
    curves = run.metrics["shift"]
    assert len(curves["cnn"]) == len(mnist.SHIFTS) and curves["cnn"][0] == pytest.approx(next(r for r in run.rows if r["model"] == "cnn")["test accuracy"])
    drop = {name: acc[0] - acc[4] for name, acc in curves.items()}
    assert drop["cnn"] < drop["mlp"], curves
    images = np.zeros((1, 5, 5, 1), "float32")
    images[0, 1, 1] = 1.0
    moved = mnist.shifted(images, 2)
    assert moved[0, 3, 3, 0] == 1.0 and moved.sum() == 1.0  # right and down, zeros coming in


def test_a_feature_map_shifts_with_its_input_and_the_class_stays(quick_run):
    """004:3: equivariance of the first convolution, invariance of the classified output."""
    run, _ = quick_run
    e = run.metrics["equivariance"]
    assert e["feature map"] < 1e-5 * e["feature map scale"], e  # exact, away from the borders
    assert e["same class"] > 0.6, e


def test_the_inputs_dreamt_for_each_class_are_classified_as_that_class(quick_run):
    """003:9, 004:21: gradient ascent from noise on each class's log-probability."""
    run, _ = quick_run
    d = run.metrics["dreams"]
    assert d["own class"] >= 9 and d["end"] > 0.9 > 0.3 > d["start"], d
    answer = {a["tag"]: a["answer"] for a in run.answers()}["004:21"]
    assert f"{d['own class']} of the {d['classes']}" in answer


def test_fit_takes_the_lectures_dataloader_and_keras_own_pipelines_on_every_backend(quick_run):
    """003:5: arrays, a PyDataset with workers, tf.data and torch's DataLoader, each fed to the same CNN's fit."""
    run, _ = quick_run
    timed = run.metrics["feeds"]
    assert set(timed["seconds"]) == set(mnist.FEEDS) and all(s > 0 for s in timed["seconds"].values())
    x, y = np.zeros((70, 28, 28, 1), "float32"), np.arange(70) % 10
    made = mnist.feeds(x, y)
    first = made["PyDataset"][0][0][0]
    assert first[0].shape == (32, 28, 28, 1) and len(made["PyDataset"][0][0]) == 3  # batches of 32: 32, 32, 6
    assert len(made["torch DataLoader"][0][0]) == 3 and "shuffle" in made["arrays"][1]


def test_input_gradient_is_the_derivative_on_each_backend():
    from kcourse.training import input_gradient

    x = np.array([[1.0, -2.0, 3.0]], "float32")
    np.testing.assert_allclose(input_gradient(lambda z: z * z, x), 2 * x)


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
    assert config["backend"] == backend and config["epochs"] == 3 and config["quick"] is True
    assert config["data_used"] == "digits" and config["versions"]["keras"].startswith("3.")
    metrics = json.loads(run.file("metrics.json").read_text())
    assert metrics["cnn"]["total params"] == 27_830 and metrics["mlp"]["total params"] == 101_770
    assert metrics["cnn"]["device"] == run.device  # the device it trained on, whatever the machine
    with open(run.file("history_cnn.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    # the test accuracy is on the test digits, not on the validation ones the curves show
    assert metrics["cnn"]["test accuracy"] == pytest.approx(mnist.evaluate(run.fitted["cnn"].model, run.outputs["data"])["test accuracy"])
    assert len(run.outputs["y_pred"]) == len(run.outputs["data"].y_test) == 1000


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
        x_train=rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 60),
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 20),
    )
    data = datasets.digits(path=path)
    assert data.name == str(path)
    assert data.x_train.shape == (55, 28, 28, 1) and data.x_val.shape == (5, 28, 28, 1) and data.x_test.shape == (20, 28, 28, 1)
    assert data.x_train.max() <= 1.0 and data.y_train.dtype == np.int32


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
        datasets.digits(path=path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_corrupt_file_is_an_error_not_a_traceback(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(cli.LabError, match="not a readable .npz"):
        datasets.digits(path=path)


def test_adaptive_optimizers_beat_plain_sgd_at_the_same_rate(quick_run):
    """003:4: SGD, Adam and RMSprop on the CNN at lr 1e-3, three quick epochs each, all else equal."""
    run, _ = quick_run
    accuracy = {r["optimizer"]: r["test accuracy"] for r in run.rows if r["model"].startswith("cnn")}
    assert min(accuracy["adam"], accuracy["rmsprop"]) > accuracy["sgd"] + 0.1, accuracy
    assert type(run.fitted["cnn (sgd)"].model.optimizer).__name__ == "SGD"
    assert f"sgd {accuracy['sgd']:.3f}" in {a["tag"]: a["answer"] for a in run.answers()}["003:4"]
