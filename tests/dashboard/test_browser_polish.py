"""Issue 25's dashboard rough edges in a real headless Chromium: the sidebar never clips a name (a long
one ends in an ellipsis with the whole text in its title), a sweep's counts read as words, the home
page counts failed and killed runs as `diary ls` does, and a project without models says how to
register one. Screenshots land in test-artifacts/dashboard/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker

from .processes import diary_ui
from .seed import Demo, seed
from .test_browser import shot

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a real browser

LONG_PROJECT = "A project whose name is long enough to need two lines in the sidebar"
LONG_EXPERIMENT = "An_experiment_named_without_a_single_space_so_it_cannot_wrap_at_a_word_boundary"
LONG_RUN = "lr=0.001 optimizer=adamw batch_size=128 warmup_steps=1000 weight_decay=0.01 seed=1234"


@dataclass
class Site:
    url: str
    demo: Demo
    tracker: LocalTracker
    long_project_id: int
    long_experiment_id: int
    long_sweep_id: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("browser-polish")
    tracker = LocalTracker(folder / "polish.db")
    demo = seed(tracker)
    project_id, _ = tracker.create_project(LONG_PROJECT)
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, LONG_EXPERIMENT)
    with tracker.with_iteration(experiment_id, name=LONG_RUN) as driver:
        for n in range(3):
            child_id, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver.id,
                                                   name=f"{LONG_RUN} child={n}")
            status = (IterationStatus.SUCCEEDED, IterationStatus.FAILED, IterationStatus.KILLED)[n]
            tracker.end_iteration(child_id, status, error_message="" if n == 0 else f"child {n} went wrong")
    with diary_ui(folder / "polish.db", folder / "ui.log") as url:
        yield Site(url, demo, tracker, project_id, experiment_id, driver.id)
    tracker.close()


# Every element of the sidebar whose content is wider than its box, unless it ends in an ellipsis and
# carries its whole text in a title (the reader can still see the whole name).
CLIPPED = """sidebar => [...sidebar.querySelectorAll('*')]
  .filter(e => e.getClientRects().length && e.scrollWidth > e.clientWidth + 1)
  .filter(e => !(getComputedStyle(e).textOverflow === 'ellipsis'
                 && (e.getAttribute('title') || '').trim() === e.textContent.trim()))
  .map(e => `${e.tagName}.${e.className} ${e.scrollWidth}>${e.clientWidth}: ${e.textContent.trim().slice(0, 60)}`)"""


def test_sidebar_never_clips_a_name(page, site: Site):
    for path in (f"/ui/iterations/{site.long_sweep_id + 2}", f"/ui/iterations/{site.demo.failed_id}",
                 f"/ui/experiments/{site.long_experiment_id}"):
        page.goto(f"{site.url}{path}")
        sidebar = page.locator(".sidebar")
        assert sidebar.evaluate(CLIPPED) == [], path
        # Nothing to scroll sideways for, and every row ends inside the sidebar.
        assert sidebar.evaluate("s => s.scrollWidth <= s.clientWidth"), path
        right = sidebar.bounding_box()["x"] + sidebar.bounding_box()["width"]
        for box in sidebar.locator(".row").evaluate_all(
                "rows => rows.map(r => r.getBoundingClientRect()).map(b => [b.right, b.width])"):
            assert box[0] <= right + 0.5, path
    shot(page, "polish-sidebar-long-names")
    # A shortened name keeps its whole text in its title, and the row's times stay on screen.
    row = page.locator(f".sidebar summary[data-iteration='{site.long_sweep_id}']")
    link = row.locator("a.label")
    assert link.get_attribute("title") == f"#{site.long_sweep_id} {LONG_RUN}"
    assert link.evaluate("a => a.scrollWidth > a.clientWidth")  # it really is shortened here
    assert row.locator(".rel").is_visible() and row.locator("a.sweep-link").is_visible()


def test_sweep_counts_read_as_words(page, site: Site):
    expect = playwright_api.expect
    demo = site.demo
    page.goto(f"{site.url}/ui/experiments/{demo.experiment_id}")
    button = page.locator(f"main tr[data-iteration='{demo.sweep_id}'] a.sweep-button")
    assert button.inner_text() == "Open sweep · 4 runs: 3 succeeded, 1 failed"
    expect(button).to_have_accessible_name("Open sweep · 4 runs: 3 succeeded, 1 failed")
    ddp = page.locator(f"main tr[data-iteration='{demo.ddp_id}'] a.sweep-button")
    assert ddp.inner_text() == "Open sweep · 4 runs: 4 succeeded"
    # The sidebar keeps its compact marks, which a screen reader (and a hover) reads as words.
    link = page.locator(f".sidebar summary[data-iteration='{demo.sweep_id}'] a.sweep-link")
    expect(link).to_have_accessible_name("open the sweep of 4 runs: 3 succeeded, 1 failed")
    assert link.get_attribute("title") == "open the sweep of 4 runs: 3 succeeded, 1 failed"
    expect(page.locator(f".sidebar [data-iteration='{demo.running_id}'] .mark")).to_have_accessible_name("running")
    page.goto(f"{site.url}/ui/iterations/{demo.failed_id}")  # its sweep open in the sidebar
    expect(page.locator(f".sidebar [data-iteration='{demo.failed_id}'] .mark")).to_have_accessible_name("failed")
    shot(page, "polish-sweep-words")


def test_home_page_counts_failed_and_killed_runs_as_the_tracker_does(page, site: Site):
    tracker = site.tracker
    page.goto(f"{site.url}/ui/")
    shown_any_failure = False
    for project in tracker.get_projects():
        card = page.locator(f"section.card#project-{project.id}")
        project_totals = dict.fromkeys(("FAILED", "KILLED"), 0)
        for experiment in tracker.get_experiments(project.id):
            statuses = [it.status.name for it in tracker.get_iterations(experiment.id)]
            row = card.locator(f"tr[data-experiment='{experiment.id}']")
            for name in ("FAILED", "KILLED"):
                cell = row.locator(f"td.{name.lower()}")
                assert cell.inner_text() == str(statuses.count(name)), (experiment.name, name)
                project_totals[name] += statuses.count(name)
                shown_any_failure |= statuses.count(name) > 0
            assert row.locator("td.iterations").inner_text() == str(len(statuses))
        summary = card.locator(".run-counts").inner_text()
        assert f"{project_totals['FAILED']} failed" in summary and f"{project_totals['KILLED']} killed" in summary
    assert shown_any_failure  # the seed has a failed and a killed run
    failed_cell = page.locator(f"tr[data-experiment='{site.long_experiment_id}'] td.failed")
    assert failed_cell.evaluate("td => getComputedStyle(td).color") != page.locator("body").evaluate(
        "b => getComputedStyle(b).color")  # a failure stands out
    shot(page, "polish-home")


def test_a_project_without_models_says_how_to_register_one(page, site: Site):
    page.goto(f"{site.url}/ui/")
    card = page.locator(f"section.card#project-{site.long_project_id}")
    card.locator("a.models-link").click()
    assert page.url.endswith(f"/ui/projects/{site.long_project_id}/models")
    empty = page.locator("main .empty-models")
    text = empty.inner_text()
    assert "No registered models yet" in text
    assert "register_as=" in text and "create_model(" in text and "diary models" in text
    assert "Model registry" in text  # where the docs explain it
    back = empty.locator("a.project-link")
    assert back.get_attribute("href").endswith(f"/ui/#project-{site.long_project_id}")
    shot(page, "polish-models-empty")
    back.click()
    assert page.url.endswith(f"/ui/#project-{site.long_project_id}")
    assert page.locator(f"section.card#project-{site.long_project_id}").is_visible()
