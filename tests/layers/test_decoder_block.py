import numpy as np
import pytest

from kcourse.layers import DecoderBlock, MultiHeadSelfAttention
from layer_checks import run_layer_checks, to_numpy


def test_layer_checks(tmp_path):
    rng = np.random.default_rng(0)
    y, memory = rng.standard_normal((2, 5, 8)).astype("float32"), rng.standard_normal((2, 7, 8)).astype("float32")
    run_layer_checks(DecoderBlock, dict(d_model=8, n_heads=2, mlp_ratio=2.0, drop=0.1), (y, memory), (2, 5, 8), tmp_path)


def test_cross_attention_reads_the_context_and_equals_self_attention_on_itself():
    rng = np.random.default_rng(1)
    x, context = rng.standard_normal((2, 5, 8)).astype("float32"), rng.standard_normal((2, 7, 8)).astype("float32")
    attn = MultiHeadSelfAttention(d_model=8, n_heads=2)
    out, w = to_numpy(attn(x, context=context, need_weights=True))
    assert out.shape == (2, 5, 8) and w.shape == (2, 2, 5, 7)  # a query per target place, a key per context place
    np.testing.assert_allclose(to_numpy(attn(x, context=x)), to_numpy(attn(x)), atol=1e-6)
    mask = np.array([[1, 1, 1, 0, 0, 0, 0], [1] * 7])
    _, w = to_numpy(attn(x, mask=mask, context=context, need_weights=True))
    np.testing.assert_array_equal(w[0, :, :, 3:], 0.0)  # the context's padding gets no weight
    with pytest.raises(ValueError, match="takes no causal mask"):
        attn(x, context=context, causal=True)


def test_the_decoder_block_never_sees_later_targets_nor_the_sources_padding():
    rng = np.random.default_rng(2)
    block = DecoderBlock(d_model=8, n_heads=2, drop=0.0)
    y, memory = rng.standard_normal((1, 6, 8)).astype("float32"), rng.standard_normal((1, 4, 8)).astype("float32")
    memory_mask = np.array([[1, 1, 0, 0]])
    out, self_w, cross_w = to_numpy(block(y, memory, memory_mask=memory_mask, need_weights=True))
    later, padded = y.copy(), memory.copy()
    later[:, 4:] += 5.0  # change the places 4 and 5 of the target
    padded[:, 2:] += 5.0  # and the source's padding
    moved = to_numpy(block(later, padded, memory_mask=memory_mask))
    np.testing.assert_allclose(moved[:, :4], out[:, :4], atol=1e-5)  # places 0-3 saw neither change
    assert np.abs(moved[:, 4:] - out[:, 4:]).max() > 0.1
    assert np.triu(self_w[0, 0], 1).max() == 0.0 and cross_w[0, :, :, 2:].max() == 0.0
