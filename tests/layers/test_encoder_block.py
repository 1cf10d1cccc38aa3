import numpy as np
import pytest

from kcourse.layers import EncoderBlock
from layer_checks import run_layer_checks, to_numpy
from layers_reference import load


def test_layer_checks(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype("float32")
    kwargs = dict(d_model=8, n_heads=2, mlp_ratio=2.0, drop=0.1)
    run_layer_checks(EncoderBlock, kwargs, (x,), (2, 5, 8), tmp_path)


def test_matches_numpy_reference():
    case = load("encoder_block")
    block = EncoderBlock(d_model=8, n_heads=2, mlp_ratio=2.0, drop=0.0)
    block.build((None, 5, 8))
    block.norm1.set_weights([case["ln1_g"], case["ln1_b"]])
    block.norm2.set_weights([case["ln2_g"], case["ln2_b"]])
    for name in ("wq", "wk", "wv", "wo"):
        getattr(block.attn, name).kernel.assign(case[name])
    block.fc1.set_weights([case["fc1_w"], case["fc1_b"]])
    block.fc2.set_weights([case["fc2_w"], case["fc2_b"]])
    out, w = block(case["x"], mask=case["pad_mask"], need_weights=True)
    np.testing.assert_allclose(to_numpy(out), case["out"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(w), case["weights"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("d, mlp_ratio", [(8, 2.0), (8, 4.0)])
def test_weight_count_matches_the_course_formula(d, mlp_ratio):
    block = EncoderBlock(d_model=d, n_heads=2, mlp_ratio=mlp_ratio)
    block.build((None, 5, d))
    h = int(d * mlp_ratio)
    # 4 d^2 (attention, no bias) + 2 mlp_ratio d^2 (MLP kernels) + MLP biases + 2 LayerNorms
    assert block.count_params() == 4 * d**2 + 2 * d * h + (h + d) + 2 * (2 * d)
    assert block.attn.count_params() == 4 * d**2


def test_dropout_acts_in_training_only_in_attention_and_mlp():
    x = np.random.default_rng(1).standard_normal((2, 5, 8)).astype("float32")
    zeros = lambda v: v.assign(np.zeros(v.shape, "float32"))  # noqa: E731
    for branch in ("attention", "mlp"):
        block = EncoderBlock(8, 2, drop=0.5)
        block.build((None, 5, 8))
        if branch == "attention":  # the MLP adds zero: only attention dropout is left
            zeros(block.fc2.kernel), zeros(block.fc2.bias)
        else:  # the attention adds zero: only MLP dropout is left
            zeros(block.attn.wo.kernel)
        inference = to_numpy(block(x))  # training=None means inference
        np.testing.assert_allclose(to_numpy(block(x, training=False)), inference)
        assert not np.allclose(to_numpy(block(x, training=True)), inference, atol=1e-3), branch


def test_padding_keys_get_zero_attention():
    x = np.random.default_rng(2).standard_normal((2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    _, w = EncoderBlock(8, 2)(x, mask=mask, need_weights=True)
    w = to_numpy(w)
    assert tuple(w.shape) == (2, 2, 5, 5)
    assert np.all(w[1, :, :, 2:] == 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
