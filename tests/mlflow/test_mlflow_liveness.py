"""MLflow's clients send no heartbeat: the server's reaper gives runs made through MLflow's API a lease
of their own (`DIARY_MLFLOW_RUN_LEASE`), while diary's own iterations keep theirs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, update

from diary_integrations import IterationStatus, LocalTracker
from diary_integrations.tracker import schema as t
from diary_integrations.tracker.database import write_transaction


def test_mlflow_runs_are_reaped_after_their_own_lease(tmp_path) -> None:
    tracker = LocalTracker(f"sqlite:///{tmp_path / 'reap.db'}", record_processes=False)
    try:
        project, _ = tracker.create_project("mlflow")
        experiment, _ = tracker.create_experiment(project, 1, "E")
        native, _ = tracker.create_iteration(experiment, snapshot=False)
        quiet, _ = tracker.create_iteration(experiment, snapshot=False)
        silent, _ = tracker.create_iteration(experiment, snapshot=False)
        now = datetime.now(timezone.utc)
        with write_transaction(tracker.engine) as conn:
            conn.execute(insert(t.mlflow_runs), [{"iteration_id": quiet}, {"iteration_id": silent}])
            for iteration_id, age in ((native, 600), (quiet, 600), (silent, 7200)):
                conn.execute(
                    update(t.iterations)
                    .where(t.iterations.c.id == iteration_id)
                    .values(heartbeat_date=now - timedelta(seconds=age))
                )
        assert sorted(tracker.reap(90, mlflow_lease=3600)) == [native, silent]
        assert tracker.get_iteration(quiet).status is IterationStatus.RUNNING
        assert tracker.get_iteration(silent).status is IterationStatus.KILLED
        assert tracker.reap(90) == [quiet]  # without the MLflow lease (`diary reap`), every run is alike
    finally:
        tracker.close()
