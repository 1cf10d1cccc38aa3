"""The backend comparison script measures what it says (figures, not timings, are checked)."""

import pytest

from kcourse import benchmark, cli


@pytest.mark.parametrize("name", benchmark.MODELS)
def test_measure_reports_the_figures_of_each_model(name, backend):
    row = benchmark.measure(name, steps=3, batch_size=8)
    assert row["backend"] == backend and row["model"] == name and row["device"] == "cpu"
    assert row["first epoch s"] > 0 and row["ms / step"] > 0 and row["peak RSS MiB"] > 0
    assert row["samples / s"] == pytest.approx(8 / (row["ms / step"] / 1000))


def test_unknown_model_is_a_lab_error():
    with pytest.raises(cli.LabError, match="unknown model 'resnet'"):
        benchmark._model_and_data("resnet", 4)
