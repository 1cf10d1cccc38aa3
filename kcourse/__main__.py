"""`python -m kcourse`: the labs, the backend, the devices it sees, the versions."""

import ast
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


def main(argv=None):
    args = cli.lab_parser(__doc__, epochs=0, batch_size=0).parse_known_args(argv)[0]
    print("kcourse labs (python -m kcourse.tasks.<lab> --help for options):")
    for name, title in sorted(labs().items()):
        print(f"  {name:<12} {title}")
    backend = cli.use_backend(args.backend)
    print(f"\nbackend: {backend}  (choose with KERAS_BACKEND=jax|torch|tensorflow or --backend)")
    print(f"devices: {', '.join(system.devices())}")
    print("versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in system.versions().items()))
    print(f"python: {sys.version.split()[0]} ({sys.executable})")


if __name__ == "__main__":
    cli.run(main)
