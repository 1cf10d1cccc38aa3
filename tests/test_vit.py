"""TP4 part 2: the ViT lab, on a tiny ViT saved as a local keras-hub preset and a few generated photos."""

import csv
import json

import numpy as np
import pytest

from kcourse import cli, images, interpret, parameters, presets
from kcourse.tasks import vit
from tests.test_bad_inputs import run_lab
from tests.test_images import make_folder

TINY = dict(image_shape=(16, 16, 3), patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A 2-block ViT (16 px, patch 4, width 16) saved with save_to_preset: what a local --preset folder holds."""
    import keras

    from kcourse import system

    keras.utils.set_random_seed(1)
    backbone = system.keras_hub().models.ViTBackbone(**TINY)
    path = tmp_path_factory.mktemp("preset") / "tiny_vit"
    backbone.save_to_preset(str(path))
    return path, backbone.get_weights()


@pytest.fixture(scope="module")
def tiny_preset_with_converter(tiny_preset, tmp_path_factory):
    """The tiny preset with an image converter (x / 127.5 - 1: pixels to [-1, 1]), as a downloaded preset holds one."""
    import shutil

    from kcourse import system

    path = tmp_path_factory.mktemp("preset") / "tiny_vit_converter"
    shutil.copytree(tiny_preset[0], path)
    system.keras_hub().layers.ViTImageConverter(image_size=(16, 16), scale=1 / 127.5, offset=-1.0).save_to_preset(str(path))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("photos") / "data", n=4)  # red "ants", blue "bees"
    return root, images.load_image_folder(root, image_size=16)


def tiny_preset_params(tiny_preset):
    return sum(int(np.prod(w.shape)) for w in tiny_preset[1])


@pytest.fixture(scope="module")
def loaded(tiny_preset):
    backbone, weights = vit.load_backbone(str(tiny_preset[0]))
    return backbone, weights


def test_local_preset_loads_and_the_token_arithmetic_is_read_from_it(tiny_preset, loaded):
    backbone, weights = loaded
    assert weights == "pretrained"
    for got, saved in zip(backbone.get_weights(), tiny_preset[1]):
        np.testing.assert_array_equal(got, saved)
    info = vit.describe(backbone)
    assert info["grid"] == (4, 4) and info["num_patches"] == 16 and info["tokens"] == 17
    assert info["output_shape"] == (17, 16) and info["num_layers"] == 2 and info["hidden_dim"] == 16
    lines = vit.token_arithmetic(info, backbone)
    assert "N = (16/4)(16/4) = 4 x 4 = 16 patches + 1 [CLS] = 17 tokens of D = 16" in lines[0]
    assert "(B, 1+N, D) = (B, 17, 16); Keras says (B, 17, 16)" in lines[1]
    # one block from D and M: 4(D^2 + D) + 2DM + M + D + 4D, equal to Keras' own count
    assert parameters.vit_block(16, 32) == 2_224 and "= 2,224 parameters; Keras counts 2,224" in lines[2]
    assert parameters.vit_block(768, 3072) == 7_087_872  # ViT-B/16: 12 of these + embeddings = 85.8 M


def test_a_missing_or_foreign_preset_is_a_one_line_error(tmp_path):
    with pytest.raises(cli.LabError, match="not a keras-hub preset folder"):
        vit.load_backbone(str(tmp_path / "nope"))
    with pytest.raises(cli.LabError, match="--preset resnet_18_imagenet: unknown keras-hub ViTBackbone preset"):
        vit.load_backbone("resnet_18_imagenet")


def _fit_step(backbone, photos, last, learning_rate=0.05):
    import keras

    _, data = photos
    copy = presets.fresh_copy(backbone, presets.weights_of(backbone))
    vit.unfreeze(copy, last)
    norm, _ = vit.normalization("local", "random")
    model = vit.build_network(copy, norm, 2, data.x_train.shape[1], "light", "cls", "D/2")
    vit.compile_classifier(model, learning_rate, steps=2, warmup=0.5)
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in copy.weights}
    head = model.get_layer("classifier").get_layer("head")
    head_before = keras.ops.convert_to_numpy(head.out.kernel).copy()
    model.fit(data.x_train, data.y_train, batch_size=len(data.x_train), epochs=2, verbose=0)
    changed = {p for p, w in before.items() if not np.array_equal(w, _value(copy, p))}
    assert not np.array_equal(head_before, keras.ops.convert_to_numpy(head.out.kernel))  # the head trains
    return model, copy, before, changed


def _value(model, path):
    import keras

    return keras.ops.convert_to_numpy(next(w for w in model.weights if w.path == path))


def test_a_frozen_backbone_stays_bit_identical_through_fit(loaded, photos):
    model, copy, before, changed = _fit_step(loaded[0], photos, 0)
    assert changed == set(), sorted(changed)
    trainable, total = parameters.trainable(model), model.count_params()
    assert trainable == 16 * 8 + 8 + 8 * 2 + 2  # only the head: D -> D/2 -> 2 classes
    assert total == trainable + copy.count_params()  # the frozen backbone still counts in the total


def test_unfreeze_last_1_moves_only_the_last_block_and_the_final_norm(loaded, photos, tmp_path):
    import keras

    model, copy, before, changed = _fit_step(loaded[0], photos, 1)
    movable = {p for p in before if p.startswith(("vit_encoder/transformer_block_2/", "vit_encoder/ln/"))}
    assert changed == movable, sorted(changed ^ movable)
    assert parameters.trainable(model) == parameters.vit_block(16, 32) + 2 * 16 + 16 * 8 + 8 + 8 * 2 + 2
    with pytest.raises(cli.LabError, match="--unfreeze-last 3: this backbone has 2 encoder blocks"):
        vit.unfreeze(copy, 3)
    # the saved model (a ViTBackbone inside, custom layers registered) reloads to the same outputs
    _, data = photos
    model.save(tmp_path / "light.keras")
    reloaded = keras.saving.load_model(tmp_path / "light.keras")
    np.testing.assert_allclose(reloaded.predict(data.x_val, verbose=0), model.predict(data.x_val, verbose=0), rtol=1e-5, atol=1e-5)


def test_attention_replay_equals_the_backbone_and_rollout_rows_sum_to_one(loaded):
    backbone = loaded[0]
    x = np.random.default_rng(0).normal(size=(3, 16, 16, 3)).astype("float32")
    tokens, attention = interpret.attention_maps(backbone, x)
    np.testing.assert_allclose(tokens, backbone.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert attention.shape == (3, 2, 2, 17, 17)  # (B, blocks, heads, 1+N, 1+N)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    flow = interpret.rollout(attention)
    assert flow.shape == (3, 17, 17)
    np.testing.assert_allclose(flow.sum(-1), 1.0, atol=1e-9)
    # by hand for block 1: average the heads, add I, renormalise the rows; then block 2 on top
    a1, a2 = [(attention[:, i].mean(1) + np.eye(17)) / (attention[:, i].mean(1) + np.eye(17)).sum(-1, keepdims=True) for i in (0, 1)]
    np.testing.assert_allclose(flow, a2 @ a1, rtol=1e-5)
    cls_map = interpret.cls_to_patches(flow, (4, 4))
    assert cls_map.shape == (3, 4, 4)  # one value per patch
    np.testing.assert_allclose(cls_map.sum(axis=(1, 2)), 1.0, atol=1e-9)


def test_occluding_the_informative_patch_lowers_the_logit_most():
    import keras

    # a classifier whose class-0 logit reads the pixels of patch (2, 1) only, on an image that is bright there
    weights = np.zeros((16, 16, 3, 2), "float32")
    weights[8:12, 4:8, :, 0] = 1.0 / 48
    inputs = keras.Input((16, 16, 3))
    dense = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([weights.reshape(-1, 2)])
    image = np.full((1, 16, 16, 3), 60.0, "float32")
    image[0, 8:12, 4:8] = 250.0
    drops, target = interpret.occlusion(model, image, patch=4)
    assert drops.shape == (1, 4, 4) and target.tolist() == [0]
    assert np.unravel_index(drops[0].argmax(), (4, 4)) == (2, 1)
    assert drops[0, 2, 1] > 100 and np.abs(np.delete(drops[0].ravel(), 2 * 4 + 1)).max() < 1e-3


def test_every_level_gives_the_same_centre_crop_at_inference(photos):
    from keras import ops

    _, data = photos
    load = data.x_train.shape[1]  # 18 = 16 * 8/7
    crops = {level: ops.convert_to_numpy(vit.augmentation(level, 16, load)(data.x_val, training=False)) for level in vit.LEVELS}
    for level, out in crops.items():
        assert out.shape == (len(data.x_val), 16, 16, 3)
        np.testing.assert_allclose(out, data.x_val[:, 1:17, 1:17], atol=1e-4, err_msg=level)
    trained = ops.convert_to_numpy(vit.augmentation("medium", 16, load)(data.x_train, training=True))
    assert trained.shape == (len(data.x_train), 16, 16, 3) and not np.allclose(trained, crops["baseline"][: len(trained)])
    with pytest.raises(cli.LabError, match="--augment 'extreme'"):
        vit.augmentation("extreme", 16, load)


@pytest.mark.parametrize("mix", ["mixup", "cutmix"])
def test_mixed_labels_are_soft_and_sum_to_one(mix):
    # 64 photos of alternating classes: many in-batch pairs of different classes, so soft rows whatever the draw
    x = np.random.default_rng(0).uniform(0, 255, (64, 16, 16, 3)).astype("float32")
    y = np.tile([0, 1], 32).astype("int32")
    batches = list(vit.train_dataset(x, y, 8, 2, mix=mix, seed=0))
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert labels.shape == (64, 2) and batches[0][0].shape == (8, 16, 16, 3)
    np.testing.assert_allclose(labels.sum(1), 1.0, atol=1e-5)
    assert ((labels > 0.01) & (labels < 0.99)).any(), labels  # soft: some rows mix both classes


def test_all_is_every_level_in_order():
    assert vit.levels_from(["all"]) == list(vit.LEVELS) == ["baseline", "light", "medium", "strong"]
    assert vit.levels_from(["strong", "baseline", "strong"]) == ["strong", "baseline"]


def test_augment_ladder_quick_writes_its_table_and_plot(tiny_preset, tiny_preset_with_converter, photos, tmp_path,
                                                        backend, capsys):
    # the level the notebook's quick run leaves out (it trains baseline and light), with soft labels
    root, _ = photos
    out = tmp_path / "run"
    run = vit.main(["--augment", "strong", "--mix", "cutmix", "--quick", "--data-dir", str(root),
                    "--preset", str(tiny_preset_with_converter), "--batch-size", "4", "--out", str(out)])
    stdout = capsys.readouterr().out
    with open(run.file("augment_ladder.csv")) as f:
        ladder = list(csv.DictReader(f))
    assert [row["augment"] for row in ladder] == ["strong+cutmix"]
    for row in ladder:
        assert float(row["robust accuracy"]) == pytest.approx(np.mean([float(row[f"robust {k}"]) for k in ("crop", "lighting", "blur")]))
    assert {"augment_ladder.png", "augmentation.png", "interpretation.png", "learning_curves.png"} <= {p.name for p in run.path.iterdir()}
    assert {"strong-cutmix.keras", "history_strong-cutmix.csv"} <= {p.name for p in run.path.iterdir()}  # file-safe names
    with open(run.file("summary.csv")) as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["frozen-cls-linear", "frozen-cls-linear-imagenet-norm", "strong+cutmix"]
    head = 16 * 2 + 2
    assert int(rows["frozen-cls-linear"]["trainable params"]) == head == int(rows["frozen-cls-linear-imagenet-norm"]["trainable params"])
    assert int(rows["strong+cutmix"]["trainable params"]) == parameters.vit_block(16, 32) + 2 * 16 + head
    assert rows["strong+cutmix"]["stage"] == "last 1 + norm" and rows["frozen-cls-linear"]["stage"] == "head (frozen)"
    assert int(rows["frozen-cls-linear"]["total params"]) == head + tiny_preset_params(tiny_preset)  # the backbone counted once
    config = json.loads(run.file("config.json").read_text())
    assert config["backend"] == backend and config["weights"] == "pretrained" and config["classes"] == ["ants", "bees"]
    assert config["ladder"]["learning_rate"] == pytest.approx(1e-4) and config["ladder"]["trains"] == "last 1 + norm"
    assert config["seed"] == 0 and "warm-up" in config["schedule"] and config["optimizer"].startswith("AdamW")
    assert "N = (16/4)(16/4) = 4 x 4 = 16 patches + 1 [CLS] = 17 tokens" in stdout and "estimate: an epoch of" in stdout
    photos = run.metrics["photos"]  # 001:31: the data named, with this run's counts
    answer = next(a["answer"] for a in run.answers() if a["tag"] == "001:31")
    assert answer.startswith(f"ants / bees: {photos['train']:,} training and {photos['val']:,} validation photos of {root}")
    assert "d2l's hotdog.zip" in answer and "--data-dir" in answer
    # 001:51: the preset's own scaling puts the pixels in [-1, 1]; the handout's ImageNet mean and std feeds the
    # same weights values up to 2.6 (white: (1 - 0.406) / 0.225), and the same head trains on each
    fed = run.metrics["inputs normalised"]
    own, imagenet = fed["the preset's own (x * 0.007843 + -1)"], fed["ImageNet mean and std"]
    assert -1 - 1e-6 <= own["min"] and own["max"] <= 1 + 1e-6 and imagenet["max"] > 1.5 and imagenet["min"] < -1.5
    answer = next(a["answer"] for a in run.answers() if a["tag"] == "001:51")
    for name in ("frozen-cls-linear", "frozen-cls-linear-imagenet-norm"):
        assert f"{float(rows[name]['val accuracy']):.3f}" in answer
    assert f"mean {imagenet['mean']:.2f}, std {imagenet['std']:.2f}" in answer and "Use the preset's" in answer


QUICK_RUN = ("--quick", "--pool", "cls", "mean", "pooler", "--head", "linear", "D/2",
             "--dropout", "0", "0.3")  # the TP4 part 2 notebook's run


def test_a_trained_pooler_is_compared_with_raw_cls_and_the_patch_mean_all_else_equal(lab_run):
    """001:35: keras-hub's ViT has no pooler; one trained on [CLS] (Dense + tanh) against [CLS] and the patch mean."""
    run = lab_run("vit", *QUICK_RUN).run
    rows = {row["model"]: row for row in run.rows}
    d = run.config["backbone"]["hidden_dim"]
    assert rows["frozen-pooler-linear"]["trainable params"] == rows["frozen-cls-linear"]["trainable params"] + d * d + d
    assert rows["frozen-mean-linear"]["trainable params"] == rows["frozen-cls-linear"]["trainable params"]
    assert rows["frozen-pooler-linear"]["total params"] - rows["frozen-pooler-linear"]["trainable params"] == \
        rows["frozen-cls-linear"]["total params"] - rows["frozen-cls-linear"]["trainable params"]  # the same frozen backbone
    answer = next(a["answer"] for a in run.answers() if a["tag"] == "001:35")
    for pool in ("cls", "mean", "pooler"):
        assert f"{rows[f'frozen-{pool}-linear']['val accuracy']:.3f}" in answer
    assert "no pooler output" in answer and f"{d * d + d:,} more weights" in answer
    # 001:51 offline: the small random ViT learns the scaling it is given; the comparison needs the preset
    answer = next(a["answer"] for a in run.answers() if a["tag"] == "001:51")
    fed = run.metrics["inputs normalised"]["ImageNet mean and std"]
    assert answer.startswith("Offline the ViT is the small random one") and f"std {fed['std']:.2f}" in answer


def test_a_wrong_head_dimension_is_a_one_line_error(tiny_preset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stderr = run_lab("vit", ["--preset", str(tiny_preset[0]), "--head-dim", "768"])
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("error: --head-dim 768: the head expects features of size 768, but the pooled backbone gives D = 16")


@pytest.mark.offline
def test_offline_the_backbone_is_a_small_vit_and_says_so_in_one_line(capsys, monkeypatch):
    from kcourse import downloads

    asked, online = [], downloads.online
    monkeypatch.setattr(downloads, "online", lambda host, *a, **k: asked.append(host) or online(host, *a, **k))
    for preset in (vit.PRESET, vit.HF_PRESET):
        backbone, weights = vit.load_backbone(preset)
        assert weights == "random" and vit.describe(backbone)["tokens"] == 65 and backbone.num_layers == 4
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"offline: could not download the keras-hub preset {preset}"), lines
        assert "small ViT with random weights (64 px, patch 8, 4 blocks, width 128" in lines[0]
    assert asked == ["huggingface.co"]  # hf:// alone would retry for about 20 s: the host is asked first


@pytest.mark.offline
def test_offline_data_is_the_embedded_dahlia_set(capsys):
    data = vit.load_data(image_size=16, quick=True)
    assert data.class_names == ["dahlia", "not-dahlia"] and data.x_train.shape == (64, 18, 18, 3)
    assert len(data.x_val) == 32 and np.bincount(data.y_val).tolist() == [16, 16]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["offline: could not download d2l's hot dog / not hot dog photos (hotdog.zip); using an embedded "
                     "dahlia / not-dahlia set (crops of scikit-learn's two sample photos) instead"]


def test_every_level_sees_the_same_batches_in_the_same_order(monkeypatch):
    """The bug this catches: only "strong" went through tf.data (its own order, its last batch dropped)."""
    monkeypatch.setattr(vit, "rand_augment", lambda seed: lambda images: images)  # the pipeline's order, not RandAugment's draws
    x = np.random.default_rng(0).uniform(0, 255, (37, 16, 16, 3)).astype("float32")
    y = np.arange(37).astype("int32")  # each label names its photo
    plain = [b[1].numpy().tolist() for b in vit.train_dataset(x, y, 8, 37, seed=3)]
    strong = [b[1].numpy().tolist() for b in vit.train_dataset(x, y, 8, 37, randaugment=True, seed=3)]
    assert plain == strong and len(plain) == vit.steps_per_epoch(37, 8) == 5
    assert sorted(sum(plain, [])) == list(range(37))  # the partial batch kept: ceil(37 / 8) steps, as the schedule counts


def test_rand_augment_starts_from_its_seed_every_time(backend):
    """The bug this catches: a cached RandAugment carried its generator's state from one variant to the next.

    Once per `make test` (the tensorflow session): RandAugment runs in tf.data, TensorFlow's, on every backend.
    """
    if backend != "tensorflow":
        pytest.skip("RandAugment runs in tf.data whatever the backend: checked once, in the tensorflow session")
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    first = vit.rand_augment(seed=0)
    draws = [first(x).numpy() for _ in range(2)]
    assert not np.array_equal(*draws)  # one pipeline draws anew at every batch...
    np.testing.assert_array_equal(vit.rand_augment(seed=0)(x).numpy(), draws[0])  # ...a new one starts over


def test_randaugments_equalization_counts_its_histogram_as_keras_does(backend):
    """kcourse's one-bincount histogram (vit._graph_histogram) in Equalization, against the layer's own, both in
    TensorFlow's graph as in the pipeline (on jax, Keras' own is its 256-step loop)."""
    import keras

    from kcourse import system

    tf = system.import_tensorflow()
    images = np.random.default_rng(0).uniform(0, 255, (2, 6, 6, 3)).astype("float32")
    images[0, 0, :3, 0] = (0.0, 255.0, 127.5)  # both ends and the middle of the range
    keras_own, ours = keras.layers.Equalization(value_range=(0, 255)), keras.layers.Equalization(value_range=(0, 255))
    ours._custom_histogram_fixed_width = vit._graph_histogram(tf)
    equalized = [tf.function(lambda x, layer=layer: layer(x))(images).numpy() for layer in (keras_own, ours)]
    np.testing.assert_array_equal(equalized[1], equalized[0])
    counts = tf.function(lambda v: vit._graph_histogram(tf)(v, (0, 255), 256))(images[..., 0]).numpy()
    np.testing.assert_array_equal(counts, np.bincount(images[..., 0].astype("int32").ravel(), minlength=256))


def test_unfreeze_last_beyond_the_backbone_is_an_error_or_said(loaded, capsys):
    backbone = loaded[0]  # 2 blocks, pretrained (a local preset)
    with pytest.raises(cli.LabError, match="--unfreeze-last 99: this backbone has 2 encoder blocks; choose 0 to 2"):
        vit.check_unfreeze(99, backbone, "pretrained")
    assert vit.check_unfreeze(2, backbone, "pretrained") == 2
    assert vit.check_unfreeze(99, backbone, "random") == "all"  # random weights: everything trains, said in one line
    assert capsys.readouterr().out.strip() == "--unfreeze-last 99: ignored, the whole ViT trains from scratch (random weights)"


def test_a_preset_whose_converter_cannot_be_read_says_what_normalises_instead(tiny_preset, capsys):
    """The bug this catches: a pretrained ViT silently normalised with ImageNet's mean and std."""
    _, text = vit.normalization(str(tiny_preset[0]), "pretrained")  # the folder holds the backbone only
    assert text == "ImageNet mean and std"
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"--preset {tiny_preset[0]}: its image converter cannot be read") and line.endswith(
        "normalising with ImageNet's mean and std instead")


