"""Every notebook runs top to bottom on the backend under test (offline: embedded data),
and its key numbers say what the lab teaches.

KCOURSE_QUICK=1 asks each notebook for its smoke-run sizes (fewer sentences,
one epoch). EXPECT maps a notebook to a check of the names its cells left
behind; a new notebook adds its entry.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def _tp3_mnist(ns):
    assert ns["models"]["mlp"].count_params() == 101_770 and ns["models"]["cnn"].count_params() == 27_830
    assert ns["accuracy"]["mlp"] > 0.3 and ns["accuracy"]["cnn"] > 0.2  # one quick epoch: both above chance (0.1)


EXPECT = {
    "tp3_mnist": _tp3_mnist,
}


def run_notebook(path):
    """Execute the code cells in one namespace, as Jupyter would; return the namespace."""
    cells = json.loads(path.read_text())["cells"]
    namespace = {"__name__": "__notebook__"}
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        assert not cell.get("outputs"), f"{path.name}: outputs are stripped in the repository"
        source = "".join(cell["source"])
        assert not source.lstrip().startswith(("!", "%")), "shell and magic lines don't run on every backend"
        exec(compile(source, f"{path.name}, code cell {i}", "exec"), namespace)
        plt.close("all")
    return namespace


@pytest.mark.offline
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_teaches(path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # whatever a notebook writes stays in tmp
    monkeypatch.setenv("KCOURSE_QUICK", "1")
    namespace = run_notebook(path)
    assert path.stem in EXPECT, f"add the key numbers of {path.name} to EXPECT"
    EXPECT[path.stem](namespace)
