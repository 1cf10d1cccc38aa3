"""The course's results on every backend: every lab run on jax, torch and tensorflow, written to RESULTS.md.

    python -m kcourse.results                    # every lab, the three backends (make results); RESULTS.md, docs/results/
    python -m kcourse.results --labs vit mnist   # these labs again; the other sections are kept, with their dates
    python -m kcourse.results --labs parity      # the strict check alone (kcourse.parity)

Each lab runs at its defaults, or at the class size it states (`CLASS_SIZE`,
its options where the defaults would take more than about five minutes a
backend on a 2-core CPU), with the same seed on each backend, one process
each. Its section gives the data and weights it ran on, its figures per
backend, seconds per epoch, and a parity column: the largest difference
between backends against the tolerance the lab states (`PARITY`); a
difference beyond it is shown as such. Then the handout's questions with each
backend's answer, and one figure (docs/results/). The numbers come from the
runs, never typed.
"""

import argparse
import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from kcourse import report

LABS = ("mnist", "finetune", "word2vec", "attention", "loop", "transformer", "blocks", "sequences", "translation", "vit", "fcn", "unet", "convolution", "degradation", "zoo", "clip", "contrastive")
BACKENDS = ("jax", "torch", "tensorflow")
ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "RESULTS.md"
FIGURES = ROOT / "docs" / "results"
BEGIN, END = "<!-- results: {} begin -->", "<!-- results: {} end -->"


def lab_options(lab):
    """The options a lab runs with here: its CLASS_SIZE, or its defaults."""
    return list(getattr(importlib.import_module(f"kcourse.tasks.{lab}"), "CLASS_SIZE", ()))


