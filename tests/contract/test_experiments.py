"""Contract: experiments and their status."""

from __future__ import annotations

import pytest

from diary_integrations import ExperimentStatus, Unprocessable


def test_experiment_crud(tracker):
    project_id, _ = tracker.create_project("P")
    exp_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E", description="d")
    exp = tracker.get_experiment(exp_id)
    assert exp.status is ExperimentStatus.IN_PROGRESS and exp.end_date is None and exp.description == "d"
    for n in range(4):
        tracker.create_experiment(project_id, 1, f"E{n}")
    assert len(tracker.get_experiments(project_id)) == 5
    page = tracker.get_experiments(project_id, limit=2, offset=0)
    assert [e.name for e in page] == ["E", "E0"]
    assert tracker.get_experiments(project_id, limit=10, offset=99) == []
    assert tracker.get_experiment_by_name(project_id, "E2").name == "E2"
    assert tracker.delete_experiment(exp_id)
    assert tracker.get_experiment(exp_id) is None


def test_status_transitions_stamp_and_clear_end_date(tracker):
    project_id, _ = tracker.create_project("P")
    exp_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    tracker.update_experiment(exp_id, status=ExperimentStatus.FINISHED)
    exp = tracker.get_experiment(exp_id)
    assert exp.status is ExperimentStatus.FINISHED and exp.end_date is not None
    tracker.update_experiment(exp_id, status=ExperimentStatus.IN_PROGRESS)
    assert tracker.get_experiment(exp_id).end_date is None


def test_experiment_rules(tracker):
    project_id, _ = tracker.create_project("P")
    with pytest.raises(Unprocessable, match="project_id"):
        tracker.create_experiment(999_999, ExperimentStatus.IN_PROGRESS, "E")
    with pytest.raises(Unprocessable, match="status"):
        tracker.create_experiment(project_id, ExperimentStatus.STOPPED, "E")
    with pytest.raises(Unprocessable, match="status"):
        tracker.create_experiment(project_id, 9999, "E")
    exp_id, _ = tracker.create_experiment(project_id, 1, "E")
    with pytest.raises(Unprocessable, match="status"):
        tracker.update_experiment(exp_id, status=9999)
    with pytest.raises(Unprocessable, match="experiment_id"):
        tracker.update_experiment(999_999, name="x")
    assert [e.id for e in tracker.get_experiments(project_id)] == [exp_id]


def test_iterations_only_in_progress(tracker):
    project_id, _ = tracker.create_project("P")
    exp_id, _ = tracker.create_experiment(project_id, 1, "E")
    tracker.update_experiment(exp_id, status=ExperimentStatus.STOPPED)
    with pytest.raises(Unprocessable, match="IN_PROGRESS"):
        tracker.create_iteration(exp_id)
    ran = []
    with pytest.raises(Unprocessable), tracker.with_iteration(exp_id):
        ran.append(True)
    assert ran == [] and tracker.get_iterations(exp_id) == []