def test_each_dropout_rate_trains_the_hidden_head_once_and_frozen_meets_partly_unfrozen(lab_run):
    """001:42: dropout 0 and 0.3 on the same hidden head and features; the frozen head against the last block trained."""
    run = lab_run("vit", *QUICK_RUN).run
    rows = {row["model"]: row for row in run.rows}
    assert {"frozen-cls-D/2-drop0", "frozen-cls-D/2-drop0.3", "frozen-cls-linear"} <= set(rows)
    assert "frozen-cls-linear-drop0" not in rows  # the linear head has no dropout to vary
    assert rows["frozen-cls-D/2-drop0"]["trainable params"] == rows["frozen-cls-D/2-drop0.3"]["trainable params"]
    answer = next(a["answer"] for a in run.answers() if a["tag"] == "001:42")
    assert "frozen-cls-D/2 with dropout 0 / 0.3: val accuracy" in answer
    assert f"against {float(rows['baseline']['val accuracy']):.3f}" in answer
    assert f"against {rows['baseline']['stage']} trained (baseline, the same head and pool)" in answer  # offline: from scratch


def test_the_overfitting_onset_is_read_from_the_curve():
    """001:41: the epoch of the lowest validation loss, when the curve ends above it."""
    assert vit.overfitting_onset([0.9, 0.6, 0.5, 0.55, 0.7]) == 3  # rises after epoch 3
    assert vit.overfitting_onset([0.9, 0.6, 0.5, 0.45]) is None  # still falling
    assert vit.overfitting_onset([0.9, 0.5, 0.502]) is None  # within the tolerance: noise, not a rise
    assert vit.overfitting_onset([0.7]) is None


