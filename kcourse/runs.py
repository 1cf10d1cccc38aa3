"""One run, one folder: everything a student hands in lands there.

    runs/mnist-20261122-101500-jax/
        config.json      every hyper-parameter, the backend, devices, versions
        history.csv      per-epoch metrics (one CSV per model when a lab compares several)
        metrics.json     final figures
        *.png            figures
"""

import csv
import json
import sys
import time
from pathlib import Path

from kcourse.cli import LabError


class Run:
    """The run folder of one lab invocation.

    Args:
        lab: the lab's name, used in the default folder name.
        config: the hyper-parameters (argparse Namespace or dict), saved to config.json.
        out: the folder; by default `runs/<lab>-<time>-<backend>`. An existing
            non-empty folder is refused, so that no earlier run is overwritten.
    """

    def __init__(self, lab, config, out=None):
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
        if out.is_file() or (out.is_dir() and any(out.iterdir())):
            raise LabError(f"--out {out} already exists and is not empty; choose a new folder so no earlier run is overwritten")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LabError(f"cannot create the run folder {out}: {error.strerror}") from None
        self.lab, self.path, self.metrics = lab, out, {}
        self.write_json("config.json", {"lab": lab, **config, **info})

    def file(self, name):
        return self.path / name

    def write_json(self, name, data):
        with open(self.file(name), "w") as f:
            json.dump(data, f, indent=2, default=str)

    def csv_logger(self, name="history"):
        """A keras callback writing `<name>.csv`, one row per epoch."""
        import keras

        return keras.callbacks.CSVLogger(str(self.file(f"{name}.csv")))

    def save_metrics(self, **metrics):
        """Add figures to metrics.json (rewritten at once, so an interrupted run keeps them)."""
        self.metrics.update(metrics)
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


def console():
    """A rich Console; piped to a file or a log, wide enough that table headers are not cut."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
