"""The reads that must scale to 100,000 children use the indexes (EXPLAIN on SQLite and PostgreSQL): the best
child through ix_iteration_parent_status (migration 0010) and one seek per child in the metric index, a
search through the experiment index with one seek per row for a parameter and for a metric. The speed
itself is measured in benchmarks/cases_search.py, never asserted here.

PostgreSQL's planner prefers a sequential scan on tables this small, so its plans are read with
`enable_seqscan = off`, after an ANALYZE (as autovacuum keeps a live database): the question is whether
an index serves the query, not what a tiny table costs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker, NewIteration
from diary_integrations.tracker.local.metrics import best_child_statement
from diary_integrations.tracker.local.search import _statement
from diary_integrations.tracker.search_grammar import ITERATIONS, parse_filter, parse_order_by


@pytest.fixture(params=["sqlite", "postgres"])
def sweep(request: pytest.FixtureRequest, tmp_path: Any) -> tuple[LocalTracker, int, int]:
    url = str(tmp_path / "plans.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    tracker = LocalTracker(url)
    experiment = tracker.create_experiment(tracker.create_project("p").id, ExperimentStatus.IN_PROGRESS, "e").id
    driver = tracker.create_iteration(experiment).id
    kids = tracker.create_iterations(
        experiment, [NewIteration(parameters={"opt": ("adam", "sgd")[n % 2]}) for n in range(40)],
        parent_iteration_id=driver,
    )
    for n, kid in enumerate(kids):
        tracker.log_metric_points(kid, [("loss", 1.0 / (n + 1), 0), ("loss", 0.5 / (n + 1), 1)])
        tracker.end_iteration(kid)
    yield tracker, experiment, driver
    tracker.close()


def plan(tracker: LocalTracker, stmt: Any) -> str:
    sql = str(stmt.compile(tracker.engine, compile_kwargs={"literal_binds": True}))
    with tracker.engine.connect() as conn:
        if tracker.engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))  # the statistics autovacuum keeps on a live database
            conn.execute(text("SET enable_seqscan = off"))
            rows = conn.exec_driver_sql("EXPLAIN " + sql.replace("%", "%%")).all()
        else:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_best_child_uses_the_parent_status_index(sweep: tuple[LocalTracker, int, int]) -> None:
    tracker, _, driver = sweep
    shown = plan(tracker, best_child_statement(driver, "loss", "min", IterationStatus.SUCCEEDED))
    assert "ix_iteration_parent_status" in shown, shown
    assert "ix_metric_iteration_key_step" in shown, shown
    best = tracker.get_best_child_iteration(driver, "loss", mode="min")
    assert best is not None and best[1] == 0.5 / 40  # the latest step's value, not the lowest ever


def test_search_seeks_parameters_and_metrics(sweep: tuple[LocalTracker, int, int]) -> None:
    tracker, experiment, _ = sweep
    stmt = _statement(
        [experiment], parse_filter("params.opt = 'adam'", ITERATIONS), parse_order_by(["metrics.loss"], ITERATIONS),
        tracker.engine.dialect.name,
    ).params(experiments=[experiment]).limit(10)
    shown = plan(tracker, stmt)
    assert "ix_metric_iteration_key_step" in shown, shown
    assert "ix_iteration_experiment_id" in shown, shown
    # The parameter's unique (iteration_id, key): SQLite names it sqlite_autoindex_parameter_1.
    assert "sqlite_autoindex_parameter" in shown or "uq_parameter_iteration_id" in shown, shown
