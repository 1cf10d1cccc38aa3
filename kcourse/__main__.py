"""`python -m kcourse`: the labs, the backend, the devices it sees, the versions.

    python -m kcourse                  # this overview
    python -m kcourse mnist --quick    # the same as python -m kcourse.tasks.mnist --quick
    python -m kcourse report RUN_DIR   # a run's report.html and report.md, written again from its folder
    python -m kcourse report RUN_A RUN_B RUN_C --out DIR   # one lab's runs side by side (comparison.html)
"""

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import kcourse.tasks
from kcourse import cli, system


def labs():
    """{lab name: first line of its docstring}, read from the source without importing it."""
    found = {}
    for module in pkgutil.iter_modules(kcourse.tasks.__path__):
        source = Path(kcourse.tasks.__path__[0], f"{module.name}.py").read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        found[module.name] = doc.strip().split("\n")[0]
    return found


def overview(argv):
    parser = cli.LabParser(prog="python -m kcourse", description=__doc__.strip().split("\n")[0])
    parser.add_argument("--backend", help=f"Keras backend (default: $KERAS_BACKEND, else {cli.DEFAULT_BACKEND})")
    args, _ = parser.parse_known_args(argv)
    print("kcourse labs (python -m kcourse.tasks.<lab> --help for options):")
    for name, title in sorted(labs().items()):
        print(f"  {name:<12} {title}")
    backend = cli.use_backend(args.backend)
    print(f"\nbackend: {backend}  (choose with KERAS_BACKEND=jax|torch|tensorflow or --backend)")
    print(f"devices: {', '.join(system.devices())}")
    print("versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in system.versions().items()))
    print(f"python: {sys.version.split()[0]} ({sys.executable})")


def report_main(argv):
    """`python -m kcourse report RUN_DIR [RUN_DIR ...] [--out DIR]`: one run's page again, or several side by side."""
    from kcourse import report

    parser = cli.LabParser(prog="python -m kcourse report", description="A run's page, or one lab's runs side by side.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, help="where the comparison of several runs goes (default: runs/compare-<lab>-<time>)")
    args = parser.parse_args(argv)
    records = [report.Record.read(folder) for folder in args.runs]
    lab = importlib.import_module(f"kcourse.tasks.{records[0].lab}")
    if len(records) == 1:
        path = report.write(records[0], getattr(lab, "HANDOUT", ()), records[0].config.get("title"))
    else:
        import time

        out = args.out or Path("runs") / f"compare-{records[0].lab}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = report.write_comparison(records, getattr(lab, "HANDOUT", ()), out, getattr(lab, "PARITY", None))
    print(f"report: {path}")
    return path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-"):
        return overview(argv)
    if argv[0] == "report":
        return report_main(argv[1:])
    name, rest = argv[0], argv[1:]
    if name not in labs():
        raise cli.LabError(f"no lab named {name!r}: choose one of {', '.join(sorted(labs()))}")
    return importlib.import_module(f"kcourse.tasks.{name}").main(rest)


if __name__ == "__main__":
    cli.run(main)
