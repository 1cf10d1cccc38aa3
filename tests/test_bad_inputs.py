"""Every bad input a student can type is one line on stderr, `error: ...`, and exit code 2.

One table for every lab: (lab, arguments, words the message must hold). Each
row runs the lab's `main` in this process through `cli.run`, as
`python -m kcourse.tasks.<lab>` does; a new lab adds its rows in its section.
"""

import contextlib
import io

import pytest

from kcourse import cli

CASES = [
    # ---- shared options, checked once for every lab (mnist stands for all)
    ("mnist", ["--epochs", "0"], "--epochs: 0 is not allowed: it must be at least 1"),
    ("mnist", ["--batch-size", "-1"], "--batch-size: -1 is not allowed: it must be at least 1"),
    ("mnist", ["--learning-rate", "-1"], "--learning-rate: -1 is not allowed: it must be greater than 0"),
    ("mnist", ["--epochs", "two"], "--epochs: invalid int value: 'two'"),
    ("mnist", ["--backend", "mxnet"], "unknown backend 'mxnet'"),
    ("mnist", ["--resume", "/nonexistent/run"], "--resume /nonexistent/run: not a run folder"),
    ("mnist", ["--out", "x", "--resume", "y"], "not allowed with argument"),
    ("mnist", ["--no-such-option"], "unrecognized arguments: --no-such-option"),
    # ---- mnist
    ("mnist", ["--data", "/nonexistent/mnist.npz"], "--data /nonexistent/mnist.npz: no such file"),
    ("mnist", ["--models", "resnet"], "invalid choice: 'resnet'"),
    ("mnist", ["--dataset", "mnist"], "MNIST could not be downloaded (offline?)"),
    # ---- finetune
    ("finetune", ["--preset", "nonsense_preset"], "--preset nonsense_preset: unknown keras-hub Backbone preset; choose one of"),
    ("finetune", ["--val-split", "1.5"], "--val-split: 1.5 is not allowed: it must lie in (0, 1)"),
    ("finetune", ["--data-dir", "/nonexistent/photos"], "/nonexistent/photos: no such folder; expected"),
    ("finetune", ["--image-size", "8"], "--image-size: 8 is not allowed: it must be at least 16 (ResNet divides the side by 32)"),
    # ---- transformer
    ("transformer", ["--embeddings", "/nonexistent/embeddings.npz"], "--embeddings /nonexistent/embeddings.npz: no such file; expected"),
    ("transformer", ["--d-model", "30", "--heads", "4"], "--d-model 30 is not divisible by --heads 4: choose --heads among 1, 2, 3, 5, 6, 10, 15, 30"),
    ("transformer", ["--sentence", "the capital of france is paris" + " and rome" * 15], "has 37 tokens with [CLS], more than the maximum length 32"),
    # ---- word2vec
    ("word2vec", ["--learning-rate", "0"], "--learning-rate: 0 is not allowed: it must be greater than 0"),
    ("word2vec", ["--models", "cbow"], "argument --models: invalid choice: 'cbow'"),
    ("word2vec", ["--lr", "0.01"], "unrecognized arguments: --lr 0.01"),
    ("word2vec", ["--window", "0"], "--window: 0 is not allowed: it must be at least 1"),
    ("word2vec", ["--sample", "1.5"], "--sample: 1.5 is not allowed: it must lie in [0, 1) (0 turns subsampling off)"),
    ("word2vec", ["--quick", "--probe", "atlantis"], "'atlantis' is not in the vocabulary"),
    ("word2vec", ["--quick", "--analogy", "king", "queen", "emperor"], "analogy king:queen::emperor:? uses 'emperor'"),
    # ---- vit
    ("vit", ["--data-dir", "/nonexistent/photos"], "argument --data-dir: /nonexistent/photos: no such folder; expected /nonexistent/photos/train/<class>"),
    ("vit", ["--preset", "vit_nonsense_patch99"], "--preset vit_nonsense_patch99: unknown keras-hub ViTBackbone preset; choose one of"),
    ("vit", ["--preset", "/nonexistent/preset"], "--preset /nonexistent/preset: not a keras-hub preset folder (no config.json)"),
    ("vit", ["--augment", "extreme"], "argument --augment: invalid choice: 'extreme'"),
    ("vit", ["--unfreeze-last", "-1"], "--unfreeze-last: -1 is not allowed: it must be at least 0"),
    ("vit", ["--dropout", "1"], "--dropout: 1 is not allowed: it must lie in [0, 1)"),
    # (a wrong --head-dim needs a loaded backbone: tests/test_vit.py checks it on a local preset)
    # ---- fcn
    ("fcn", ["--model-file", "/nonexistent/cnn.keras"], "--model-file /nonexistent/cnn.keras: no such file; expected a .keras file the mnist lab saved"),
    ("fcn", ["--variants", "cnn"], "unrecognized arguments: --variants cnn"),
    ("fcn", ["--canvas", "20", "300"], "--canvas 20 300: the FCN needs at least 28x28 pixels"),
    ("fcn", ["--threshold", "1.5"], "--threshold: 1.5 is not allowed: it must lie in (0, 1)"),
    ("fcn", ["--quick", "--canvas", "60", "60", "--digits", "30"], "cannot place 30 digits without overlap on a 60x60 canvas"),
    # (a --model of the wrong shape needs a saved model: tests/test_fcn.py checks it)
    # ---- unet
    ("unet", ["--image-size", "50"], "--image-size 50 is not a multiple of 2^depth = 8 (--depth 3): train on 48 or 56"),
    ("unet", ["--image-size", "24", "--depth", "5"], "--image-size 24 is too small for --depth 5: use 32 or more"),
    ("unet", ["--model-file", "/nonexistent/unet.keras"], "--model-file /nonexistent/unet.keras: no such file; expected a <model>.keras that a unet run saved"),
    ("unet", ["--cam-threshold", "1.5"], "--cam-threshold: 1.5 is not allowed: it must lie in (0, 1)"),
    ("unet", ["--noise", "2"], "--noise: 2 is not allowed: it must lie in [0, 1]"),
    ("unet", ["--models", "segnet"], "argument --models: invalid choice: 'segnet'"),
    # ---- attention, loop, blocks, sequences
    ("attention", ["--d-model", "30", "--heads", "4"], "--d-model 30 is not divisible by --heads 4: choose --heads among 1, 2, 3, 5, 6, 10, 15, 30"),
    ("attention", ["--models", "half-scaled"], "argument --models: invalid choice: 'half-scaled'"),
    ("loop", ["--epochs", "3"], "unrecognized arguments: --epochs 3"),  # it counts steps: refused, not ignored
    ("loop", ["--sentences", "100", "--steps", "5"], "5 steps of 64 need 320 training sentences, there are 80: raise --sentences or lower --steps"),
    ("blocks", ["--variants", "no-attention"], "argument --variants: invalid choice: 'no-attention'"),
    ("sequences", ["--lengths", "2"], "--lengths: 2 is not allowed: it must be at least 3"),
    # ---- convolution
    ("convolution", ["--digits", "0"], "--digits: 0 is not allowed"),
    ("convolution", ["--epochs", "3"], "unrecognized arguments: --epochs 3"),
    # ---- degradation
    ("degradation", ["--depths", "7"], "--depths 7: the convolutions come in pairs"),
    # ---- translation
    ("translation", ["--d-model", "30", "--heads", "4"], "--d-model 30 is not divisible by --heads 4"),
    ("translation", ["--quick", "--sentence", "the capital of france is paris" + " and rome" * 15],
     "has 36 tokens, more than the maximum length 32"),
    ("translation", ["--quick", "--max-len", "8", "--sentence", "the capital of france is paris"],
     "more than the maximum length 8"),
    # ---- zoo
    ("zoo", ["--models", "resnet152"], "argument --models: invalid choice: 'resnet152'"),
    ("zoo", ["--classes", "0"], "--classes: 0 is not allowed: it must be at least 1"),
    ("zoo", ["--epochs", "3"], "unrecognized arguments: --epochs 3"),  # nothing trains: refused, not ignored
    ("zoo", ["--resume", "/nonexistent/zoo-run"], "--resume /nonexistent/zoo-run: not a run folder"),
    # ---- clip
    ("clip", ["--preset", "clip_nonsense_patch99"], "--preset clip_nonsense_patch99: unknown keras-hub CLIPBackbone preset; choose one of"),
    ("clip", ["--epochs", "3"], "unrecognized arguments: --epochs 3"),
    ("clip", ["--distribute"], "unrecognized arguments: --distribute"),
    ("clip", ["--preset", "/nonexistent/preset"], "--preset /nonexistent/preset: not a keras-hub preset folder (no config.json)"),
    ("clip", ["--classes", "/nonexistent/names.txt"], "--classes /nonexistent/names.txt: cannot read it (No such file or directory)"),
    ("clip", ["--templates", "/nonexistent/templates.txt"], "--templates /nonexistent/templates.txt: cannot read it"),
    ("clip", ["--compare", "/nonexistent/run"], "--compare /nonexistent/run: not a finished run folder (needs config.json and summary.csv)"),
    ("clip", ["--data-dir", "/nonexistent/photos"], "argument --data-dir: /nonexistent/photos: no such folder; expected"),
    ("clip", ["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    # (class names that do not match the data need a loaded model: tests/test_clip.py checks them on a local preset)
    # ---- python -m kcourse <lab>
    ("__main__", ["nonsense"], "no lab named 'nonsense'"),
]


def run_lab(lab, argv):
    """`python -m kcourse.tasks.<lab> argv` in this process: (exit code, stderr)."""
    import importlib

    module = importlib.import_module("kcourse.__main__" if lab == "__main__" else f"kcourse.tasks.{lab}")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit:
        cli.run(module.main, argv)
    return exit.value.code, stderr.getvalue()


@pytest.mark.offline  # rows such as `--dataset mnist` check what an offline download says
@pytest.mark.parametrize("lab, argv, message", CASES, ids=[f"{lab} {' '.join(argv)}" for lab, argv, _ in CASES])
def test_bad_input_is_one_line(lab, argv, message, backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository, whatever slips through
    if "--backend" not in argv:
        argv = [*argv, "--backend", backend]
    code, stderr = run_lab(lab, argv)
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert message in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()  # and no run folder left behind


def _files(tmp_path):
    """Inputs that are wrong in ways found only after the run has started (read, loaded, checked against the model)."""
    import numpy as np

    (tmp_path / "notes.npz").write_text("not an npz file")
    np.savez(tmp_path / "digits_32.npz", x_train=np.zeros((4, 32, 32)), y_train=np.zeros(4), x_test=np.zeros((2, 32, 32)), y_test=np.zeros(2))
    (tmp_path / "one_class" / "ants").mkdir(parents=True)
    (tmp_path / "no_class").mkdir()
    return tmp_path


LATE = [  # the 9 a new user's runs found leaving a config.json behind, so that the corrected command was refused
    ("vit", ["--quick", "--head-dim", "7"], "--head-dim 7: the head expects features of size 7"),
    ("vit", ["--quick", "--data-dir", "{tmp}/one_class"], "only one class folder (ants), need at least two"),
    ("vit", ["--quick", "--data-dir", "{tmp}/no_class"], "no class folder, need at least two"),
    ("fcn", ["--quick", "--data", "{tmp}/notes.npz"], "not a readable .npz"),
    ("fcn", ["--quick", "--data", "{tmp}/digits_32.npz"], "got x_train (4, 32, 32)"),
    ("word2vec", ["--quick", "--analogy", "atlantis", "queen", "man"], "analogy atlantis:queen::man:? uses 'atlantis'"),
    ("transformer", ["--quick", "--embeddings", "{tmp}/notes.npz"], "--embeddings {tmp}/notes.npz: not readable"),
    ("mnist", ["--quick", "--data", "{tmp}/notes.npz"], "not a readable .npz"),
    ("mnist", ["--quick", "--data", "{tmp}/digits_32.npz"], "got x_train (4, 32, 32)"),
]


@pytest.mark.offline
@pytest.mark.parametrize("lab, argv, message", LATE, ids=[f"{lab} {' '.join(argv[1:3])}" for lab, argv, _ in LATE])
def test_an_input_found_bad_after_the_start_leaves_no_run_folder(lab, argv, message, backend, tmp_path):
    tmp = _files(tmp_path)
    out = tmp / "run"
    code, stderr = run_lab(lab, [*(a.format(tmp=tmp) for a in argv), "--out", str(out), "--backend", backend])
    assert code == 2 and message.format(tmp=tmp) in stderr, stderr
    assert not out.exists()  # the corrected command may use the same --out
