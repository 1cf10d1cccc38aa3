"""The page a run hands in (report.html, report.md): the handout's questions answered with the run's own numbers,
re-rendered from the folder alone, several backends side by side, and the page as a real browser renders it."""

import re
import shutil

import pytest

from kcourse import report
from kcourse.tasks import mnist
from tests.test_mnist import QUICK


@pytest.fixture(scope="module")
def mnist_run(lab_run):
    return lab_run("mnist", *QUICK)  # test_mnist's run, in the same xdist group


def test_every_item_of_the_lab_is_on_the_page_with_the_runs_numbers(mnist_run):
    run = mnist_run.run
    text = run.file("report.md").read_text()
    for item in mnist.HANDOUT:
        assert f"**{item.tag}**" in text and item.question in text and item.english in text
    rows = {row["model"]: row for row in run.rows}
    answer = next(a for a in report.answers(report.Record.read(run.path), mnist.HANDOUT) if a["tag"] == "000:2")["answer"]
    assert f"{rows['cnn']['test accuracy']:.3f}" in answer and f"{rows['mlp']['test accuracy']:.3f}" in answer
    assert f"{answer}" in text  # the page says what the function measured
    assert mnist_run.stdout.strip().splitlines()[-1] == f"report: {run.file('report.html')}"  # the lab's last line names it


def test_the_page_is_written_again_from_the_folder_alone(mnist_run, tmp_path):
    from kcourse.__main__ import main

    copy = shutil.copytree(mnist_run.run.path, tmp_path / "run")
    (copy / "report.html").unlink()
    (copy / "report.md").unlink()
    main(["report", str(copy)])
    assert (copy / "report.md").read_text().split("- **written**")[0] == mnist_run.run.file("report.md").read_text().split("- **written**")[0]


def test_a_question_this_run_did_not_measure_says_which_option_does(tmp_path):
    record = report.Record(tmp_path, {"lab": "mnist"}, {}, [{"model": "cnn", "total params": 27_830, "test accuracy": 0.9}])
    (answer,) = [a for a in report.answers(record, mnist.HANDOUT) if a["tag"] == "000:2"]
    assert answer["answer"] is None and answer["needs"] == "--models mlp cnn"
    report.write(record, mnist.HANDOUT)
    assert "Not measured by this run: run with `--models mlp cnn`." in (tmp_path / "report.md").read_text()


def test_several_backends_side_by_side_mark_what_differs(tmp_path):
    rows = lambda accuracy: [{"model": "cnn", "test accuracy": accuracy, "total params": 27_830}]  # noqa: E731
    runs = [report.Record(tmp_path / b, {"lab": "mnist", "backend": b}, {}, rows(a)) for b, a in (("jax", 0.95), ("torch", 0.90))]
    context = report.comparison(runs, mnist.HANDOUT, tolerances={"test accuracy": 0.02})
    lines = {line["key"]: line for line in context["tables"][0]["lines"]}
    assert lines["test accuracy"]["differs"] and lines["test accuracy"]["spread"] == "0.05"
    assert not lines["total params"]["differs"]
    path = report.write_comparison(runs, mnist.HANDOUT, tmp_path / "both", {"test accuracy": 0.02})
    assert 'class="differs"' in path.read_text() and "**!**" in (tmp_path / "both" / "comparison.md").read_text()


def browser():
    found = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
    if found is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run installs it): the page is checked in a browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return found


@pytest.mark.offline
def test_the_page_renders_in_a_browser_with_every_figure_and_a_number_in_every_answer(mnist_run, lab_run, tmp_path):
    from playwright.sync_api import sync_playwright

    executable = browser()
    pages = [mnist_run.run, lab_run("zoo", "--quick").run]
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            for run in pages:
                page, failed = chromium.new_page(), []
                page.on("requestfailed", lambda request: failed.append(request.url))
                page.goto(run.file("report.html").as_uri())
                images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
                assert len(images) == len(list(run.path.glob("*.png"))) > 0, run.lab
                assert all(done and width > 0 and height > 0 for done, width, height in images), images
                answered = page.locator(".item:not(.open) .answer").all_inner_texts()
                assert answered and all(re.search(r"\d", text) for text in answered), answered
                assert failed == [], failed  # nothing fetched: the figures are in the page
                page.screenshot(path=str(tmp_path / f"report-{run.lab}.png"), full_page=True)
                assert (tmp_path / f"report-{run.lab}.png").stat().st_size > 0
        finally:
            chromium.close()
