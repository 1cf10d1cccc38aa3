import keras
import numpy as np
import pytest

from kcourse.layers import ClassificationHead
from layer_checks import run_layer_checks, to_numpy
from layers_reference import load


@pytest.mark.parametrize(
    "kwargs",
    [dict(num_classes=3), dict(num_classes=3, hidden_dim=8, dropout=0.2, input_dim=16)],
)
def test_layer_checks(tmp_path, kwargs):
    x = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    run_layer_checks(ClassificationHead, kwargs, (x,), (4, 3), tmp_path)


def test_matches_numpy_reference():
    case = load("classification_head")
    head = ClassificationHead(num_classes=3, hidden_dim=5, dropout=0.5, input_dim=6)
    head.build((None, 6))
    head.hidden.set_weights([case["w1"], case["b1"]])
    head.out.set_weights([case["w2"], case["b2"]])
    np.testing.assert_allclose(to_numpy(head(case["x"])), case["logits"], rtol=1e-5, atol=1e-5)


def test_weight_counts():
    linear, mlp = ClassificationHead(3), ClassificationHead(3, hidden_dim=8)
    linear.build((None, 16)), mlp.build((None, 16))
    assert linear.count_params() == 16 * 3 + 3
    assert mlp.count_params() == 16 * 8 + 8 + 8 * 3 + 3


def test_wrong_input_dim_names_both_sizes():
    head = ClassificationHead(num_classes=2, input_dim=768)
    with pytest.raises(ValueError, match="input_dim=768, received 384"):
        head(np.zeros((2, 384), "float32"))
    with pytest.raises(ValueError, match="input_dim=768, received 384"):
        ClassificationHead(num_classes=2, input_dim=768)(keras.Input((384,)))


def test_invalid_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="num_classes=0"):
        ClassificationHead(num_classes=0)
