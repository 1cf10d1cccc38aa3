"""TP4 step 4's loop by hand on the backend under test: the same weights as model.fit; on torch, the zero_grad trap."""

import pytest

from kcourse.tasks import loop
from tests.test_notebooks import LOOP


@pytest.fixture(scope="module")
def made(lab_run):
    return lab_run("loop", *LOOP).run


def test_the_hand_written_steps_equal_fit(made):
    m = made.metrics
    assert m["moved"] > 1e-2, m["moved"]  # the weights did move...
    assert m["hand vs fit"] < 1e-5, m["hand vs fit"]  # ...and both loops moved them alike
    assert len(m["by hand"]["loss"]) == 12


def test_forgetting_zero_grad_accumulates_the_gradients(made, backend):
    trap = made.metrics.get("no zero_grad")
    if backend != "torch":
        assert trap is None  # jax and tensorflow return gradients: nothing to zero
        answers = {a["tag"]: a for a in made.answers()}
        assert answers["003:12"]["answer"] is None and answers["003:12"]["needs"] == "--backend torch"
        assert answers["001:25"]["answer"].startswith(f"By hand on {backend}")
        return
    good = made.metrics["by hand"]
    assert trap["gradient norm"][-1] > 3 * good["gradient norm"][-1]  # 12 gradients summed
    assert trap["loss"][0] == pytest.approx(good["loss"][0])  # the same first step
    assert max(trap["loss"]) > max(good["loss"][1:])
    assert "norm of" in {a["tag"]: a["answer"] for a in made.answers()}["003:12"]


def test_too_few_sentences_for_the_steps_is_a_one_line_error():
    import numpy as np

    from kcourse import cli

    with pytest.raises(cli.LabError, match="raise --sentences or lower --steps"):
        loop.batches_of(np.zeros((100, 4)), np.zeros(100), 64, 2)


def test_the_defaults_and_the_quick_sizes_have_the_sentences_their_steps_need():
    for argv in ([], ["--quick"]):
        args = loop.build_parser().parse_args(argv)
        assert args.steps * args.batch_size <= round(args.sentences * 0.8), argv  # 80% of the sentences train
