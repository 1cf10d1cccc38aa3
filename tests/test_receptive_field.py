"""The receptive field of every layer, from the layers' configs, against a hand computation and a gradient probe."""

import numpy as np
import pytest

from kcourse import receptive_field as rf
from kcourse.models import build_cnn


def small_net():
    """32x32 -> conv 3 valid -> pool 2 -> conv 3 dilated 2 -> conv 3 stride 2 -> flatten -> dense."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((32, 32, 1)),
        layers.Conv2D(4, 3, name="c1"),
        layers.MaxPooling2D(2, name="p1"),
        layers.Conv2D(4, 3, padding="same", dilation_rate=2, name="c2"),
        layers.ReLU(name="r"),
        layers.Conv2D(4, 3, strides=2, padding="same", name="c3"),
        layers.Flatten(name="f"),
        layers.Dense(3, name="d"),
    ])


def test_table_matches_a_hand_computation():
    # r_out = r_in + d (k - 1) j_in, j_out = j_in s, by hand:
    #   c1: 1 + 2 = 3, j 1, 30x30;  p1: 3 + 1 = 4, j 2, 15x15;  c2: 4 + 2*2*2 = 12, j 2, 15x15
    #   c3: 12 + 2*2 = 16, j 4, 8x8;  flatten, dense: the whole 32x32 input
    hand = [
        ("input", "InputLayer", None, None, None, None, 1, 1, (32, 32)),
        ("c1", "Conv2D", 3, 1, "valid", 1, 1, 3, (30, 30)),
        ("p1", "MaxPooling2D", 2, 2, "valid", 1, 2, 4, (15, 15)),
        ("c2", "Conv2D", 3, 1, "same", 2, 2, 12, (15, 15)),
        ("r", "ReLU", None, None, None, None, 2, 12, (15, 15)),
        ("c3", "Conv2D", 3, 2, "same", 1, 4, 16, (8, 8)),
        ("f", "Flatten", None, None, None, None, None, 32, None),
        ("d", "Dense", None, None, None, None, None, 32, None),
    ]
    rows = rf.receptive_fields(small_net())
    assert [tuple(row.values()) for row in rows] == hand
    assert all(list(row) == list(rf.COLUMNS) for row in rows)
    assert rf.receptive_field_of(small_net()) == (16, 4)
    text = rf.table(rows)
    assert text.splitlines()[0].split()[:2] == ["layer", "type"] and "15x15" in text and len(text.splitlines()) == 9


def test_gradient_probe_is_nonzero_exactly_inside_the_computed_field():
    model = small_net()
    probe = rf.probe_receptive_field(model, samples=16)  # the last spatial layer, c3, pixel (4, 4)
    assert probe["layer"] == "c3" and probe["field"] == (16, 16)
    (top, bottom), (left, right) = probe["box"]
    inside = np.zeros_like(probe["mask"])
    inside[top : bottom + 1, left : right + 1] = True
    assert np.array_equal(probe["mask"], inside)  # every pixel inside, none outside
    # and where the table says: c3's pixel 4 is centred on input 4.5 + 4 * 4 (its 'same' padding adds nothing before)
    centre = rf.field_centre(model)
    assert (top + bottom) / 2 == centre + 4 * 4


def test_vanilla_cnn_field_and_stride():

    model = build_cnn()
    rows = rf.receptive_fields(model)
    assert [row["receptive field"] for row in rows[:7]] == [1, 5, 6, 6, 14, 16, 16]
    assert [row["jump"] for row in rows[:7]] == [1, 1, 2, 2, 2, 4, 4]
    assert [row["output size"] for row in rows[:7]] == [(28, 28), (28, 28), (14, 14), (14, 14), (14, 14), (7, 7), (7, 7)]
    assert rf.receptive_field_of(model) == (16, 4)


def test_functional_graph_with_a_residual_and_a_nested_model():
    import keras
    from keras import layers

    inputs = keras.Input((None, None, 2))
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="stem")(inputs)  # r 3, j 2
    y = layers.Conv2D(4, 3, padding="same", name="a")(x)  # r 7
    y = layers.Conv2D(4, 3, padding="same", name="b")(y)  # r 11
    x = layers.Add(name="add")([x, y])  # the widest path: 11, j 2
    inner = keras.Sequential([keras.Input((None, None, 4)), layers.ZeroPadding2D(1, name="pad"),
                              layers.Conv2D(4, 3, name="conv"), layers.MaxPooling2D(3, 2, padding="same", name="pool")],
                             name="inner")
    x = inner(x)  # conv: 11 + 2 * 2 = 15; pool: 15 + 2 * 2 = 19, j 4
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, layers.Dense(2, name="out")(x))

    rows = {row["layer"]: row for row in rf.receptive_fields(model, input_size=(48, 48))}
    assert list(rows) == ["input", "stem", "a", "b", "add", "inner/pad", "inner/conv", "inner/pool", "gap", "out"]
    assert [rows[n]["receptive field"] for n in ("stem", "a", "b", "add", "inner/conv", "inner/pool")] == [3, 7, 11, 11, 15, 19]
    assert rows["inner/pad"]["output size"] == (26, 26) and rows["inner/pool"]["output size"] == (12, 12)
    assert rows["inner/pool"]["jump"] == 4 and rows["gap"]["jump"] is None and rows["gap"]["receptive field"] == 48
    assert rf.receptive_fields(model)[-1]["receptive field"] is None  # the whole input, of open size

    probe = rf.probe_receptive_field(model, input_size=(64, 64), samples=16)  # probed at the nested model's output
    assert probe["layer"] == "inner" and probe["field"] == (19, 19) and probe["mask"].sum() == 19 * 19


def test_non_square_kernels_use_the_larger_side():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((20, 20, 1)), layers.Conv2D(2, (3, 5), strides=(1, 2), name="c")])
    row = rf.receptive_fields(model)[-1]
    assert (row["kernel"], row["stride"], row["receptive field"], row["jump"]) == (5, 2, 5, 2)


def test_probe_refuses_a_layer_that_is_not_spatial():
    with pytest.raises(ValueError, match="'f' is not a spatial layer"):
        rf.probe_receptive_field(small_net(), layer="f")
