"""The CLIP lab: zero-shot scores, prompt ensembling, a tiny CLIP saved as a local keras-hub preset."""

import csv
import json

import numpy as np
import pytest

from kcourse import cli, runs
from kcourse.tasks import clip
from tests.test_bad_inputs import run_lab
from tests.test_images import make_folder


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """The lab's tiny CLIP (random weights, a BPE vocabulary learnt on its prompts) saved with save_to_preset."""
    model = clip.build_tiny_clip(seed=1)
    path = tmp_path_factory.mktemp("preset") / "tiny_clip"
    model.backbone.save_to_preset(str(path))
    model.preprocessor.save_to_preset(str(path))
    return path, model


@pytest.fixture(scope="module")
def loaded(tiny_preset):
    return clip.load_model(str(tiny_preset[0]))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("photos") / "data", n=3)  # red "ants", blue "bees"


def _tokens(model, prompts):
    from keras import ops

    return ops.convert_to_numpy(model.preprocessor({"prompts": prompts, "images": None})["token_ids"])


def test_a_tiny_clip_saved_as_a_local_preset_loads_with_its_weights_and_tokenizer(tiny_preset, loaded):
    path, original = tiny_preset
    assert loaded.weights == "pretrained" and type(loaded.backbone).__name__ == "CLIPBackbone"
    for got, saved in zip(loaded.backbone.get_weights(), original.backbone.get_weights()):
        np.testing.assert_array_equal(got, saved)
    assert loaded.image_size == 32 and loaded.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # CLIP's initial temperature
    prompts = ["a photo of a bee.", "art of the hot dog."]
    tokens = _tokens(loaded, prompts)
    np.testing.assert_array_equal(tokens, _tokens(original, prompts))  # the same vocabulary and merges
    vocabulary = loaded.preprocessor.tokenizer.vocabulary  # {token: id}
    end = len(vocabulary) - 1
    assert vocabulary["<|endoftext|>"] == end and tokens.max() == end  # the text pooler reads the argmax: the end token
    # the BPE learnt on the prompts made whole words of their frequent words: "photo" is one token
    assert tokens[0].tolist()[:3] == [end - 1, vocabulary["a</w>"], vocabulary["photo</w>"]]


def test_learnt_bpe_merges_the_most_frequent_pair_first():
    merges = clip.learn_bpe(["low lower lowest", "low low"], num_merges=3)
    assert merges[:2] == ["l o", "lo w</w>"]  # "lo" appears 5 times, then "low</w>" 3 times
    vocabulary, merges = clip.tiny_vocabulary(["low lower lowest"], num_merges=3)
    assert len(vocabulary) == 512 + 3 + 2 and list(vocabulary)[-2:] == ["<|startoftext|>", "<|endoftext|>"]


def test_zero_shot_scores_are_a_softmax_over_the_classes():
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(5, 8)), rng.normal(size=(3, 8))
    scores = clip.zero_shot_scores(image, text, logit_scale=100.0)
    assert scores.shape == (5, 3) and (scores > 0).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-12)
    cos = (image / np.linalg.norm(image, axis=1, keepdims=True)) @ (text / np.linalg.norm(text, axis=1, keepdims=True)).T
    expected = np.exp(100 * cos) / np.exp(100 * cos).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores, expected, rtol=1e-9)
    # only directions count: any positive length gives the same scores
    np.testing.assert_allclose(clip.zero_shot_scores(image * rng.uniform(0.1, 9, (5, 1)), text * 7, 100.0), scores, rtol=1e-9)
    # a lower temperature sharpens, the order of the classes stays
    sharp = clip.zero_shot_scores(image, text, logit_scale=1000.0)
    assert (sharp.argmax(1) == scores.argmax(1)).all() and (sharp.max(1) >= scores.max(1)).all()


def test_the_lab_computes_what_the_clip_backbone_itself_outputs(loaded, photos):
    """One template per class: the lab's encoders, cosines and softmax give the CLIPHead's own logits."""
    from keras import ops

    from kcourse import images

    data = images.load_image_folder(photos, image_size=32, crop_margin=0.0)
    names = ["ant", "bee"]
    text = clip.encode_prompts(loaded, names, ["a photo of a {}."])
    assert text.shape == (2, 1, 16)
    scores = clip.zero_shot_scores(clip.encode_images(loaded, data.x_val), clip.class_embeddings(text), loaded.logit_scale)
    pixels = ops.convert_to_numpy(loaded.preprocessor.image_converter(data.x_val))
    tokens = _tokens(loaded, ["a photo of a ant.", "a photo of a bee."])
    logits = ops.convert_to_numpy(loaded.backbone.predict_on_batch({"images": pixels, "token_ids": tokens})["vision_logits"])  # (N, C)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)


