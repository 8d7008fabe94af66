"""Issue 14's dashboard views in headless Chromium, on what a new user has after the first hour: the main
example's sweep and a real scikit-learn grid search. The experiment page's table and its way into each
sweep, named iterations, single-value metrics as numbers, the sweep table's folded timing columns and
a failed child's full error, and no sweep page for a leaf. Screenshots land in test-artifacts/dashboard/."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from diary_integrations import LocalTracker

from .processes import diary_ui
from .test_browser import shot

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a real grid search and a browser: about half a minute on two busy cores
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def first_hour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    folder = tmp_path_factory.mktemp("first-hour")
    db = folder / "deardiary.db"
    subprocess.run([sys.executable, str(ROOT / "examples" / "child_iterations.py"), str(db)],
                   check=True, capture_output=True, cwd=folder, timeout=120)
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from diary_integrations.sklearn import tracked

    grid = [{"solver": ["lbfgs"], "C": [0.1, 1.0]}, {"solver": ["liblinear"], "C": [1.0]}]  # liblinear fails
    search = tracked(GridSearchCV(LogisticRegression(max_iter=500), grid, cv=3),
                     project="Iris", experiment="LR sweep", uri=str(db))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(*load_iris(return_X_y=True))
    tracker = LocalTracker(db)
    example = tracker.get_experiment_by_name(tracker.get_project_by_name("Fraud detection").id,
                                             "Decision-tree sweep")
    (driver,) = [it for it in tracker.get_iterations(example.id) if it.parent_iteration_id is None]
    children = tracker.get_child_iterations(driver.id)
    sk_driver = search.fit.driver_iteration_id
    sk_children = tracker.get_child_iterations(sk_driver)
    ids = {
        "experiment": example.id, "driver": driver.id, "failed": children[-1].id, "leaf": children[0].id,
        "sk_experiment": tracker.get_iteration(sk_driver).experiment_id, "sk_driver": sk_driver,
        "sk_child": sk_children[0].id, "sk_failed": sk_children[-1].id,
    }
    tracker.close()
    with diary_ui(db, folder / "ui.log") as url:
        yield url, ids


def test_experiment_page_shows_parameters_metrics_and_a_way_into_the_sweep(page, first_hour):
    url, ids = first_hour
    page.goto(f"{url}/ui/experiments/{ids['sk_experiment']}")
    table = page.locator("main table.experiment-table")
    headers = table.locator("thead th").all_inner_texts()
    assert headers[:4] == ["iteration", "status", "children", "best child"] and headers[-1] == "duration"
    assert "best_score" in headers  # the driver's own final metric (the default pick among its metrics)
    row = table.locator(f"tr[data-iteration='{ids['sk_driver']}']")
    assert row.locator("td.num").first.inner_text() != ""
    best = row.locator("td").nth(3).inner_text()
    assert best.startswith("mean_test_score 0.9733 #") and best.endswith("C=1.0 solver=lbfgs")
    button = row.locator("a.sweep-button")
    assert button.is_visible() and button.inner_text().startswith("Open sweep · 3 runs: ")
    shot(page, "first-hour-experiment")
    button.click()
    page.wait_for_url(f"**/ui/iterations/{ids['sk_driver']}/sweep")
    assert f"Sweep #{ids['sk_driver']}" in page.locator("h1").inner_text()


def test_sweep_table_names_scores_first_timings_folded_full_error(page, first_hour):
    url, ids = first_hour
    page.goto(f"{url}/ui/iterations/{ids['sk_driver']}/sweep")
    table = page.locator("table.sweep")
    visible = [h for h in table.locator("thead th").all() if h.is_visible()]
    names = [h.inner_text().replace("\n", "") for h in visible]
    assert names[:3] == ["iteration", "status", "mean_test_score"]
    assert not any("time" in n or n == "duration" for n in names)  # folded away
    assert {"C", "solver"} <= set(names)
    child = table.locator(f"tr[data-iteration='{ids['sk_child']}'] td").first
    assert child.inner_text().startswith(f"#{ids['sk_child']} C=0.1 solver=lbfgs")
    shot(page, "first-hour-sweep")
    toggle = page.locator("[data-toggle-timing]")
    toggle.click()
    assert table.locator("thead th.timing").first.is_visible()
    assert toggle.inner_text() == "hide timing columns"
    failed = table.locator(f"tr[data-iteration='{ids['sk_failed']}']")
    summary = failed.locator(".error-cell summary")
    full = summary.get_attribute("title")
    assert full.startswith("ValueError: ") and len(full) > 60  # the whole message, on hover
    assert failed.locator("td").nth(1).get_attribute("title") == full
    summary.click()  # and expanded in place
    assert failed.locator(".error-cell details").get_attribute("open") is not None
    assert summary.inner_text().strip() == full
    shot(page, "first-hour-sweep-timings-and-error")


def test_single_value_metrics_are_numbers_and_curves_are_charts(page, first_hour):
    url, ids = first_hour
    page.goto(f"{url}/ui/iterations/{ids['sk_child']}")
    assert page.locator("h1 .name").inner_text() == "C=0.1 solver=lbfgs"
    singles = page.locator("table.single-metrics tr")
    keys = [singles.nth(n).get_attribute("data-key") for n in range(singles.count())]
    assert "mean_test_score" in keys and "rank_test_score" in keys
    charted = page.locator(".charts figure.chart-box")
    # Fold series (test_score by fold) stay charts; every one-value metric is a number, not a dot.
    assert {charted.nth(n).get_attribute("data-key") for n in range(charted.count())}.isdisjoint(keys)
    shot(page, "first-hour-sklearn-child")
    page.goto(f"{url}/ui/experiments/{ids['experiment']}")
    page.locator(f"tr[data-iteration='{ids['driver']}'] a.sweep-button").click()
    page.locator(f"tr[data-iteration='{ids['failed']}'] td a").click()
    assert page.locator("h1 .name").inner_text() == "max_depth=12"
    assert page.locator("pre.traceback").is_visible()


def test_a_leaf_has_no_sweep_page(page, first_hour):
    url, ids = first_hour
    page.goto(f"{url}/ui/iterations/{ids['leaf']}")
    assert page.locator("a[href$='/sweep']:visible").count() == 0 or all(
        f"/iterations/{ids['leaf']}/sweep" not in (a.get_attribute("href") or "")
        for a in page.locator("a[href$='/sweep']").all()
    )
    page.goto(f"{url}/ui/iterations/{ids['leaf']}/sweep")
    assert page.url.endswith(f"/ui/iterations/{ids['leaf']}")
    assert "No children yet" not in page.content()
    assert page.locator("h1").inner_text().endswith("max_depth=2")
