"""Contract: iterations and their parent/child trees."""

from __future__ import annotations

import pytest

from diary_integrations import ExperimentStatus, IterationStatus, Unprocessable


def test_new_iteration_is_running_top_level(tracker, experiment_id):
    iteration_id, _ = tracker.create_iteration(experiment_id, notes="first")
    it = tracker.get_iteration(iteration_id)
    assert it.status is IterationStatus.RUNNING
    assert it.parent_iteration_id is None and it.end_date is None and it.error_message == ""
    assert it.notes == "first" and not it.ended and it.duration is None
    assert tracker.get_iteration(999_999) is None


def test_children_same_experiment_ordered_by_id(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)
    other_top, _ = tracker.create_iteration(experiment_id)
    kids = [tracker.create_iteration(experiment_id, parent_iteration_id=driver).id for _ in range(3)]
    children = tracker.get_child_iterations(driver)
    assert [c.id for c in children] == sorted(kids)
    assert all(c.parent_iteration_id == driver for c in children)
    assert tracker.get_child_iterations(other_top) == []
    assert [c.id for c in tracker.get_child_iterations(driver, limit=2, offset=1)] == sorted(kids)[1:]


def test_tree_depth_is_unlimited(tracker, experiment_id):
    parent, _ = tracker.create_iteration(experiment_id)
    chain = [parent]
    for _ in range(12):
        parent, _ = tracker.create_iteration(experiment_id, parent_iteration_id=parent)
        chain.append(parent)
    for upper, lower in zip(chain, chain[1:], strict=False):
        assert [c.id for c in tracker.get_child_iterations(upper)] == [lower]


def test_cross_experiment_parent_rejected(tracker, experiment_id):
    project_id = tracker.get_experiment(experiment_id).project_id
    other_exp, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "other")
    foreign_parent, _ = tracker.create_iteration(other_exp)
    with pytest.raises(Unprocessable, match="same experiment") as err:
        tracker.create_iteration(experiment_id, parent_iteration_id=foreign_parent)
    assert err.value.field == "parent_iteration_id"
    with pytest.raises(Unprocessable, match="parent_iteration_id"):
        tracker.create_iteration(experiment_id, parent_iteration_id=999_999)
    assert tracker.get_iterations(experiment_id) == []


def test_deleting_parent_keeps_children_as_top_level(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)
    a, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)
    b, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)
    unrelated, _ = tracker.create_iteration(experiment_id)
    grandchild, _ = tracker.create_iteration(experiment_id, parent_iteration_id=a)
    assert tracker.delete_iteration(driver)
    assert tracker.get_iteration(driver) is None
    assert tracker.get_iteration(a).parent_iteration_id is None
    assert tracker.get_iteration(b).parent_iteration_id is None
    assert tracker.get_iteration(grandchild).parent_iteration_id == a
    assert {i.id for i in tracker.get_iterations(experiment_id)} == {a, b, unrelated, grandchild}
    assert tracker.delete_iteration(driver) is False


def test_get_iterations_filters_and_pages(tracker, experiment_id):
    ids = [tracker.create_iteration(experiment_id).id for _ in range(5)]
    tracker.end_iteration(ids[1], IterationStatus.FAILED, error_message="boom")
    assert [i.id for i in tracker.get_iterations(experiment_id)] == ids
    assert [i.id for i in tracker.get_iterations(experiment_id, limit=2, offset=3)] == ids[3:]
    assert [i.id for i in tracker.get_iterations(experiment_id, status=IterationStatus.FAILED)] == [ids[1]]


def test_update_iteration(tracker, experiment_id):
    iteration_id, _ = tracker.create_iteration(experiment_id)
    tracker.update_iteration(iteration_id, notes="tuned")
    assert tracker.get_iteration(iteration_id).notes == "tuned"
    tracker.update_iteration(iteration_id, status=IterationStatus.FAILED, error_message="OutOfMemoryError")
    it = tracker.get_iteration(iteration_id)
    assert it.status is IterationStatus.FAILED and it.error_message == "OutOfMemoryError"
    assert it.end_date is not None and it.duration >= 0
    with pytest.raises(Unprocessable, match="iteration_id"):
        tracker.update_iteration(999_999, notes="x")


