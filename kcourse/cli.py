"""The command line every lab shares.

    python -m kcourse.tasks.<lab> [--backend jax|torch|tensorflow] [--epochs N]
        [--batch-size N] [--seed N] [--out DIR] [--quick]

Nothing here imports keras: `--help` stays instant, and the backend asked for
with `--backend` is applied before keras is first imported (it cannot change after).
"""

import argparse
import importlib.util
import os
import sys
from pathlib import Path

BACKENDS = ("jax", "torch", "tensorflow")


class LabError(Exception):
    """A problem the user can fix (a bad path, a wrong option): shown as one line."""


def lab_parser(doc, *, epochs, batch_size):
    """An argparse parser with the options every lab has; the lab adds its own."""
    title, _, details = (doc or "").strip().partition("\n")
    parser = argparse.ArgumentParser(
        description=title,
        epilog=details.strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = parser.add_argument_group("common to every lab")
    common.add_argument(
        "--backend",
        metavar="{" + ",".join(BACKENDS) + "}",  # checked by use_backend(), with a one-line error
        help="Keras backend (default: $KERAS_BACKEND, else Keras' own default)",
    )
    common.add_argument("--epochs", type=int, default=epochs, help="default: %(default)s")
    common.add_argument("--batch-size", type=int, default=batch_size, help="default: %(default)s")
    common.add_argument("--seed", type=int, default=0, help="seeds Python, NumPy and Keras (default: 0)")
    common.add_argument(
        "--out", type=Path, help="run folder to write (default: runs/<lab>-<time>-<backend>)"
    )
    common.add_argument("--quick", action="store_true", help="tiny smoke run: little data, 1 epoch")
    return parser


def use_backend(name=None):
    """Select the Keras backend before keras is imported; return its name.

    `name` (from --backend) wins over $KERAS_BACKEND. A backend that is not
    installed, or a change after keras was imported, raises LabError.
    """
    name = name or os.environ.get("KERAS_BACKEND")
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if name and name != current:
            raise LabError(
                f"keras is already imported with the {current} backend; to use {name}, "
                f"restart Python with KERAS_BACKEND={name} (or pass --backend {name} on the command line)"
            )
        return current
    if name is None:
        import keras

        return keras.backend.backend()
    if name not in BACKENDS:
        raise LabError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if importlib.util.find_spec(name) is None:
        raise LabError(
            f"backend {name!r} is not installed in this Python ({sys.executable}); "
            f"install it (pip install -e '.[backends]') or choose another with --backend"
        )
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    return name


def run(main, argv=None):
    """Run a lab's main(argv); a LabError becomes one line on stderr and exit code 2."""
    try:
        main(argv)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the run folder keeps what was written so far", file=sys.stderr)
        sys.exit(130)
