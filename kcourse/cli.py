"""The command line every lab shares.

    python -m kcourse.tasks.<lab> [--backend jax|torch|tensorflow] [--epochs N]
        [--batch-size N] [--learning-rate LR] [--seed N] [--out DIR | --resume DIR]
        [--quick] [--distribute]

Nothing here imports keras: `--help` stays instant, and the backend asked for
with `--backend` is applied before keras is first imported (it cannot change after).
Every bad option is one line on stderr (`error: ...`) and exit code 2.
"""

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

BACKENDS = ("jax", "torch", "tensorflow")
DEFAULT_BACKEND = "jax"  # the CLI and the notebooks alike, when neither --backend nor $KERAS_BACKEND says


class LabError(Exception):
    """A problem the user can fix (a bad path, a wrong option): shown as one line."""


class LabParser(argparse.ArgumentParser):
    """argparse, with errors raised as LabError (one line) and the shared options resolved.

    `parse_args` also applies `--quick` (smaller sizes, but never over an
    option given on the command line: `--quick --epochs 3` trains 3 epochs)
    and `--resume` (the interrupted run's own options).
    """

    def __init__(self, *args, quick=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.quick = quick or {}
        self.lab = self.prog.split(".")[-1]

    def error(self, message):
        raise LabError(f"{message} (see --help)")

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        given = self._given(args)
        if parsed.resume is not None:
            _resume_options(self, parsed, given)  # saved as resolved: --quick is already applied
        elif parsed.quick:
            for name, value in self.quick.items():
                if name not in given:
                    setattr(parsed, name, value)
        return parsed

    def _given(self, args):
        """The options the command line sets itself (parsed again with every default suppressed)."""
        defaults = [(action, action.default) for action in self._actions]
        try:
            for action, _ in defaults:
                action.default = argparse.SUPPRESS
            return set(vars(super().parse_args(args)))
        finally:
            for action, default in defaults:
                action.default = default


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be 1 or more")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not allowed: it must be greater than 0")
    return value


def fraction(text):
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is not allowed: it must lie strictly between 0 and 1")
    return value


def lab_parser(lab, doc, *, epochs, batch_size, learning_rate=None, quick=None):
    """An argparse parser with the options every lab has; the lab adds its own.

    Args:
        lab: the lab's module name in kcourse.tasks (for the usage line and --resume).
        doc: the lab's module docstring (first line: description, rest: epilog).
        epochs, batch_size, learning_rate: the lab's defaults.
        quick: {option dest: value} that `--quick` uses where the option is not
            given (epochs is always 1 under --quick unless --epochs is given).
    """
    title, _, details = (doc or "").strip().partition("\n")
    parser = LabParser(
        prog=f"python -m kcourse.tasks.{lab}",
        description=title,
        epilog=details.strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        quick={"epochs": 1, **(quick or {})},
    )
    common = parser.add_argument_group("common to every lab")
    common.add_argument(
        "--backend",
        metavar="{" + ",".join(BACKENDS) + "}",  # checked by use_backend(), with a one-line error
        help=f"Keras backend (default: $KERAS_BACKEND, else {DEFAULT_BACKEND})",
    )
    common.add_argument("--epochs", type=positive_int, default=epochs, help="default: %(default)s (1 with --quick)")
    common.add_argument("--batch-size", type=positive_int, default=batch_size, help="default: %(default)s")
    if learning_rate is not None:
        common.add_argument("--learning-rate", type=positive_float, default=learning_rate, help="default: %(default)s")
    common.add_argument("--seed", type=int, default=0, help="seeds Python, NumPy and Keras (default: 0)")
    where = common.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="run folder to write, new or empty (default: runs/<lab>-<time>-<backend>)")
    where.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue an interrupted run from its last finished epoch, with its own options")
    common.add_argument("--quick", action="store_true", help="smoke run in seconds: little data, 1 epoch unless --epochs")
    common.add_argument("--distribute", action="store_true",
                        help="data-parallel over every visible device (jax: keras.distribution.DataParallel)")
    return parser


def _resume_options(parser, args, given):
    """Fill `args` with the options saved in RUN_DIR/config.json, except those given again."""
    folder = args.resume
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise LabError(f"--resume {folder}: not a run folder (no config.json); give the folder the interrupted run printed")
    saved = json.loads(config_path.read_text())
    if saved.get("lab") != parser.lab:
        raise LabError(f"--resume {folder}: that is a {saved.get('lab')} run, not a {parser.lab} run")
    types = {action.dest: action.type for action in parser._actions}
    for key, value in saved.items():
        if key in types and key not in given and key not in ("resume", "out", "help"):
            setattr(args, key, Path(value) if types[key] is Path and value is not None else value)


def use_backend(name=None):
    """Select the Keras backend before keras is imported; return its name.

    `name` (from --backend) wins over $KERAS_BACKEND, which wins over jax.
    A backend that is not installed, or a change after keras was imported,
    raises LabError.
    """
    name = name or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise LabError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if name != current:
            raise LabError(
                f"keras is already imported with the {current} backend; to use {name}, "
                f"restart Python with KERAS_BACKEND={name} (or pass --backend {name} on the command line)"
            )
        return current
    if importlib.util.find_spec(name) is None:
        raise LabError(
            f"backend {name!r} is not installed in this Python ({sys.executable}); "
            f"install it (pip install -e '.[backends]') or choose another with --backend"
        )
    os.environ["KERAS_BACKEND"] = name
    from kcourse import system

    if name == "tensorflow":
        system.import_tensorflow()  # before keras does, quietly
    else:
        system.keep_tensorflow_out()
    return name


def run(main, argv=None):
    """Run a lab's main(argv); a LabError becomes one line on stderr and exit code 2."""
    try:
        main(argv)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        from kcourse import runs

        where = runs.Run.current
        hint = f"; continue with --resume {where.path}" if where is not None else ""
        print(f"interrupted: the run folder keeps every finished epoch{hint}", file=sys.stderr)
        sys.exit(130)
