"""Lectures 003-004: the zoo's counts are the published ones, its FLOPs and fields are computed right."""

import contextlib
import csv
import io
import json

import keras
import numpy as np
import pytest

from kcourse import flops, parameters, receptive_field
from kcourse.tasks import zoo


def last_conv_row(model):
    """The FCN lab's computation, read directly: the last convolution's row of receptive_fields()."""
    return [row for row in receptive_field.receptive_fields(model) if row["type"] == "Conv2D"][-1]


# ---------------------------------------------------------------- the lab, and the course's small models
MODELS = ["mlp", "cnn", "conv3x3", "vgg16", "resnet18", "resnet101", "vit_b16", "transformer"]  # the lectures notebook's
LATENCY = ["--latency", "resnet18", "vit_b16", "--latency-size", "32"]  # run, each in a fresh process: ~30 s


@pytest.fixture(scope="module")
def quick_run(lab_run):
    """The lectures notebook's zoo: the course's models, one convolution, VGG16, two ResNets and ViT-B/16 (shapes
    only: seconds), then ResNet-18 and ViT-B/16 run at 32 px."""
    made = lab_run("zoo", "--models", *MODELS, *LATENCY)
    return made.run, made.stdout


@pytest.fixture(scope="module")
def rows(quick_run):
    run, _ = quick_run
    return {name: run.metrics[name] for name in MODELS}


def test_course_models_have_the_course_counts(rows):
    assert rows["mlp"]["params (trainable)"] == rows["mlp"]["count_params()"] == 101_770
    assert rows["cnn"]["params (trainable)"] == rows["cnn"]["count_params()"] == 27_830
    assert rows["conv3x3"]["params (trainable)"] == 1_792 == zoo.conv_parameters(3, 3, 64)  # k k C_in C_out + C_out
    assert rows["mlp"]["vs lecture"] == rows["conv3x3"]["vs lecture"] == "agrees"
    assert round(rows["mlp"]["GMACs"] * 1e9) == 101_632  # 784 x 128 + 128 x 10 multiply-adds, by hand
    assert round(rows["mlp"]["GFLOPs"] * 1e9) == 203_264  # two FLOPs each
    assert rows["mlp"]["MiB (float32)"] == pytest.approx(0.3882, abs=1e-4)  # 407,080 bytes


def test_receptive_fields_are_the_fcn_labs(rows):
    assert rows["mlp"]["field (last conv)"] is None  # no convolution: the MLP flattens the image first
    assert rows["conv3x3"]["field (last conv)"] == 3
    # the CNN: conv 5x5 sees 5 pixels, the 2x2 pooling 6 with a jump of 2, the second conv 5x5 6 + 4 x 2 = 14
    with zoo.shapes_only():
        cnn = zoo.build_model("cnn")
    assert rows["cnn"]["field (last conv)"] == 14 == last_conv_row(cnn)["receptive field"]
    keras.backend.clear_session()


def test_tiny_transformer_count_is_the_tp4_formula(rows):
    row = rows["transformer"]
    assert row["params (trainable)"] == row["count_params()"] == row["reference"]  # the transformer lab's formula
    d, L, layers = 64, 32, 2  # the TP4 sizes, mlp_ratio 2
    by_hand = layers * (4 * L * d * d + 2 * L * L * d + 2 * L * d * 2 * d) + d * 2  # blocks + head on [CLS]
    assert round(row["GMACs"] * 1e9) == by_hand and row["field (last conv)"] is None


def test_tp4_sizes_are_the_transformer_labs_defaults():
    import inspect

    from kcourse.models.sentences import build_classifier

    defaults = inspect.signature(build_classifier).parameters
    assert {key: defaults[key].default for key in zoo.TP4} == zoo.TP4


# ---------------------------------------------------------------- FLOPs, by hand
def test_flops_of_a_tiny_net_by_hand():
    with zoo.shapes_only():
        model = keras.Sequential([
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),  # (6, 6, 4): 3 x 3 x 3 x 4 weights at 36 pixels
            keras.layers.BatchNormalization(),  # folded into the conv: no MACs
            keras.layers.MaxPooling2D(2),  # (3, 3, 4)
            keras.layers.DepthwiseConv2D(3, padding="same"),  # (3, 3, 4): 3 x 3 x 4 at 9 pixels
            keras.layers.Conv2D(6, 1, groups=2),  # (3, 3, 6): 1 x 1 x 2 x 6 at 9 pixels
            keras.layers.Flatten(),  # 54
            keras.layers.Dense(5),  # 54 x 5
        ])
    assert flops.count_macs(model) == 3 * 3 * 3 * 4 * 36 + 3 * 3 * 4 * 9 + 2 * 6 * 9 + 54 * 5


def test_dense_on_tokens_counts_every_position():
    model = keras.Sequential([keras.Input((7, 16)), keras.layers.Dense(8)])
    assert flops.count_macs(model) == 7 * 16 * 8


