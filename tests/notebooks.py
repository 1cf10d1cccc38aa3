"""Running a notebook in the test suite: its code cells in one namespace, its lab's run shared with the lab's tests.

A notebook calls its lab's `run_lab(build_parser().parse_args(...))`, as the
command line does. Under the suite, the run that the lab's own tests made with
the same options (`lab_run` in conftest) is handed back instead of training it
again; options that differ from every shared run train as asked.
"""

import importlib
import json

import matplotlib.pyplot as plt

IGNORED = {"out", "resume", "backend", "command"}  # where a run goes and how it was typed, not what it computes


def same_options(a, b):
    return {k: v for k, v in vars(a).items() if k not in IGNORED} == {k: v for k, v in vars(b).items() if k not in IGNORED}


def run_notebook(path, monkeypatch, shared=()):
    """Execute the code cells in one namespace, as Jupyter would; return the namespace.

    `shared`: [(lab, run namespace from lab_run)]: a `run_lab(args)` of that lab
    with the shared run's options returns it. The namespace gets
    `_reused`: the labs whose run was shared.
    """
    namespace = {"__name__": "__notebook__", "_reused": []}
    for lab, made in shared:
        module = importlib.import_module(f"kcourse.tasks.{lab}")
        real, expected = module.run_lab, module.build_parser().parse_args(list(made.argv))

        def reuse(args, real=real, expected=expected, made=made, lab=lab):
            if same_options(args, expected):
                namespace["_reused"].append(lab)
                return made.run
            return real(args)

        monkeypatch.setattr(module, "run_lab", reuse)
    cells = json.loads(path.read_text())["cells"]
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        assert not cell.get("outputs"), f"{path.name}: outputs are stripped in the repository"
        source = "".join(cell["source"])
        assert not source.lstrip().startswith(("!", "%")), "shell and magic lines don't run on every backend"
        exec(compile(source, f"{path.name}, code cell {i}", "exec"), namespace)
        plt.close("all")
    return namespace