def test_prompt_ensembling_averages_the_normalised_text_embeddings(loaded):
    def at(degrees, length=1.0):
        return length * np.array([np.cos(np.radians(degrees)), np.sin(np.radians(degrees))])

    # class 0 said three ways, one of them long and tilted towards class 1 (at 90 degrees)
    text = np.stack([[at(53.13, 10.0), at(0), at(0)], [at(90), at(90, 2.0), at(90, 0.5)]])  # (C=2, T=3, P=2)
    ensemble = clip.class_embeddings(text)
    np.testing.assert_allclose(ensemble[0], (at(53.13) + 2 * at(0)) / np.linalg.norm(at(53.13) + 2 * at(0)), atol=1e-12)
    np.testing.assert_allclose(ensemble[1], at(90), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ensemble, axis=1), 1.0)
    # a photo of class 1 at 65 degrees: the normalised mean of class 0 lies at 17 degrees, the raw mean at 45
    photo = at(65)[None]
    assert clip.zero_shot_scores(photo, ensemble).argmax() == 1
    assert clip.zero_shot_scores(photo, text.mean(axis=1)).argmax() == 0  # the long template would have won
    # the same on the tiny CLIP's own text embeddings
    per_template = clip.encode_prompts(loaded, ["ant", "bee", "hot dog"])
    assert per_template.shape == (3, len(clip.TEMPLATES), 16)
    unit = per_template / np.linalg.norm(per_template, axis=-1, keepdims=True)
    mean = unit.mean(axis=1)
    np.testing.assert_allclose(clip.class_embeddings(per_template), mean / np.linalg.norm(mean, axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_a_constructed_case_is_classified_right():
    rng = np.random.default_rng(3)
    classes = np.eye(4)[:3] * [[2.0], [0.5], [5.0]]  # three classes, four dimensions, any lengths
    text = classes[:, None, :] + rng.normal(0, 0.05, (3, 4, 4))  # four templates each, near their class
    y = np.repeat([0, 1, 2], 5)
    photos = 3.0 * np.eye(4)[y] + rng.normal(0, 0.3, (15, 4))  # each photo near its class's direction
    scores = clip.zero_shot_scores(photos, clip.class_embeddings(text), 100.0)
    assert scores.argmax(1).tolist() == y.tolist()
    assert (scores[np.arange(15), y] > 0.9).all()
    # classes listed in another order: the same photos, the labels permuted with them
    order = [2, 0, 1]
    swapped = clip.zero_shot_scores(photos, clip.class_embeddings(text[order]), 100.0)
    assert [order[c] for c in swapped.argmax(1)] == y.tolist()


def test_prompts_from_files_and_their_one_line_errors(tmp_path):
    assert clip.class_prompts(["ants", "bees", "not-hotdog", "sea_urchin"]) == ["ant", "bee", "food other than a hot dog", "sea urchin"]
    (tmp_path / "names.txt").write_text("# one a line\nsoldier ant\n\nhoney bee\n")
    assert clip.class_prompts(["ants", "bees"], clip.read_list(tmp_path / "names.txt", "--classes")) == ["soldier ant", "honey bee"]
    (tmp_path / "names.json").write_text(json.dumps({"bees": "bumblebee", "ants": "ant"}))
    assert clip.class_prompts(["ants", "bees"], clip.read_list(tmp_path / "names.json", "--classes")) == ["ant", "bumblebee"]
    with pytest.raises(cli.LabError, match="no name for the class.es. bees"):
        clip.class_prompts(["ants", "bees"], {"ants": "ant"})
    with pytest.raises(cli.LabError, match="3 names for the 2 classes of the data .ants, bees."):
        clip.class_prompts(["ants", "bees"], ["a", "b", "c"])
    (tmp_path / "t.txt").write_text("a photo of a {}.\na sketch of a {}.\n")
    assert clip.read_templates(tmp_path / "t.txt") == ["a photo of a {}.", "a sketch of a {}."]
    (tmp_path / "bad.json").write_text('["a photo"]')
    with pytest.raises(cli.LabError, match="'a photo' must hold exactly one {}"):
        clip.read_templates(tmp_path / "bad.json")


def test_quick_run_writes_its_table_and_figure_beside_a_finetune_run(tiny_preset, loaded, photos, tmp_path, backend, capsys):
    # an earlier finetune run on the same classes, as runs.Run writes its folder
    earlier = runs.Run("finetune", {"seed": 0}, out=tmp_path / "finetune-run")
    earlier.note(classes=["ants", "bees"], data_used=str(photos))
    rows = [{"model": "frozen", "trainable params": 1026, "total params": 11187138, "val accuracy": 0.75, "macro F1": 0.7, "device": "cpu:0"},
            {"model": "fine-tuned", "trainable params": 11177538, "total params": 11187138, "val accuracy": 0.92, "macro F1": 0.91, "device": "cpu:0"}]
    earlier.save_table("summary", rows)
    (tmp_path / "names.txt").write_text("ant\nbee\n")
    out = tmp_path / "run"
    capsys.readouterr()
    run = clip.main(["--quick", "--data-dir", str(photos), "--preset", str(tiny_preset[0]), "--classes", str(tmp_path / "names.txt"),
                     "--compare", str(earlier.path), "--out", str(out)])
    with open(run.file("summary.csv")) as f:
        table = list(csv.DictReader(f))
    assert [row["model"] for row in table] == ["ants/bees: single prompt", "ants/bees: ensemble", "finetune: fine-tuned"]
    assert table[2]["val accuracy"] == "0.92" and table[2]["run"] == "finetune-run" and table[2]["prompts"] == "trained"
    assert [row["prompts"] for row in table[:2]] == ["1 template", f"{len(clip.TEMPLATES)} templates"]
    assert table[0]["trainable params"] == "0" and int(table[0]["total params"]) == loaded.backbone.count_params()
    # the table holds what the lab's functions compute on the same photos
    from kcourse import images

    data = images.load_image_folder(photos, image_size=32, crop_margin=0.0, max_per_class=16)
    for row, templates in zip(table, (clip.TEMPLATES[:1], clip.TEMPLATES)):
        scores = clip.evaluate(loaded, data, ["ant", "bee"], templates)
        assert float(row["val accuracy"]) == pytest.approx(scores["val accuracy"]) and int(row["val images"]) == len(data.y_val)
        assert float(row["macro F1"]) == pytest.approx(scores["macro F1"])
    assert run.outputs["scores"]["data"].shape == (len(data.y_val), 2)
    config = json.loads(run.file("config.json").read_text())
    assert config["backend"] == backend and config["prompts"] == {"data": ["ant", "bee"]} and config["templates"] == list(clip.TEMPLATES)
    assert config["weights"] == "pretrained" and config["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-5)
    assert "zero-shot, ensemble: val accuracy" in capsys.readouterr().out


def test_wrong_class_names_for_the_data_are_one_line(tiny_preset, photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "three.txt").write_text("ant\nbee\nwasp\n")
    code, stderr = run_lab("clip", ["--quick", "--data-dir", str(photos), "--preset", str(tiny_preset[0]), "--classes", "three.txt"])
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("error: --classes three.txt: 3 names for the 2 classes of the data (ants, bees)")


@pytest.mark.offline
def test_offline_the_model_is_the_tiny_clip_and_says_so_in_one_line(capsys, monkeypatch):
    from kcourse import downloads

    asked, online = [], downloads.online
    monkeypatch.setattr(downloads, "online", lambda host, *a, **k: asked.append(host) or online(host, *a, **k))
    for preset in (clip.PRESET, "hf://keras/clip_vit_base_patch32"):
        model = clip.load_model(preset)
        assert model.weights == "random" and model.image_size == 32
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"offline: could not download the keras-hub preset {preset}"), lines
        assert "its predictions mean nothing" in lines[0]
    assert asked == ["huggingface.co"]  # hf:// alone would retry for about 20 s: the host is asked first


@pytest.mark.offline
def test_only_the_validation_photos_are_read(tmp_path, monkeypatch):
    """The bug this catches: the lab loaded and cropped every training photo (1.6 GB for the hot dogs) to classify the val ones."""
    from kcourse import images
    from tests.test_images import make_folder

    read, real = [], images.read_image
    monkeypatch.setattr(images, "read_image", lambda path, size: read.append(path) or real(path, size))
    photos = clip.load_data(data_dir=make_folder(tmp_path / "photos", n=3), image_size=16)
    data = photos["photos"]
    assert len(data.x_val) == 6 and len(data.x_train) == 0 and data.x_val.shape[1:] == (16, 16, 3)  # no margin to re-crop
    assert len(read) == 6 and all("/val/" in str(path) for path in read)
