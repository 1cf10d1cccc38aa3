import keras
import numpy as np
import pytest

from kcourse.layers import RandomResizedCrop
from layer_checks import forward, run_layer_checks, to_numpy


def test_layer_checks(tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (4, 20, 24, 3)).astype("float32")
    kwargs = dict(height=8, width=8, scale=(0.08, 1.0), ratio=(0.75, 4 / 3), inference_crop=0.875, seed=3)
    run_layer_checks(RandomResizedCrop, kwargs, (x,), (4, 8, 8, 3), tmp_path)


@pytest.mark.parametrize("shape", [(3, 40, 60, 3), (2, 17, 9, 3), (1, 8, 8, 3), (2, 300, 200, 1), (50, 50, 3)])
def test_output_size_is_fixed_whatever_the_input_size(shape):
    crop = RandomResizedCrop(16, 12, seed=1)
    x = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    expected = (*shape[:-3], 16, 12, shape[-1])
    for training in (True, False):
        out = to_numpy(crop(x, training=training))
        assert out.shape == expected, (training, out.shape)
        assert 0 <= out.min() and out.max() <= 255  # bilinear: values stay in the input's range


def test_symbolic_shape_with_unknown_sides():
    out = RandomResizedCrop(16, 16)(keras.Input((None, None, 3)))
    assert tuple(out.shape) == (None, 16, 16, 3)


def test_inference_is_the_centre_crop():
    x = np.random.default_rng(0).uniform(0, 255, (2, 36, 36, 3)).astype("float32")
    # 32/36 of the side, already 32 x 32: exactly the central window, no resampling
    out = to_numpy(RandomResizedCrop(32, 32, inference_crop=32 / 36)(x))
    np.testing.assert_array_equal(out, x[:, 2:34, 2:34])
    # the largest central box with the output's aspect ratio, resized: a 40 x 20 image -> its middle 20 x 20
    tall = np.zeros((1, 40, 20, 1), "float32")
    tall[0, 10:30] = 255.0
    np.testing.assert_allclose(to_numpy(RandomResizedCrop(10, 10)(tall)), 255.0, atol=1e-3)


def test_training_crops_are_random_seeded_and_keep_the_content():
    # a horizontal ramp: any crop of it, resized, is still increasing from left to right
    ramp = np.tile(np.linspace(0, 255, 64, dtype="float32")[None, :, None], (64, 1, 3))
    x = np.stack([ramp] * 8)
    a = to_numpy(RandomResizedCrop(16, 16, seed=7)(x, training=True))
    b = to_numpy(RandomResizedCrop(16, 16, seed=7)(x, training=True))
    np.testing.assert_allclose(a, b)  # same seed, same crops
    assert np.all(np.diff(a[..., 0].mean(axis=1), axis=-1) >= -1e-3)  # no flips, no rotations
    widths = a[:, :, -1, 0].mean(axis=1) - a[:, :, 0, 0].mean(axis=1)  # span of the ramp each crop kept
    assert widths.std() > 5, widths  # different images get different crops
    assert widths.min() > 0 and widths.max() <= 255 + 1e-3


@pytest.mark.parametrize("ratio, expected", [(1.0, (32.0, 32.0)), (2.0, (45.25, 22.63))])
def test_the_crop_has_the_asked_area_and_ratio(ratio, expected):
    # channel 0 holds each pixel's x, channel 1 its y: the output's spans are the crop's width and height
    ys, xs = np.mgrid[0:64, 0:64].astype("float32")
    x = np.stack([np.stack([xs, ys], axis=-1)] * 6)  # (6, 64, 64, 2)
    crop = RandomResizedCrop(32, 32, scale=(0.25, 0.25), ratio=(ratio, ratio), seed=0)
    out = to_numpy(crop(x, training=True))
    # output pixel centres span (n - 1) / n of the box
    width = (out[:, :, -1, 0] - out[:, :, 0, 0]).mean(axis=1) * 32 / 31
    height = (out[:, -1, :, 1] - out[:, 0, :, 1]).mean(axis=1) * 32 / 31
    np.testing.assert_allclose(width, expected[0], atol=0.5)
    np.testing.assert_allclose(height, expected[1], atol=0.5)
    assert len(np.unique(np.round(out[:, 0, 0, 0]))) > 1  # at different places


def test_in_a_model_each_image_gets_its_own_crop_in_training_only():
    inputs = keras.Input((20, 20, 3))
    model = keras.Model(inputs, RandomResizedCrop(8, 8, seed=2)(inputs))
    x = np.repeat(np.random.default_rng(0).uniform(0, 255, (1, 20, 20, 3)).astype("float32"), 4, axis=0)
    trained = to_numpy(model(x, training=True))  # four copies of one image
    assert trained.shape == (4, 8, 8, 3)
    assert not np.allclose(trained[0], trained[1]) and not np.allclose(trained[2], trained[3])
    inferred = to_numpy(forward(model, x))  # predict: training is off
    np.testing.assert_allclose(inferred, np.repeat(inferred[:1], 4, axis=0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(height=0, width=8), "height must be a positive int, received height=0"),
        (dict(height=8, width=8, scale=(0.5, 0.1)), "scale must be (low, high)"),
        (dict(height=8, width=8, ratio=(0.0, 1.0)), "ratio must be (low, high)"),
        (dict(height=8, width=8, inference_crop=1.5), "inference_crop must be in (0, 1], received inference_crop=1.5"),
        (dict(height=8, width=8, interpolation="cubic"), "interpolation must be"),
    ],
)
def test_invalid_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError) as error:
        RandomResizedCrop(**kwargs)
    assert message in str(error.value)
