import keras
import numpy as np
import pytest

from kcourse.layers import PositionalEncoding
from layer_checks import run_layer_checks, to_numpy
from layers_reference import load


@pytest.mark.parametrize("mode", ["sinusoidal", "learned"])
def test_layer_checks(tmp_path, mode):
    x = np.random.default_rng(0).standard_normal((2, 6, 8)).astype("float32")
    kwargs = dict(max_len=10, d_model=8, mode=mode)
    run_layer_checks(PositionalEncoding, kwargs, (x,), (2, 6, 8), tmp_path)


@pytest.mark.parametrize("width", ["even", "odd"])
def test_sinusoidal_matches_numpy_reference(width):
    case = load("positional_encoding")
    x = case[f"x_{width}"]
    out = PositionalEncoding(max_len=20, d_model=x.shape[-1])(x)
    np.testing.assert_allclose(to_numpy(out), case[f"out_{width}"], rtol=1e-5, atol=1e-5)


def test_sinusoidal_has_no_weights_and_learned_has_a_table():
    x = np.zeros((1, 4, 6), "float32")
    sinusoidal, learned = PositionalEncoding(12, 6), PositionalEncoding(12, 6, mode="learned")
    sinusoidal(x), learned(x)
    assert sinusoidal.weights == []
    assert [tuple(w.shape) for w in learned.trainable_weights] == [(12, 6)]
    np.testing.assert_allclose(to_numpy(learned(x)), to_numpy(learned.table)[None, :4], atol=1e-7)


def test_dynamic_length_uses_the_first_rows():
    inputs = keras.Input((None, 6))
    model = keras.Model(inputs, PositionalEncoding(12, 6)(inputs))
    full = to_numpy(model(np.zeros((1, 12, 6), "float32")))
    short = to_numpy(model(np.zeros((1, 5, 6), "float32")))
    np.testing.assert_allclose(short, full[:, :5], atol=1e-6)


@pytest.mark.parametrize("mode", ["sinusoidal", "learned"])
def test_too_long_sequence_is_a_clear_error(mode):
    with pytest.raises(ValueError, match=r"max_len=8\) received a sequence of length 10"):
        PositionalEncoding(max_len=8, d_model=4, mode=mode)(np.zeros((2, 10, 4), "float32"))
    with pytest.raises(ValueError, match="length 10"):
        PositionalEncoding(max_len=8, d_model=4, mode=mode)(keras.Input((10, 4)))


def test_invalid_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="received mode='rope'"):
        PositionalEncoding(8, 4, mode="rope")
    with pytest.raises(ValueError, match="last axis must be 4"):
        PositionalEncoding(8, 4)(np.zeros((1, 3, 5), "float32"))


def test_keeps_the_keras_mask():
    inputs = keras.Input((5,), dtype="int32")
    h = PositionalEncoding(8, 4)(keras.layers.Embedding(10, 4, mask_zero=True)(inputs))
    assert h._keras_mask is not None
