import keras
import numpy as np
import pytest

from kcourse.layers import MultiHeadSelfAttention
from layer_checks import run_layer_checks, to_numpy
from layers_reference import load


def _with_reference_weights(case, use_bias=False):
    layer = MultiHeadSelfAttention(d_model=8, n_heads=2, use_bias=use_bias)
    layer.build((None, 5, 8))
    for name in ("wq", "wk", "wv", "wo"):
        dense = getattr(layer, name)
        dense.kernel.assign(case[name])
        if use_bias:
            dense.bias.assign(case["b" + name[1]])
    return layer


def test_layer_checks(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype("float32")
    run_layer_checks(
        MultiHeadSelfAttention,
        dict(d_model=8, n_heads=2, attn_drop=0.1, proj_drop=0.1, use_bias=True),
        (x,),
        (2, 5, 8),
        tmp_path,
        call_kwargs=dict(causal=True),
    )


@pytest.mark.parametrize(
    "mask_key, causal, out_key, w_key",
    [
        ("pad_mask", False, "out_pad", "w_pad"),
        ("pad_mask", True, "out_causal", "w_causal"),
        ("full_mask", False, "out_full", "w_full"),
    ],
)
def test_matches_numpy_reference(mask_key, causal, out_key, w_key):
    case = load("multi_head_self_attention")
    layer = _with_reference_weights(case)
    out, w = layer(case["x"], mask=case[mask_key], causal=causal, need_weights=True)
    np.testing.assert_allclose(to_numpy(out), case[out_key], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(w), case[w_key], rtol=1e-5, atol=1e-5)


def test_matches_numpy_reference_with_bias():
    case = load("multi_head_self_attention")
    out, w = _with_reference_weights(case, use_bias=True)(case["x"], need_weights=True)
    np.testing.assert_allclose(to_numpy(out), case["out_bias"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(w), case["w_bias"], rtol=1e-5, atol=1e-5)


def test_padding_keys_get_exactly_zero_weight_and_rows_sum_to_one():
    x = np.random.default_rng(1).standard_normal((2, 6, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    _, w = MultiHeadSelfAttention(8, 2)(x, mask=mask, need_weights=True)
    w = to_numpy(w)
    assert np.all(w[1, :, :, 4:] == 0.0)
    assert np.all(w[1, :, :, :4] > 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)


def test_all_masked_rows_are_finite_zeros():
    x = np.random.default_rng(2).standard_normal((2, 4, 8)).astype("float32")
    mask = np.array([[0, 0, 0, 0], [1, 1, 0, 0]])  # sample 0 has no token at all
    out, w = MultiHeadSelfAttention(8, 2, use_bias=False)(x, mask=mask, need_weights=True)
    out, w = to_numpy(out), to_numpy(w)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(w))
    assert np.all(w[0] == 0.0) and np.all(out[0] == 0.0)
    np.testing.assert_allclose(w[1].sum(-1), 1.0, atol=1e-6)


def test_all_masked_rows_have_finite_gradients():
    x = np.random.default_rng(3).standard_normal((2, 4, 8)).astype("float32")
    mask = np.array([[0, 0, 0, 0], [1, 1, 1, 0]])
    ids = keras.Input((4, 8))
    m = keras.Input((4,), dtype="int32")
    model = keras.Model([ids, m], MultiHeadSelfAttention(8, 2)(ids, mask=m))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit([x, mask], np.ones((2, 4, 8), "float32"), epochs=1, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in to_numpy(model.trainable_weights))


def test_causal_upper_triangle_is_exactly_zero():
    x = np.random.default_rng(4).standard_normal((2, 7, 8)).astype("float32")
    _, w = MultiHeadSelfAttention(8, 4)(x, causal=True, need_weights=True)
    w = to_numpy(w)
    upper = np.triu(np.ones((7, 7), bool), k=1)
    assert np.all(w[..., upper] == 0.0)
    assert np.all(w[..., ~upper] > 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)


def test_keras_mask_is_picked_up_from_embedding():
    ids = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]], "int32")
    inputs = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(10, 8, mask_zero=True)(inputs)
    _, w = MultiHeadSelfAttention(8, 2)(h, need_weights=True)
    w = to_numpy(keras.Model(inputs, w)(ids))
    assert np.all(w[0, :, :, 3:] == 0.0) and np.all(w[1] > 0.0)


@pytest.mark.parametrize("use_bias, expected", [(False, 4 * 8**2), (True, 4 * 8**2 + 4 * 8)])
def test_weight_count_is_four_d_model_squared(use_bias, expected):
    for n_heads in (1, 2, 4, 8):  # independent of the number of heads
        layer = MultiHeadSelfAttention(8, n_heads, use_bias=use_bias)
        layer.build((None, 5, 8))
        assert layer.count_params() == expected


def test_output_and_weight_shapes():
    x = np.zeros((2, 10, 64), "float32")
    out, w = MultiHeadSelfAttention(64, 4)(x, need_weights=True)
    assert tuple(out.shape) == (2, 10, 64) and tuple(w.shape) == (2, 4, 10, 10)
    sym_out, sym_w = MultiHeadSelfAttention(64, 4)(keras.Input((None, 64)), need_weights=True)
    assert tuple(sym_out.shape) == (None, None, 64) and tuple(sym_w.shape) == (None, 4, None, None)


def test_invalid_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_heads=4"):
        MultiHeadSelfAttention(d_model=30, n_heads=4)


def test_wrong_width_is_a_clear_error():
    with pytest.raises(ValueError, match="last axis must be 16"):
        MultiHeadSelfAttention(16, 4)(np.zeros((1, 3, 8), "float32"))


@pytest.mark.parametrize("attn_drop, proj_drop", [(0.5, 0.0), (0.0, 0.5)])
def test_each_dropout_acts_in_training_only(attn_drop, proj_drop):
    x = np.random.default_rng(5).standard_normal((2, 5, 8)).astype("float32")
    layer = MultiHeadSelfAttention(8, 2, attn_drop=attn_drop, proj_drop=proj_drop)
    inference = to_numpy(layer(x))
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), inference)
    assert not np.allclose(to_numpy(layer(x, training=True)), inference, atol=1e-3)
