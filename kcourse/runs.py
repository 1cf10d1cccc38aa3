"""The lab runner: one run, one folder, and the loop every lab shares.

    run = runs.start("mnist", args)                  # backend, seed, run folder: before any data
    data = load_data(...)
    for name in args.models:                         # the variants the lab compares
        fitted = run.fit(name, lambda: build_model(name), data.train, data.val)
        run.record(fitted, **evaluate(fitted.model, data))
    run.finish("MNIST: MLP vs CNN")                  # learning curves, summary.csv, the table

`fit` reseeds (every variant starts from the same seed), fits with a progress
bar, times the epochs, logs `history_<variant>.csv`, keeps Keras'
BackupAndRestore state so that `--resume RUN_DIR` continues an interrupted
run from its last finished epoch, saves `<variant>.keras` and says where. A
CLI `main` and a notebook call the same functions, so they cannot drift.

The folder is made, and config.json written, with the run's first file: a
bad input found before anything is written (a wrong file, an unknown word)
leaves no folder behind, and the corrected command may use the same `--out`.

    runs/mnist-20261122-101500-jax/
        config.json              every hyper-parameter, the backend, devices, versions
        history_<variant>.csv    per-epoch metrics
        <variant>.keras          each trained model (keras.saving.load_model)
        metrics.json             final figures, per variant
        summary.csv              the table printed at the end
        *.png                    figures
        report.html, report.md   the page a student hands in: the handout's questions answered (kcourse.report)
"""

import csv
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kcourse import cli
from kcourse.errors import Interrupted, LabError

# What `fit` measures for every variant; the lab's own figures go in `record`.
FIT_FIGURES = ("trainable params", "total params", "s / epoch", "samples / s", "device", "speed-up vs CPU")


def start(lab, args=None, **options):
    """Choose the backend, seed everything and reserve the run folder: a lab's first step.

    Args:
        lab: the lab's name.
        args: the lab's parsed options (`build_parser().parse_args(...)`).
            Without them, `options` are the options themselves:
            `runs.start("mnist", epochs=5, batch_size=64)`.
        options: with `args`, more entries for config.json.

    The folder is checked (new or empty, or an interrupted run with --resume)
    before any data is loaded or downloaded.
    """
    import argparse

    if args is None:
        defaults = dict(backend=None, epochs=1, batch_size=32, seed=0, out=None, resume=None, quick=False, distribute=False)
        args, options = argparse.Namespace(**{**defaults, **options}), {}
    config = options
    cli.use_backend(args.backend)
    resume = getattr(args, "resume", None)
    folder = resume if resume is not None else args.out
    Run.check_folder(folder, resume=resume is not None)
    from kcourse.training import set_seed  # imports keras: after the backend is chosen

    if getattr(args, "distribute", False):
        from kcourse.training import distribute

        config["distributed over"] = distribute(args.batch_size)
    set_seed(args.seed)
    return Run(lab, {**vars(args), **config}, out=folder, resume=resume is not None)


@dataclass
class Fitted:
    """What `Run.fit` returns: the trained model, its per-epoch history and what fitting it measured."""

    name: str
    model: object
    history: dict  # {metric: [one value per epoch]}, read back from history_<name>.csv
    figures: dict = field(default_factory=dict)  # parameters, s / epoch, samples / s, device (FIT_FIGURES)


def slug(name):
    """A variant's name as a file name: lower case, letters, digits, '.', '_' and '-' ("strong+cutmix" -> "strong-cutmix")."""
    return re.sub(r"[^a-z0-9._]+", "-", name.lower()).strip("-") or "model"


