"""A write refreshes a stale heartbeat (regression: the refresh UPDATE once failed to compile)."""

from __future__ import annotations

from diary_integrations import LocalTracker


def test_write_after_the_refresh_interval_touches_the_heartbeat(tmp_path):
    tracker = LocalTracker(tmp_path / "t.db")
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, 1, "E")
    iteration_id, _ = tracker.create_iteration(experiment_id)
    before = tracker.get_iteration(iteration_id).heartbeat_date
    tracker._last_beat[iteration_id] = float("-inf")  # as if the last beat were long ago
    tracker.create_metric(iteration_id, "loss", 0.5)
    tracker.log_parameters(iteration_id, {"lr": 0.1})
    assert tracker.get_iteration(iteration_id).heartbeat_date >= before
    assert tracker._last_beat[iteration_id] > float("-inf")