def run_lab(lab, backend, out, seed=0, timeout=3600):
    """One lab on one backend, in its own process (the backend is fixed at the first `import keras`): its run folder."""
    folder = Path(out) / f"{lab}-{backend}"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    argv = [sys.executable, "-m", f"kcourse.tasks.{lab}", *lab_options(lab), "--seed", str(seed), "--out", str(folder)]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, "KERAS_BACKEND": backend})
    (Path(out) / f"{lab}-{backend}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"{lab} on {backend} failed (see {out}/{lab}-{backend}.log): {done.stderr.strip().splitlines()[-1:]}")
    print(f"{lab} on {backend}: {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def parity(records, tolerances):
    """{(model, column): (largest difference between the runs, the tolerance, within)} for the lab's key figures."""
    out = {}
    models = list(dict.fromkeys(row["model"] for r in records for row in r.rows))
    for model in models:
        for column, tolerance in tolerances.items():
            values = [r.value(model, column) for r in records]
            values = [v for v in values if report.is_number(v)]
            if len(values) > 1:
                spread = max(values) - min(values)
                out[(model, column)] = (spread, tolerance, spread <= tolerance)
    return out


def section(lab, records, figure=None):
    """The lab's section of RESULTS.md, in Markdown: everything in it read from the runs."""
    module = importlib.import_module(f"kcourse.tasks.{lab}")
    tolerances = getattr(module, "PARITY", {})
    first = records[0]
    backends = [r.backend for r in records]
    data = report._text(first.config.get("data_used")) or "generated in the lab"
    weights = first.config.get("weights")
    command = " ".join(["python -m kcourse.tasks." + lab, *lab_options(lab)])
    logs = [r.path.parent / f"{r.path.name}.log" for r in records]
    lines = [BEGIN.format(lab), f"## {lab}", "", module.__doc__.strip().splitlines()[0], "", f"`{command}`", "",
             f"Refreshed {time.strftime('%Y-%m-%d')} on {', '.join(backends)}; data: {data}"
             + (f"; weights: {weights}" if weights else ""), ""]
    if any(log.is_file() and "offline:" in log.read_text() for log in logs):
        lines += ["Offline: the runs used the embedded stand-ins and random or tiny weights (each run said so in one line); "
                  "an answer that needs the real data or pretrained weights is refreshed where they can be downloaded.", ""]
    checks = parity(records, tolerances)
    models = list(dict.fromkeys(row["model"] for r in records for row in r.rows))
    columns = [c for c in (*tolerances, "s / epoch") if any(r.value(m, c) is not None for m in models for r in records)]
    header = ["model", *[f"{c} ({b})" for c in columns for b in backends], "parity: largest difference, tolerance"]
    lines += ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
    for model in models:
        cells = [report.fmt(r.value(model, c)) for c in columns for r in records]
        verdicts = [f"{c}: {report.fmt(spread)} {'within' if ok else '**beyond**'} {report.fmt(tol)}"
                    for (m, c), (spread, tol, ok) in checks.items() if m == model]
        lines.append("| " + " | ".join(map(_cell, [model, *cells, "; ".join(verdicts) or "-"])) + " |")
    lines.append("")
    per_backend = [report.answers(r, getattr(module, "HANDOUT", ())) for r in records]
    if per_backend and per_backend[0]:
        lines += ["| item | question | this lab's answer, from the runs |", "|---|---|---|"]
        for i, item in enumerate(per_backend[0]):
            said = [run[i]["answer"] for run in per_backend]
            if len(set(said)) == 1:  # the same sentence, to the digit, on every backend
                answer = _cell(said[0]) + (" (every backend)" if said[0] is not None else f": run with `{item['needs']}`")
            else:
                answer = "<br>".join(f"{b}: {_cell(a)}" for b, a in zip(backends, said))
            lines.append(f"| {item['tag']} | {_cell(item['english'])} | {answer} |")
        lines.append("")
    if figure is not None:
        lines += [f"![{lab}]({figure.relative_to(ROOT)})", ""]
    lines.append(END.format(lab))
    return "\n".join(lines)


def parity_section(result, figure=None):
    """The strict check's section: where the backends' loss curves agree, where they part, and why (kcourse.parity)."""
    from kcourse import parity

    lines = [BEGIN.format("parity"), "## The strict check: one initial model, the same batches, every backend", "",
             "`python -m kcourse.parity` (kcourse/parity.py): the mnist CNN with dropout off, saved once as a `.keras` "
             f"file, trained {result['steps']} SGD steps of {result['batch size']} embedded digits on each backend, in the "
             "same order.", "", f"Refreshed {time.strftime('%Y-%m-%d')}: {parity.sentence(result)}", ""]
    if figure is not None:
        lines += [f"![parity]({figure.relative_to(ROOT)})", ""]
    lines.append(END.format("parity"))
    return "\n".join(lines)


def thumbnail(source, name, width=720):
    """A small copy of a run's figure in docs/results/, for RESULTS.md."""
    from PIL import Image

    FIGURES.mkdir(parents=True, exist_ok=True)
    target = FIGURES / f"{name}.png"
    with Image.open(source) as image:
        image.thumbnail((width, width * 4))
        image.save(target, optimize=True)
    return target


def _cell(text):
    return "not measured" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def update(sections):
    """RESULTS.md with these sections replaced (or added, in the order of LABS), every other one kept as it was."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else HEADER
    for name, body in sections.items():
        pattern = re.compile(re.escape(BEGIN.format(name)) + ".*?" + re.escape(END.format(name)), re.S)
        text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
    RESULTS_MD.write_text(text)


HEADER = """# The course's results, on every backend

Every lab of kcourse run on jax, torch and tensorflow with the same seed, by
`make results` (`python -m kcourse.results`); one lab alone with
`python -m kcourse.results --labs <lab>`. Each section says when it was
refreshed, on what data and weights, and how far the backends differ on the
lab's key figures against the tolerance the lab states. Nothing here is typed
by hand: the tables and the answers come from the runs (kcourse/results.py).
"""


def key_figure(lab, folder):
    """The figure RESULTS.md shows for a lab: the first of its own that exists (learning curves otherwise)."""
    module = importlib.import_module(f"kcourse.tasks.{lab}")
    for name in (*getattr(module, "KEY_FIGURES", ()), "learning_curves"):
        if (folder / f"{name}.png").is_file():
            return folder / f"{name}.png"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kcourse.results", description=__doc__.strip().split("\n")[0])
    parser.add_argument("--labs", nargs="+", default=[*LABS, "parity"], choices=[*LABS, "parity"])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--out", type=Path, default=Path("runs/results"), help="where the runs go (default: %(default)s)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sections = {}
    for lab in args.labs:
        if lab == "parity":
            from kcourse import parity as strict

            result = strict.run(args.backends, folder=args.out / "parity")
            fig = args.out / "parity" / "parity.png"
            strict.figure(result).savefig(fig, dpi=100, bbox_inches="tight")
            sections["parity"] = parity_section(result, thumbnail(fig, "parity"))
            continue
        folders = [run_lab(lab, backend, args.out) for backend in args.backends]
        records = [report.Record.read(folder) for folder in folders]
        source = key_figure(lab, folders[0])
        sections[lab] = section(lab, records, thumbnail(source, lab) if source else None)
        update({lab: sections[lab]})  # written lab by lab: an interrupted refresh keeps what it finished
    update(sections)
    print(f"RESULTS.md: {', '.join(sections)} refreshed ({RESULTS_MD})")


if __name__ == "__main__":
    main()
