"""Every notebook runs top to bottom on the backend under test (offline: embedded data),
and its key numbers say what the lab teaches.

KCOURSE_QUICK=1 asks each notebook for its smoke-run sizes. A notebook runs its
lab through `run_lab`, as the command line does: SHARED names the lab runs
(`lab_run` in conftest, made once for the lab's own tests too) that its
`run_lab` calls get back instead of training again; conftest puts a notebook in
its lab's xdist group. EXPECT maps a notebook to a check of the names its cells
left behind; a new notebook adds its entries.
"""

import re
from pathlib import Path

import pytest

from tests.notebooks import run_notebook
from tests.test_mnist import QUICK as MNIST
from tests.test_vit import QUICK_RUN as VIT
from tests.test_zoo import LATENCY as ZOO_LATENCY
from tests.test_zoo import MODELS as ZOO_MODELS

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
TRANSFORMER = ("--quick", "--epochs", "3", "--models", "sinusoidal", "learned")  # on the word2vec run's vectors
ATTENTION = ("--quick", "--sentences", "1500", "--epochs", "3", "--d-model", "32", "--layers", "1", "--learning-rate", "3e-3",
             "--batch-size", "32")  # the attention lab: one block of width 32 learns the task in 3 epochs
LOOP = ("--quick", "--steps", "12")
BLOCKS = ("--quick", "--sentences", "300", "--d-model", "16", "--depths", "2", "--variants", "block", "no-residual")
SEQUENCES = ("--quick", "--tasks", "first-last", "bigram", "--models", "cnn", "dilated", "transformer")  # at length 16
W2V = ("--quick", "--epochs", "5", "--batch-size", "128", "--models", "skip-gram", "lr/10")  # the TP4 notebook's word2vec run


def shared_runs(name, lab_run):
    """[(lab, run)] that the notebook `name` calls `run_lab` with, in its quick options."""
    if name == "tp3_mnist":
        return [("mnist", lab_run("mnist", *MNIST))]
    if name == "tp3_finetune":
        return [("finetune", lab_run("finetune", "--quick", "--models", "fine-tuned", "frozen", "frozen-batch-stats", "scratch"))]
    if name == "tp4_part1_word2vec_transformer":
        w2v = lab_run("word2vec", *W2V)
        embeddings = str(w2v.run.file("embeddings.npz"))
        return [("word2vec", w2v), ("transformer", lab_run("transformer", *TRANSFORMER, "--embeddings", embeddings)),
                ("attention", lab_run("attention", *ATTENTION)), ("loop", lab_run("loop", *LOOP)),
                ("blocks", lab_run("blocks", *BLOCKS))]
    if name == "tp4_part2_vit":
        return [("vit", lab_run("vit", *VIT))]
    if name == "tp5_fcn_unet":
        return [("fcn", lab_run("fcn", "--quick")), ("unet", lab_run("unet", "--quick"))]
    if name == "lectures":
        return [("zoo", lab_run("zoo", "--models", *ZOO_MODELS, *ZOO_LATENCY)),
                ("clip", lab_run("clip", "--quick", "--preset", "tiny", "--dataset", "ants-bees")),
                ("sequences", lab_run("sequences", *SEQUENCES)), ("translation", lab_run("translation", "--quick")),
                ("convolution", lab_run("convolution", "--digits", "50")), ("degradation", lab_run("degradation", "--quick")),
                ("contrastive", lab_run("contrastive", "--quick"))]
    return []


def _tp3_mnist(ns):
    models = ns["models"]
    assert models["mlp"].count_params() == 101_770 and models["cnn"].count_params() == 27_830
    assert ns["accuracy"]["cnn"] > ns["accuracy"]["mlp"] > 0.7  # the quick run: the CNN passes the MLP
    assert len(ns["y_pred"]) == len(ns["data"].y_test)
    shift = ns["shift"]
    assert shift["cnn"][0] - shift["cnn"][4] < shift["mlp"][0] - shift["mlp"][4]  # moved digits: the CNN loses less


def _tp3_finetune(ns):
    import numpy as np

    rows = {row["model"]: row for row in ns["run"].rows}
    # offline (as in the suite) there are no pretrained weights: fine-tuned would repeat scratch and is left out
    assert list(rows) == (["fine-tuned", "frozen", "frozen-batch-stats", "scratch"] if ns["weights"] == "pretrained"
                          else ["frozen", "frozen-batch-stats", "scratch"])
    assert rows["frozen"]["BN statistics moved"] == 0.0 < rows["frozen-batch-stats"]["BN statistics moved"]
    assert rows["frozen"]["trainable params"] == 1_026  # ResNet18 frozen: only the head, 512 x 2 + 2
    assert rows["scratch"]["trainable params"] == 11_177_538 and rows["scratch"]["total params"] == 11_187_138
    assert ns["unchanged"] and all(np.array_equal(a, b) for a, b in zip(ns["frozen_backbone"].get_weights(), ns["run"].outputs["start"]))


def _tp4_part1_word2vec_transformer(ns):
    formulas = ns["formulas"]
    assert all(row["computed"] == row["keras count_params"] for row in formulas), formulas
    assert formulas[0]["computed"] == 4 * 64**2  # MultiHeadSelfAttention: 4 d_model^2, whatever the heads
    assert formulas[-1]["keras count_params"] == ns["clf"].count_params()  # the classifier trained in the notebook
    assert ns["accuracy"] >= ns["majority"] + 0.1, (ns["accuracy"], ns["majority"])  # it learns, beyond the commoner class
    assert ns["att_run"].metrics["heads"]["largest difference"] < 1e-5  # one sliced projection is N_h heads
    assert ns["loop_run"].metrics["hand vs fit"] < 1e-5  # the loop by hand is fit's
    assert set(ns["_reused"]) >= {"attention", "loop", "blocks"}


