"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright): the tree, the
sweep's best row, a failed child's error, charts with the right number of points, sorting, and a
running iteration's chart growing without a reload. Screenshots land in test-artifacts/dashboard/."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from diary_integrations import LocalTracker

from .conftest import CHROMIUM
from .processes import diary_ui
from .seed import CURVE_STEPS, RANK_STEPS, RANKS, SKLEARN_ERROR, Demo, seed, seed_sklearn

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a real browser
if not Path(CHROMIUM).exists():
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/dev test installs it")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Demo, LocalTracker]]:
    folder = tmp_path_factory.mktemp("browser")
    tracker = LocalTracker(folder / "sweep.db")
    demo = seed(tracker)
    with diary_ui(folder / "sweep.db", folder / "ui.log") as url:
        yield url, demo, tracker
    tracker.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def points_drawn(locator) -> int:
    return len(re.findall(r"[ML]", locator.get_attribute("d")))


def test_sidebar_tree_and_sweep_page(page, site):
    url, demo, _ = site
    page.goto(f"{url}/ui/iterations/{demo.sweep_id}/sweep")
    sidebar = page.locator(".sidebar")
    driver = sidebar.locator(f"details:has(> summary[data-iteration='{demo.sweep_id}'])")
    assert driver.get_attribute("open") is not None
    children = driver.locator("ul .row")
    assert children.count() == len(demo.children)
    assert children.nth(3).locator(".mark").inner_text() == "✗"
    assert sidebar.locator(f"[data-iteration='{demo.running_id}'] .mark").inner_text() == "▶"
    # The DDP driver is collapsed: its ranks are in the DOM but not shown.
    ddp = sidebar.locator(f"details:has(> summary[data-iteration='{demo.ddp_id}'])")
    assert ddp.get_attribute("open") is None and not ddp.locator("ul .row").first.is_visible()

    best = page.locator("table.sweep tr.best")
    assert best.count() == 1 and best.get_attribute("data-iteration") == str(demo.best_id)
    assert best.evaluate("row => getComputedStyle(row).backgroundColor") != "rgba(0, 0, 0, 0)"
    failed = page.locator(f"table.sweep tr[data-iteration='{demo.failed_id}']")
    assert failed.locator(".error-cell").inner_text() == "MemoryError: max_depth=12 blew the heap"
    assert failed.locator(".error-cell").is_visible()
    shot(page, "sweep")


def test_sorting_the_sweep_table(page, site):
    url, demo, _ = site
    page.goto(f"{url}/ui/iterations/{demo.sweep_id}/sweep?metric=loss")
    header = page.locator("table.sweep th", has_text=re.compile("^loss$"))
    header.click()
    ids = page.locator("table.sweep tbody tr").evaluate_all("rows => rows.map(r => r.dataset.iteration)")
    # Ascending loss; the failed child (no loss) sorts last.
    assert ids == [str(demo.children[d]) for d in (8, 4, 2)] + [str(demo.failed_id)]
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    ids = page.locator("table.sweep tbody tr").evaluate_all("rows => rows.map(r => r.dataset.iteration)")
    assert ids[:3] == [str(demo.children[d]) for d in (2, 4, 8)]


def test_failed_child_page(page, site):
    url, demo, _ = site
    page.goto(f"{url}/ui/iterations/{demo.failed_id}")
    assert page.locator(".error-message").inner_text() == "MemoryError: max_depth=12 blew the heap"
    assert page.locator("pre.traceback").is_visible()
    assert "raise MemoryError" in page.locator("pre.traceback").inner_text()
    assert page.title().startswith(f"#{demo.failed_id} · Decision-tree sweep")
    shot(page, "failed-child")


def test_iteration_chart_has_every_point(page, site):
    url, demo, _ = site
    page.goto(f"{url}/ui/iterations/{demo.children[4]}")
    loss = page.locator("figure[data-key='loss'] g.series path")
    assert points_drawn(loss) == CURVE_STEPS
    assert page.locator("figure[data-key='loss'] circle").count() == CURVE_STEPS
    box = page.locator("figure[data-key='loss'] svg").bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    # accuracy has one value per child: a number in a table, not a one-dot chart to overlay.
    assert page.locator("table.single-metrics tr[data-key='accuracy'] td").inner_text() != ""
    assert page.locator("input[name=overlay]").evaluate_all("boxes => boxes.map(b => b.value)") == ["loss"]
    shot(page, "iteration")


