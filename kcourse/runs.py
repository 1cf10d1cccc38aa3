"""The lab runner: one run, one folder, and the loop every lab shares.

    run = runs.start("mnist", args)                  # backend, seed, run folder: before any data
    data = load_data(...)
    for name in args.models:                         # the variants the lab compares
        fitted = run.fit(name, lambda: build_model(name), data.train, data.val)
        run.record(fitted, **{"test accuracy": evaluate(fitted.model, data)})
    run.finish("MNIST: MLP vs CNN")                  # learning curves, summary.csv, the table

`fit` reseeds (every variant starts from the same seed), fits with a progress
bar, times the epochs, logs `history_<variant>.csv`, keeps Keras'
BackupAndRestore state so that `--resume RUN_DIR` continues an interrupted
run from its last finished epoch, saves `<variant>.keras` and says where. A
CLI `main` and a notebook call the same functions, so they cannot drift.

    runs/mnist-20261122-101500-jax/
        config.json              every hyper-parameter, the backend, devices, versions
        history_<variant>.csv    per-epoch metrics
        <variant>.keras          each trained model (keras.saving.load_model)
        metrics.json             final figures, per variant
        summary.csv              the table printed at the end
        *.png                    figures
"""

import csv
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kcourse import cli


def start(lab, args=None, **options):
    """Choose the backend, seed everything and open the run folder: a lab's first step.

    Args:
        lab: the lab's name.
        args: the lab's parsed options (the CLI). A notebook gives `options`
            instead: `runs.start("mnist", epochs=5, batch_size=64)`.
        options: entries for config.json (with args) or the options themselves.

    The folder is checked (new or empty, or an interrupted run with --resume)
    before any data is loaded or downloaded.
    """
    import argparse

    if args is None:
        defaults = dict(backend=None, epochs=1, batch_size=32, seed=0, out=None, resume=None, quick=False, distribute=False)
        args, options = argparse.Namespace(**{**defaults, **options}), {}
    config = options
    cli.use_backend(args.backend)
    folder = args.resume if args.resume is not None else args.out
    Run.check_folder(folder, resume=args.resume is not None)
    from kcourse.training import set_seed  # imports keras: after the backend is chosen

    if getattr(args, "distribute", False):
        from kcourse.training import distribute

        config["distributed over"] = distribute(args.batch_size)
    set_seed(args.seed)
    return Run(lab, {**vars(args), **config}, out=folder, resume=args.resume is not None)


@dataclass
class Fitted:
    """What `Run.fit` returns: the trained model, its per-epoch history and its figures."""

    name: str
    model: object
    history: dict  # {metric: [one value per epoch]}, read back from history_<name>.csv
    figures: dict = field(default_factory=dict)  # parameters, s / epoch, samples / s, device


