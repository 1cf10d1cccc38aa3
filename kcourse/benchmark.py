"""The same models timed on jax, torch and tensorflow: the course's backend comparison.

    python -m kcourse.benchmark                        # every model, every installed backend
    python -m kcourse.benchmark --models mnist-cnn --backends jax torch --steps 200

Each backend runs in its own process (the backend is fixed at the first
`import keras`), trains each model with `model.fit` on synthetic batches of
the lab's shapes, and reports the first epoch (compilation included), the
steady time per step once compiled, samples per second and the process's
peak memory. Matmuls are pinned to float32 on every backend (no TF32 or
bf16 passes on GPUs), so that the backends do the same arithmetic.
"""

import argparse
import json
import subprocess
import sys

from kcourse import cli

MODELS = ("mnist-mlp", "mnist-cnn", "tiny-transformer")


def _model_and_data(name, n, seed=0):
    """A compiled model and `n` synthetic samples with the lab's shapes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if name in ("mnist-mlp", "mnist-cnn"):
        from kcourse.tasks import mnist

        x = rng.random((n, 28, 28, 1), dtype="float32")
        return mnist.build_model(name.split("-")[1]), x, rng.integers(0, 10, n).astype("int32")
    if name == "tiny-transformer":
        import keras

        from kcourse.models import TinyTransformerClassifier

        model = TinyTransformerClassifier(vocab_size=100, max_len=32, d_model=64, n_heads=2, n_layers=2)
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x = rng.integers(3, 100, (n, 32)).astype("int32")
        x[:, 0], x[:, 24:] = 2, 0  # [CLS] first, then padding
        return model, x, rng.integers(0, 2, n).astype("int32")
    raise cli.LabError(f"unknown model {name!r}: choose among {', '.join(MODELS)}")


def pin_float32_matmul():
    """Full float32 matmuls on the current backend (GPUs default to TF32 or less)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "float32")
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)


def measure(name, steps=100, batch_size=64):
    """Figures for one model on the current backend: a dict."""
    import resource

    import keras

    from kcourse import system
    from kcourse.training import EpochTimer

    pin_float32_matmul()
    keras.utils.set_random_seed(0)
    model, x, y = _model_and_data(name, steps * batch_size)
    timer = EpochTimer()
    model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0, callbacks=[timer])
    step = timer.times[-1] / steps
    return {
        "backend": keras.backend.backend(),
        "model": name,
        "device": system.accelerator() or "cpu",
        "first epoch s": timer.times[0],
        "ms / step": 1000 * step,
        "samples / s": batch_size / step,
        "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _worker(args):
    cli.use_backend(args.worker)
    for name in args.models:
        print("RESULT " + json.dumps(measure(name, args.steps, args.batch_size)), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--backends", nargs="+", default=list(cli.BACKENDS), choices=cli.BACKENDS)
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed epoch (default: 100)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--worker", choices=cli.BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)

    rows = []
    for backend in args.backends:
        print(f"timing on {backend}...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "kcourse.benchmark", "--worker", backend, "--models", *args.models,
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
        done = subprocess.run(command, capture_output=True, text=True)
        results = [json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{backend}: failed ({last})", file=sys.stderr)
        rows += results

    from rich.table import Table

    from kcourse.runs import console

    table = Table(title=f"one training step, batch {args.batch_size}, float32 matmuls")
    for key in ("model", "backend", "device", "first epoch s", "ms / step", "samples / s", "peak RSS MiB"):
        table.add_column(key, justify="left" if key in ("model", "backend", "device") else "right")
    for row in sorted(rows, key=lambda r: (r["model"], r["ms / step"])):
        table.add_row(row["model"], row["backend"], row["device"], f"{row['first epoch s']:.2f}",
                      f"{row['ms / step']:.2f}", f"{row['samples / s']:,.0f}", f"{row['peak RSS MiB']:,.0f}")
    console().print(table)
    return rows


if __name__ == "__main__":
    cli.run(main)
