"""The latest-value table (tracker/latest.py) follows the series through every way points are written,
changed and deleted, on every tracker kind: what `get_latest_metrics`, the best child and a search ordered
by a metric read from it equals the series' own latest point (highest step, the newest there). The
server-postgres kind writes its batches with tracker/postgres_points.py's one statement. And migration
0012 fills the table from the series of a database written before it."""

from __future__ import annotations

import math
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from diary_integrations import IterationEnding, IterationStatus, LocalTracker, NewIteration
from diary_integrations.tracker.database import create_tracker_engine
from diary_integrations.tracker.migrate import alembic_config, upgrade_to_head


def from_series(tracker: Any, iteration_id: int) -> dict[str, float]:
    """Each key's latest value as the series says: the highest step, the highest id there."""
    best: dict[str, Any] = {}
    for point in tracker.get_metrics(iteration_id):
        held = best.get(point.key)
        if held is None or (point.step, point.id) > (held.step, held.id):
            best[point.key] = point
    return {key: point.value for key, point in best.items()}


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def check(tracker: Any, ids: list[int]) -> None:
    latest = tracker.get_latest_metrics(ids)
    for i in ids:
        assert same(latest[i], from_series(tracker, i)), (i, latest[i], from_series(tracker, i))


def test_latest_values_follow_every_write(tracker: Any, experiment_id: int) -> None:
    driver = tracker.create_iteration(experiment_id, snapshot=False).id
    a, b, c = tracker.create_iterations(experiment_id, [NewIteration() for _ in range(3)], parent_iteration_id=driver)
    ids = [a, b, c]

    tracker.create_metric(a, "loss", 0.9)  # auto steps 0, 1
    tracker.create_metric(a, "loss", 0.8)
    tracker.create_metric(a, "loss", 5.0, step=0)  # an older step written later does not become the latest
    check(tracker, ids)
    tracker.log_metrics(a, {"loss": 0.7, "acc": 0.5}, step=1)  # the same step again: the newest point wins
    tracker.log_metrics(b, {"loss": 0.6, "acc": 0.6})
    check(tracker, ids)
    # The bulk path (the one PostgreSQL statement over a server): steps out of order, one step twice.
    tracker.log_metric_points(b, [("loss", 0.3, 7), ("loss", 0.4, 3), ("loss", 0.2, 7), ("loss", 0.1, 5)])
    tracker.log_metric_points(c, [("loss", 0.5, 2), ("loss", math.nan, 4), ("acc", 0.9, 0)])
    check(tracker, ids)
    assert tracker.get_latest_metrics([b])[b]["loss"] == 0.2 and math.isnan(tracker.get_latest_metrics([c])[c]["loss"])

    # A changed or deleted point: the key's latest is read back from the series.
    newest = max(tracker.get_metrics(b, key="loss"), key=lambda p: (p.step, p.id))
    tracker.update_metric(newest.id, step=1)  # no longer the latest: (7, 0.3), written before it at 7, is
    check(tracker, ids)
    assert tracker.get_latest_metrics([b])[b]["loss"] == 0.3
    tracker.update_metric(newest.id, value=0.05, step=9)
    check(tracker, ids)
    tracker.delete_metric(newest.id)
    check(tracker, ids)
    for point in tracker.get_metrics(c, key="acc"):
        tracker.delete_metric(point.id)
    check(tracker, ids)
    assert "acc" not in tracker.get_latest_metrics([c])[c]

    # The last data an ending carries.
    tracker.end_iterations([IterationEnding(a, points=[("loss", 0.25, 10)]), IterationEnding(b), IterationEnding(c)])
    check(tracker, ids)

    # The reads that use the table agree with the series: c's NaN never wins, ties go to the lower id.
    latest = {i: from_series(tracker, i).get("loss", math.nan) for i in ids}
    valued = sorted((v, i) for i, v in latest.items() if v == v)
    best = tracker.get_best_child_iteration(driver, "loss", mode="min")
    assert best is not None and (best[1], best[0].id) == valued[0]
    best = tracker.get_best_child_iteration(driver, "loss", mode="max")
    assert best is not None and (best[1], best[0].id) == max(valued)
    order = [i.id for i in tracker.search_iterations(experiment_id, "depth >= 1", ["metrics.loss"])]
    assert order == [i for _, i in valued] + [i for i in ids if latest[i] != latest[i]]
    order = [i.id for i in tracker.search_iterations(experiment_id, "depth >= 1", ["metrics.loss DESC"])]
    assert order == [i for _, i in sorted(valued, key=lambda p: (-p[0], p[1]))] + [c]

    # Deleting the driver clears the children's parent in the table too: they are nobody's children.
    tracker.delete_iteration(driver)
    assert tracker.get_best_child_iteration(driver, "loss", mode="min") is None
    check(tracker, ids)


