"""TP3 part II: the ResNet fine-tuning lab, on generated photos and a tiny local preset."""

import contextlib
import csv
import inspect
import io

import numpy as np
import pytest

from kcourse import cli, datasets, images, presets
from kcourse.tasks import finetune
from tests.test_images import make_folder

SIZE = 32  # model input; images are loaded at 37 (8/7) and randomly cropped


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A two-stack ResNet (89k parameters) saved as a local keras-hub preset."""
    import keras

    from kcourse import system

    keras_hub = system.keras_hub()
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
    )
    path = tmp_path_factory.mktemp("preset") / "tiny_resnet"
    backbone.save_to_preset(str(path))
    return path, backbone.get_weights()


def preset_file_weights(path):
    """The weights as the preset file holds them, read back from disk."""
    from kcourse import system

    return system.keras_hub().models.Backbone.from_preset(str(path)).get_weights()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("photos") / "data", n=4)
    return root, images.load_image_folder(root, image_size=SIZE)


def test_local_preset_loads_its_weights(tiny_preset):
    path, saved = tiny_preset
    backbone, weights = finetune.load_backbone(str(path))
    assert weights == "pretrained"
    assert len(backbone.get_weights()) == len(saved)
    for loaded, expected in zip(backbone.get_weights(), saved):
        np.testing.assert_array_equal(loaded, expected)
    random_backbone, weights = finetune.load_backbone(str(path), pretrained=False)
    assert weights == "random" and random_backbone.count_params() == backbone.count_params()
    assert not np.array_equal(random_backbone.get_weights()[0], saved[0])


def test_missing_local_preset_is_a_one_line_error(tmp_path):
    with pytest.raises(cli.LabError, match="not a keras-hub preset folder") as error:
        finetune.load_backbone(str(tmp_path / "nope"))
    assert "save_to_preset" in str(error.value)


def test_unknown_preset_says_how_to_list_the_known_ones_without_asking_the_network():
    with pytest.raises(cli.LabError) as error:
        presets.check("nonsense_preset", "Backbone")
    message = str(error.value)
    assert message.startswith("--preset nonsense_preset: unknown keras-hub Backbone preset") and "\n" not in message
    assert "keras_hub.models.Backbone.presets" in message
    presets.check("resnet_18_imagenet", "Backbone")  # a known name passes, offline too


def _fit_one_step(tiny_preset, photos, freeze_how):
    import keras

    path, _ = tiny_preset
    _, data = photos
    backbone, _ = finetune.load_backbone(str(path))
    model = finetune.build_model(backbone, 2, data.x_train.shape[1], images.augmentation(SIZE, input_size=data.x_train.shape[1]),
                                 freeze_how, learning_rate=0.1)
    before_backbone = {w.path: keras.ops.convert_to_numpy(w).copy() for w in backbone.weights}
    before_head = keras.ops.convert_to_numpy(model.get_layer("head").kernel).copy()
    model.fit(data.x_train, data.y_train, batch_size=len(data.x_train), epochs=1, verbose=0)
    after_backbone = {w.path: keras.ops.convert_to_numpy(w) for w in backbone.weights}
    changed = {name for name in before_backbone if not np.array_equal(before_backbone[name], after_backbone[name])}
    head_changed = not np.array_equal(before_head, keras.ops.convert_to_numpy(model.get_layer("head").kernel))
    return model, changed, head_changed


def test_frozen_features_are_bit_identical_after_a_fit_step(tiny_preset, photos):
    model, changed, head_changed = _fit_one_step(tiny_preset, photos, "features")
    assert changed == set(), f"frozen weights moved: {sorted(changed)}"  # kernels, gamma, beta and moving stats
    assert head_changed
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 16 * 2 + 2 and model.count_params() > 80_000  # only the head: 16 features -> 2 logits


def test_batch_stats_freezing_moves_only_the_moving_statistics_as_the_courses_loop(tiny_preset, photos):
    """The course's PyTorch loop in Keras: gamma, beta and kernels fixed, BatchNorm in training mode inside fit."""
    model, changed, head_changed = _fit_one_step(tiny_preset, photos, "batch-stats")
    assert head_changed and changed, "the moving statistics should follow the batches"
    assert all(name.endswith(("moving_mean", "moving_variance")) for name in changed), sorted(changed)
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]


