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
    ("mnist", ["--epochs", "0"], "--epochs: 0 is not allowed: it must be 1 or more"),
    ("mnist", ["--batch-size", "-1"], "--batch-size: -1 is not allowed: it must be 1 or more"),
    ("mnist", ["--learning-rate", "-1"], "--learning-rate: -1 is not allowed: it must be greater than 0"),
    ("mnist", ["--epochs", "two"], "--epochs: invalid positive_int value: 'two'"),
    ("mnist", ["--backend", "mxnet"], "unknown backend 'mxnet'"),
    ("mnist", ["--resume", "/nonexistent/run"], "--resume /nonexistent/run: not a run folder"),
    ("mnist", ["--out", "x", "--resume", "y"], "not allowed with argument"),
    ("mnist", ["--no-such-option"], "unrecognized arguments: --no-such-option"),
    # ---- mnist
    ("mnist", ["--data", "/nonexistent/mnist.npz"], "--data /nonexistent/mnist.npz: no such file"),
    ("mnist", ["--models", "resnet"], "invalid choice: 'resnet'"),
    ("mnist", ["--dataset", "mnist"], "MNIST could not be downloaded (offline?)"),
    # ---- finetune
    ("finetune", ["--preset", "nonsense_preset"], "--preset nonsense_preset: unknown keras-hub preset; list the known ones with keras_hub.models.ResNetBackbone.presets.keys()"),
    ("finetune", ["--val-split", "1.5"], "--val-split: 1.5 is not allowed: it must lie strictly between 0 and 1"),
    ("finetune", ["--data-dir", "/nonexistent/photos"], "/nonexistent/photos: no such folder; expected"),
    ("finetune", ["--image-size", "8"], "--image-size: 8 is too small: use 16 or more"),
    # ---- transformer
    ("transformer", ["--embeddings", "/nonexistent/embeddings.npz"], "--embeddings /nonexistent/embeddings.npz: no such file; expected"),
    ("transformer", ["--d-model", "30", "--heads", "4"], "--d-model 30 is not divisible by --heads 4: choose --heads among 1, 2, 3, 5, 6, 10, 15, 30"),
    ("transformer", ["--sentence", "the capital of france is paris" + " and rome" * 15], "has 37 tokens with [CLS], more than the maximum length 32"),
    # ---- word2vec
    ("word2vec", ["--learning-rate", "0.01", "0"], "--learning-rate: 0 is not allowed: it must be greater than 0"),
    ("word2vec", ["--lr", "0.01"], "unrecognized arguments: --lr 0.01"),
    ("word2vec", ["--window", "0"], "--window: 0 is not allowed: it must be 1 or more"),
    ("word2vec", ["--sample", "1.5"], "--sample: 1.5 is not allowed: it must lie in [0, 1)"),
    ("word2vec", ["--quick", "--probe", "atlantis"], "'atlantis' is not in the vocabulary"),
    ("word2vec", ["--quick", "--analogy", "king", "queen", "emperor"], "analogy king:queen::emperor:? uses 'emperor'"),
    # ---- vit
    ("vit", ["--data-dir", "/nonexistent/photos"], "--data-dir /nonexistent/photos: no such folder; expected /nonexistent/photos/train/<class>"),
    ("vit", ["--preset", "vit_nonsense_patch99"], "--preset vit_nonsense_patch99: unknown ViT preset; choose one of vit_base_patch16_224_imagenet"),
    ("vit", ["--preset", "/nonexistent/preset"], "--preset /nonexistent/preset: not a keras-hub preset folder (no config.json)"),
    ("vit", ["--augment", "extreme"], "argument --augment: invalid choice: 'extreme'"),
    ("vit", ["--unfreeze-last", "-1"], "--unfreeze-last -1: must be 0 or more"),
    # (a wrong --head-dim needs a loaded backbone: tests/test_vit.py checks it on a local preset)
    # ---- fcn
    ("fcn", ["--model", "/nonexistent/cnn.keras"], "--model /nonexistent/cnn.keras: no such file; expected a .keras file the mnist lab saved"),
    ("fcn", ["--canvas", "20", "300"], "--canvas 20 300: the FCN needs at least 28x28 pixels"),
    ("fcn", ["--threshold", "1.5"], "--threshold: 1.5 is not allowed: it must lie strictly between 0 and 1"),
    ("fcn", ["--quick", "--canvas", "60", "60", "--digits", "30"], "cannot place 30 digits without overlap on a 60x60 canvas"),
    # (a --model of the wrong shape needs a saved model: tests/test_fcn.py checks it)
    # ---- unet
    ("unet", ["--image-size", "50"], "--image-size 50 is not a multiple of 2^depth = 8 (--depth 3): train on 48 or 56"),
    ("unet", ["--image-size", "24", "--depth", "5"], "--image-size 24 is too small for --depth 5: use 32 or more"),
    ("unet", ["--predict", "/nonexistent/unet.keras"], "--predict /nonexistent/unet.keras: no such file; give a <model>.keras that a unet run saved"),
    ("unet", ["--cam-threshold", "1.5"], "--cam-threshold: 1.5 is not allowed: it must lie strictly between 0 and 1"),
    ("unet", ["--noise", "2"], "--noise: 2 is not allowed: it must lie in [0, 1]"),
    ("unet", ["--models", "segnet"], "argument --models: invalid choice: 'segnet'"),
    # ---- zoo
    ("zoo", ["--models", "resnet152"], "argument --models: invalid choice: 'resnet152'"),
    ("zoo", ["--classes", "0"], "--classes: 0 is not allowed: it must be 1 or more"),
    ("zoo", ["--resume", "/nonexistent/zoo-run"], "--resume /nonexistent/zoo-run: not a run folder"),
    # ---- clip
    ("clip", ["--preset", "clip_nonsense_patch99"], "--preset clip_nonsense_patch99: unknown CLIP preset; choose one of clip_vit_b_32_laion2b_s34b_b79k"),
    ("clip", ["--preset", "/nonexistent/preset"], "--preset /nonexistent/preset: not a keras-hub preset folder (no config.json)"),
    ("clip", ["--classes", "/nonexistent/names.txt"], "--classes /nonexistent/names.txt: cannot read it (No such file or directory)"),
    ("clip", ["--templates", "/nonexistent/templates.txt"], "--templates /nonexistent/templates.txt: cannot read it"),
    ("clip", ["--compare", "/nonexistent/run"], "--compare /nonexistent/run: not a finished run folder (needs config.json and summary.csv)"),
    ("clip", ["--data-dir", "/nonexistent/photos"], "--data-dir /nonexistent/photos: no such folder; expected"),
    ("clip", ["--data", "cifar"], "argument --data: invalid choice: 'cifar'"),
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
