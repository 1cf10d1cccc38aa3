import keras
import numpy as np
import pytest

from kcourse.models import TinyTransformerClassifier
from layer_checks import forward, jit_compile, to_numpy

VOCAB, MAX_LEN = 20, 8
# [CLS] = 1, <pad> = 0
IDS = np.array([[1, 5, 6, 7, 0, 0], [1, 9, 3, 4, 8, 2], [1, 4, 0, 0, 0, 0]], "int32")
KWARGS = dict(vocab_size=VOCAB, max_len=MAX_LEN, d_model=8, n_heads=2, n_layers=2, num_classes=3)


def test_config_round_trip_holds_the_constructor_arguments():
    emb = np.random.default_rng(0).standard_normal((VOCAB, 6)).astype("float32")
    model = TinyTransformerClassifier(
        **KWARGS, embeddings=emb, freeze_embeddings=True, pe="learned"
    )
    config = model.get_config()
    assert "embeddings" not in config
    assert config["embed_dim"] == 6 and config["freeze_embeddings"] and config["pe"] == "learned"
    assert all(config[k] == v for k, v in KWARGS.items())
    assert TinyTransformerClassifier.from_config(config).get_config() == config


def test_shapes_attention_maps_and_padding():
    model = TinyTransformerClassifier(**KWARGS)
    assert tuple(model(keras.Input((MAX_LEN,), dtype="int32")).shape) == (None, 3)
    logits = to_numpy(model(IDS))
    assert logits.shape == (3, 3)

    eval_logits, maps = model.logits_and_attention(IDS)
    assert isinstance(eval_logits, np.ndarray) and isinstance(maps[0], np.ndarray)
    np.testing.assert_allclose(eval_logits, logits, atol=1e-6)
    assert len(maps) == 2 and all(a.shape == (3, 2, 6, 6) for a in maps)
    for a in maps:  # keys at padding positions get exactly zero attention
        assert np.all(a[0, :, :, 4:] == 0.0) and np.all(a[2, :, :, 2:] == 0.0)
        assert np.all(a[1] > 0.0)
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)

    # Trailing padding changes nothing: [CLS] 5 6 7 <pad> <pad> == [CLS] 5 6 7.
    unpadded = to_numpy(forward(model, IDS[:1, :4]))
    np.testing.assert_allclose(unpadded, logits[:1], rtol=1e-5, atol=1e-5)


def test_fit_save_and_reload_with_frozen_pretrained_embeddings(tmp_path):
    emb = np.random.default_rng(1).standard_normal((VOCAB, 6)).astype("float32")
    model = TinyTransformerClassifier(
        **KWARGS, embeddings=emb, freeze_embeddings=True, pe="learned"
    )
    model.build((None, 6))
    assert model.proj is not None  # 6 -> 8
    assert all(w is not model.embed.embeddings for w in model.trainable_weights)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile(),
    )
    before = to_numpy(model.trainable_weights)
    loss = model.fit(IDS, np.array([0, 1, 2]), epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    moved = [not np.allclose(b, a) for b, a in zip(before, to_numpy(model.trainable_weights))]
    assert all(moved), "a trainable weight did not move"
    np.testing.assert_array_equal(to_numpy(model.embed.embeddings), emb)

    path = tmp_path / "tiny.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, TinyTransformerClassifier) and not reloaded.embed.trainable
    np.testing.assert_array_equal(to_numpy(reloaded.embed.embeddings), emb)
    np.testing.assert_allclose(to_numpy(reloaded(IDS)), to_numpy(model(IDS)), rtol=1e-6, atol=1e-6)


def test_no_projection_when_widths_match():
    model = TinyTransformerClassifier(**KWARGS)
    model.build((None, 6))
    assert model.proj is None
    d, h = 8, 16
    block = 4 * d * d + 2 * d * h + h + d + 4 * d
    assert model.count_params() == VOCAB * d + 2 * block + 2 * d + (d * 3 + 3)


def test_mixed_precision():
    model = TinyTransformerClassifier(**KWARGS, dtype="mixed_bfloat16")
    logits = forward(model, IDS)
    assert keras.backend.standardize_dtype(logits.dtype) == "bfloat16"
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in model.weights)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="length 9"):
        TinyTransformerClassifier(**KWARGS)(np.ones((1, 9), "int32"))
    with pytest.raises(ValueError, match=r"\(20, 6\), received \(19, 6\)"):
        TinyTransformerClassifier(**KWARGS, embeddings=np.zeros((19, 6)))