def test_all_but_head_leaves_only_the_head_trainable(tiny_preset):
    backbone, _ = finetune.load_backbone(str(tiny_preset[0]))
    model = finetune.build_model(backbone, 3, 37, images.augmentation(SIZE), "all-but-head")
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]
    assert not backbone.trainable and all(not layer.trainable for layer in backbone.layers)


def test_without_freezing_the_backbone_and_batchnorm_statistics_move(tiny_preset, photos):
    _, changed, head_changed = _fit_one_step(tiny_preset, photos, "none")
    assert head_changed
    assert any("moving_mean" in name for name in changed), sorted(changed)  # BatchNorm in training mode
    assert any(name.endswith("kernel") for name in changed), sorted(changed)


def test_freeze_features_follows_the_course_loop(tiny_preset):
    from keras import layers

    backbone, _ = finetune.load_backbone(str(tiny_preset[0]))
    finetune.freeze(backbone, "features")
    kinds = {type(layer).__name__: layer.trainable for layer in backbone.layers if layer.weights}
    assert kinds == {"Conv2D": False, "BatchNormalization": False}
    assert all(not layer.trainable for layer in backbone.layers if isinstance(layer, layers.BatchNormalization))
    finetune.freeze(backbone, "none")
    assert all(layer.trainable for layer in backbone.layers)
    with pytest.raises(cli.LabError, match="--freeze 'everything'"):
        finetune.freeze(backbone, "everything")


def test_without_pretrained_weights_fine_tuned_is_left_out_with_one_line(capsys):
    assert finetune.variants(["fine-tuned", "frozen", "scratch"], "pretrained", "all-but-head") == [
        ("fine-tuned", True, "none"), ("frozen", True, "all-but-head"), ("scratch", False, "none")]
    assert capsys.readouterr().out == ""
    assert finetune.variants(["fine-tuned", "frozen", "scratch"], "random") == [("frozen", True, "features"), ("scratch", False, "none")]
    assert capsys.readouterr().out.splitlines() == [  # the bug this catches: frozen on random weights, without a word
        "no pretrained weights: fine-tuned is left out (it would repeat scratch)",
        "no pretrained weights: frozen trains its head on a random backbone's features (what freezing keeps needs the preset)"]
    assert finetune.variants(["fine-tuned"], "random") == [("scratch", False, "none")]
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.offline
def test_offline_preset_says_so_and_builds_resnet18_from_scratch(capsys):
    backbone, weights = finetune.load_backbone("resnet_18_imagenet")
    assert weights == "random"
    assert backbone.count_params() == 11_186_112  # keras-hub's ResNet18, as the preset
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("offline: could not download the keras-hub preset resnet_18_imagenet")
    assert "--preset path/to/folder, saved with save_to_preset" in lines[0]
    assert lines[0].endswith("using ResNet18 with random weights (from scratch) instead")


@pytest.mark.offline
def test_offline_data_says_so_and_uses_the_embedded_photos(capsys):
    data = datasets.ants_bees(image_size=SIZE, quick=True)
    assert data.class_names == ["china", "flower"]
    assert data.x_train.shape[1:] == (37, 37, 3)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "offline: could not download the Hymenoptera ants/bees photos; using an embedded two-class set "
        "(random crops of scikit-learn's two sample photos, china.jpg vs flower.jpg) instead"
    ]


