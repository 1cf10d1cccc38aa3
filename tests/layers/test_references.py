"""The stored references are what the NumPy reference functions compute."""

import numpy as np
import pytest

from layers_reference import REFERENCES, load, make_cases

CASES = make_cases()


def test_every_case_is_stored():
    assert sorted(p.stem for p in REFERENCES.glob("*.npz")) == sorted(CASES)
    assert sum(p.stat().st_size for p in REFERENCES.glob("*.npz")) < 200_000


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_reference_reproduces_the_stored_file(name):
    stored = load(name)
    assert sorted(stored) == sorted(CASES[name])
    for key, value in CASES[name].items():
        assert stored[key].dtype == value.dtype and stored[key].shape == value.shape, key
        np.testing.assert_allclose(stored[key], value, rtol=1e-12, atol=1e-12, err_msg=key)