def _tp4_part2_vit(ns):
    info, backbone, rows = ns["info"], ns["backbone"], {row["model"]: row for row in ns["run"].rows}
    gh, gw = info["grid"]
    assert info["tokens"] == gh * gw + 1 and info["output_shape"] == (info["tokens"], info["hidden_dim"])  # (1+N, D)
    block = backbone.get_layer("vit_encoder").encoder_layers[0]
    assert ns["parameters"].vit_block(info["hidden_dim"], info["mlp_dim"]) == block.count_params()
    d, classes = info["hidden_dim"], len(ns["data"].class_names)
    for pool in ("cls", "mean"):  # the frozen stage trains the linear head alone: D x C + C
        assert rows[f"frozen-{pool}-linear"]["trainable params"] == d * classes + classes
        assert rows[f"frozen-{pool}-linear"]["total params"] == backbone.count_params() + d * classes + classes
    assert [row["augment"] for row in ns["ladder"]] == ns["levels"] == ["baseline", "light"]  # one model per level, in order
    assert ns["maps"]["rollout"].shape[1:] == (gh, gw) == ns["maps"]["occlusion"].shape[1:]  # one value per patch


def _lectures(ns):
    import numpy as np

    rows = ns["rows"]
    assert rows["mlp"]["params (trainable)"] == 101_770 and rows["cnn"]["params (trainable)"] == 27_830
    assert rows["conv3x3"]["params (trainable)"] == 1_792 and rows["cnn"]["field (last conv)"] == 14
    assert rows["vgg16"]["params (trainable)"] == 138_357_544 and rows["vgg16"]["vs lecture"] == "agrees"
    assert rows["resnet18"]["params (trainable)"] == 11_689_512  # ~11.7 M, as PyTorch counts (no BN statistics)
    assert rows["resnet101"]["vs lecture"] == "off x9.99"  # the lecture's "445 M" is 44.5 M
    first = [row["parameters"] for row in ns["first"]]
    assert first == [536_871_424, 640, 150_529_000, 1_792]  # 500 M against ~1K; 150 M against 1,792
    assert {"zoo.csv", "first_layers.csv", "params_vs_flops.png", "latency.csv"} <= {p.name for p in ns["run"].path.iterdir()}
    photos, scores = ns["photos"][ns["key"]], ns["scores"][ns["key"]]  # CLIP zero-shot: every photo scored against every class
    assert scores.shape == (len(photos.y_val), len(ns["prompts"][ns["key"]])) and np.allclose(scores.sum(axis=1), 1.0)
    toy = {(r["kind"], r["task"]): r["val accuracy"] for r in ns["seq_run"].rows}
    assert toy[("transformer", "first-last")] > 0.9 > 0.6 > toy[("cnn", "first-last")]  # the long-range toy
    assert ns["translation_run"].rows[0]["exact"] >= 0.8  # the encoder-decoder reads held-out sentences backwards
    assert ns["worst"] < 1e-5  # the hand convolution is Conv2D
    losses = {r["model"]: r["train loss"] for r in ns["deg_run"].rows}
    assert losses["plain-20"] > losses["plain-8"] and losses["plain-20"] > losses["residual-20"]  # degradation


def _backend_comparison(ns):
    rows, backend = ns["rows"], ns["BACKEND"]
    keras_row, native_row = (next(r for r in rows if r["candidate"] == c) for c in (f"kcourse {backend}", "native"))
    assert keras_row["params"] == native_row["params"] == 27_830  # the same CNN on both sides
    assert {other for _, other in ns["differences"]} == {"jax", "torch", "tensorflow"} - {backend}
    assert max(ns["differences"].values()) < 1e-4, ns["differences"]  # one .keras file, the same logits everywhere


def _tp5_fcn_unet(ns):
    assert ns["difference"] < 1e-5  # the FCN gives the classifier's logits on 28x28
    assert ns["converted"](ns["canvas"][None]).shape == (1, 44, 69, 10)  # and a map of them on 200x300
    assert (ns["field"], ns["jump"], ns["centre"]) == (40, 4, 13.5) and ns["probe"]["field"] == (40, 40)
    assert [row["receptive field"] for row in ns["field_rows"]][:9] == [1, 5, 6, 6, 14, 16, 16, 40, 40]
    assert all(f["placed digits"] == 6 * len(ns["canvases"]) for f in ns["figures"].values())
    # part II, the U-Net (one quick epoch: the structure and the targets, not the trained scores)
    assert ns["params"]["no-skip"] < ns["params"]["unet"]  # the same network less the concatenated skip channels
    targets = {row["supervision"]: row["target_mean_iou"] for row in ns["supervision"]}
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


@pytest.mark.offline
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_teaches(path, monkeypatch, tmp_path, lab_run):
    shared = shared_runs(path.stem, lab_run)  # before the notebook: the lab's run, as its own tests have it
    monkeypatch.chdir(tmp_path)  # whatever a notebook writes stays in tmp
    monkeypatch.setenv("KCOURSE_QUICK", "1")
    namespace = run_notebook(path, monkeypatch, shared)
    assert path.stem in EXPECT, f"add the key numbers of {path.name} to EXPECT"
    assert sorted(namespace["_reused"]) == sorted(lab for lab, _ in shared)  # the notebook runs its labs as the CLI does
    for name in ("answers", "answers2")[: len(shared)]:  # the report's answers, shown: each with the run's numbers
        said = [a["answer"] for a in namespace[name] if a["answer"] is not None]
        assert said and all(re.search(r"\d", answer) for answer in said), namespace[name]
    EXPECT[path.stem](namespace)
