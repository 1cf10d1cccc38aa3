import keras
import numpy as np
import pytest

from kcourse.layers import ConvBlock, DownBlock, UpBlock
from layer_checks import forward, run_layer_checks, to_numpy

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 7, 7, 3)).astype("float32")
SKIP = rng.standard_normal((2, 15, 15, 2)).astype("float32")


def test_conv_block_checks(tmp_path):
    run_layer_checks(ConvBlock, dict(filters=4, norm="batch"), (SKIP,), (2, 15, 15, 4), tmp_path)


def test_down_block_checks(tmp_path):
    # 15 -> 7
    run_layer_checks(DownBlock, dict(filters=4, norm="none"), (SKIP,), (2, 7, 7, 4), tmp_path)


@pytest.mark.parametrize("mode, norm", [("transpose", "none"), ("bilinear", "batch")])
def test_up_block_checks_with_odd_skip(tmp_path, mode, norm):
    kwargs = dict(filters=4, mode=mode, norm=norm)
    run_layer_checks(UpBlock, kwargs, (X, SKIP), (2, 15, 15, 4), tmp_path)


def test_conv_block_weight_count():
    with_bn, without = ConvBlock(4), ConvBlock(4, norm="none")
    with_bn.build((None, 15, 15, 2)), without.build((None, 15, 15, 2))
    convs = 3 * 3 * 2 * 4 + 3 * 3 * 4 * 4
    assert without.count_params() == convs + 2 * 4  # with biases
    assert with_bn.count_params() == convs + 2 * 4 * 4  # BatchNorm: gamma, beta, mean, variance


def test_up_block_pads_the_bottom_right():
    """With a constant upsampled map and identity convolutions, channel 0 of
    the output is the upsampled map after padding: ones, then a zero row and
    column where 7 -> 14 was padded to 15."""
    up = UpBlock(4, mode="transpose", norm="none")
    up.build((None, 7, 7, 3), (None, 15, 15, 2))
    up.up.set_weights([np.zeros((2, 2, 4, 3), "float32"), np.ones(4, "float32")])
    k1 = np.zeros((3, 3, 6, 4), "float32")  # in: 4 upsampled + 2 skip channels
    k1[1, 1, :4, :4] = np.eye(4)  # centre tap: the upsampled channels
    k2 = np.zeros((3, 3, 4, 4), "float32")
    k2[1, 1] = np.eye(4)
    up.conv.conv1.set_weights([k1, np.zeros(4, "float32")])
    up.conv.conv2.set_weights([k2, np.zeros(4, "float32")])
    out = to_numpy(up(X, SKIP))[..., 0]
    expected = np.zeros((2, 15, 15), "float32")
    expected[:, :14, :14] = 1.0
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("mode", ["transpose", "bilinear"])
def test_up_block_static_and_dynamic_shapes(mode):
    up = UpBlock(4, mode=mode)
    static = up(keras.Input((7, 7, 3)), keras.Input((15, 15, 2)))
    assert tuple(static.shape) == (None, 15, 15, 4)
    x_in, skip_in = keras.Input((None, None, 3)), keras.Input((None, None, 2))
    dynamic = up(x_in, skip_in)
    assert tuple(dynamic.shape) == (None, None, None, 4)
    model = keras.Model([x_in, skip_in], dynamic)
    for h, s in [(7, 15), (8, 16), (4, 9)]:  # odd and even skips
        x = np.ones((1, h, h + 1, 3), "float32")
        skip = np.ones((1, s, s + 2, 2), "float32")
        assert to_numpy(forward(model, [x, skip])).shape == (1, s, s + 2, 4)
    if keras.backend.backend() == "tensorflow" and mode == "transpose":
        # A graph with unknown sizes. Not for "bilinear": Keras' UpSampling2D
        # (bilinear) needs the sizes known inside a TF graph.
        import tensorflow as tf

        spec = [tf.TensorSpec((None, None, None, 3)), tf.TensorSpec((None, None, None, 2))]
        graph = tf.function(lambda x, s: model([x, s]), input_signature=spec)
        out = graph(np.ones((1, 7, 7, 3), "float32"), np.ones((1, 15, 15, 2), "float32"))
        assert tuple(out.shape) == (1, 15, 15, 4)


def test_down_then_up_restores_odd_sizes():
    inputs = keras.Input((None, None, 2))
    down = DownBlock(4, name="down")(inputs)  # (B, H//2, W//2, 4)
    model = keras.Model(inputs, UpBlock(4, name="up")(down, inputs))  # (B, H, W, 4)
    for size in [(15, 15), (13, 18)]:
        assert to_numpy(forward(model, np.zeros((1, *size, 2), "float32"))).shape == (1, *size, 4)


def test_invalid_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="received norm='group'"):
        ConvBlock(4, norm="group")
    with pytest.raises(ValueError, match="received mode='nearest'"):
        UpBlock(4, mode="nearest")