def test_macs_counted_from_a_run_equal_the_graphs_and_a_unet_by_hand():
    """flops.count_macs_run: the shapes each innermost layer sees on one sample, for models outside a graph."""
    from kcourse.models.unet import UNet
    from kcourse.tasks import mnist

    cnn = mnist.build_model("cnn")
    assert flops.count_macs_run(cnn, np.zeros((2, 28, 28, 1), "float32")) == flops.count_macs(cnn) == 711_000
    unet = UNet(3, depth=1, base_filters=4)  # 8x8x1: stem 4, down to 4x4 at 8, up (2x2 transposed) to 8x8 at 4, head 3
    assert flops.count_macs_run(unet, np.zeros((2, 8, 8, 1), "float32")) == (
        (9 * 1 * 4 + 9 * 4 * 4) * 64  # the stem's two 3x3 convolutions at 8x8
        + (9 * 4 * 8 + 9 * 8 * 8) * 16  # the down block's, after the pooling, at 4x4
        + 2 * 2 * 8 * 4 * 16  # the transposed convolution: its kernel at each of the 4x4 input pixels
        + (9 * 8 * 4 + 9 * 4 * 4) * 64  # the up block's on the concatenation (4 up + 4 skip channels)
        + 4 * 3 * 64)  # the 1x1 head
    assert not hasattr(unet.stem.conv1, "call") or "watched" not in unet.stem.conv1.call.__name__  # unwatched after


def test_encoder_macs_by_hand():
    # L = 3 tokens of d = 2, MLP width 4: Q K V O 4 x 3 x 2 x 2, QK^T and AV 2 x 3 x 3 x 2, MLP 2 x 3 x 2 x 4
    assert flops.encoder_macs(3, 2, 4, n_layers=2) == 2 * (48 + 36 + 48)


def test_a_layer_without_a_rule_is_refused_not_skipped():
    with zoo.shapes_only():
        x = keras.Input((5, 8))
        model = keras.Model(x, keras.layers.MultiHeadAttention(2, 4)(x, x))
    with pytest.raises(ValueError, match="no FLOP rule for layer"):
        flops.count_macs(model)


# ---------------------------------------------------------------- VGG16 and ResNet-18, built
def test_vgg16_is_138_357_544_and_the_config_table_agrees():
    row = zoo.count("vgg16")  # keras.applications.VGG16(weights=None)
    assert row["params (trainable)"] == row["count_params()"] == 138_357_544 == row["reference"]
    assert row["vs lecture"] == "agrees"  # "138M"
    assert row["GMACs"] == pytest.approx(15.47, rel=0.01)  # torchvision's "15.47 GFLOPS", multiply-adds
    assert row["GFLOPs"] == pytest.approx(30.9, rel=0.01)
    # the paper's configuration D gives the library's convolutions, layer by layer (built without the
    # 4096-wide head, which is 90% of the weights and of the building time), and the head's formula the rest
    with zoo.shapes_only():
        from_table = zoo.build_vgg_from_config(16, include_top=False)
        library = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    kernels = lambda model: [tuple(layer.kernel.shape) for layer in model.layers if hasattr(layer, "kernel")]
    assert kernels(from_table) == kernels(library) and len(kernels(from_table)) == 13
    head = zoo.dense_parameters(7 * 7 * 512, 4096) + zoo.dense_parameters(4096, 4096) + zoo.dense_parameters(4096, 1000)
    assert parameters.trainable(from_table) + head == 138_357_544
    assert flops.count_macs(from_table) + (7 * 7 * 512 + 4096) * 4096 + 4096 * 1000 == round(row["GMACs"] * 1e9)
    # 13 convolutions 3x3 and 4 poolings before the last one: 1 + 2 * (2 + 2 * 2 + 3 * 4 + 3 * 8 + 3 * 16) = 196
    assert row["field (last conv)"] == 196 == last_conv_row(from_table)["receptive field"] == last_conv_row(library)["receptive field"]
    keras.backend.clear_session()


def test_resnet18_is_counted_as_pytorch_counts():
    with zoo.shapes_only():
        model = zoo.build_model("resnet18")
    row = zoo.measure("resnet18", model)
    assert row["params (trainable)"] == pytest.approx(11.7e6, rel=0.01) and row["vs lecture"] == "agrees"
    assert row["params (trainable)"] == 11_689_512  # torchvision's resnet18: BN running statistics are buffers
    batch_norm = sum(w.shape[0] for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
                     for w in layer.non_trainable_weights)
    assert row["count_params()"] == row["params (trainable)"] + batch_norm  # keras also counts the running mean and variance
    assert row["GMACs"] == pytest.approx(1.81, rel=0.01)
    assert row["field (last conv)"] == last_conv_row(model)["receptive field"] == 435
    del model
    keras.backend.clear_session()


def test_a_ten_class_head_changes_only_the_head():
    row = zoo.count("resnet18", classes=10)  # lecture 004's fine-tuning: model.fc = nn.Linear(512, 10)
    assert row["params (trainable)"] == 11_689_512 - (512 * 1000 + 1000) + (512 * 10 + 10)
    assert row["reference"] is None and row["published GMACs"] is None  # the published counts have 1000 classes