def test_end_iteration_is_final(tracker, experiment_id):
    iteration_id, _ = tracker.create_iteration(experiment_id)
    tracker.end_iteration(iteration_id, IterationStatus.KILLED, error_message="KeyboardInterrupt")
    with pytest.raises(Unprocessable, match="already ended as KILLED"):
        tracker.end_iteration(iteration_id, IterationStatus.SUCCEEDED)
    assert tracker.get_iteration(iteration_id).status is IterationStatus.KILLED
    with pytest.raises(Unprocessable, match="status"):
        tracker.end_iteration(tracker.create_iteration(experiment_id).id, IterationStatus.RUNNING)


def test_ended_iteration_is_locked(tracker, experiment_id):
    iteration_id, _ = tracker.create_iteration(experiment_id)
    tracker.create_metric(iteration_id, "loss", 0.5)
    tracker.end_iteration(iteration_id)
    with pytest.raises(Unprocessable, match="has ended"):
        tracker.create_metric(iteration_id, "loss", 0.4)
    with pytest.raises(Unprocessable, match="has ended"):
        tracker.log_metrics(iteration_id, {"loss": 0.4, "acc": 0.9})
    with pytest.raises(Unprocessable, match="has ended"):
        tracker.create_parameter(iteration_id, "lr", 0.1)
    with pytest.raises(Unprocessable, match="has ended"):
        tracker.log_metric_points(iteration_id, [("loss", 0.1, 5)])
    assert [m.value for m in tracker.get_metrics(iteration_id)] == [0.5]
    assert tracker.get_parameters(iteration_id) == []
    tracker.update_iteration(iteration_id, notes="notes stay editable")
    assert tracker.get_iteration(iteration_id).notes == "notes stay editable"


def test_top_level_iterations_snapshot_environment(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)
    child, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)
    forced, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver, snapshot=True)
    skipped, _ = tracker.create_iteration(experiment_id, snapshot=False)
    env = tracker.get_environment(driver)
    assert env is not None and env.python_version.count(".") == 2
    assert "sqlalchemy==" in env.packages.lower() and env.entrypoint
    assert tracker.get_environment(child) is None
    assert tracker.get_environment(forced) is not None
    assert tracker.get_environment(skipped) is None


def test_heartbeat_and_reap(tracker, experiment_id):
    stale, _ = tracker.create_iteration(experiment_id)
    done, _ = tracker.create_iteration(experiment_id)
    tracker.end_iteration(done)
    assert tracker.reap(older_than=3600) == []
    reaped = tracker.reap(older_than=0)
    assert reaped == [stale]
    it = tracker.get_iteration(stale)
    assert it.status is IterationStatus.KILLED and it.error_message.startswith("heartbeat lost")
    assert it.end_date == it.heartbeat_date

    assert tracker.get_iteration(done).status is IterationStatus.SUCCEEDED
    alive, _ = tracker.create_iteration(experiment_id)
    before = tracker.get_iteration(alive).heartbeat_date
    tracker.heartbeat(alive)
    assert tracker.get_iteration(alive).heartbeat_date >= before
    with pytest.raises(Unprocessable, match="older_than"):
        tracker.reap(older_than=-1)


def test_reap_ends_at_the_last_sign_of_life(tracker, experiment_id):
    from datetime import timedelta

    stale, _ = tracker.create_iteration(experiment_id)
    created = tracker.get_iteration(stale).created_date
    later = created + timedelta(seconds=7)
    tracker.create_metric(stale, "loss", 0.5, step=0, recorded_at=later)  # within the heartbeat's refresh gap
    assert tracker.reap(older_than=0) == [stale]
    assert tracker.get_iteration(stale).end_date == later
