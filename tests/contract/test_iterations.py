"""Contract: iterations and their parent/child trees."""

from __future__ import annotations

import pytest

from diary_integrations import (
    Conflict,
    ExperimentStatus,
    IterationEnded,
    IterationEnding,
    IterationStatus,
    NewIteration,
    Unprocessable,
)


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


def test_heartbeat_and_reap(tracker, tracker_kind, experiment_id):
    stale, _ = tracker.create_iteration(experiment_id)
    done, _ = tracker.create_iteration(experiment_id)
    tracker.end_iteration(done)
    assert tracker.reap(older_than=3600) == []
    if tracker_kind.startswith("server"):  # under the lease only when forced: it would kill live runs
        with pytest.raises(Unprocessable, match="older_than.*would kill live runs") as refused:
            tracker.reap(older_than=0)
        assert refused.value.field == "older_than"
    reaped = tracker.reap(older_than=0, force=True)
    assert reaped == [stale]
    it = tracker.get_iteration(stale)
    assert it.status is IterationStatus.KILLED and it.error_message.startswith("heartbeat lost")
    assert it.end_date == it.heartbeat_date
    with pytest.raises(IterationEnded, match=f"iteration {stale} has ended as KILLED: heartbeat lost") as late:
        tracker.heartbeat(stale)  # a late beat never reopens it
    assert late.value.ended == {stale: "KILLED"} and late.value.code == "ITERATION_ENDED"
    assert tracker.get_iteration(stale).status is IterationStatus.KILLED

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
    assert tracker.reap(older_than=0, force=True) == [stale]
    assert tracker.get_iteration(stale).end_date == later


def test_create_iteration_with_parameters(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)
    child, _ = tracker.create_iteration(
        experiment_id, parent_iteration_id=driver, parameters={"max_depth": 4, "criterion": "gini", "lr": 1e-3}
    )
    assert tracker.get_iteration(child).status is IterationStatus.RUNNING
    assert tracker.get_parameter_values([child])[child] == {"max_depth": "4", "criterion": "gini", "lr": "0.001"}
    empty, _ = tracker.create_iteration(experiment_id, parameters={})
    assert tracker.get_parameters(empty) == []


@pytest.mark.parametrize(
    ("parameters", "field"),
    [({"lr": object()}, "parameters['lr'] must be a string, number"), ({"": 1}, "key must"),
     (["lr", 1], "parameters must be a mapping"), ({"x": "v" * 9000}, "parameters['x']")],
)
def test_create_iteration_with_bad_parameters_writes_nothing(tracker, experiment_id, parameters, field):
    driver, _ = tracker.create_iteration(experiment_id)
    with pytest.raises(Unprocessable, match=field.replace("[", r"\[").replace("]", r"\]")):
        tracker.create_iteration(experiment_id, parent_iteration_id=driver, parameters=parameters)
    assert tracker.get_child_iterations(driver) == []