@pytest.fixture(scope="module")
def compare_run(tiny_preset, photos, tmp_path_factory):
    """`--models fine-tuned frozen scratch` through main; each variant's backbone as build_model received it."""
    root, _ = photos
    starts, models = {}, {}
    real = finetune.build_model

    def spy(backbone, *args, **kwargs):
        name = inspect.signature(real).bind(backbone, *args, **kwargs).arguments["name"]
        starts[name] = [np.array(w, copy=True) for w in backbone.get_weights()]
        models[name] = real(backbone, *args, **kwargs)
        return models[name]

    out = tmp_path_factory.mktemp("compare") / "run"
    finetune.build_model = spy
    try:
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            run = finetune.main(
                ["--models", "fine-tuned", "frozen", "frozen-batch-stats", "scratch", "--quick", "--data-dir", str(root),
                 "--preset", str(tiny_preset[0]), "--image-size", str(SIZE), "--batch-size", "4",
                 "--learning-rate", "0.01", "--out", str(out)]
            )
    finally:
        finetune.build_model = real
    return run, starts, models, stdout.getvalue()


def _backbone_of(model):
    from kcourse import system

    return next(layer for layer in model.layers if isinstance(layer, system.keras_hub().models.Backbone))


def test_every_variant_starts_from_the_preset_file(compare_run, tiny_preset):
    """The bug this catches: "frozen" copied the backbone after "fine-tuned" had trained it."""
    _, starts, models, _ = compare_run
    preset = preset_file_weights(tiny_preset[0])
    assert list(starts) == ["fine-tuned", "frozen", "frozen-batch-stats", "scratch"]  # fine-tuned trains first
    for name in ("fine-tuned", "frozen", "frozen-batch-stats"):
        assert len(starts[name]) == len(preset)
        for got, expected in zip(starts[name], preset):
            np.testing.assert_array_equal(got, expected, err_msg=f"{name} did not start from the preset")
    assert [w.shape for w in starts["scratch"]] == [w.shape for w in preset]
    assert not np.array_equal(starts["scratch"][0], preset[0])  # scratch: the same architecture, random weights
    # fine-tuning moved the backbone, freezing did not move a single bit of it
    tuned = _backbone_of(models["fine-tuned"]).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(tuned, preset))
    for got, expected in zip(_backbone_of(models["frozen"]).get_weights(), preset):
        np.testing.assert_array_equal(got, expected)


def test_compare_summary_reads_like_the_handout(compare_run):
    run, _, _, stdout = compare_run
    with open(run.file("summary.csv")) as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["fine-tuned", "frozen", "frozen-batch-stats", "scratch"]
    assert [rows[m]["weights"] for m in rows] == ["pretrained", "pretrained", "pretrained", "random"]
    assert rows["frozen"]["freeze"] == "features" and int(rows["frozen"]["trainable params"]) == 16 * 2 + 2
    assert int(rows["scratch"]["trainable params"]) == int(rows["fine-tuned"]["trainable params"]) > 80_000
    assert {"val accuracy", "macro F1", "s / epoch", "samples / s", "device"} <= set(rows["frozen"])
    assert f"run folder: {run.path}" in stdout


def test_each_saved_variant_reloads_with_the_same_predictions(compare_run, photos):
    import keras

    run, _, models, _ = compare_run
    _, data = photos
    for name, model in models.items():
        loaded = keras.saving.load_model(run.file(f"{name}.keras"))  # keras_hub is imported: its classes are known
        np.testing.assert_allclose(
            loaded.predict(data.x_val, verbose=0), model.predict(data.x_val, verbose=0), rtol=1e-5, atol=1e-5, err_msg=name
        )
        if name == "frozen-batch-stats":
            continue  # variables' own flags are not saved (finetune.load_model)
        again = finetune.load_model(run.file(f"{name}.keras"))  # and frozen where it was frozen
        assert [w.path for w in again.trainable_weights] == [w.path for w in model.trainable_weights], name
    assert [w.path for w in finetune.load_model(run.file("frozen.keras")).trainable_weights] == ["head/kernel", "head/bias"]