def test_the_ladder_names_where_it_stops_and_the_figures_get_their_numbers(lab_run):
    """001:57, 001:59, 001:65 and 001:41 on the notebook's run: each answer carries that run's numbers."""
    run = lab_run("vit", *QUICK_RUN).run
    answers = {a["tag"]: a["answer"] for a in run.answers() if a["answer"]}
    rows = {row["model"]: row for row in run.rows}
    base, light = float(rows["baseline"]["val accuracy"]), float(rows["light"]["val accuracy"])
    stops = "stops improving at light" in answers["001:59"]
    assert stops == (light <= base) and f"{light:.3f}" in answers["001:59"]
    assert vit.LEVEL_TEXT["light"] in answers["001:57"] and "augmentation.png" in answers["001:57"]
    assert "interpretation.png" in answers["001:65"] and f"{run.metrics['interpretation']['largest drop']:.2f}" in answers["001:65"]
    hidden, linear = rows["frozen-cls-D/2-drop0"], rows["frozen-cls-linear"]
    assert f"frozen-cls-D/2-drop0 against frozen-cls-linear: val accuracy {float(hidden['val accuracy']):.3f}" in answers["001:41"]
    assert int(hidden["trainable params"]) > int(linear["trainable params"]) and "still falls" in answers["001:41"]  # 1 epoch
    assert answers["001:48"] == answers["001:41"] and " s an epoch" in answers["001:48"]  # 48-49: the onset, and the speed


