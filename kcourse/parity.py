"""The strict check of "the same code gives the same numbers": one initial model, trained on every backend alike.

    python -m kcourse.parity --steps 300      # jax, torch and tensorflow, each in its own process

The mnist lab's CNN with dropout off (the one random draw a step makes) is
saved once as a `.keras` file; each backend loads it and trains it with plain
SGD on the same embedded digits, in the same batches in the same order, one
`train_on_batch` a step, recording the loss of every step. The curves can
then differ only by float32 arithmetic (each backend sums in its own order).
SGD amplifies such differences: once a near-tie (a ReLU at 0, two equal
values under a max-pool) falls one way on one backend and the other way on
another, the curves part. So the check reports the steps over which they
agree to TOLERANCE, the largest gap over the whole run, and, at the step
where they part, one step taken by every backend from the same weights: if
that step agrees too, the parting is rounding amplified, not a difference in
the code.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

TOLERANCE = 1e-5  # relative: float32 rounding (about 1e-7 a step), compounded over the steps
BACKENDS = ("jax", "torch", "tensorflow")


def digits(n):
    """The first `n` embedded digits (x (n, 28, 28, 1) in [0, 1], y (n,)): the same on every backend, no network."""
    from kcourse import datasets

    data = datasets.digits("digits")
    return data.x_train[:n], data.y_train[:n]


def initial_model(path, seed=0):
    """The mnist lab's CNN, dropout off, saved at `path` with its initial weights (drawn once, on this backend)."""
    import keras

    from kcourse.models import build_cnn

    keras.utils.set_random_seed(seed)
    model = build_cnn(dropout=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(path)
    return path


def train_from(path, steps=300, batch_size=32, learning_rate=0.05, save_before=None):
    """Load the initial model on this backend and take `steps` SGD steps on the fixed batches: the loss of each step.

    `save_before`: (step, file): the weights before that step are saved there (np.savez).
    """
    import keras

    from kcourse.benchmark import pin_float32_matmul

    pin_float32_matmul()  # GPUs default to TF32 or less
    model = _compiled(path, learning_rate)
    x, y = digits(steps * batch_size)
    losses = []
    for step in range(steps):
        if save_before is not None and step == save_before[0]:
            np.savez(save_before[1], *[np.asarray(w) for w in model.get_weights()])
        batch = slice(step * batch_size, (step + 1) * batch_size)
        losses.append(float(model.train_on_batch(x[batch], y[batch])))
    return {"backend": keras.backend.backend(), "losses": losses}


def one_step(path, weights, step, batch_size=32, learning_rate=0.05):
    """The SGD update of batch `step` taken from the saved `weights` on this backend: the new weights, flattened."""
    from kcourse.benchmark import pin_float32_matmul

    pin_float32_matmul()
    model = _compiled(path, learning_rate)
    with np.load(weights) as saved:
        model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
    x, y = digits((step + 1) * batch_size)
    model.train_on_batch(x[step * batch_size :], y[step * batch_size :])
    return np.concatenate([np.asarray(w).ravel() for w in model.get_weights()])


def _compiled(path, learning_rate):
    import keras

    model = keras.saving.load_model(path)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def agree_until(curves, tolerance=None):
    """The number of first steps over which every pair of curves agrees to `tolerance` (relative)."""
    tolerance = TOLERANCE if tolerance is None else tolerance
    losses = np.asarray(list(curves.values()))  # (backends, steps)
    gaps = (losses.max(0) - losses.min(0)) / np.abs(losses).min(0)
    beyond = np.flatnonzero(gaps > tolerance)
    return int(beyond[0]) if len(beyond) else losses.shape[1]


def largest_gap(curves):
    """max over steps and pairs of backends of |loss_a - loss_b| / loss_a: (gap, at step, between which two)."""
    names = list(curves)
    best = (0.0, 0, names[0], names[0])
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            la, lb = np.asarray(curves[a]), np.asarray(curves[b])
            gaps = np.abs(la - lb) / np.maximum(np.abs(la), 1e-12)
            k = int(gaps.argmax())
            if gaps[k] > best[0]:
                best = (float(gaps[k]), k, a, b)
    return best


def run(backends=BACKENDS, steps=300, batch_size=32, folder=Path("runs/parity")):
    """The initial model saved once, then trained in one process per backend; where the curves part, one step from
    the same weights on each. Returns (and writes to parity.json) the curves and the figures RESULTS.md reports."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "initial.keras"
    _in_process(backends[0], f"from kcourse.parity import initial_model; initial_model({str(path)!r})")
    curves = {b: _result(b, f"train_from({str(path)!r}, {steps}, {batch_size})")["losses"] for b in backends}
    gap, step, a, b = largest_gap(curves)
    until = agree_until(curves)
    result = {"steps": steps, "batch size": batch_size, "curves": curves, "largest gap": gap, "at step": step,
              "between": [a, b], "tolerance": TOLERANCE, "agree until": until, "within": gap <= TOLERANCE}
    if until < steps:  # the same weights, one step, on every backend: does the code itself agree where they part?
        weights = folder / f"weights-before-{until}.npz"
        _result(backends[0], f"train_from({str(path)!r}, {until + 1}, {batch_size}, save_before=({until}, {str(weights)!r}))")
        updates = {b: np.asarray(_result(b, f"one_step({str(path)!r}, {str(weights)!r}, {until}, {batch_size}).tolist()"))
                   for b in backends}
        first = updates[backends[0]]
        result["one step from the same weights"] = max(float(np.abs(u - first).max() / np.abs(first).max()) for u in updates.values())
    (folder / "parity.json").write_text(json.dumps(result, indent=1))
    return result


def _result(backend, call):
    code = f"import json; from kcourse.parity import *; print('RESULT ' + json.dumps({call}))"
    out = _in_process(backend, code)
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def figure(result):
    """The loss curves of every backend on one plot, and their relative gap to the first one."""
    import matplotlib.pyplot as plt

    from kcourse import plots

    curves = result["curves"]
    first = np.asarray(next(iter(curves.values())))
    fig, (ax, gap) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, losses in curves.items():
        ax.plot(np.arange(1, len(losses) + 1), losses, label=name, lw=1)
        gap.semilogy(np.arange(1, len(losses) + 1), np.abs(np.asarray(losses) - first) / np.abs(first) + 1e-12, label=name, lw=1)
    ax.set(xlabel="step", ylabel="loss", title="one initial .keras file, the same batches")
    gap.axhline(result["tolerance"], color="k", ls="--", lw=0.8, label="tolerance")
    gap.set(xlabel="step", ylabel=f"|loss - {next(iter(curves))}| / loss", title="relative gap")
    return plots.tidy(fig, ax, gap)


def _in_process(backend, code):
    import os

    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1200)
    if done.returncode:
        raise RuntimeError(f"{backend}: {done.stderr[-2000:]}")
    return done.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kcourse.parity", description=__doc__.strip().split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--out", type=Path, default=Path("runs/parity"))
    args = parser.parse_args(argv)
    result = run(args.backends, args.steps, args.batch_size, args.out)
    print(sentence(result))
    return result


def sentence(result):
    """What the check found, in words built from its numbers."""
    a, b = result["between"]
    said = (f"{result['steps']} SGD steps on {', '.join(result['curves'])}: the loss curves agree to {result['tolerance']:g} "
            f"for the first {result['agree until']} steps")
    if "one step from the same weights" in result:
        said += (f"; there they part (largest gap {result['largest gap']:.1e}, step {result['at step'] + 1}, {a} against {b}), "
                 f"yet one step from the same weights agrees to {result['one step from the same weights']:.1e} on every "
                 f"backend: rounding amplified by SGD, not a difference in the code")
    return said + "."


if __name__ == "__main__":
    main()