def test_keras_frozen_batchnorm_keeps_its_statistics_where_the_courses_loop_moves_them(compare_run):
    """000:8: Keras' frozen BatchNorm leaves its moving statistics bit-identical, the course's loop does not."""
    run = compare_run[0]
    moved = {row["model"]: row["BN statistics moved"] for row in run.rows}
    assert moved["frozen"] == 0.0 and moved["frozen-batch-stats"] > 1e-4 and moved["fine-tuned"] > 1e-4
    assert moved["scratch"] is None  # random weights: nothing to compare with
    answer = next(a["answer"] for a in run.answers() if a["english"].startswith("Frozen BatchNorm"))
    course = next(row for row in run.rows if row["model"] == "frozen-batch-stats")
    assert "moved by 0)" in answer and f"val accuracy {course['val accuracy']:.3f}" in answer


@pytest.fixture(scope="module")
def quick_run(lab_run):
    """The notebook's run: `--quick --models fine-tuned frozen frozen-batch-stats scratch` offline (embedded photos,
    random ResNet18)."""
    return lab_run("finetune", "--quick", "--models", "fine-tuned", "frozen", "frozen-batch-stats", "scratch")


@pytest.mark.offline
def test_offline_run_says_what_it_could_not_have_and_keeps_the_frozen_backbone_bit_identical(quick_run):
    run = quick_run.run
    assert [row["model"] for row in run.rows] == ["frozen", "frozen-batch-stats", "scratch"]  # fine-tuned would repeat scratch
    assert "no pretrained weights: frozen trains its head on a random backbone's features" in quick_run.stdout
    assert [line for line in quick_run.stderr.splitlines() if line.startswith("offline:")] == [
        "offline: could not download the Hymenoptera ants/bees photos; using an embedded two-class set "
        "(random crops of scikit-learn's two sample photos, china.jpg vs flower.jpg) instead",
        "offline: could not download the keras-hub preset resnet_18_imagenet (for a local copy: --preset path/to/folder, "
        "saved with save_to_preset); using ResNet18 with random weights (from scratch) instead"]
    frozen = _backbone_of(run.fitted["frozen"].model)
    assert all(np.array_equal(a, b) for a, b in zip(frozen.get_weights(), run.outputs["start"]))
    scores = finetune.evaluate(run.fitted["scratch"].model, run.outputs["data"])
    assert set(scores) == {"val accuracy", "macro F1"} and scores["val accuracy"] == run.rows[-1]["val accuracy"]


def test_the_augmented_resnet_trains_compiled_on_jax(quick_run, backend):
    """Keras flags RandomTranslation (the random crop) as not jittable on every backend, which made the whole model
    train op by op on jax; kcourse.images.augmentation lets jax compile it (tensorflow keeps graph mode)."""
    model = quick_run.run.fitted["scratch"].model
    assert model.jit_compile is (backend == "jax")  # torch: Keras' "auto" is eager


def test_the_slides_snippet_trains_nothing_and_freezing_the_backbone_alone_trains_the_head(quick_run):
    """004:25: `model.fc.requires_grad = True` after freezing every parameter leaves the new head frozen too."""
    found = quick_run.run.metrics["slide snippet"]
    torch_half, keras_half = found["torch"], found["keras"]
    assert torch_half["as written"] == 0 and torch_half["fixed"] == torch_half["head"] == 8 * 10 + 10
    assert keras_half["as the slide"] == 0  # Keras too: the model's own flag gates the head's
    assert keras_half["right"] == keras_half["head"] == 8 * 10 + 10 < keras_half["total"]  # the backbone frozen alone
    answers = {a["tag"]: a["answer"] for a in quick_run.run.answers()}
    assert "0 trainable parameters" in answers["004:25"] and "No accelerator was found" in answers["000:7"]


def test_the_course_optimizer_is_plain_sgd_at_1e_3(quick_run):
    """000:6: the seed's torch.optim.SGD(lr=0.001) is the default."""
    run = quick_run.run
    optimizer = run.fitted["frozen"].model.optimizer
    assert type(optimizer).__name__ == "SGD" and float(optimizer.momentum) == 0.0
    assert float(optimizer.learning_rate) == pytest.approx(1e-3) and run.rows[0]["optimizer"] == "sgd"
    assert "torch.optim.SGD(lr=0.001)" in {a["tag"]: a["answer"] for a in run.answers()}["000:6"]