def test_ties_and_missing_values_page_like_one_order(tracker: Any, experiment_id: int) -> None:
    """A search ordered by a metric reads the valued iterations, then the rest: pages across that seam
    give the one order (value, then id; no value last, by id)."""
    kids = tracker.create_iterations(experiment_id, [NewIteration() for _ in range(9)])
    values = [0.5, 0.1, None, 0.5, math.nan, 0.1, None, 0.3, 0.5]
    for kid, value in zip(kids, values, strict=True):
        if value is not None:
            tracker.log_metric_points(kid, [("loss", 9.0, 0), ("loss", value, 1)])
    valued = sorted((v, i) for i, v in zip(kids, values, strict=True) if v is not None and v == v)
    rest = [i for i, v in zip(kids, values, strict=True) if v is None or v != v]
    for order, wanted in (("metrics.loss", [i for _, i in valued] + rest),
                          ("metrics.loss DESC", [i for _, i in sorted(valued, key=lambda p: (-p[0], p[1]))] + rest)):
        for size in (1, 2, 4, 6, 9, 10):
            got, token = [], None
            while True:
                page = tracker.search_iterations(experiment_id, "", [order], max_results=size, page_token=token)
                got += [i.id for i in page]
                token = page.next_page_token
                if token is None:
                    break
            assert got == wanted, (order, size)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres_url")


def test_migration_0012_fills_the_table_from_the_series(database: str) -> None:
    engine = create_tracker_engine(database)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0011")
    with engine.begin() as conn:
        conn.execute(text("insert into project (name, description, created_date) values ('p', '', '2026-01-01')"))
        conn.execute(text("insert into experiment (project_id, status, name, description, created_date) "
                          "values (1, 1, 'e', '', '2026-01-01')"))
        for parent in ("NULL", "1", "1"):
            conn.execute(text("insert into iteration (experiment_id, parent_iteration_id, status, notes, error_message,"
                              f" traceback, created_date, heartbeat_date) values (1, {parent}, 2, '', '', '', "
                              "'2026-01-01', '2026-01-01')"))
        points = [(2, "loss", 0.5, 0), (2, "loss", 0.4, 2), (2, "loss", 0.45, 2), (2, "loss", 9.0, 1),
                  (3, "loss", 0.3, 0), (3, "acc", None, 5), (3, "acc", 0.9, 4)]
        for iteration, key, value, step in points:
            conn.execute(text("insert into metric (iteration_id, key, value, step, recorded_at) "
                              "values (:i, :k, :v, :s, 0.0)"), {"i": iteration, "k": key, "v": value, "s": step})
    upgrade_to_head(engine)
    engine.dispose()
    tracker = LocalTracker(database)
    try:
        check(tracker, [1, 2, 3])
        assert tracker.get_latest_metrics([2])[2] == {"loss": 0.45}  # the newest point at the highest step
        best = tracker.get_best_child_iteration(1, "loss", mode="min")
        assert best is not None and (best[0].id, best[1]) == (3, 0.3)
        assert best[0].status is IterationStatus.SUCCEEDED
    finally:
        tracker.close()
