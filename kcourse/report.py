"""The page a student hands in: the run, its table, its figures and the handout's questions, answered with its numbers.

    report.write(run, lab.HANDOUT)             # run.finish does it: report.html (self-contained) and report.md
    python -m kcourse report RUN_DIR           # the same page again, from the run folder alone
    python -m kcourse report RUN_A RUN_B ...   # one lab on several backends side by side, differences marked

A lab declares the handout items it answers (`HANDOUT`, a tuple of `Item`),
tagged as shared/HANDOUT_AUDIT.md numbers them (`001:15`: seed 001, item
15), each with the question as the handout words it and a function that
turns the run's own figures (a `Record`) into the answer. The page only
renders what these functions return: no number is ever typed into prose.
Rendered with Jinja2 (kcourse/templates/): report.html embeds its figures
(readable offline, printable to PDF), report.md links them.
"""

import base64
import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Item:
    """One handout item a lab answers.

    Args:
        tag: the item's tag, "001:15" (seed, colon, item of shared/HANDOUT_AUDIT.md).
        question: the question as the handout words it (French).
        english: the same in one English line.
        answer: a function of the run's `Record` returning the answer, a
            sentence built from the run's own numbers, or None when this run
            did not measure it (its variant was not trained).
        measured_by: the function that measures it ("kcourse.tasks.mnist.evaluate").
        needs: what measures it when a run did not (the option to give).
    """

    tag: str
    question: str
    english: str
    answer: object
    measured_by: str
    needs: str = ""


@dataclass
class Record:
    """What a run folder holds, read back: config.json, metrics.json, summary.csv's rows (numbers as numbers), figures."""

    path: Path
    config: dict
    metrics: dict
    rows: list = field(default_factory=list)

    @classmethod
    def read(cls, folder):
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            from kcourse.errors import LabError

            raise LabError(f"{folder}: not a run folder (no config.json); give the folder a lab's run printed")
        config = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
        rows = []
        if (folder / "summary.csv").is_file():
            with open(folder / "summary.csv", newline="") as f:
                rows = [{key: number(value) for key, value in row.items()} for row in csv.DictReader(f)]
        return cls(folder, config, metrics, rows)

    @property
    def lab(self):
        return self.config.get("lab", "")

    @property
    def backend(self):
        return self.config.get("backend", "")

    def row(self, model):
        """The summary row of `model`, or None when the run did not train it."""
        return next((row for row in self.rows if row.get("model") == model), None)

    def value(self, model, column):
        """One figure of the summary (None when the model or the column is absent)."""
        row = self.row(model)
        value = None if row is None else row.get(column)
        return None if value == "" else value

    def figures(self):
        """The run's PNG figures: the learning curves first, then the lab's in the order it wrote them."""
        return sorted(self.path.glob("*.png"), key=lambda p: (p.stem != "learning_curves", p.stat().st_mtime, p.name))


def number(text):
    """A CSV cell as a number where it is one."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def plural(n, word):
    """'1 epoch', '5 epochs': a count and its noun, for the answers' sentences."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def answers(record, items):
    """[{tag, question, english, answer, measured_by, needs}] for the lab's items, in tag order: answer None when not measured."""
    out = []
    for item in sorted(items, key=lambda item: tuple(int(part) for part in item.tag.split(":"))):  # 000:2 before 001:1
        try:
            sentence = item.answer(record)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):  # a figure this run does not hold
            sentence = None
        out.append(dict(tag=item.tag, question=item.question, english=item.english, answer=sentence,
                        measured_by=item.measured_by, needs=item.needs))
    return out


# ---------------------------------------------------------------- formatting, shared with the printed summary
def fmt(value):
    """A figure as the tables show it: 4 significant digits, thousands separated, params in M past 100,000."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def columns(rows):
    """The union of the rows' keys, in order of appearance."""
    return list(dict.fromkeys(key for row in rows for key in row))


# ---------------------------------------------------------------- one run
def page(record, items, title=None):
    """The context the templates render for one run."""
    config = record.config
    figures = [{"name": p.stem, "file": p.name, "data": base64.b64encode(p.read_bytes()).decode("ascii")} for p in record.figures()]
    keys = columns(record.rows)
    return dict(
        title=title or config.get("title") or record.lab,
        lab=record.lab,
        command=config.get("command", ""),
        facts=[("backend", config.get("backend")), ("devices", ", ".join(config.get("devices", []))),
               ("versions", ", ".join(f"{k} {v}" for k, v in (config.get("versions") or {}).items() if v)),
               ("seed", config.get("seed")), ("data", _text(config.get("data_used"))), ("weights", _text(config.get("weights"))),
               ("written", time.strftime("%Y-%m-%d %H:%M"))],
        columns=keys,
        numeric={key: any(is_number(row.get(key)) for row in record.rows) for key in keys},
        rows=[[fmt(row.get(key)) for key in keys] for row in record.rows],
        figures=figures,
        answers=answers(record, items),
    )


def write(record, items, title=None):
    """report.html and report.md in the run folder; returns the path of report.html."""
    context = page(record, items, title)
    html, md = _render("report.html.j2", context), _render("report.md.j2", context)
    (record.path / "report.md").write_text(md)
    path = record.path / "report.html"
    path.write_text(html)
    return path


# ---------------------------------------------------------------- several runs of one lab
def comparison(records, items, tolerances=None):
    """The context for one lab on several runs (backends): each model's figures side by side, and each answer.

    `tolerances`: {column: largest difference between runs that is not
    flagged}; without one, a difference beyond 1% of the larger value is.
    """
    labs = {r.lab for r in records}
    if len(labs) != 1:
        from kcourse.errors import LabError

        raise LabError(f"these runs are of different labs ({', '.join(sorted(labs))}); compare runs of one lab")
    tolerances = tolerances or {}
    models = list(dict.fromkeys(row["model"] for r in records for row in r.rows))
    keys = [k for k in columns([row for r in records for row in r.rows]) if k != "model"]
    tables = []
    for model in models:
        lines = []
        for key in keys:
            values = [r.value(model, key) for r in records]
            numbers = [v for v in values if is_number(v)]
            spread = max(numbers) - min(numbers) if len(numbers) > 1 else 0.0
            allowed = tolerances.get(key, 0.01 * max((abs(v) for v in numbers), default=0.0))
            lines.append(dict(key=key, cells=[fmt(v) for v in values], differs=len(numbers) > 1 and spread > allowed,
                              spread=fmt(spread) if len(numbers) > 1 else ""))
        tables.append(dict(model=model, lines=lines))
    per_run = [answers(r, items) for r in records]
    questions = [dict(item, answers=[run[i]["answer"] for run in per_run]) for i, item in enumerate(per_run[0])]
    return dict(lab=records[0].lab, runs=[dict(name=r.path.name, backend=r.backend) for r in records],
                tables=tables, questions=questions, tolerances=tolerances)


def write_comparison(records, items, out, tolerances=None):
    """comparison.html and comparison.md in `out`; returns the path of comparison.html."""
    context = comparison(records, items, tolerances)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(_render("comparison.md.j2", context))
    path = out / "comparison.html"
    path.write_text(_render("comparison.html.j2", context))
    return path


def _render(name, context):
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html.j2"]),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template(name).render(**context)


def _text(value):
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return "" if value is None else str(value)
