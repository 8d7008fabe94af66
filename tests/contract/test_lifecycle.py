"""Contract: with_iteration finalises truthfully, on every tracker kind."""

from __future__ import annotations

import pytest

from diary_integrations import IterationStatus


def test_clean_exit_succeeds(tracker, experiment_id):
    with tracker.with_iteration(experiment_id, notes="n") as it:
        assert tracker.get_iteration(it.id).status is IterationStatus.RUNNING
        assert tracker.get_iteration(it.id).end_date is None
        tracker.create_metric(it.id, "accuracy", 0.972)
    done = tracker.get_iteration(it.id)
    assert done.status is IterationStatus.SUCCEEDED and done.end_date is not None
    assert done.error_message == "" and done.notes == "n"


def test_exception_fails_with_text_and_traceback_and_reraises(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)
    with pytest.raises(MemoryError), tracker.with_iteration(experiment_id, parent_iteration_id=driver) as it:
        raise MemoryError("max_depth=12 blew the heap")
    failed = tracker.get_iteration(it.id)
    assert failed.status is IterationStatus.FAILED
    assert failed.error_message == "MemoryError: max_depth=12 blew the heap"
    assert "Traceback (most recent call last)" in failed.traceback and "test_lifecycle.py" in failed.traceback
    assert failed.parent_iteration_id == driver and failed.end_date is not None


def test_multiline_message_keeps_first_line(tracker, experiment_id):
    with pytest.raises(ValueError), tracker.with_iteration(experiment_id) as it:
        raise ValueError("All the 2 fits failed.\nIt is very likely that your model is misconfigured.")
    failed = tracker.get_iteration(it.id)
    assert failed.error_message == "ValueError: All the 2 fits failed."
    assert "very likely" in failed.traceback


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), SystemExit(3)])
def test_interrupts_are_killed(tracker, experiment_id, interrupt):
    with pytest.raises(type(interrupt)), tracker.with_iteration(experiment_id) as it:
        raise interrupt
    assert tracker.get_iteration(it.id).status is IterationStatus.KILLED


def test_call_form_returns_body_value(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)

    def trial(it):
        tracker.create_parameter(it.id, "max_depth", 6)
        return it.id

    child_id = tracker.with_iteration(experiment_id, parent_iteration_id=driver)(trial)
    child = tracker.get_iteration(child_id)
    assert child.status is IterationStatus.SUCCEEDED and child.parent_iteration_id == driver
    assert tracker.get_environment(child_id) is None  # children skip the snapshot by default


def test_body_may_end_the_iteration_itself(tracker, experiment_id):
    with tracker.with_iteration(experiment_id) as it:
        tracker.end_iteration(it.id, IterationStatus.KILLED, error_message="preempted")
    assert tracker.get_iteration(it.id).status is IterationStatus.KILLED


def test_siblings_carry_on_after_a_crash(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)
    for depth in (2, 12, 4):
        try:
            with tracker.with_iteration(experiment_id, parent_iteration_id=driver) as it:
                if depth > 10:
                    raise MemoryError(f"max_depth={depth} blew the heap")
                tracker.create_metric(it.id, "accuracy", 0.9 + depth / 100)
        except MemoryError:
            pass
    statuses = [c.status for c in tracker.get_child_iterations(driver)]
    assert statuses == [IterationStatus.SUCCEEDED, IterationStatus.FAILED, IterationStatus.SUCCEEDED]
