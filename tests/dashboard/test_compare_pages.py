"""Reading several runs at once, over a real SQLite file through FastAPI's TestClient: the compare page,
a many-parameter sweep's parallel-coordinates plot and importance, and the search box with its errors.
The browser-side of the same pages is tests/dashboard/test_browser_compare.py."""

from __future__ import annotations

import re
import sys
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from diary_integrations import ExperimentStatus, LocalTracker
from diary_integrations.dashboard import compare, create_dashboard, importance

from .conftest import auth_settings
from .seed import CURVE_STEPS, GRID_RATES, GRID_STEPS, Demo, GridDemo, seed, seed_grid


def soup_of(response) -> BeautifulSoup:
    assert response.headers["content-type"].startswith("text/html")
    return BeautifulSoup(response.text, "html.parser")


def ok(client, url: str) -> BeautifulSoup:
    response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    return soup_of(response)


# One database for the module (the pages only read it; the one test that writes adds its own runs).
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalTracker, TestClient, Demo, GridDemo]]:
    tracker = LocalTracker(tmp_path_factory.mktemp("compare") / "runs.db", artifact_root=None)
    demo = seed(tracker)
    grid = seed_grid(tracker, demo.project_id)
    with TestClient(create_dashboard(tracker)) as client:
        yield tracker, client, demo, grid
    tracker.close()