def test_ddp_ranks_side_by_side(page, site):
    url, demo, _ = site
    page.goto(f"{url}/ui/iterations/{demo.ddp_id}/sweep")
    cards = page.locator(".ranks .rank-card")
    assert cards.count() == RANKS
    tops = [cards.nth(n).bounding_box()["y"] for n in range(2)]
    assert tops[0] == tops[1]  # side by side, not stacked
    assert all(points_drawn(cards.nth(n).locator("path")) == RANK_STEPS for n in range(RANKS))
    assert page.locator(".overlay-box g.series").count() == RANKS
    shot(page, "ddp")


def test_running_iteration_updates_without_reload(page, site):
    url, demo, tracker = site
    page.goto(f"{url}/ui/iterations/{demo.running_id}")
    page.evaluate("window.__sameDocument = true")
    loss = page.locator("figure[data-key='loss'] g.series")
    assert loss.get_attribute("data-points") == "5"
    tracker.log_metric_points(demo.running_id, [("loss", 0.05, step) for step in range(5, 12)])
    page.wait_for_selector("figure[data-key='loss'] g.series[data-points='12']", timeout=30_000)
    tracker.end_iteration(demo.running_id)
    page.wait_for_selector(".live[data-running='false']", timeout=30_000)
    assert page.locator(".badge.succeeded").count() == 1
    assert page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded
    shot(page, "live")


def test_sklearn_sweep_with_a_long_error_fits_the_window(page, site):
    # A failed candidate's error (scikit-learn's "All the 5 fits failed ..." runs to hundreds of characters)
    # stays a couple of lines high, and at 1400 px its error column is on screen without scrolling.
    url, demo, tracker = site
    sk = seed_sklearn(tracker, demo.project_id)
    page.goto(f"{url}/ui/iterations/{sk.driver_id}/sweep")
    assert page.locator("select[name=metric]").input_value() == "mean_test_score"
    best = page.locator("table.sweep tr.best")
    assert best.get_attribute("data-iteration") == str(sk.candidates[1])
    failed = page.locator(f"table.sweep tr[data-iteration='{sk.failed_id}']")
    ok = page.locator(f"table.sweep tr[data-iteration='{sk.candidates[0]}']")
    assert failed.bounding_box()["height"] < 3 * ok.bounding_box()["height"]
    cell = failed.locator(".error-cell")
    box = cell.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1400 and cell.is_visible()
    assert cell.locator("summary").is_visible()
    chosen = page.locator("table.sweep th.metric.chosen").bounding_box()  # the "Best by" column, on screen
    assert chosen["x"] + chosen["width"] <= 1400
    shot(page, "sklearn-sweep")
    cell.locator("summary").click()  # the whole message, on request
    assert cell.locator("details").get_attribute("open") is not None
    assert cell.locator("details").inner_text().replace("\n", "").startswith(
        SKLEARN_ERROR.replace("\n", "")[:60])
    shot(page, "sklearn-sweep-error-open")


def test_experiment_page_tree_has_no_list_bullets(page, site):
    url, demo, _ = site
    page.goto(f"{url}/ui/experiments/{demo.experiment_id}")
    # The tree is in the sidebar (the page itself is a table of top-level iterations).
    styles = page.locator(".sidebar ul.iterations, .sidebar ul.iterations ul").evaluate_all(
        "lists => lists.map(l => getComputedStyle(l).listStyleType)")
    assert styles and set(styles) == {"none"}
    items = page.locator(".sidebar ul.iterations li").evaluate_all(
        "items => items.map(i => getComputedStyle(i).listStyleType)")
    assert set(items) == {"none"}
    assert "failed · created" in page.locator("main p.summary").inner_text()
    shot(page, "experiment")
