"""The reads that must scale to 100,000 children use the indexes (EXPLAIN on SQLite and PostgreSQL): the best
child and a search ordered by a metric come in value order from the latest-value table's indexes
(migration 0012), with one seek per row for a parameter; a first page of children in id order from
ix_iteration_parent_id; an experiment's RUNNING iterations from ix_iteration_experiment_status. The speed
itself is measured in benchmarks/cases_search.py, never asserted here.

PostgreSQL's planner prefers a sequential scan on tables this small, so its plans are read with
`enable_seqscan = off` and `enable_sort = off`, after an ANALYZE (as autovacuum keeps a live database):
the question is whether an index serves the query, not what a tiny table costs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select, text

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker, NewIteration
from diary_integrations.tracker import liveness
from diary_integrations.tracker import schema as t
from diary_integrations.tracker.local.iterations import _RUNNING_HERE
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
            # Nor is a sort of these few rows: whether the index gives the order (an Incremental Sort of
            # ties at most) is the question, as it is at 100,000 rows.
            conn.execute(text("SET enable_sort = off"))
            rows = conn.exec_driver_sql("EXPLAIN " + sql.replace("%", "%%")).all()
        else:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_best_child_reads_the_latest_values_in_order(sweep: tuple[LocalTracker, int, int]) -> None:
    tracker, _, driver = sweep
    shown = plan(tracker, best_child_statement(driver, "loss", "min", IterationStatus.SUCCEEDED))
    # SQLite takes the parent's own range; PostgreSQL, seeing every row of this tiny table under one parent,
    # may take the key's (both give the children in value order).
    wanted = "ix_metric_latest_parent_key_value" if tracker.engine.dialect.name == "sqlite" else "ix_metric_latest_"
    assert wanted in shown, shown
    assert "ix_metric_iteration_key_step" not in shown, shown  # no walk over the series
    _no_sort_of_every_row(tracker, shown)
    best = tracker.get_best_child_iteration(driver, "loss", mode="min")
    assert best is not None and best[1] == 0.5 / 40  # the latest step's value, not the lowest ever


def test_search_ordered_by_a_metric_reads_the_latest_values_in_order(sweep: tuple[LocalTracker, int, int]) -> None:
    tracker, experiment, _ = sweep
    for order in ("metrics.loss", "metrics.loss DESC"):
        stmt = _statement(
            parse_filter("params.opt = 'adam'", ITERATIONS), parse_order_by([order], ITERATIONS),
            tracker.engine.dialect.name, part="valued",
        ).params(experiments=[experiment]).limit(10)
        shown = plan(tracker, stmt)
        assert "ix_metric_latest_key_value" in shown, shown
        # The parameter's unique (iteration_id, key): SQLite names it sqlite_autoindex_parameter_1.
        assert "sqlite_autoindex_parameter" in shown or "uq_parameter_iteration_id" in shown, shown
        _no_sort_of_every_row(tracker, shown)


def test_first_page_of_children_comes_in_id_order(sweep: tuple[LocalTracker, int, int]) -> None:
    tracker, _, driver = sweep
    it = t.iterations
    shown = plan(tracker, select(it).where(it.c.parent_iteration_id == driver).order_by(it.c.id).limit(100))
    assert "ix_iteration_parent_id" in shown, shown
    assert "TEMP B-TREE" not in shown and "Sort" not in shown, shown  # no sort at all: ids come in order


def test_running_iterations_of_an_experiment_come_from_the_status_index(sweep: tuple[LocalTracker, int, int]) -> None:
    tracker, experiment, _ = sweep
    # Another experiment's sweep still running: RUNNING alone no longer picks out this experiment's few rows,
    # as on a shared server (with only this experiment's one RUNNING driver, PostgreSQL could as well take
    # ix_iteration_status_heartbeat, and chose either from run to run).
    other = tracker.create_experiment(tracker.get_experiment(experiment).project_id, ExperimentStatus.IN_PROGRESS, "o")
    tracker.create_iterations(other.id, [NewIteration() for _ in range(300)])
    # This host's processes, which own every row here: the process side picks out nothing.
    shown = plan(tracker, _RUNNING_HERE.params(experiment=experiment, host=liveness.this_host()))
    assert "ix_iteration_experiment_status" in shown, shown


def _no_sort_of_every_row(tracker: LocalTracker, shown: str) -> None:
    """The order comes from the index: at most ties are sorted (SQLite's RIGHT PART, PostgreSQL's
    Incremental Sort), never every row before the first is known."""
    if tracker.engine.dialect.name == "sqlite":
        assert "USE TEMP B-TREE FOR ORDER BY" not in shown, shown
    else:
        assert not re.search(r"(^|->)\s*Sort\s+\(", shown, re.MULTILINE), shown
