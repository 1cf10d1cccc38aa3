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
def _lectures(ns):
    import numpy as np

    rows = {row["model"]: row for row in ns["rows"]}
    assert rows["mlp"]["params (trainable)"] == 101_770 and rows["cnn"]["params (trainable)"] == 27_830
    assert rows["conv3x3"]["params (trainable)"] == 1_792 and rows["cnn"]["field (last conv)"] == 14
    assert rows["vgg16"]["params (trainable)"] == 138_357_544 and rows["vgg16"]["vs lecture"] == "agrees"
    assert rows["resnet18"]["params (trainable)"] == 11_689_512  # ~11.7 M, as PyTorch counts (no BN statistics)
    assert rows["resnet101"]["vs lecture"] == "off x9.99"  # the lecture's "445 M" is 44.5 M
    first = [row["parameters"] for row in ns["first"]]
    assert first == [536_871_424, 640, 150_529_000, 1_792]  # 500 M against ~1K; 150 M against 1,792
    assert {"zoo.csv", "first_layers.csv", "params_vs_flops.png"} <= {p.name for p in ns["run"].path.iterdir()}
    n, classes = len(ns["photos"].y_val), len(ns["names"])  # CLIP zero-shot: every photo scored against every class
    for result in ns["results"].values():
        assert result["scores"].shape == (n, classes) and np.allclose(result["scores"].sum(axis=1), 1.0)
        assert (result["y_pred"] == result["scores"].argmax(axis=1)).all()
def _backend_comparison(ns):
    rows, backend = ns["rows"], ns["BACKEND"]
    keras_row, native_row = (next(r for r in rows if r["candidate"] == c) for c in (f"kcourse {backend}", "native"))
    assert keras_row["params"] == native_row["params"] == 27_830  # the same CNN on both sides
    assert all(row["x native"] > 0 for row in rows) and native_row["x native"] == pytest.approx(1.0)
    assert {other for _, other in ns["differences"]} == {"jax", "torch", "tensorflow"} - {backend}
    assert max(ns["differences"].values()) < 1e-4, ns["differences"]  # one .keras file, the same logits everywhere
def _tp5_fcn_unet(ns):
    assert ns["difference"] < 1e-5 and ns["difference_bg"] < 1e-5  # the FCN gives the classifier's logits on 28x28
    assert ns["converted"](ns["canvas"][None]).shape == (1, 44, 69, 10)  # and a map of them on 200x300
    assert (ns["field"], ns["jump"], ns["centre"]) == (40, 4, 13.5) and ns["probe"]["field"] == (40, 40)
    assert [row["receptive field"] for row in ns["rows"]] == [1, 5, 6, 6, 14, 16, 16, 40, 40]
    assert all(f["placed digits"] == ns["DIGITS"] * ns["CANVASES"] for f in ns["figures"].values())
    # part II, the U-Net (one quick epoch: the structure and the targets, not the trained scores)
    assert ns["params"]["no-skip"] < ns["params"]["unet"]  # the same network less the concatenated skip channels
    targets = {row["supervision"]: row["target IoU"] for row in ns["supervision"]}
    assert list(targets) == ["full masks", "boxes", "image labels"] and targets["full masks"] == 1.0
    assert targets["image labels"] < targets["boxes"] < 1.0  # a filled box is a noisy mask; one CAM epoch, a poor one
    assert 10 < ns["psnr"]["PSNR noisy"] < 20  # noise 0.2 on grey levels in [0, 1]: about 14 dB


EXPECT = {
    "tp3_mnist": _tp3_mnist,
    "tp3_finetune": _tp3_finetune,
    "tp4_part1_word2vec_transformer": _tp4_part1_word2vec_transformer,
    "tp4_part2_vit": _tp4_part2_vit,
    "lectures": _lectures,
    "backend_comparison": _backend_comparison,
    "tp5_fcn_unet": _tp5_fcn_unet,
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