# ---------------------------------------------------------------- the lecture's figures
@pytest.mark.parametrize("computed, stated, verdict", [
    (11_689_512, "~11.7 M", "agrees"),
    (25_557_032, "~25.6 M", "agrees"),
    (44_549_160, "~445 M", "off x9.99"),  # ResNet-101: the decimal point of 44.5 M lost
    (138_357_544, "138 M", "agrees"),
    (536_871_424, "500 M", "agrees"),  # "10^6 x 512 = 5 x 10^8": one significant digit
    (640, "~1K", "agrees"),
    (1_792, "1,792", "agrees"),
    (1_793, "1,792", "off x0.999"),  # a figure written in full is exact
    (150_529_000, "150 millions", "agrees"),
])
def test_lecture_figures_are_read_at_their_precision(computed, stated, verdict):
    assert zoo.compare(computed, stated) == verdict


def test_resnet101_difference_is_flagged():
    row = {"model": "resnet101", "lecture": "~445 M", "params (trainable)": 44_549_160,
           "vs lecture": zoo.compare(44_549_160, "~445 M")}
    lines = zoo.notes([row])
    assert "resnet101: the lecture's ~445 M is 9.99 times the computed 44.5 M: most likely a lost decimal point" in lines


def test_first_layer_dense_against_conv():
    rows = zoo.first_layers()
    params = [row["parameters"] for row in rows]
    assert params == [1024 * 1024 * 512 + 512, 3 * 3 * 1 * 64 + 64, 224 * 224 * 3 * 1000 + 1000, 1_792]
    assert all(row["vs lecture"] == "agrees" for row in rows)
    assert all(row["parameters"] == row["by formula"] for row in rows)  # Keras' count is the lecture's formula
    assert rows[0]["parameters"] / rows[1]["parameters"] > 800_000  # 500 M against ~1K
    assert rows[1]["GMACs"] > rows[0]["GMACs"]  # but the convolution, at every pixel, computes more


# ---------------------------------------------------------------- the run folder
def test_quick_run_writes_its_tables_and_figure(quick_run, backend):
    run, stdout = quick_run
    files = {p.name for p in run.path.iterdir()}
    assert {"config.json", "metrics.json", "zoo.csv", "summary.csv", "first_layers.csv", "params_vs_flops.png"} <= files
    assert not any(name.endswith(".keras") for name in files)  # nothing trained, nothing to save
    with open(run.file("zoo.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [row["model"] for row in rows] == MODELS and list(rows[0]) == list(zoo.COLUMNS)
    assert {row["model"]: int(row["params (trainable)"]) for row in rows}["cnn"] == 27_830
    config = json.loads(run.file("config.json").read_text())
    assert config["backend"] == backend and config["models"] == MODELS
    assert "536,871,424 parameters (lecture: 500 M, agrees)" in stdout


def test_resume_reads_back_the_counted_models(quick_run):
    run, _ = quick_run
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        again = zoo.main(["--resume", str(run.path)])
    read_back = stdout.getvalue()
    assert read_back.count("counted by the interrupted run; read back from metrics.json") == len(MODELS)
    assert read_back.count("measured by the interrupted run; read back") == len(run.metrics["latency"]) == 2  # not run again
    assert [row["model"] for row in again.rows] == MODELS and again.metrics["latency"] == run.metrics["latency"]


def test_the_vit_needs_several_times_resnet18s_memory_to_run_and_the_report_says_so(quick_run):
    """004:31 at 32 px (the lab's figures are at 224): the peak memory of a call holds the weights (and the
    backend's own runtime, a hundred MiB or so), and ViT-B/16's 86 M (330 MiB in float32) outweigh ResNet-18's
    11.7 M whatever the image."""
    run, _ = quick_run
    found = run.metrics["latency"]
    assert list(found) == ["resnet18", "vit_b16"] and all(list(by) == ["1", "32"] for by in found.values())
    peak = {name: by["32"]["peak MiB"] for name, by in found.items()}
    weights = {name: run.metrics[name]["MiB (float32)"] for name in ("resnet18", "vit_b16")}
    assert peak["vit_b16"] > 0.9 * weights["vit_b16"] and peak["resnet18"] > 0.9 * weights["resnet18"], (peak, weights)
    assert peak["vit_b16"] - peak["resnet18"] > 0.5 * (weights["vit_b16"] - weights["resnet18"]), (peak, weights)
    answer = next(a["answer"] for a in run.answers() if a["tag"] == "004:31")
    assert f"{found['vit_b16']['32']['ms / image']:.1f} ms an image at batch 32" in answer
    assert "ViT-B/16 has 7.4x ResNet-18's parameters and 9.7x its multiply-adds" in answer  # the table's, at 224 px


def test_imagenet_is_cited_not_measured_and_says_so(quick_run):
    """004:16 and 004:28 need ImageNet: the report says so and cites the published figures, with this run's counts."""
    run, _ = quick_run
    answers = {a["tag"]: a["answer"] for a in run.answers()}
    assert answers["004:16"].startswith("Not measured here") and "1,281,167 training" in answers["004:16"]
    assert "resnet18" in answers["004:16"] and "Cited, not measured" in answers["004:28"]
    assert "vit_b16 81.1%" in answers["004:28"] and "count both" in answers["004:28"]  # the quick run counts no ResNet-50
