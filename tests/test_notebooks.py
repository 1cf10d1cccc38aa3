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


def _tp3_finetune(ns):
    import numpy as np

    rows = {row["model"]: row for row in ns["run"].rows}
    # offline (as in the suite) there are no pretrained weights: fine-tuned would repeat scratch and is left out
    assert list(rows) == (["fine-tuned", "frozen", "scratch"] if ns["weights"] == "pretrained" else ["frozen", "scratch"])
    assert rows["frozen"]["trainable params"] == 1_026  # ResNet18 frozen: only the head, 512 x 2 + 2
    assert rows["scratch"]["trainable params"] == 11_177_538 and rows["scratch"]["total params"] == 11_187_138
    frozen = next(layer for layer in ns["models"]["frozen"].layers if isinstance(layer, type(ns["backbone"])))
    assert all(np.array_equal(a, b) for a, b in zip(frozen.get_weights(), ns["start"]))  # not a bit moved


def _tp4_part1_word2vec_transformer(ns):
    formulas = ns["formulas"]
    assert all(row["computed"] == row["keras count_params"] for row in formulas), formulas
    assert formulas[0]["computed"] == 4 * 64**2  # MultiHeadSelfAttention: 4 d_model^2, whatever the heads
    assert formulas[-1]["keras count_params"] == ns["clf"].count_params()  # the classifier trained in the notebook
    assert ns["accuracy"] >= ns["majority"] + 0.1, (ns["accuracy"], ns["majority"])  # it learns, beyond the commoner class


def _tp4_part2_vit(ns):
    info, backbone, rows = ns["info"], ns["backbone"], {row["model"]: row for row in ns["run"].rows}
    gh, gw = info["grid"]
    assert info["tokens"] == gh * gw + 1 and info["output_shape"] == (info["tokens"], info["hidden_dim"])  # (1+N, D)
    block = backbone.get_layer("vit_encoder").encoder_layers[0]
    assert ns["vit"].block_params(info["hidden_dim"], info["mlp_dim"]) == block.count_params()
    d, classes = info["hidden_dim"], len(ns["data"].class_names)
    for pool in ("cls", "mean"):  # the frozen stage trains the linear head alone: D x C + C
        assert rows[f"frozen-{pool}-linear"]["trainable params"] == d * classes + classes
        assert rows[f"frozen-{pool}-linear"]["total params"] == backbone.count_params() + d * classes + classes
    assert [row["augment"] for row in ns["ladder"]] == ns["LEVELS"]  # one model per level, in order
    assert ns["maps"]["rollout"].shape[1:] == (gh, gw) == ns["maps"]["occlusion"].shape[1:]  # one value per patch


EXPECT = {
    "tp3_mnist": _tp3_mnist,
    "tp3_finetune": _tp3_finetune,
    "tp4_part1_word2vec_transformer": _tp4_part1_word2vec_transformer,
    "tp4_part2_vit": _tp4_part2_vit,
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
