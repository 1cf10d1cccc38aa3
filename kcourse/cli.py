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
import shlex
import sys
from pathlib import Path

from kcourse.errors import Interrupted, LabError  # noqa: F401 (cli.LabError: the labs' one-line errors)

BACKENDS = ("jax", "torch", "tensorflow")
DEFAULT_BACKEND = "jax"  # the CLI and the notebooks alike, when neither --backend nor $KERAS_BACKEND says


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
        argv = sys.argv[1:] if args is None else list(args)
        given = self._given(args)
        if getattr(parsed, "resume", None) is not None:
            _resume_options(self, parsed, given)  # saved as resolved: --quick is already applied
        elif getattr(parsed, "quick", False):
            for name, value in self.quick.items():
                if name not in given:
                    setattr(parsed, name, value)
        if hasattr(parsed, "quick") and parsed.resume is None:  # the command that made a lab's run, for its report
            parsed.command = " ".join(["python -m " + self.prog.split()[-1], *(shlex.quote(a) for a in argv)])
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


def number(kind=float, low=None, high=None, low_open=False, high_open=False, why=""):
    """An argparse `type` that reads a `kind` and refuses values outside [low, high] (or open ends), in one line.

    `why` ends the message ("ResNet divides the side by 32"). The shared
    validators below are made with it; a lab makes its own the same way.
    """

    def read(text):
        value = kind(text)
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            if low is not None and high is not None:
                brackets = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
                rule = f"it must lie in {brackets}"
            elif low is not None:
                rule = f"it must be {'greater than' if low_open else 'at least'} {low:g}"
            else:
                rule = f"it must be {'less than' if high_open else 'at most'} {high:g}"
            raise argparse.ArgumentTypeError(f"{value:g} is not allowed: {rule}" + (f" ({why})" if why else ""))
        return value

    read.__name__ = kind.__name__  # argparse names the type in "invalid int value: 'two'"
    return read


positive_int = number(int, low=1)
positive_float = number(float, low=0, low_open=True)
fraction = number(float, 0, 1, low_open=True, high_open=True)  # strictly between 0 and 1
unit = number(float, 0, 1, high_open=True)  # [0, 1): 0 turns a thing off


def check_heads(d_model, n_heads):
    """A LabError unless --heads divides --d-model (each head gets d_model / n_heads features)."""
    if d_model % n_heads:
        divisors = [k for k in range(1, d_model + 1) if d_model % k == 0]
        raise LabError(
            f"--d-model {d_model} is not divisible by --heads {n_heads}: "
            f"choose --heads among {', '.join(map(str, divisors))}"
        )


def add_transformer_options(parser):
    """The TP4 labs' corpus and tiny-Transformer options, at the handout's sizes (kcourse.models.build_classifier)."""
    data = parser.add_argument_group("the sentences")
    data.add_argument("--sentences", type=positive_int, default=20_000, help="corpus size (default: %(default)s, 1000 with --quick)")
    data.add_argument("--max-len", type=positive_int, default=32, help="tokens per sequence with [CLS] (default: %(default)s)")
    model = parser.add_argument_group("the model")
    model.add_argument("--d-model", type=positive_int, default=64, help="default: %(default)s")
    model.add_argument("--heads", type=positive_int, default=2, help="must divide --d-model (default: %(default)s)")
    model.add_argument("--layers", type=positive_int, default=2, help="default: %(default)s")


def add_optimizer_option(parser, default, what="each model"):
    """--optimizers: the lecture's SGD, Adam and RMSprop (kcourse.training.optimizer), `default` first."""
    parser.add_argument("--optimizers", nargs="+", default=[default], choices=["sgd", "adam", "rmsprop"],
                        help=f"{what} trained with each, all else equal; sgd is plain (no momentum), as the seeds' "
                             f"torch.optim.SGD (default: {default})")


def lab_parser(lab, doc, *, epochs=None, batch_size=None, learning_rate=None, quick=None, trains=True, batch_help=None):
    """An argparse parser with the options every lab has; the lab adds its own.

    Args:
        lab: the lab's module name in kcourse.tasks (for the usage line and --resume).
        doc: the lab's module docstring (first line: description, rest: epilog).
        epochs, batch_size, learning_rate: the lab's defaults (no --batch-size
            without one: a lab that batches nothing; no --epochs without one:
            a lab that counts steps).
        quick: {option dest: value} that `--quick` uses where the option is not
            given (epochs is 1 under --quick unless the lab says otherwise or --epochs is given).
        trains: False for a lab that trains nothing (zoo, clip): it has no
            --epochs, --learning-rate or --distribute, so that giving one is
            refused instead of silently doing nothing.
        batch_help: what --batch-size means where it is not a training batch.
    """
    title, _, details = (doc or "").strip().partition("\n")
    parser = LabParser(
        prog=f"python -m kcourse.tasks.{lab}",
        description=title,
        epilog=details.strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        quick={**({"epochs": 1} if trains and epochs is not None else {}), **(quick or {})},
    )
    common = parser.add_argument_group("common to every lab")
    common.add_argument(
        "--backend",
        metavar="{" + ",".join(BACKENDS) + "}",  # checked by use_backend(), with a one-line error
        help=f"Keras backend (default: $KERAS_BACKEND, else {DEFAULT_BACKEND})",
    )
    if trains and epochs is not None:
        quick_epochs = (quick or {}).get("epochs", 1)
        common.add_argument("--epochs", type=positive_int, default=epochs, help=f"default: %(default)s ({quick_epochs} with --quick)")
    if batch_size is not None:
        common.add_argument("--batch-size", type=positive_int, default=batch_size, help=batch_help or "default: %(default)s")
    if trains and learning_rate is not None:
        common.add_argument("--learning-rate", type=positive_float, default=learning_rate, help="default: %(default)s")
    common.add_argument("--seed", type=int, default=0, help="seeds Python, NumPy and Keras (default: 0)")
    where = common.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="run folder to write, new or empty (default: runs/<lab>-<time>-<backend>)")
    where.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue an interrupted run from its last finished epoch, with its own options")
    common.add_argument("--quick", action="store_true", help="smoke run in seconds: little data, few epochs, whole batches on jax and tensorflow; an option given explicitly wins")
    if trains:
        common.add_argument("--distribute", action="store_true",
                            help="data-parallel over every visible device (jax: keras.distribution.DataParallel)")
    return parser


def lab_main(module_name):
    """The `main(argv=None)` of the lab module `module_name`: its `build_parser()` reads the options, then its
    `run_lab(args)` runs them (what a notebook calls); returns the finished run."""

    def main(argv=None):
        lab = sys.modules[module_name]
        return lab.run_lab(lab.build_parser().parse_args(argv))

    name = sys.modules[module_name].__spec__.name if module_name == "__main__" else module_name  # run as python -m
    main.__doc__ = f"python -m {name} [options]: the options parsed, then run_lab(args)."
    return main


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
    """Run a lab's main(argv); a LabError becomes one line on stderr and exit code 2, Ctrl-C exit code 130."""
    try:
        main(argv)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as error:
        print(error if isinstance(error, Interrupted) else "interrupted", file=sys.stderr)
        sys.exit(130)
