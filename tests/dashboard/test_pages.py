"""The dashboard's pages over a real SQLite file, read through FastAPI's TestClient."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from diary_integrations.dashboard.data import default_goal, default_metric

from .seed import CURVE_STEPS, RANK_STEPS, RANKS, SKLEARN_ERROR, SKLEARN_FOLD_TIMES, accuracy, seed_sklearn


def page(client, url: str) -> BeautifulSoup:
    response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return BeautifulSoup(response.text, "html.parser")


def drawn_points(series) -> int:
    """The points a chart series really draws: one M or L command each."""
    return len(re.findall(r"[ML]", series.find("path")["d"]))


def test_root_redirects_to_the_dashboard(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/ui/"
    home = page(client, "/")
    assert "Fraud detection" in home.get_text() and home.find("a", string="Decision-tree sweep")
    assert client.get("/favicon.ico").headers["content-type"].startswith("image/svg")


def test_empty_database_says_so(tmp_path):
    from fastapi.testclient import TestClient

    from diary_integrations import LocalTracker
    from diary_integrations.dashboard import create_dashboard

    tracker = LocalTracker(tmp_path / "empty.db")
    with TestClient(create_dashboard(tracker)) as client:
        assert "No projects yet." in page(client, "/ui/").get_text()
    tracker.close()


def test_experiment_tree_nests_children_under_their_driver(client, demo):
    # The sidebar holds the tree; the page itself lists the top-level iterations (test_first_hour_pages).
    soup = page(client, f"/ui/experiments/{demo.experiment_id}")
    tree = soup.select_one(".sidebar ul.iterations")
    driver = tree.find("summary", attrs={"data-iteration": str(demo.sweep_id)}).parent
    assert driver.name == "details"  # collapsible
    nested = [int(row["data-iteration"]) for row in driver.find("ul").select(".row")]
    assert nested == sorted(demo.children.values())
    failed = tree.find(attrs={"data-iteration": str(demo.failed_id)})
    assert failed.select_one(".mark.failed").get_text() == "✗"
    running = tree.find(attrs={"data-iteration": str(demo.running_id)})
    assert running.select_one(".mark.running").get_text() == "▶" and "running" in running.get_text()
    assert "just now" in running.get_text()
    # The driver's summary counts its children by status.
    assert "3✓" in driver.find("summary").get_text() and "1✗" in driver.find("summary").get_text()
    row = soup.select_one(f"main table.experiment-table tr[data-iteration='{demo.running_id}']")
    assert row.select_one(".mark.running").get_text() == "▶"


def test_failed_iteration_shows_error_and_traceback(client, demo):
    soup = page(client, f"/ui/iterations/{demo.failed_id}")
    assert soup.select_one(".badge.failed").get_text(strip=True) == "✗ FAILED"
    assert soup.select_one(".error-message").get_text() == "MemoryError: max_depth=12 blew the heap"
    traceback = soup.select_one("pre.traceback").get_text()
    assert traceback.startswith("Traceback (most recent call last)") and "raise MemoryError" in traceback
    assert soup.select_one("a.parent")["href"] == f"/ui/iterations/{demo.sweep_id}"
    params = {row.th.get_text(): row.td.get_text() for row in soup.select("table.params tr")}
    assert params == {"max_depth": "12", "lr": "0.0001"}
    assert "No metrics recorded." in soup.get_text()
    # The sidebar opens the driver and marks this child as the current row.
    assert soup.select_one(".sidebar .row.current")["data-iteration"] == str(demo.failed_id)


def test_iteration_page_charts_one_per_key_and_overlaid_on_request(client, demo):
    child = demo.children[2]
    soup = page(client, f"/ui/iterations/{child}")
    charts = {fig["data-key"]: fig for fig in soup.select(".charts figure.chart-box")}
    assert sorted(charts) == ["loss"]  # accuracy has one value: a number in a table, not a one-dot chart
    assert [tr["data-key"] for tr in soup.select("table.single-metrics tr")] == ["accuracy"]
    assert drawn_points(charts["loss"].select_one("g.series")) == CURVE_STEPS
    assert int(charts["loss"].select_one("g.series")["data-points"]) == CURVE_STEPS
    assert soup.select_one("figure.overlay") is None
    soup = page(client, f"/ui/iterations/{child}?overlay=loss&overlay=accuracy")
    overlay = soup.select_one("figure.overlay")
    assert [g["data-label"] for g in overlay.select("g.series")] == ["loss", "accuracy"]
    assert [drawn_points(g) for g in overlay.select("g.series")] == [CURVE_STEPS, 1]


def test_environment_card(client, demo, demo_db):
    tracker = demo_db[0]
    env = tracker.get_environment(demo.sweep_id)
    soup = page(client, f"/ui/iterations/{demo.sweep_id}")
    assert [chip.get_text() for chip in soup.select(".live .chip")] == ["sweep"]
    assert [c.get_text() for c in page(client, f"/ui/iterations/{demo.sweep_id}?part=live").select(".chip")] == [
        "sweep"]
    card = soup.find("h2", string="Environment").parent
    text = card.get_text()
    assert env.python_version in text and env.entrypoint in text
    assert (env.git_sha or "—") in text
    assert ("(dirty)" in text) == env.git_dirty
    assert "No environment captured" in page(client, f"/ui/iterations/{demo.children[2]}").get_text()


def test_sweep_table_best_row_and_failed_error(client, demo):
    soup = page(client, f"/ui/iterations/{demo.sweep_id}/sweep")
    rows = soup.select("table.sweep tbody tr")
    assert [int(r["data-iteration"]) for r in rows] == sorted(demo.children.values())
    best = soup.select("table.sweep tr.best")
    assert [int(r["data-iteration"]) for r in best] == [demo.best_id]
    headers = [th.get_text() for th in soup.select("table.sweep thead th")]
    assert headers[:3] == ["iteration", "status", "accuracy"]  # the score, then parameters; timings folded
    assert {"max_depth", "lr", "accuracy", "loss", "error", "duration"} <= set(headers)
    failed = soup.find("tr", attrs={"data-iteration": str(demo.failed_id)})
    assert "failed" in failed["class"]
    assert failed.select_one(".error-cell").get_text() == "MemoryError: max_depth=12 blew the heap"
    best_cells = dict(zip(headers, [td.get_text(strip=True) for td in best[0].find_all("td")], strict=True))
    assert best_cells["accuracy"] == f"{accuracy(8):.4g}"


def test_sweep_best_by_a_chosen_metric_and_goal(client, demo):
    lowest_loss = page(client, f"/ui/iterations/{demo.sweep_id}/sweep?metric=loss")
    # "loss" defaults to lower-is-better: depth 8 has the lowest final loss.
    assert lowest_loss.select_one("tr.best")["data-iteration"] == str(demo.children[8])
    highest_loss = page(client, f"/ui/iterations/{demo.sweep_id}/sweep?metric=loss&goal=max")
    assert highest_loss.select_one("tr.best")["data-iteration"] == str(demo.children[2])


def test_goal_is_inferred_from_the_metric_name():
    lowest = ["rank_test_score", "loss", "val_loss", "error_rate", "top1_err", "fold_time", "mean_fit_time",
              "mean_score_time", "mse", "mae", "rmse", "train_rmse", "latency_ms", "perplexity"]
    highest = ["mean_test_score", "test_score", "accuracy", "f1", "auc", "answer_rate", "cancer_recall",
               "mean_test_neg_log_loss", "neg_mean_squared_error"]  # scikit-learn negates losses into scores
    assert {k: default_goal(k) for k in lowest} == dict.fromkeys(lowest, "min")
    assert {k: default_goal(k) for k in highest} == dict.fromkeys(highest, "max")


def test_default_metric_prefers_test_scores_then_scores_then_losses():
    sklearn = ["fold_time", "mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time", "test_score"]
    assert default_metric(sklearn) == "mean_test_score"
    assert default_metric(["rank_test_f1", "std_test_f1", "mean_test_f1", "mean_fit_time"]) == "mean_test_f1"
    assert default_metric(["fold_time", "test_score", "std_test_score"]) == "test_score"
    assert default_metric(["fold_time", "train_accuracy", "val_accuracy"]) == "val_accuracy"
    assert default_metric(["fold_time", "mean_score_time", "val_loss"]) == "val_loss"
    assert default_metric(["throughput", "fold_time"]) == "fold_time"
    assert default_metric([]) is None


def test_sklearn_sweep_defaults_to_mean_test_score_and_ranks_rank_lowest(client, demo, demo_db):
    sk = seed_sklearn(demo_db[0], demo.project_id)
    soup = page(client, f"/ui/iterations/{sk.driver_id}/sweep")
    assert soup.select_one("select[name=metric] option[selected]").get_text() == "mean_test_score"
    assert soup.select_one("select[name=goal] option[selected]")["value"] == "max"
    assert soup.select_one("tr.best")["data-iteration"] == str(sk.candidates[1])  # 0.94
    # The chosen metric's column comes right after the status, before the parameters; timings are folded.
    headers = [th.get_text() for th in soup.select("table.sweep thead th")]
    assert headers[:3] == ["iteration", "status", "mean_test_score"]
    timing = [th.get_text() for th in soup.select("table.sweep thead th.timing")]
    assert "duration" in timing and "fold_time" in timing and "mean_test_score" not in timing
    failed = soup.find("tr", attrs={"data-iteration": str(sk.failed_id)}).select_one(".error-cell")
    assert failed.select_one("details summary")["title"] == SKLEARN_ERROR
    rank = page(client, f"/ui/iterations/{sk.driver_id}/sweep?metric=rank_test_score")
    assert rank.select_one("select[name=goal] option[selected]")["value"] == "min"
    assert rank.select_one("tr.best")["data-iteration"] == str(sk.candidates[1])  # rank 1
    fastest = page(client, f"/ui/iterations/{sk.driver_id}/sweep?metric=fold_time")
    assert fastest.select_one("select[name=goal] option[selected]")["value"] == "min"
    quickest = SKLEARN_FOLD_TIMES.index(min(SKLEARN_FOLD_TIMES))
    assert fastest.select_one("tr.best")["data-iteration"] == str(sk.candidates[quickest])


def test_experiment_summary_spacing(client, demo):
    summary = page(client, f"/ui/experiments/{demo.experiment_id}").select_one("p.summary").get_text()
    assert "1 ✗ failed · created " in " ".join(summary.split())


def test_sweep_charts_parameter_against_metric_and_overlaid_curves(client, demo):
    soup = page(client, f"/ui/iterations/{demo.sweep_id}/sweep?metric=loss&x=max_depth")
    dots = soup.select(".scatter-box circle.dot")
    assert len(dots) == 3  # the failed child has no loss
    assert [d["data-iteration"] for d in dots if "highlight" in d["class"]] == [str(demo.children[8])]
    curves = soup.select(".overlay-box g.series")
    by_child = {int(g["data-iteration"]): drawn_points(g) for g in curves}
    assert by_child == {**dict.fromkeys([demo.children[d] for d in (2, 4, 8)], CURVE_STEPS), demo.failed_id: 0}
    assert [g["data-iteration"] for g in curves if "highlight" in g["class"]] == [str(demo.children[8])]


def test_ddp_run_shows_ranks_side_by_side(client, demo):
    soup = page(client, f"/ui/iterations/{demo.ddp_id}/sweep")
    assert "Distributed run" in soup.h1.get_text()
    cards = soup.select(".ranks .rank-card")
    assert [c["data-rank"] for c in cards] == [str(r) for r in range(RANKS)]
    assert all(drawn_points(c.select_one("g.series")) == RANK_STEPS for c in cards)
    assert soup.select("tr.best") == []  # ranks of one model: none is "the best"


def test_live_part_renders_only_the_live_region(client, demo, demo_db):
    tracker = demo_db[0]
    url = f"/ui/iterations/{demo.running_id}?part=live"
    soup = page(client, url)
    live = soup.select_one(".live")
    assert live["data-running"] == "true" and soup.select_one(".sidebar") is None
    assert live.select_one(".notes").get_text() == "still training"
    assert drawn_points(live.select_one("g.series")) == 5
    tracker.log_metric_points(demo.running_id, [("loss", 0.1, step) for step in range(5, 9)])
    assert drawn_points(page(client, url).select_one("g.series")) == 9
    tracker.end_iteration(demo.running_id)
    assert page(client, url).select_one(".live")["data-running"] == "false"
    # A finished sweep stops polling; the table is in its live region.
    sweep = page(client, f"/ui/iterations/{demo.sweep_id}/sweep?part=live")
    assert sweep.select_one(".live")["data-running"] == "false" and sweep.select("table.sweep tbody tr")


def test_missing_things_are_404_pages(client):
    response = client.get("/ui/iterations/999999")
    assert response.status_code == 404 and "Iteration not found" in response.text
    assert client.get("/ui/iterations/999999/sweep").status_code == 404
    assert client.get("/ui/experiments/999999").status_code == 404


def test_an_id_that_is_not_a_number_gets_the_dashboards_own_page(client, demo):
    # Not FastAPI's JSON 422: the same HTML 404 page as an unknown id, sidebar included.
    for url, what in [("/ui/iterations/abc", "Iteration"), ("/ui/iterations/1.5/sweep", "Iteration"),
                      ("/ui/experiments/x", "Experiment")]:
        response = client.get(url)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
        soup = BeautifulSoup(response.text, "html.parser")
        assert soup.h1.get_text() == f"{what} not found" and soup.select_one(".sidebar")
    abc = BeautifulSoup(client.get("/ui/iterations/abc").text, "html.parser")
    assert "'abc' is not an iteration id" in abc.get_text()
    # A query value that does not parse is a 400 page; the JSON endpoint keeps answering JSON.
    response = client.get(f"/ui/iterations/{demo.children[2]}?log=maybe")
    assert response.status_code == 400 and "Bad request" in response.text and "log" in response.text
    api = client.get("/ui/api/iterations/abc/series", params={"key": "loss"})
    assert api.status_code == 422 and api.headers["content-type"].startswith("application/json")


def test_series_json_is_downsampled(client, demo_db, demo):
    tracker = demo_db[0]
    big, _ = tracker.create_iteration(demo.experiment_id)
    tracker.log_metric_points(big, [("loss", 1.0 if step == 77_777 else 0.5, step) for step in range(100_000)])
    body = client.get(f"/ui/api/iterations/{big}/series", params={"key": "loss", "max_points": 500}).json()
    assert len(body["steps"]) <= 500 and body["steps"] == sorted(body["steps"])
    assert max(body["values"]) == 1.0 and min(body["values"]) == 0.5  # the spike survives
    small = client.get(f"/ui/api/iterations/{demo.children[2]}/series", params={"key": "loss"}).json()
    assert small["steps"] == list(range(CURVE_STEPS))
    assert client.get("/ui/api/iterations/999999/series", params={"key": "loss"}).status_code == 404


def test_series_json_refuses_a_bad_key(client, demo):
    response = client.get(f"/ui/api/iterations/{demo.children[2]}/series", params={"key": ""})
    assert response.status_code == 422 and "key" in response.json()["message"]