class Run:
    """The run folder of one lab invocation, and the variants trained in it.

    Args:
        lab: the lab's name, used in the default folder name.
        config: the hyper-parameters (argparse Namespace or dict), saved to config.json.
        out: the folder; by default `runs/<lab>-<time>-<backend>`. An existing
            non-empty folder is refused, so that no earlier run is overwritten.
        resume: `out` is an interrupted run to continue: finished variants are
            loaded from their `.keras` file, the current one resumes from its backup.
    """

    current = None  # the latest run, named by the Ctrl-C message

    def __init__(self, lab, config, out=None, resume=False):
        from kcourse import system

        config = dict(vars(config) if not isinstance(config, dict) else config)
        info = system.describe()
        if out is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out = Path("runs") / f"{lab}-{stamp}-{info['backend']}"
            n = 2
            while out.exists():
                out = out.with_name(f"{lab}-{stamp}-{info['backend']}-{n}")
                n += 1
        out = Path(out)
        self.check_folder(out, resume)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise cli.LabError(f"cannot create the run folder {out}: {error.strerror}") from None
        self.lab, self.path, self.resuming = lab, out, resume
        self.seed = config.get("seed", 0)
        self.epochs, self.batch_size = config.get("epochs"), config.get("batch_size")
        self.device = system.accelerator() or "cpu:0"
        self.metrics = json.loads(self.file("metrics.json").read_text()) if resume and self.file("metrics.json").exists() else {}
        self.rows, self.histories = [], {}
        if not resume:
            self.write_json("config.json", {"lab": lab, **config, **info})
        Run.current = self
        print(f"{lab}: backend {info['backend']} on {self.device}; run folder {out}"
              + (" (resumed)" if resume else ""), flush=True)

    @staticmethod
    def check_folder(out, resume=False):
        if out is None:
            return
        out = Path(out)
        if resume:
            if not (out / "config.json").is_file():
                raise cli.LabError(f"--resume {out}: not a run folder (no config.json)")
        elif out.is_file() or (out.is_dir() and any(out.iterdir())):
            raise cli.LabError(f"--out {out} already exists and is not empty; choose a new folder so no earlier run is overwritten")

    # ------------------------------------------------------------ training
    def fit(self, name, build, train, val=None, *, epochs=None, batch_size=None, callbacks=(), verbose="auto", **fit_kwargs):
        """Train one variant: reseed, `build()` a compiled model, fit, time, log, back up, save.

        Args:
            name: the variant's name (history_<name>.csv, <name>.keras, its row).
            build: a function returning a compiled keras model.
            train: (x, y), x alone (a model with its own loss), or a dataset.
            val: (x, y) validated on at every epoch, or None.
            epochs, batch_size: the run's by default.

        Returns a Fitted. With --resume, a variant the interrupted run finished
        is loaded from its `.keras` file instead of trained again.
        """
        import keras

        from kcourse.training import EpochTimer, epoch_time_on, set_seed

        epochs, batch_size = epochs or self.epochs, batch_size or self.batch_size
        saved, history_file = self.file(f"{name}.keras"), self.file(f"history_{name}.csv")
        if self.resuming and saved.exists() and name in self.metrics:
            print(f"\n{name}: finished in the interrupted run; loaded from {saved}")
            fitted = Fitted(name, keras.saving.load_model(saved), read_history(history_file), self.metrics[name])
            self.histories[name] = fitted.history
            return fitted

        set_seed(self.seed)  # the same initial weights and batches for every variant
        model = build()
        x, y = train if isinstance(train, tuple) else (train, None)
        trainable = sum(_size(w) for w in model.trainable_weights)
        print(f"\n{name}: {trainable:,} trainable / {model.count_params():,} parameters", flush=True)
        timer = EpochTimer()
        backup = keras.callbacks.BackupAndRestore(str(self.path / "backup" / name))
        logger = keras.callbacks.CSVLogger(str(history_file), append=self.resuming)
        model.fit(x, y, validation_data=val, epochs=epochs, batch_size=batch_size, verbose=verbose,
                  callbacks=[backup, timer, logger, *callbacks], **fit_kwargs)
        model.save(saved)
        shutil.rmtree(self.path / "backup", ignore_errors=True)
        print(f"{name}: saved {saved}")

        samples = _num_samples(x) or timer.steps * batch_size
        figures = {
            "trainable params": trainable,
            "total params": model.count_params(),
            "s / epoch": timer.steady,
            "samples / s": samples / timer.steady,
            "device": self.device,
        }
        if self.device != "cpu:0" and y is not None:  # the course's "GPU speed-up": the same epoch on the CPU
            figures["speed-up vs CPU"] = epoch_time_on("cpu", build, x, y, batch_size) / timer.steady
        self.save_metrics(**{name: figures})
        fitted = Fitted(name, model, read_history(history_file), figures)
        self.histories[name] = fitted.history
        return fitted

    def record(self, fitted, **results):
        """One row of the summary: the variant, its parameters, `results` (the lab's metrics), its speed."""
        figures = dict(fitted.figures)
        row = {
            "model": fitted.name,
            "trainable params": figures.pop("trainable params"),
            "total params": figures.pop("total params"),
            **results,
            **figures,
        }
        self.rows.append(row)
        self.save_metrics(**{fitted.name: row})
        return row

    def finish(self, title, curves=("loss", "accuracy")):
        """Learning curves, summary.csv and the summary table; returns the run."""
        from kcourse import plots

        if self.histories:
            metrics = [m for m in curves if any(m in h for h in self.histories.values())]
            self.savefig(plots.learning_curves(self.histories, metrics), "learning_curves")
        if self.rows:
            self.save_table("summary", self.rows)
            table = [{k: _params(v) if k.endswith("params") else v for k, v in row.items()} for row in self.rows]
            self.print_summary(title, table)
        else:
            console().print(f"run folder: {self.path}")
        return self

    # ------------------------------------------------------------ files
    def file(self, name):
        return self.path / name

    def note(self, **config):
        """Add entries to config.json (what was learnt after the start: the data used, the weights)."""
        path = self.file("config.json")
        saved = json.loads(path.read_text())
        saved.update(config)
        self.write_json("config.json", saved)

    def write_json(self, name, data):
        with open(self.file(name), "w") as f:
            json.dump(data, f, indent=2, default=_plain)

    def csv_logger(self, name="history"):
        """A keras callback writing `<name>.csv`, one row per epoch."""
        import keras

        return keras.callbacks.CSVLogger(str(self.file(f"{name}.csv")), append=self.resuming)

    def save_metrics(self, **metrics):
        """Add figures to metrics.json (rewritten at once, so an interrupted run keeps them)."""
        for key, value in metrics.items():
            if isinstance(value, dict) and isinstance(self.metrics.get(key), dict):
                self.metrics[key] = {**self.metrics[key], **value}
            else:
                self.metrics[key] = value
        self.write_json("metrics.json", self.metrics)

    def save_table(self, name, rows):
        """Write a list of dicts as `<name>.csv`."""
        with open(self.file(f"{name}.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def savefig(self, fig, name):
        """Save a matplotlib figure as `<name>.png` and close it."""
        import matplotlib.pyplot as plt

        path = self.file(f"{name}.png")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path

    def print_summary(self, title, rows):
        """Print rows (a list of dicts with the same keys) as a table, and where the run went."""
        from rich.table import Table

        table = Table(title=title)
        for key in rows[0]:
            table.add_column(key, justify="right" if _is_number(rows[0][key]) else "left")
        for row in rows:
            table.add_row(*(_fmt(v) for v in row.values()))
        out = console()
        out.print(table)
        out.print(f"run folder: {self.path}")


def read_history(path):
    """A CSVLogger file as {metric: [float per epoch]}."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [key for key in (rows[0] if rows else {}) if key != "epoch" and any(row[key] != "NA" for row in rows)]
    return {key: [float(row[key]) for row in rows] for key in keys}  # CSVLogger writes val_* "NA" without validation


def console():
    """A rich Console; piped to a file or a log, wide enough that table headers are not cut."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def _num_samples(x):
    """Rows in an array or a dict of arrays; None for a dataset."""
    if isinstance(x, dict):
        x = next(iter(x.values()))
    return len(x) if hasattr(x, "shape") else None


def _size(weight):
    n = 1
    for d in weight.shape:
        n *= int(d)
    return n


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)


def _params(n):
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n:,}"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
