"""The backend comparison: native PyTorch and the Keras backend train the same models, in alternating rounds.

Timings are not checked (the machine is shared); what is checked is that the
comparison is fair and complete: the same parameter count on both sides, a
ratio to the native reference for every candidate, the rounds interleaved,
the files written, and BENCHMARKS.md's block rewritten (in a copy).
"""

import csv

import pytest

import kcourse
from kcourse import benchmark, cli


FLAG = "xla=xla_cpu_enable_fast_math=false"  # XLA's own default, named: one more flag in the candidate's XLA_FLAGS


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny benchmark (2 rounds of 2 steps) of this backend against native PyTorch, BENCHMARKS.md in a tmp copy."""
    import keras

    backend = keras.backend.backend()
    root = tmp_path_factory.mktemp("bench")
    (root / "pyproject.toml").write_text("")  # a checkout: BENCHMARKS.md beside it is rewritten
    md = root / "BENCHMARKS.md"
    md.write_text(f"# Benchmarks\n\nbefore the block\n\n{benchmark.BEGIN}\nold figures\n{benchmark.END}\n\nafter the block\n")
    real = benchmark.BENCHMARKS_MD
    real_text = real.read_text() if real.exists() else None
    benchmark.BENCHMARKS_MD = md
    try:
        argv = ["--models", "tiny-transformer", "word2vec", "--backends", backend, "--references", "native",
                "--rounds", "2", "--steps", "2", "--batch-size", "8", "--sentences", "300", "--word2vec-batch-size", "256",
                "--threads", "1", "--out", str(root / "run")]
        rows = benchmark.main([*argv, "--update"])
        updated = md.read_text()
        policies = benchmark.main(["--models", "tiny-transformer", "--backends", f"{backend}:omp=active,{FLAG}", "--references",
                                   "native:omp=unset", "--rounds", "1", "--steps", "1", "--batch-size", "8", "--threads", "1",
                                   "--out", str(root / "run-without-update")])
        assert md.read_text() == updated  # without --update a checkout stays as it was
    finally:
        benchmark.BENCHMARKS_MD = real
    assert (real.read_text() if real.exists() else None) == real_text  # the real BENCHMARKS.md is left alone
    return rows, root, policies


def test_native_and_keras_train_the_same_models(tiny_run, backend):
    rows, *_ = tiny_run
    for model in ("tiny-transformer", "word2vec"):
        keras_row, native_row = (next(r for r in rows if r["model"] == model and r["candidate"] == c)
                                 for c in (f"kcourse {backend}", "native"))
        assert keras_row["params"] == native_row["params"] > 0, model  # same sizes, written twice
        assert keras_row["batch"] == native_row["batch"]
    assert {r["params"] for r in rows if r["model"] == "word2vec"} == {2 * 50 * len(benchmark.lab_data("word2vec", 0, sentences=300)["vocab"])}


def test_each_row_says_how_far_it_is_from_the_machines_matmul_peak(tiny_run, backend):
    rows, root, _ = tiny_run
    peak = {row["peak GFLOP/s"] for row in rows}
    assert len(peak) == 1 and peak.pop() > 0.5  # one peak for the run, a float32 matmul measured in it
    from kcourse import flops
    from kcourse.models import build_classifier

    vocab = benchmark.lab_data("tiny-transformer", 0, sentences=300)["vocab"]
    macs = flops.tiny_transformer_macs(build_classifier(vocab, max_len=32))
    for row in rows:
        if row["model"] == "word2vec":
            assert row["GFLOP/s"] is None  # lookups, bound by memory
        else:  # the same model's work on both sides: 3 x the forward multiply-adds, 2 FLOPs each
            assert row["GFLOP/s"] == pytest.approx(6 * macs * row["median samples / s"] / 1e9), row["candidate"]
    table = (root / "run" / "benchmark.md").read_text()
    assert "Peak: " in table and "| GFLOP/s (of peak) |" in table


def test_the_unet_and_vit_native_twins_have_the_labs_parameters():
    for name in ("unet", "vit"):
        data = benchmark.lab_data(name, 16)
        keras_candidate = benchmark.KerasCandidate(name, data, 8)
        assert keras_candidate.params == benchmark.NativeCandidate(name, data, 8).params > 0, name
        assert keras_candidate.macs() > keras_candidate.params  # every weight used at least once per sample


def test_every_candidate_says_how_it_ran_and_what_it_held(tiny_run, backend):
    rows, *_ = tiny_run
    how = {"jax": "XLA (jax.jit)", "torch": "eager", "tensorflow": "tf.function (graph), 32 steps per execution"}[backend]
    for row in rows:
        assert row["rounds"] == 2 and row["host peak MiB"] > 100  # a framework's process holds 100s of MiB
        expected = "eager (the seed's loop)" if row["candidate"] == "native" else how
        if row["model"] == "word2vec" and backend == "tensorflow" and row["candidate"] != "native":
            expected = "tf.function (graph)"  # the lab keeps one step per call: its per-batch loss curve
        # the backend's OpenMP policy is the labs' (kcourse's PASSIVE); the reference runs as the course's code does
        policy = "unset" if row["candidate"] == "native" and kcourse.OMP_POLICY_SET_HERE else "passive"
        assert row["runs as"] == f"{expected}, OpenMP {policy}", row
        assert row["x native"] is not None and row["x native"] > 0


def test_rounds_alternate_between_candidates(tiny_run, backend):
    """The workers' logs, merged by time: A B A B for every model, never A A B B."""
    _, root, _ = tiny_run
    events = []
    for log in (root / "run").glob("worker-*.log"):
        for line in log.read_text().splitlines():
            if line.startswith("worker "):
                _, stamp, candidate, command, *model = line.split()
                events.append((float(stamp), candidate, command, model[0] if model else ""))
    events.sort()
    for model in ("tiny-transformer", "word2vec"):
        epochs = [c for _, c, command, m in events if command == "epoch" and m == model]
        assert epochs == [backend, "native"] * 2, model  # after each one's warm-up (in its setup)
        setups = [t for t, _, command, m in events if command == "setup" and m == model]
        first_epoch = min(t for t, _, command, m in events if command == "epoch" and m == model)
        assert len(setups) == 2 and max(setups) < first_epoch  # every warm-up before the first timed round


