"""The strict check of "the same code gives the same numbers": one initial .keras file, the same batches, every backend."""

import pytest

from kcourse import parity


def test_the_largest_gap_and_where_the_curves_part_are_read_across_every_pair():
    curves = {"jax": [2.0, 1.0, 0.5], "torch": [2.0, 1.0, 0.5], "tensorflow": [2.0, 1.1, 0.5]}
    gap, step, a, b = parity.largest_gap(curves)
    assert (round(gap, 6), step) == (0.1, 1) and "tensorflow" in (a, b)
    assert parity.agree_until(curves) == 1 and parity.agree_until(curves, tolerance=0.2) == 3


def test_three_backends_train_the_same_curve_from_one_file(backend, tmp_path):
    """Once per `make test` (the jax session): each backend in its own process."""
    if backend != "jax":
        pytest.skip("checked once, from the jax session, across the three backends")
    result = parity.run(parity.BACKENDS, steps=40, batch_size=16, folder=tmp_path)
    assert set(result["curves"]) == set(parity.BACKENDS) and all(len(c) == 40 for c in result["curves"].values())
    losses = result["curves"]["jax"]
    assert losses[-1] < losses[0]  # it trains
    assert result["agree until"] == 40 and result["largest gap"] < parity.TOLERANCE, result["largest gap"]  # float32 rounding only
    assert "agree to 1e-05 for the first 40 steps" in parity.sentence(result)
