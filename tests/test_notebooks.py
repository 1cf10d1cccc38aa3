"""Every notebook runs top to bottom on the backend under test (offline: embedded data).

KCOURSE_QUICK=1 asks each notebook for its smoke-run sizes (fewer sentences, one epoch).
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.offline
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # whatever a notebook writes stays in tmp
    monkeypatch.setenv("KCOURSE_QUICK", "1")
    cells = json.loads(path.read_text())["cells"]
    namespace = {"__name__": "__notebook__"}
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        assert not source.lstrip().startswith(("!", "%")), "shell and magic lines don't run on every backend"
        exec(compile(source, f"{path.name}, code cell {i}", "exec"), namespace)
        plt.close("all")
