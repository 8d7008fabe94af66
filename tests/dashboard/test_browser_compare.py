"""Reading several runs at once in a real Chromium: ticking runs in two experiments and comparing them,
and a three-parameter sweep's parallel-coordinates plot and parameter importance. Screenshots land in
test-artifacts/dashboard/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from diary_integrations import LocalTracker

from .processes import diary_ui
from .seed import CURVE_STEPS, GRID_RATES, GRID_STEPS, Demo, GridDemo, seed, seed_grid
from .test_browser import shot  # and its module's skip where Chromium is missing

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a real browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Demo, GridDemo]]:
    folder = tmp_path_factory.mktemp("compare")
    tracker = LocalTracker(folder / "runs.db")
    demo = seed(tracker)
    grid = seed_grid(tracker, demo.project_id)
    tracker.close()
    with diary_ui(folder / "runs.db", folder / "ui.log") as url:
        yield url, demo, grid


def test_tick_runs_in_two_experiments_and_compare_them(page, site):
    url, demo, grid = site
    # Tick a child of the decision-tree sweep, then one of the grid (another experiment): the ticks are
    # kept across pages, and the tray's Compare opens both side by side.
    page.goto(f"{url}/ui/iterations/{demo.sweep_id}/sweep")
    assert page.locator("#compare-form").is_hidden()
    page.locator(f"tr[data-iteration='{demo.children[2]}'] input.pick").check()
    assert page.locator("#compare-form .n").inner_text() == "1"
    # The other run is found with the grid experiment's search box (a match at depth 1, ticked there).
    page.goto(f"{url}/ui/experiments/{grid.experiment_id}")
    page.locator("form.search input[name=filter]").fill("params.lr = '0.0001' AND params.batch = '32'")
    page.locator("form.search input[name=order_by]").fill("params.optimizer")
    page.locator("form.search input[name=filter]").press("Enter")
    page.wait_for_selector("p.search-summary")
    assert page.locator("table.experiment-table tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.iteration))") == [grid.children[0], grid.children[2]]
    page.locator(f"tr[data-iteration='{grid.children[0]}'] input.pick").check()
    assert page.locator("#compare-form .n").inner_text() == "2"
    page.locator("#compare-form button[type=submit]").click()
    page.wait_for_url(f"{url}/ui/compare?ids={demo.children[2]}%2C{grid.children[0]}")

    runs = page.locator("table.compare thead th.run")
    assert runs.evaluate_all("ths => ths.map(t => Number(t.dataset.iteration))") == [demo.children[2], grid.children[0]]
    assert "Decision-tree sweep" in runs.nth(0).inner_text() and "Three-parameter grid" in runs.nth(1).inner_text()
    # Both have `lr` (0.1 and 0.0001): a difference, marked and first; each run's own keys differ too.
    lr = page.locator("table.compare tr.param[data-key='lr']")
    assert "differs" in lr.get_attribute("class")
    assert lr.locator("td").all_inner_texts() == ["0.1", GRID_RATES[0]]
    assert lr.evaluate("row => getComputedStyle(row).backgroundColor") != "rgba(0, 0, 0, 0)"
    # `loss` is a curve in both runs: one chart, one line per run, and a legend naming each run.
    loss = page.locator("figure.compare-chart[data-key='loss']")
    lines = loss.locator("g.series")
    assert lines.evaluate_all("gs => gs.map(g => Number(g.dataset.points))") == [CURVE_STEPS, GRID_STEPS]
    legend = loss.locator(".legend span").all_inner_texts()
    assert len(legend) == 2 and "Decision-tree sweep" in legend[0] and "Three-parameter grid" in legend[1]
    # A key only one run has: that run's curve alone, in the colour it has on the other charts, still named.
    only = page.locator("figure.compare-chart[data-key='val_accuracy']")
    assert only.locator("g.series").count() == 1
    assert only.locator("g.series path").get_attribute("stroke") == lines.nth(1).locator("path").get_attribute("stroke")
    assert "Three-parameter grid" in only.locator(".legend").inner_text()
    shot(page, "compare")

    # Removing a run leaves the other; the tray follows the page.
    page.locator(f"th.run[data-iteration='{grid.children[0]}'] a.remove").click()
    page.wait_for_url(f"{url}/ui/compare?ids={demo.children[2]}")
    assert page.locator("table.compare thead th.run").count() == 1
    assert page.locator("#compare-form .n").inner_text() == "1"
    page.locator("#compare-form [data-clear-picks]").click()
    assert page.locator("#compare-form").is_hidden()


def test_three_parameter_sweep_parallel_coordinates_and_importance(page, site):
    url, _, grid = site
    page.goto(f"{url}/ui/iterations/{grid.driver_id}/sweep")
    plot = page.locator(".parallel-box svg.parallel")
    plot.scroll_into_view_if_needed()
    # One polyline per child, the failed one dashed; an axis per varied parameter and one for the metric.
    lines = plot.locator("polyline.pc-line")
    assert lines.count() == len(grid.children)
    assert sorted(lines.evaluate_all("ls => ls.map(l => Number(l.dataset.iteration))")) == sorted(grid.children)
    assert plot.locator("polyline.pc-line.dashed").evaluate_all("ls => ls.map(l => Number(l.dataset.iteration))") == [
        grid.failed_id]
    assert all(len(p.split()) == 4 for p in lines.evaluate_all("ls => ls.map(l => l.getAttribute('points'))"))
    axes = plot.locator("g.pc-axis").evaluate_all("gs => gs.map(g => g.dataset.key)")
    assert sorted(axes[:-1]) == ["batch", "lr", "optimizer"] and axes[-1] == "val_accuracy"
    # The categorical axis has a tick per value; the lr axis is logarithmic (four decades).
    optimizer = plot.locator("g.pc-axis[data-key='optimizer']").text_content()
    assert "adam" in optimizer and "sgd" in optimizer and "(categorical)" in optimizer
    assert "(log)" in plot.locator("g.pc-axis[data-key='lr']").text_content()
    assert plot.bounding_box()["width"] > 400
    # Importance: named method, one bar per parameter, and the learning rate matters most.
    # Fetched after the page (a forest to fit, scikit-learn to import): a busy machine may take a while.
    page.wait_for_selector(".importance-method", timeout=180_000)
    method = page.locator(".importance-method").inner_text()
    assert "permutation importance" in method and "RandomForestRegressor" in method
    bars = page.locator("svg.importance rect.bar.permutation")
    values = dict(zip(bars.evaluate_all("rs => rs.map(r => r.closest('g').dataset.key)"),
                      map(float, bars.evaluate_all("rs => rs.map(r => r.dataset.value)")), strict=True))
    assert set(values) == {"lr", "optimizer", "batch"} and max(values, key=values.get) == "lr"
    assert page.locator("svg.importance rect.bar.correlation").count() == 2  # optimizer is categorical
    page.locator(".many-parameters").scroll_into_view_if_needed()
    shot(page, "parallel-coordinates")


def test_search_box_shows_a_bad_filter_in_place_then_narrows_a_sweep(page, site):
    url, _, grid = site
    page.goto(f"{url}/ui/experiments/{grid.experiment_id}")
    box = page.locator("form.search input[name=filter]")
    box.fill("params.optimizer = 'adam' AND metrics.val_accuracy >")
    box.press("Enter")
    page.wait_for_selector(".search-error")
    error = page.locator(".search-error")
    assert error.is_visible() and "expected a value after >" in error.inner_text()
    assert error.locator("mark").is_visible()
    # The text as typed stays in the box, marked invalid, and the page is still all there.
    assert box.input_value() == "params.optimizer = 'adam' AND metrics.val_accuracy >"
    assert box.get_attribute("aria-invalid") == "true"
    assert page.locator("table.experiment-table tbody tr").count() == 1
    shot(page, "search-error")
    # On the sweep page: its children only, in the order asked, and the plot of the matches.
    page.goto(f"{url}/ui/iterations/{grid.driver_id}/sweep")
    page.locator("form.search input[name=filter]").fill("params.optimizer = 'sgd' AND params.lr LIKE '0.00%'")
    page.locator("form.search input[name=order_by]").fill("metrics.val_accuracy DESC")
    page.locator("form.search button[type=submit]").click()
    page.wait_for_selector("p.summary:has-text('4 of 16 children match')")
    assert page.locator(".search-error").count() == 0
    values = page.locator("table.sweep tbody tr td.num:nth-child(3)").evaluate_all(
        "cells => cells.map(c => Number(c.dataset.v))")
    assert len(values) == 4 and values == sorted(values, reverse=True)
    assert page.locator(".parallel-box polyline").count() == 4
    shot(page, "search-sweep")