def test_end_iteration_with_final_data(tracker, experiment_id):
    iteration_id, _ = tracker.create_iteration(experiment_id, parameters={"max_depth": 4})
    tracker.end_iteration(
        iteration_id, IterationStatus.FAILED, error_message="ValueError: bad", traceback="Traceback ...",
        parameters={"max_depth": 4, "fold_count": 5},  # a key set to the same value again is skipped
        points=[("test_score", 0.9, 0), ("test_score", float("nan"), 1), ("fit_time", 0.01, 0)],
        notes="candidate 3: folds 1 of 5 failed",
    )
    it = tracker.get_iteration(iteration_id)
    assert it.status is IterationStatus.FAILED and it.error_message == "ValueError: bad"
    assert it.traceback == "Traceback ..." and it.notes == "candidate 3: folds 1 of 5 failed"
    assert it.end_date is not None
    assert tracker.get_parameter_values([iteration_id])[iteration_id] == {"max_depth": "4", "fold_count": "5"}
    scores = tracker.get_metrics(iteration_id, key="test_score")
    assert [m.step for m in scores] == [0, 1] and scores[0].value == 0.9 and scores[1].value != scores[1].value
    plain, _ = tracker.create_iteration(experiment_id, notes="kept")
    tracker.end_iteration(plain, points=[], parameters={})
    assert tracker.get_iteration(plain).notes == "kept" and tracker.get_metrics(plain) == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"points": [("ok", 1.0, 0), ("loss", "high", 0)]}, "points[1].value"),
        ({"points": [("ok", 1.0, 0), ("loss", 0.1)]}, "points[1]"),
        ({"points": [("ok", 1.0, 0), ("loss", 0.1, -1)]}, "points[1].step"),
        ({"parameters": {"max_depth": 5}}, "already '4'"),  # a conflicting parameter
        ({"parameters": {"x": {1, 2}}}, "parameters['x']"),  # a set: no JSON for it
        ({"notes": 7}, "notes"),
    ],
)
def test_end_iteration_with_bad_final_data_writes_nothing(tracker, experiment_id, extra, field):
    iteration_id, _ = tracker.create_iteration(experiment_id, parameters={"max_depth": 4})
    with pytest.raises((Unprocessable, Conflict), match=field.replace("[", r"\[").replace("]", r"\]")):
        tracker.end_iteration(iteration_id, IterationStatus.SUCCEEDED, **{"points": [("ok", 1.0, 0)], **extra})
    it = tracker.get_iteration(iteration_id)
    assert it.status is IterationStatus.RUNNING and it.end_date is None
    assert tracker.get_metrics(iteration_id) == []
    assert [p.key for p in tracker.get_parameters(iteration_id)] == ["max_depth"]


def test_ended_iteration_takes_no_final_data(tracker, experiment_id):
    iteration_id, _ = tracker.create_iteration(experiment_id)
    tracker.end_iteration(iteration_id)
    with pytest.raises(Unprocessable, match="already ended as SUCCEEDED"):
        tracker.end_iteration(iteration_id, IterationStatus.FAILED, points=[("loss", 0.1, 0)], parameters={"a": 1})
    assert tracker.get_metrics(iteration_id) == [] and tracker.get_parameters(iteration_id) == []
    assert tracker.get_iteration(iteration_id).status is IterationStatus.SUCCEEDED


def test_create_iterations_in_one_batch(tracker, experiment_id):
    driver, _ = tracker.create_iteration(experiment_id)
    ids = tracker.create_iterations(
        experiment_id,
        [NewIteration("candidate 0", {"max_depth": 2}), NewIteration("candidate 1", {"max_depth": None}),
         NewIteration()],
        parent_iteration_id=driver,
    )
    assert len(ids) == 3 and ids == sorted(ids)
    children = tracker.get_child_iterations(driver)
    assert [c.id for c in children] == ids and [c.notes for c in children] == ["candidate 0", "candidate 1", ""]
    assert all(c.status is IterationStatus.RUNNING for c in children)
    assert tracker.get_parameter_values(ids) == {ids[0]: {"max_depth": "2"}, ids[1]: {"max_depth": "None"}, ids[2]: {}}
    assert tracker.get_environment(ids[0]) is None
    assert tracker.create_iterations(experiment_id, [], parent_iteration_id=driver) == []


@pytest.mark.parametrize(
    ("iterations", "parent", "field"),
    [
        ([NewIteration("a"), NewIteration("b", {"lr": object()})], None, "iterations[1].parameters['lr']"),
        ([NewIteration("a"), NewIteration(7)], None, "iterations[1].notes"),
        ([NewIteration("a"), {"notes": "b"}], None, "iterations[1] must be a NewIteration"),
        (NewIteration("a"), None, "iterations must be a list"),
        ([NewIteration("a")], 999_999, "parent_iteration_id"),
    ],
)
def test_create_iterations_bad_input_writes_nothing(tracker, experiment_id, iterations, parent, field):
    before = tracker.get_iterations(experiment_id)
    with pytest.raises(Unprocessable, match=field.replace("[", r"\[").replace("]", r"\]")):
        tracker.create_iterations(experiment_id, iterations, parent_iteration_id=parent)
    assert tracker.get_iterations(experiment_id) == before