def test_a_comparable_cnn_has_about_the_parameters_asked_and_keras_counts_them_alike():
    for params in (20_000, 800_000):
        cnn = vit.comparable_cnn(params, 32)
        assert 0.8 < cnn.count_params() / params < 1.2 and cnn.output_shape == (None, 2, 2, cnn.output_shape[-1])
        assert cnn.count_params() == vit.cnn_params(cnn.output_shape[-1] // 8)


def test_the_ladder_is_repeated_on_a_cnn_of_about_the_vits_size_from_scratch(lab_run):
    """001:58: the same levels, batches and budget on a ResNet of about the small ViT's size, both from scratch."""
    run = lab_run("vit", *QUICK_RUN).run
    rows = {row["model"]: row for row in run.rows}
    levels = run.outputs["levels"]
    vit_rows, cnn_rows = [rows[level] for level in levels], [rows[f"cnn-{level}"] for level in levels]
    for v, c in zip(vit_rows, cnn_rows):
        assert c["trainable params"] == c["total params"] and v["trainable params"] == v["total params"]  # from scratch
        assert 0.7 < c["total params"] / v["total params"] < 1.4
        assert len(run.histories[c["model"]]["loss"]) == len(run.histories[v["model"]]["loss"]) == run.epochs
    answer = next(a["answer"] for a in run.answers() if a["tag"] == "001:58")
    for network in (vit_rows, cnn_rows):
        first, last = float(network[0]["val accuracy"]), float(network[-1]["val accuracy"])
        assert f"{first:.3f} -> {last:.3f} ({last - first:+.3f})" in answer
    assert "ladder_vit_cnn.png" in answer and run.file("ladder_vit_cnn.png").exists()


def test_rollout_before_and_after_augmentation_on_the_same_photos(lab_run):
    """001:61: the least and the most augmented models' rollouts on the same photos, one entropy per map."""
    run = lab_run("vit", *QUICK_RUN).run
    found = run.metrics["rollout before and after"]
    assert list(found) == ["baseline", "light"] and run.file("rollout_before_after.png").is_file()
    for figures in found.values():
        assert 0 < figures["rollout entropy"] <= figures["uniform entropy"] + 1e-6  # a distribution over the patches
        assert 1 / 64 <= figures["top patch share"] <= 1
    assert not np.allclose(run.outputs["before"]["rollout"], run.outputs["after"]["rollout"])  # two models, two maps
    answer = next(a["answer"] for a in run.answers() if a["tag"] == "001:61")
    assert f"{found['light']['rollout entropy']:.2f}" in answer and "rollout_before_after.png" in answer
