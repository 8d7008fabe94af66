"""Contract: reopening an iteration (a requeued or resumed run continues it), on every tracker kind."""

from __future__ import annotations

import pytest

from diary_integrations import Conflict, IterationStatus, Unprocessable
from diary_integrations.tracker.idempotency import using_key


def test_reopen_a_killed_iteration_runs_again_with_a_note(tracker, experiment_id):
    it, _ = tracker.create_iteration(experiment_id, notes="first try")
    tracker.create_metric(it, "loss", 0.5, step=0)
    tracker.end_iteration(it, IterationStatus.KILLED, error_message="heartbeat lost")
    assert tracker.reopen_iteration(it, expected_status=IterationStatus.KILLED, reason="SLURM job 7 requeued")
    again = tracker.get_iteration(it)
    assert again.status is IterationStatus.RUNNING and again.end_date is None
    assert again.error_message == "" and again.traceback == ""
    first, line = again.notes.split("\n")
    assert first == "first try"
    assert line.startswith("reopened 20") and line.endswith("(was KILLED: heartbeat lost): SLURM job 7 requeued")
    assert [m.step for m in tracker.get_metrics(it)] == [0]  # what it logged is kept
    tracker.heartbeat(it)  # alive again: its heartbeat is accepted
    tracker.end_iteration(it, IterationStatus.SUCCEEDED)
    assert tracker.get_iteration(it).status is IterationStatus.SUCCEEDED


def test_reopen_refreshes_the_heartbeat_so_the_reaper_leaves_it(tracker, experiment_id):
    it, _ = tracker.create_iteration(experiment_id)
    tracker.end_iteration(it, IterationStatus.KILLED)
    import time

    time.sleep(1.1)
    tracker.reopen_iteration(it, expected_status=IterationStatus.KILLED, reason="resume")
    assert tracker.reap(older_than=1.0, force=True) == []
    assert tracker.get_iteration(it).status is IterationStatus.RUNNING
    tracker.end_iteration(it, IterationStatus.SUCCEEDED)


def test_reopen_is_compare_and_set_on_the_status_seen(tracker, experiment_id):
    it, _ = tracker.create_iteration(experiment_id)
    tracker.end_iteration(it, IterationStatus.KILLED)
    tracker.reopen_iteration(it, expected_status=IterationStatus.KILLED, reason="first copy")
    # A second requeued copy that also saw KILLED loses: nothing is written.
    with pytest.raises(Conflict, match="is RUNNING, not KILLED"):
        tracker.reopen_iteration(it, expected_status=IterationStatus.KILLED, reason="second copy")
    notes = tracker.get_iteration(it).notes
    assert "first copy" in notes and "second copy" not in notes
    # Taking over an orphaned RUNNING one is allowed when that is what the caller saw.
    tracker.reopen_iteration(it, expected_status=IterationStatus.RUNNING, reason="took over")
    assert tracker.get_iteration(it).notes.count("reopened") == 2
    tracker.end_iteration(it, IterationStatus.SUCCEEDED)


def test_reopen_with_the_same_idempotency_key_applies_once(tracker, experiment_id):
    it, _ = tracker.create_iteration(experiment_id)
    tracker.end_iteration(it, IterationStatus.FAILED, error_message="ValueError: x")
    with using_key("reopen-once-1"):
        tracker.reopen_iteration(it, expected_status=IterationStatus.FAILED, reason="retry")
    with using_key("reopen-once-1"):  # a retry of the same request: answered, not applied again
        tracker.reopen_iteration(it, expected_status=IterationStatus.FAILED, reason="retry")
    again = tracker.get_iteration(it)
    assert again.status is IterationStatus.RUNNING and again.notes.count("reopened") == 1
    assert "(was FAILED: ValueError: x): retry" in again.notes


def test_reopen_bad_input_names_the_field_and_writes_nothing(tracker, experiment_id):
    it, _ = tracker.create_iteration(experiment_id)
    tracker.end_iteration(it, IterationStatus.KILLED)
    with pytest.raises(Unprocessable) as err:
        tracker.reopen_iteration(it, expected_status=IterationStatus.KILLED, reason="")
    assert err.value.field == "reason"
    with pytest.raises(Unprocessable) as err:
        tracker.reopen_iteration(it, expected_status=9, reason="x")
    assert err.value.field == "expected_status"
    with pytest.raises(Unprocessable) as err:
        tracker.reopen_iteration(10**6, expected_status=IterationStatus.KILLED, reason="x")
    assert err.value.field == "iteration_id"
    assert tracker.get_iteration(it).status is IterationStatus.KILLED