def test_create_iterations_refuses_a_parent_in_another_experiment(tracker, experiment_id):
    project = tracker.get_experiment(experiment_id).project_id
    other, _ = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "other")
    foreign, _ = tracker.create_iteration(other)
    with pytest.raises(Unprocessable, match="parent_iteration_id.*same experiment"):
        tracker.create_iterations(experiment_id, [NewIteration("x")], parent_iteration_id=foreign)
    assert tracker.get_child_iterations(foreign) == [] and tracker.get_iterations(experiment_id) == []


def test_end_iterations_in_one_batch(tracker, experiment_id):
    ids = tracker.create_iterations(experiment_id, [NewIteration(f"c{n}", {"n": n}) for n in range(3)])
    count = tracker.end_iterations([
        IterationEnding(ids[0], IterationStatus.SUCCEEDED, points=[("score", 0.9, 0), ("score", 0.8, 1)]),
        IterationEnding(ids[1], IterationStatus.FAILED, "ValueError: bad", "Traceback ...",
                        parameters={"n": 1, "extra": "x"}, notes="fold 2 of 5 failed"),
        IterationEnding(ids[2], IterationStatus.KILLED, points=[("score", float("inf"), 0)]),
    ])
    assert count == 3
    first, second, third = (tracker.get_iteration(i) for i in ids)
    assert first.status is IterationStatus.SUCCEEDED and first.end_date is not None and first.notes == "c0"
    assert [m.value for m in tracker.get_metrics(ids[0], key="score")] == [0.9, 0.8]
    assert second.status is IterationStatus.FAILED and second.error_message == "ValueError: bad"
    assert second.traceback == "Traceback ..." and second.notes == "fold 2 of 5 failed"
    assert tracker.get_parameter_values([ids[1]])[ids[1]] == {"n": "1", "extra": "x"}
    assert third.status is IterationStatus.KILLED and tracker.get_metrics(ids[2])[0].value == float("inf")
    assert tracker.end_iterations([]) == 0


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (lambda ids: IterationEnding(ids[2], points=[("loss", "high", 0)]), "endings[1].points[0].value"),
        (lambda ids: IterationEnding(ids[2], IterationStatus.RUNNING), "endings[1].status"),
        (lambda ids: IterationEnding(999_999), "endings[1].iteration_id: iteration 999999 does not exist"),
        (lambda ids: IterationEnding(ids[0]), "endings[1].iteration_id: iteration .* ended twice"),
        (lambda ids: IterationEnding(ids[1]), "endings[1].iteration_id: iteration .* already ended as SUCCEEDED"),
        (lambda ids: IterationEnding(ids[2], parameters={"n": 99}), "already '2'"),
        (lambda ids: ("not", "an ending"), "endings[1] must be an? IterationEnding"),
    ],
)
def test_end_iterations_bad_input_ends_nothing(tracker, experiment_id, bad, field):
    ids = tracker.create_iterations(experiment_id, [NewIteration(parameters={"n": n}) for n in range(3)])
    tracker.end_iteration(ids[1])
    with pytest.raises((Unprocessable, Conflict), match=field.replace("[", r"\[").replace("]", r"\]")):
        tracker.end_iterations([
            IterationEnding(ids[0], points=[("ok", 1.0, 0)], parameters={"extra": 1}, notes="done"), bad(ids)
        ])
    assert tracker.get_iteration(ids[0]).status is IterationStatus.RUNNING
    assert tracker.get_iteration(ids[0]).notes == "" and [p.key for p in tracker.get_parameters(ids[0])] == ["n"]
    assert tracker.get_iteration(ids[2]).status is IterationStatus.RUNNING
    assert tracker.get_metrics(ids[0]) == [] and tracker.get_metrics(ids[2]) == []