def test_the_table_chart_and_benchmarks_md_are_written(tiny_run, backend):
    rows, root, _ = tiny_run
    run = root / "run"
    with open(run / "benchmark.csv", newline="") as f:
        saved = list(csv.DictReader(f))
    assert [(r["model"], r["candidate"]) for r in saved] == [(r["model"], r["candidate"]) for r in rows]
    table = (run / "benchmark.md").read_text()
    assert "| x native |" in table.replace(" x gensim |", "") and f"kcourse {backend}" in table
    assert "python -m kcourse.benchmark --models tiny-transformer word2vec" in table  # the exact command
    assert (run / "benchmark.png").is_file()
    bars = [bar.get_height() for bar in benchmark.bar_chart(rows).axes[0].patches]  # one bar per model and candidate
    assert sorted(bars) == pytest.approx(sorted(row["x native"] for row in rows))
    md = (root / "BENCHMARKS.md").read_text()
    assert "old figures" not in md and md.count(benchmark.BEGIN) == 1 and f"kcourse {backend}" in md
    assert md.startswith("# Benchmarks\n\nbefore the block") and md.rstrip().endswith("after the block")
    assert "load average" in md and "word2vec after the run's epochs" in md


def test_profile_shows_where_an_epoch_goes(tmp_path, backend):
    """--profile: one epoch of the model on this backend, under cProfile, in the candidate's own process.

    Once per `make test` (the torch session, whose eager steps the profile shows best): it starts its own worker.
    """
    if backend != "torch":
        pytest.skip("profiled once, from the torch session")
    out = tmp_path / "profile"
    assert benchmark.main(["--profile", "--models", "tiny-transformer", "--backends", backend, "--references",
                           "--steps", "2", "--batch-size", "8", "--sentences", "300", "--threads", "1", "--out", str(out)]) is None
    text = (out / f"profile-tiny-transformer-{backend}.txt").read_text()
    assert text.startswith(f"tiny-transformer on {backend}: one epoch of ") and "Ordered by: internal time" in text
    assert "Ordered by: cumulative time" in text and "trainer.py" in text  # Keras' fit loop: the time is the training's


def test_compile_settings_and_openmp_policies_are_parsed_and_checked():
    assert benchmark.settings("plain") == ({}, None, [])
    assert benchmark.settings("jit,spe=8") == ({"jit_compile": True, "steps_per_execution": 8}, None, [])
    assert benchmark.settings("omp=active") == (None, "active", [])  # the labs' compile options, OpenMP's threads spinning
    assert benchmark.settings("xla=xla_cpu_enable_fast_math=true") == (None, None, ["--xla_cpu_enable_fast_math=true"])
    assert benchmark.candidate_name("tensorflow:spe=1,omp=unset") == "tensorflow:spe=1,omp=unset"
    with pytest.raises(cli.LabError, match="unknown candidate 'mxnet'"):
        benchmark.main(["--backends", "mxnet"])
    with pytest.raises(cli.LabError, match="unknown setting 'fast'"):
        benchmark.main(["--backends", "jax:fast"])
    with pytest.raises(cli.LabError, match="a reference takes omp=... only"):
        benchmark.main(["--references", "native:jit"])


def test_each_candidate_runs_under_the_openmp_policy_and_xla_flags_it_names(tiny_run, backend):
    """The policy and the flags are set in the candidate's own process before its framework starts, and read back there."""
    *_, policies = tiny_run
    how = {row["candidate"]: row["runs as"] for row in policies}[f"kcourse {backend}:omp=active,{FLAG}"]
    if backend == "torch":
        assert how.endswith(", OpenMP active"), how  # no XLA on torch
    else:
        assert how.endswith(", OpenMP active, XLA_FLAGS --xla_cpu_enable_fast_math=false"), how
    how = {row["candidate"]: row["runs as"] for row in policies}
    assert how["native:omp=unset"] == "eager (the seed's loop), OpenMP unset"


def test_unknown_model_is_a_lab_error():
    with pytest.raises(cli.LabError, match="unknown model 'resnet'"):
        benchmark.lab_data("resnet", 4)