@pytest.fixture
def without_forest(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests about other things than importance: no forest is fitted (importing scikit-learn and
    fitting cost seconds on a busy machine); the page then shows its too-few-children note."""
    monkeypatch.setattr(importance, "MIN_CHILDREN", 10**6)


@pytest.fixture(scope="module")
def client(site) -> TestClient:
    return site[1]


@pytest.fixture(scope="module")
def demo(site) -> Demo:
    return site[2]


@pytest.fixture(scope="module")
def grid(site) -> GridDemo:
    return site[3]


def test_compare_runs_of_two_experiments(client, demo, grid):
    soup = ok(client, f"/ui/compare?ids={demo.children[2]},{grid.children[0]}")
    assert [int(th["data-iteration"]) for th in soup.select("th.run")] == [demo.children[2], grid.children[0]]
    rows = {tr["data-key"]: tr for tr in soup.select("tr.param")}
    assert [td.get_text() for td in rows["lr"].find_all("td")] == ["0.1", GRID_RATES[0]]
    assert all("differs" in tr["class"] for tr in rows.values())  # max_depth / optimizer / batch: one side only
    # Differences come first; parameters both runs share with one value are not marked.
    same = ok(client, f"/ui/compare?ids={grid.children[0]},{grid.children[2]}")  # lr 1e-4 both, batch 32 both
    marked = {tr["data-key"]: "differs" in tr["class"] for tr in same.select("tr.param")}
    assert marked == {"optimizer": True, "lr": False, "batch": False}
    assert [tr["data-key"] for tr in same.select("tr.param")][0] == "optimizer"
    # A chart per metric key, a curve per run with all its points, and a legend naming each run's experiment.
    charts = {fig["data-key"]: fig for fig in soup.select("figure.compare-chart")}
    assert sorted(charts) == ["accuracy", "loss", "val_accuracy"]
    loss = charts["loss"]
    assert [int(g["data-points"]) for g in loss.select("g.series")] == [CURVE_STEPS, GRID_STEPS]
    assert [int(g["data-iteration"]) for g in loss.select("g.series")] == [demo.children[2], grid.children[0]]
    legend = [span.get_text() for span in loss.select(".legend span")]
    assert legend == [f"#{demo.children[2]} (Decision-tree sweep)", f"#{grid.children[0]} (Three-parameter grid)"]
    # `accuracy` is the decision-tree run's alone: one curve, still named, in that run's colour.
    accuracy = charts["accuracy"]
    assert [int(g["data-iteration"]) for g in accuracy.select("g.series")] == [demo.children[2]]
    assert accuracy.select_one("g.series path")["stroke"] == loss.select_one("g.series path")["stroke"]
    assert [span.get_text() for span in accuracy.select(".legend span")] == [legend[0]]
    # The same ids written as repeated parameters (a form without script) give the same page.
    again = ok(client, f"/ui/compare?ids={demo.children[2]}&ids={grid.children[0]}")
    runs = [th["data-iteration"] for th in soup.select("th.run")]
    assert [th["data-iteration"] for th in again.select("th.run")] == runs


def test_compare_is_bounded_and_says_so(client, demo, site):
    tracker = site[0]
    many = list(range(1, 13))  # twelve ids, all present in the demo database
    soup = ok(client, "/ui/compare?ids=" + ",".join(map(str, many)))
    assert len(soup.select("th.run")) == compare.MAX_COMPARED
    assert "first 10 of the 12 runs" in soup.select_one(".cap-note").get_text()
    # A long series is downsampled to the chart's share per run, and the page says how many points at most.
    long_id, _ = tracker.create_iteration(demo.experiment_id)
    tracker.log_metric_points(long_id, [("long", float(i % 7), i) for i in range(6000)])
    tracker.log_metric_points(demo.running_id, [("long", 1.0, i) for i in range(10)])
    soup = ok(client, f"/ui/compare?ids={long_id},{demo.running_id}")
    per_run = compare.points_per_run(2)
    drawn = [int(g["data-points"]) for g in soup.select("figure.compare-chart[data-key='long'] g.series")]
    assert drawn[0] <= per_run + 1 and drawn[0] > per_run // 2 and drawn[1] == 10
    assert f"at most {per_run} points per curve" in soup.get_text()


def test_compare_refuses_bad_ids_and_names_no_missing_run(client, demo):
    bad = client.get("/ui/compare?ids=1,abc")
    assert bad.status_code == 400 and "'abc' is not an iteration id" in soup_of(bad).get_text()
    missing = client.get(f"/ui/compare?ids={demo.children[2]},999999")
    assert missing.status_code == 404 and "#999999" in missing.text
    empty = ok(client, "/ui/compare")
    assert "No runs ticked" in empty.get_text()


def test_sweep_and_experiment_pages_have_compare_boxes(client, demo, without_forest):
    sweep = ok(client, f"/ui/iterations/{demo.sweep_id}/sweep")
    boxes = sweep.select("table.sweep input.pick")
    assert sorted(int(b["value"]) for b in boxes) == sorted(demo.children.values())
    assert all(b["form"] == "compare-form" and b["name"] == "ids" for b in boxes)
    assert sweep.select_one("form#compare-form")["action"] == "/ui/compare"
    experiment = ok(client, f"/ui/experiments/{demo.experiment_id}")
    assert {int(b["value"]) for b in experiment.select("table.experiment-table input.pick")} >= {
        demo.sweep_id, demo.ddp_id, demo.running_id}


def test_parallel_coordinates_one_line_per_child(client, grid):
    soup = ok(client, f"/ui/iterations/{grid.driver_id}/sweep")
    plot = soup.select_one(".parallel-box svg.parallel")
    lines = plot.select("polyline")
    assert sorted(int(line["data-iteration"]) for line in lines) == sorted(grid.children)
    assert [int(line["data-iteration"]) for line in plot.select("polyline.dashed")] == [grid.failed_id]
    assert [g["data-key"] for g in plot.select("g.pc-axis")][-1] == "val_accuracy"
    # Colour follows the metric: the best child is drawn last and yellow-most; a failed child's 0.3 darkest.
    best = plot.select("polyline.best")
    assert len(best) == 1 and lines[-1] is best[0] and best[0]["stroke"] == "#fde725"
    assert plot.select_one(f"polyline[data-iteration='{grid.failed_id}']")["stroke"] == "#440154"
    # Each line crosses every axis: three parameters and the metric.
    assert all(len(line["points"].split()) == 4 for line in lines)
    # Choosing another metric re-draws against it, lowest best for a loss.
    by_loss = ok(client, f"/ui/iterations/{grid.driver_id}/sweep?metric=loss")
    assert [g["data-key"] for g in by_loss.select("g.pc-axis")][-1] == "loss"


def test_importance_named_and_lr_first(client, grid):
    # The page does not wait for the forest: its script fetches the importance part.
    page = ok(client, f"/ui/iterations/{grid.driver_id}/sweep")
    assert page.select_one(".importance-method") is None and page.select_one(".importance-pending")
    part = page.select_one(".importance-slot")["data-importance"]
    assert part.endswith("part=importance")
    soup = ok(client, part)
    assert soup.select_one("table.sweep") is None  # only the importance region
    method = soup.select_one(".importance-method").get_text()
    assert "permutation importance" in method and "RandomForestRegressor" in method and "15 succeeded" in method
    values = {g["data-key"]: float(g.select_one("rect.permutation")["data-value"])
              for g in soup.select("svg.importance g.importance-row")}
    assert max(values, key=values.get) == "lr"
    rows = soup.select("svg.importance g.importance-row")
    correlations = {g["data-key"]: g.select_one("rect.correlation") for g in rows}
    assert correlations["optimizer"] is None and correlations["batch"] is not None  # categorical: no r


def test_importance_notes_too_few_children_and_a_missing_scikit_learn(client, demo, grid, monkeypatch):
    # The decision-tree sweep varies max_depth and lr but has 3 succeeded children: a plot, no forest.
    # (`importance=now`: the whole page with importance in it, for a browser without script.)
    soup = ok(client, f"/ui/iterations/{demo.sweep_id}/sweep?importance=now")
    assert len(soup.select(".parallel-box polyline")) == len(demo.children)
    assert "needs at least 5 children with a value; this sweep has 3" in soup.select_one(".importance-note").get_text()
    assert soup.select_one(".importance-method") is None
    # A DDP run's ranks are no sweep over parameters.
    assert ok(client, f"/ui/iterations/{demo.ddp_id}/sweep").select_one(".many-parameters") is None
    # Without scikit-learn: correlation still, and a note naming the extra.
    monkeypatch.setattr(importance, "_CACHE", OrderedDict())
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)  # `import` then raises ImportError
    soup = ok(client, f"/ui/iterations/{grid.driver_id}/sweep?part=importance")
    assert "needs scikit-learn" in soup.select_one(".importance-note").get_text()
    assert "diary-integrations[sklearn]" in soup.select_one(".importance-note").get_text()
    assert soup.select_one(".importance-method") is None
    assert len(soup.select("svg.importance rect.correlation")) == 2


def test_importance_bounded_by_a_sample(monkeypatch):
    monkeypatch.setattr(importance, "MAX_CHILDREN", 20)
    monkeypatch.setattr(importance, "MIN_CHILDREN", 10**6)  # the sample is what is checked here, not a forest
    params = [{"a": str(i), "b": "x" if i % 2 else "y"} for i in range(50)]
    result = importance.importance(params, [float(i) for i in range(50)], ["a", "b"])
    assert result.cut and result.children == 20 and result.rows[0].correlation == pytest.approx(1.0)
    monkeypatch.setattr(importance, "MIN_CHILDREN", 5)
    flat = importance.importance(params[:6], [1.0] * 6, ["a", "b"])  # nothing to explain: no forest
    assert "same value" in flat.note and flat.method is None and all(r.correlation is None for r in flat.rows)


def test_parallel_chart_keeps_a_child_without_a_value_as_one_line():
    from diary_integrations.dashboard.sweep_charts import Line, parallel_chart

    lines = [Line("#1", 1, {"lr": "0.1", "opt": "adam"}, 0.9), Line("#2", 2, {"lr": "0.01"}, None, dashed=True),
             Line("#3", 3, {"opt": "sgd"}, float("nan")), Line("#4", 4, {"lr": "1e-4", "opt": "adam"}, 0.5)]
    soup = BeautifulSoup(str(parallel_chart(lines, ["lr", "opt"], "acc", "max")), "html.parser")
    drawn = {int(p["data-iteration"]): [tuple(map(float, xy.split(","))) for xy in p["points"].split()]
             for p in soup.select("polyline")}
    assert sorted(drawn) == [1, 2, 3, 4] and all(len(points) == 3 for points in drawn.values())
    missing_y = max(y for points in drawn.values() for _, y in points)  # the "—" mark below the axes
    assert drawn[2][1][1] == drawn[2][2][1] == missing_y and drawn[3][0][1] == drawn[3][2][1] == missing_y
    assert drawn[1][2][1] < drawn[4][2][1]  # higher accuracy sits higher
    assert {p["stroke"] for p in soup.select("polyline[data-iteration='2'], polyline[data-iteration='3']")} == {
        "#94a3b8"}  # no value: grey


def test_search_narrows_and_orders_a_sweep(client, grid):
    url = f"/ui/iterations/{grid.driver_id}/sweep"
    soup = ok(client, f"{url}?filter=params.optimizer = 'adam' AND metrics.val_accuracy > 0.85 AND params.batch = '64'"
                      "&order_by=metrics.val_accuracy DESC")
    assert [int(tr["data-iteration"]) for tr in soup.select("table.sweep tbody tr")] == [grid.children[9]]
    soup = ok(client, f"{url}?filter=params.optimizer = 'sgd' AND params.lr LIKE '0.00%'"
                      "&order_by=metrics.val_accuracy DESC")
    ids = [int(tr["data-iteration"]) for tr in soup.select("table.sweep tbody tr")]
    assert len(ids) == 4 and "4 of 16 children match" in soup.select_one(".summary").get_text()
    values = [float(tr.select_one("td.num")["data-v"]) for tr in soup.select("table.sweep tbody tr")]
    assert values == sorted(values, reverse=True)
    assert len(soup.select(".parallel-box polyline")) == 4  # the plot shows the matches
    # The live region keeps the search, so a refresh does not bring the other children back.
    assert "filter=params.optimizer" in soup.select_one(".live")["data-live"]
    live = ok(client, soup.select_one(".live")["data-live"].replace("&amp;", "&"))
    assert len(live.select("table.sweep tbody tr")) == 4
    # No match: the page says so (and stays a sweep page, not a redirect to the driver).
    none = ok(client, f"{url}?filter=params.optimizer = 'rmsprop'")
    assert "No child matches this filter." in none.get_text() and "0 of 16 children match" in none.get_text()


def test_search_over_an_experiment_matches_at_any_depth(client, demo):
    soup = ok(client, f"/ui/experiments/{demo.experiment_id}?filter=attributes.status = 'FAILED'")
    assert [int(tr["data-iteration"]) for tr in soup.select("table.experiment-table tbody tr")] == [demo.failed_id]
    soup = ok(client, f"/ui/experiments/{demo.experiment_id}?filter=params.lr LIKE '0.0%'&order_by=params.lr")
    assert [int(tr["data-iteration"]) for tr in soup.select("table.experiment-table tbody tr")] == [
        demo.children[12], demo.children[8], demo.children[4]]
    # The keys the filter names become the table's columns.
    assert "lr" in [th.get_text() for th in soup.select("table.experiment-table thead th.param")]


BAD_SEARCHES = [  # (page, query, token, position, message)
    ("sweep", "filter=metrics.val_accuracy <", "", 22, "expected a value after <, but it ends at position 22"),
    ("sweep", "filter=params.lr == '0.1'", "=", 11, "compares with a quoted string, got '=' at position 11"),
    ("experiment", "filter=foo.x = 1", "foo.x", 0, "Invalid entity type 'foo'"),
    ("experiment", "filter=name = 'a' OR name = 'b'", "OR", 11, "clauses are joined by AND"),
    ("sweep", "order_by=bogus DESC", "bogus", 0, "Invalid attribute key 'bogus'"),
]


def test_a_bad_search_shows_its_error_in_place(client, grid, without_forest):
    for where, query, token, position, message in BAD_SEARCHES:
        url = f"/ui/iterations/{grid.driver_id}/sweep" if where == "sweep" else f"/ui/experiments/{grid.experiment_id}"
        response = client.get(f"{url}?{query}")
        assert response.status_code == 422, query
        soup = soup_of(response)
        error = soup.select_one("form.search .search-error")
        assert message in error.p.get_text(), query
        assert error["data-token"] == token and error["data-position"] == str(position), query
        assert error.select_one("code mark").get_text() == (token or "‸"), query
        field = "order_by" if query.startswith("order_by") else "filter"
        assert soup.select_one(f"form.search input[name={field}]")["aria-invalid"] == "true"
        # The rest of the page is still there: every child (or top-level iteration), unfiltered.
        assert len(soup.select("table.sweep tbody tr")) == (len(grid.children) if where == "sweep" else 1), query


JUNK = ["'", "params.", "metrics.x < 1e999999", "x" * 20_000, "\u0000", "params.é = 'ü'", "name IN ()",
        "is_leaf = true AND depth = 1 AND duration > -1", "metrics.`a,b` < 1, name"]


def test_search_junk_is_never_a_500(client, grid, without_forest):
    for junk in JUNK:
        for url in (f"/ui/iterations/{grid.driver_id}/sweep", f"/ui/experiments/{grid.experiment_id}"):
            for field in ("filter", "order_by"):
                response = client.get(url, params={field: junk})
                assert response.status_code in (200, 422), (field, junk, response.text[:300])
                assert (response.status_code == 422) == ("search-error" in response.text), (field, junk)


def test_auth_compare_and_search_read_only_what_the_user_may(tmp_path: Path):
    from diary_integrations.server.app import create_app

    with TestClient(create_app(auth_settings(tmp_path))) as kim:
        tracker = kim.app.state.tracker
        demo = seed(tracker)
        other, _ = tracker.create_project("Other team")
        secret_experiment, _ = tracker.create_experiment(other, ExperimentStatus.IN_PROGRESS, "Secret")
        secret, _ = tracker.create_iteration(secret_experiment)
        tracker.log_parameters(secret, {"lr": "0.5"})
        kim_id, _ = tracker.create_user("kim", "kim-pw")
        tracker.create_user_permission(kim_id, demo.project_id)  # read only, this project only
        login = kim.post("/ui/login", data={"username": "kim", "password": "kim-pw", "next": "/ui/"},
                         follow_redirects=False)
        assert login.status_code == 303
        assert kim.get(f"/ui/compare?ids={demo.children[2]},{demo.children[4]}").status_code == 200
        # The other project's run looks missing, exactly as an id that never existed.
        refused = kim.get(f"/ui/compare?ids={demo.children[2]},{secret}")
        never = kim.get(f"/ui/compare?ids={demo.children[2]},999999")
        assert refused.status_code == never.status_code == 404
        assert refused.text.replace(f"#{secret}", "#N") == never.text.replace("#999999", "#N")
        assert "Other team" not in refused.text and "Secret" not in refused.text and "0.5" not in refused.text
        # Its experiment's search page too; and a search cannot reach it from a readable experiment.
        assert kim.get(f"/ui/experiments/{secret_experiment}?filter=params.lr = '0.5'").status_code == 404
        found = kim.get(f"/ui/experiments/{demo.experiment_id}?filter=params.lr = '0.5'")
        assert found.status_code == 200 and f'data-iteration="{secret}"' not in found.text
        assert re.search(r"0 iterations match", found.text)


def test_compare_search_and_parallel_over_a_remote_tracker(server_url: str):
    # `diary ui http://...`: the same pages over REST (search_iterations is POST /iteration/search).
    from diary_integrations.client import RemoteTracker
    from diary_integrations.dashboard import create_dashboard

    remote = RemoteTracker(server_url)
    project_id, _ = remote.create_project("Remote")
    grid = seed_grid(remote, project_id)
    with TestClient(create_dashboard(remote)) as client:
        # Four matches: the plot, and a note rather than a forest (fewer than five children).
        sweep = f"/ui/iterations/{grid.driver_id}/sweep"
        soup = ok(client, f"{sweep}?filter=params.optimizer = 'sgd' AND params.lr LIKE '0.00%'")
        assert len(soup.select("table.sweep tbody tr")) == 4
        assert len(soup.select(".parallel-box polyline")) == 4
        bad = client.get(f"/ui/experiments/{grid.experiment_id}?filter=params.lr < 1")
        assert bad.status_code == 422 and soup_of(bad).select_one(".search-error mark").get_text() == "<"
        both = ok(client, f"/ui/compare?ids={grid.children[0]},{grid.children[2]}")
        assert len(both.select("figure.compare-chart[data-key='loss'] g.series")) == 2
    remote.close()
