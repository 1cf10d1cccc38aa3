"""The NumPy references the layers are checked against are right: each one on a case worked out by hand."""

import math

import numpy as np
import pytest

import layers_reference as ref
from layers_reference import REFERENCES, make_cases


def test_every_case_is_stored():
    assert sorted(p.stem for p in REFERENCES.glob("*.npz")) == sorted(make_cases())
    assert sum(p.stat().st_size for p in REFERENCES.glob("*.npz")) < 200_000


def test_softmax_layer_norm_and_gelu_by_hand():
    np.testing.assert_allclose(ref.softmax(np.array([0.0, math.log(3.0)])), [0.25, 0.75])
    np.testing.assert_allclose(ref.layer_norm(np.array([1.0, 3.0]), 1.0, 0.0, eps=0.0), [-1.0, 1.0])
    np.testing.assert_allclose(ref.layer_norm(np.array([1.0, 3.0]), 2.0, 0.5, eps=0.0), [-1.5, 2.5])
    assert float(ref.gelu(np.array(1.0))) == pytest.approx(0.8413447, abs=1e-7)  # 1 x Phi(1)
    assert float(ref.gelu(np.array(-1.0))) == pytest.approx(-0.1586553, abs=1e-7)


def test_attention_by_hand():
    """Two tokens (1, 0) and (0, 1), one head, identity projections: scores x x^T / sqrt(2)."""
    x, eye = np.array([[[1.0, 0.0], [0.0, 1.0]]]), np.eye(2)
    out, w = ref.mhsa(x, eye, eye, eye, eye, n_heads=1)
    a = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)  # 0.6700: each token attends to itself more
    np.testing.assert_allclose(w[0, 0], [[a, 1 - a], [1 - a, a]])
    np.testing.assert_allclose(out[0], [[a, 1 - a], [1 - a, a]])  # the values mixed by those weights
    _, masked = ref.mhsa(x, eye, eye, eye, eye, n_heads=1, mask=np.array([[1, 0]]))
    np.testing.assert_allclose(masked[0, 0], [[1, 0], [1, 0]])  # the padding key gets no weight
    _, causal = ref.mhsa(x, eye, eye, eye, eye, n_heads=1, causal=True)
    np.testing.assert_allclose(causal[0, 0], [[1, 0], [1 - a, a]])  # the first token cannot see the second


def test_sinusoidal_table_by_hand():
    table = ref.sinusoidal_table(3, 4)
    np.testing.assert_allclose(table[0], [0, 1, 0, 1])  # position 0: sin 0, cos 0
    np.testing.assert_allclose(table[2], [math.sin(2), math.cos(2), math.sin(2 / 100), math.cos(2 / 100)])


def test_skip_gram_loss_by_hand():
    """u . v = 0 everywhere: -log sigmoid(0) for the positive and each negative, log 2 each."""
    u, v = np.zeros((4, 3)), np.zeros((4, 3))
    loss = ref.skip_gram_loss(u, v, np.array([1]), np.array([[2]]), np.array([[3, 0]]))
    assert float(np.mean(loss)) == pytest.approx(3 * math.log(2))