class Run:
    """The run folder of one lab invocation, and the variants trained in it.

    Args:
        lab: the lab's name, used in the default folder name.
        config: the hyper-parameters (argparse Namespace or dict), saved to config.json.
        out: the folder; by default `runs/<lab>-<time>-<backend>`. An existing
            non-empty folder is refused, so that no earlier run is overwritten.
        resume: `out` is an interrupted run to continue: finished variants are
            loaded from their `.keras` file, the current one resumes from its backup.

    After `finish`, `fitted` holds each variant's Fitted and `outputs` what the
    lab kept for a notebook to look at (the data, predictions, figures' inputs).
    """

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
        self.lab, self.path, self.resuming = lab, out, resume
        self.config = {"lab": lab, **config, **info}
        self.seed = config.get("seed", 0)
        self.epochs, self.batch_size = config.get("epochs"), config.get("batch_size")
        self.device = system.accelerator() or "cpu:0"
        self.metrics = json.loads((out / "metrics.json").read_text()) if resume and (out / "metrics.json").exists() else {}
        self.rows, self.histories, self.fitted, self.outputs, self.handout = [], {}, {}, {}, ()
        self._opened = resume
        print(f"{lab}: backend {info['backend']} on {self.device}; run folder {out}" + (" (resumed)" if resume else ""), flush=True)

    @staticmethod
    def check_folder(out, resume=False):
        if out is None:
            return
        out = Path(out)
        if resume:
            if not (out / "config.json").is_file():
                raise LabError(f"--resume {out}: not a run folder (no config.json)")
        elif out.is_file() or (out.is_dir() and any(out.iterdir())):
            raise LabError(f"--out {out} already exists and is not empty; choose a new folder so no earlier run is overwritten")

    def open(self):
        """Make the folder and write config.json, once (the run's first file calls it); returns the folder."""
        if self._opened:
            return self.path
        self.check_folder(self.path)  # still new or empty
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LabError(f"cannot create the run folder {self.path}: {error.strerror}") from None
        self._opened = True
        self.write_json("config.json", self.config)
        return self.path

    # ------------------------------------------------------------ training
    def fit(self, name, build, train, val=None, *, epochs=None, batch_size=None, callbacks=(), verbose="auto",
            frozen_params=0, **fit_kwargs):
        """Train one variant: reseed, `build()` a compiled model, fit, time, log, back up, save.

        Args:
            name: the variant's name (its row; history_<slug>.csv and <slug>.keras, see `slug`).
            build: a function returning a compiled keras model.
            train: (x, y), x alone (a model with its own loss), or a dataset.
            val: (x, y) validated on at every epoch, or None.
            epochs, batch_size: the run's by default.
            frozen_params: parameters of a frozen part that runs outside the
                model (a backbone whose features were computed once), added
                to the total.

        Returns a Fitted. With --resume, a variant the interrupted run finished
        is loaded from its `.keras` file instead of trained again. Under
        --distribute, arrays are cut to a multiple of the devices (training.for_devices); under --quick, on
        jax and tensorflow, to whole batches (training.whole_batches: each step compiles once).
        """
        import keras

        from kcourse import parameters
        from kcourse.training import EpochTimer, cpu_epoch_seconds, for_devices, set_seed, whole_batches

        self.open()
        epochs, batch_size = epochs or self.epochs, batch_size or self.batch_size
        saved, history_file = self.file(f"{slug(name)}.keras"), self.file(f"history_{slug(name)}.csv")
        if self.resuming and saved.exists() and name in self.metrics:
            print(f"\n{name}: finished in the interrupted run; loaded from {saved}")
            figures = {k: v for k, v in self.metrics[name].items() if k in FIT_FIGURES}
            return self._keep(Fitted(name, keras.saving.load_model(saved), read_history(history_file), figures))

        set_seed(self.seed)  # the same initial weights and batches for every variant
        model = build()
        x, y = train if isinstance(train, tuple) else (train, None)
        if self.config.get("quick") and keras.backend.backend() != "torch":  # one compiled step, not two (a partial
            x, y, val = whole_batches(x, y, val, batch_size)  # last batch compiles again); torch compiles nothing
        x, y, val = for_devices(x, y, val)
        trainable = parameters.trainable(model)
        print(f"\n{name}: {trainable:,} trainable / {model.count_params() + frozen_params:,} parameters", flush=True)
        timer = EpochTimer()
        backup = keras.callbacks.BackupAndRestore(str(self.path / "backup" / slug(name)))
        logger = keras.callbacks.CSVLogger(str(history_file), append=self.resuming)
        try:
            model.fit(x, y, validation_data=val, epochs=epochs, batch_size=batch_size, verbose=verbose,
                      callbacks=[backup, timer, logger, *callbacks], **fit_kwargs)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted: the run folder keeps every finished epoch; continue with --resume {self.path}") from None
        model.save(saved)
        shutil.rmtree(self.path / "backup", ignore_errors=True)
        print(f"{name}: saved {saved}")

        samples = _num_samples(x) or timer.steps * batch_size
        figures = {
            "trainable params": trainable,
            "total params": model.count_params() + frozen_params,
            "s / epoch": timer.steady,
            "samples / s": samples / timer.steady,
            "device": self.device,
        }
        if self.device != "cpu:0" and y is not None:  # the course's "GPU speed-up": a few steps on the CPU
            figures["speed-up vs CPU"] = cpu_epoch_seconds(build, x, y, batch_size) / timer.steady
        self.save_metrics(**{name: figures})
        return self._keep(Fitted(name, model, read_history(history_file), figures))

    def loaded(self, name, model, source):
        """A variant given back to the lab as a saved model (not trained here): its Fitted, its source said."""
        from kcourse import parameters

        print(f"\n{name}: loaded from {source}, not trained here")
        figures = {"trainable params": parameters.trainable(model), "total params": model.count_params(),
                   "device": self.device, "loaded from": str(source)}
        return self._keep(Fitted(name, model, {}, figures))

    def _keep(self, fitted):
        self.fitted[fitted.name] = fitted
        if fitted.history:
            self.histories[fitted.name] = fitted.history
        return fitted

    def record(self, fitted, **results):
        """One row of the summary: the variant, its parameters, `results` (the lab's metrics), its speed."""
        figures = dict(fitted.figures)
        row = {
            "model": fitted.name,
            "trainable params": figures.pop("trainable params"),
            "total params": figures.pop("total params"),
            **results,
            **{key: value for key, value in figures.items() if key not in results},
        }
        self.rows.append(row)
        self.save_metrics(**{fitted.name: row})
        return row

    def finish(self, title, curves=("loss", "accuracy"), handout=()):
        """Learning curves, summary.csv, the summary table and the report; returns the run.

        `handout`: the lab's HANDOUT (kcourse.report.Item): report.html and
        report.md answer each item with this run's numbers; the last line
        printed names report.html (written again after --resume).
        """
        from kcourse import plots, report

        if self.histories:
            metrics = [m for m in curves if any(m in h for h in self.histories.values())]
            self.savefig(plots.learning_curves(self.histories, metrics), "learning_curves")
        if self.rows:
            self.save_table("summary", self.rows)
            table = [{k: _params(v) if k.endswith("params") and isinstance(v, int) else v for k, v in row.items()}
                     for row in self.rows]
            self.print_summary(title, table)
        else:
            self.open()
            console().print(f"run folder: {self.path}")
        self.handout = tuple(handout)
        self.note(title=title)
        self.report = report.write(self.snapshot(), self.handout, title)
        print(f"report: {self.report}", flush=True)
        return self

    def snapshot(self):
        """What the run holds, as a kcourse.report.Record (what its folder would give back)."""
        from kcourse import report

        return report.Record(self.path, dict(self.config), self.metrics, self.rows)

    def answers(self):
        """The handout's items this lab answers, each with this run's answer (None: not measured): what the report shows."""
        from kcourse import report

        return report.answers(self.snapshot(), self.handout)

    # ------------------------------------------------------------ files
    def file(self, name):
        """The path of `name` in the run folder (made with the first file)."""
        self.open()
        return self.path / name

    def note(self, **config):
        """Add entries to config.json (what was learnt after the start: the data used, the weights)."""
        self.config.update(config)
        if self._opened:
            saved = json.loads(self.file("config.json").read_text())
            saved.update(config)
            self.write_json("config.json", saved)

    def write_json(self, name, data):
        with open(self.file(name), "w") as f:
            json.dump(data, f, indent=2, default=_plain)

    def save_metrics(self, **metrics):
        """Add figures to metrics.json (rewritten at once, so an interrupted run keeps them)."""
        for key, value in metrics.items():
            if isinstance(value, dict) and isinstance(self.metrics.get(key), dict):
                self.metrics[key] = {**self.metrics[key], **value}
            else:
                self.metrics[key] = value
        self.write_json("metrics.json", self.metrics)

    def save_table(self, name, rows):
        """Write a list of dicts as `<name>.csv`; its columns are the union of the rows' keys, in order."""
        from kcourse import report

        columns = report.columns(rows)
        with open(self.file(f"{name}.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
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
        """Print rows (a list of dicts) as a table, blank where a row lacks a column, and where the run went."""
        from rich.table import Table

        from kcourse import report

        columns = report.columns(rows)
        table = Table(title=title)
        for key in columns:
            number = any(report.is_number(row.get(key)) for row in rows)
            table.add_column(key, justify="right" if number else "left")
        for row in rows:
            table.add_row(*(report.fmt(row.get(key, "")) for key in columns))
        out = console()
        out.print(table)
        out.print(f"run folder: {self.path}")


def load_model_file(path, option="--model-file", expected="a .keras file a lab saved"):
    """A `.keras` model given back to a lab; a missing or unreadable file is one LabError line."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise LabError(f"{option} {path}: no such file; expected {expected}")
    try:
        return keras.saving.load_model(path)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LabError(f"{option} {path}: not a readable Keras model ({first}); expected {expected}") from None


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


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)


def _params(n):
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n:,}"
