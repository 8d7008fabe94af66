"""Several processes writing one SQLite file at once: every row lands, no "database is locked"."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker

WORKERS = 8
CHILDREN = 50
METRICS = 200


def _worker(url: str, experiment_id: int, driver_id: int, rank: int) -> None:
    tracker = LocalTracker(url)
    for n in range(CHILDREN):
        with tracker.with_iteration(experiment_id, parent_iteration_id=driver_id) as it:
            tracker.log_parameters(it.id, {"rank": rank, "trial": n})
            tracker.log_metric_points(it.id, [("loss", 1.0 / (s + 1), s) for s in range(METRICS)])
    tracker.close()


@pytest.mark.slow
def test_eight_processes_share_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    tracker = LocalTracker(url)
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    driver_id, _ = tracker.create_iteration(experiment_id)

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(url, experiment_id, driver_id, r)) for r in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    children = tracker.get_child_iterations(driver_id)
    assert len(children) == WORKERS * CHILDREN
    assert all(c.status is IterationStatus.SUCCEEDED for c in children)
    pairs = set()
    for child in children:
        params = {p.key: p.value for p in tracker.get_parameters(child.id)}
        pairs.add((params["rank"], params["trial"]))
    assert len(pairs) == WORKERS * CHILDREN  # no child lost or written twice
    counts = {c.id: len(tracker.get_metrics(c.id)) for c in children[:: CHILDREN // 5]}
    assert set(counts.values()) == {METRICS}
    from sqlalchemy import func, select

    from diary_integrations.tracker.schema import metrics

    with tracker.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(metrics)).scalar() == WORKERS * CHILDREN * METRICS
