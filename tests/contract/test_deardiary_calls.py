"""Contract (issue 27): the module-level functions called as DearDiary's guide calls them — with a tracker
first (`create_parameter(client, iteration_id, ...)`), in DearDiary's positional orders
(`create_project(user_id, name)`), with errors that name the public function — on every tracker kind,
and the guide itself, transcribed line for line (examples/deardiary_guide.py)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import diary_integrations as diary
from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker
from diary_integrations.default_api import METHODS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_database(tmp_path, monkeypatch):
    """A default tracker of its own, so a call that wrongly went to it would be seen there."""
    path = tmp_path / "default.db"
    diary.initialize_database(path)
    yield path
    diary.set_tracker(None)


def test_a_tracker_first_is_acted_on_instead_of_the_default(tracker, default_database):
    user = diary.get_user(tracker, "default")
    project_id, _ = diary.create_project(tracker, user.id, "Fraud detection")
    experiment_id, _ = diary.create_experiment(tracker, project_id, ExperimentStatus.IN_PROGRESS, "DDP run")
    with (
        diary.with_iteration(tracker, experiment_id) as driver,
        diary.with_iteration(tracker, experiment_id, parent_iteration_id=driver.id) as it,
    ):
        diary.create_parameter(tracker, it.id, "worker_rank", 3)
        diary.create_metric(tracker, it.id, "loss", 0.5, step=1)
    assert [p.value for p in tracker.get_parameters(it.id)] == ["3"]
    assert [(m.key, m.value, m.step) for m in diary.get_metrics(tracker, it.id)] == [("loss", 0.5, 1)]
    assert [c.id for c in diary.get_child_iterations(tracker, driver.id)] == [it.id]
    assert tracker.get_iteration(driver.id).status is IterationStatus.SUCCEEDED
    assert tracker.get_project(project_id).name == "Fraud detection"
    assert LocalTracker(default_database).get_projects() == []  # nothing went to the default tracker


def test_without_a_tracker_the_default_one_is_used(default_database):
    project_id, _ = diary.create_project("Fraud detection")
    assert LocalTracker(default_database).get_project(project_id).name == "Fraud detection"


def test_deardiary_positional_orders(tracker, default_database):
    ada, _ = tracker.create_user("Ada", "Lovelace", "ada", "ada-password")
    project_id, _ = diary.create_project(tracker, ada, "Owned by Ada")
    assert diary.get_user_permission(tracker, ada, project_id).delete_permission  # the owner got every permission
    assert diary.update_project(tracker, project_id, "Renamed", "about fraud") is diary.Result.UPDATED
    project = tracker.get_project(project_id)
    assert (project.name, project.description) == ("Renamed", "about fraud")
    assert [p.id for p in diary.get_projects(tracker, tracker.get_user(ada))] == [project_id]

    experiment_id, _ = diary.create_experiment(tracker, project_id, ExperimentStatus.IN_PROGRESS, "e")
    diary.update_experiment(tracker, experiment_id, ExperimentStatus.IN_PROGRESS, "e2", "described")
    assert tracker.get_experiment(experiment_id).description == "described"
    iteration_id, _ = tracker.create_iteration(experiment_id)
    parameter_id, _ = tracker.create_parameter(iteration_id, "depth", 2)
    diary.update_parameter(tracker, parameter_id, "max_depth", 6)
    assert (tracker.get_parameter(parameter_id).key, tracker.get_parameter(parameter_id).value) == ("max_depth", "6")
    diary.update_iteration(tracker, iteration_id, "a note")
    assert tracker.get_iteration(iteration_id).notes == "a note"
    diary.update_iteration(tracker, iteration_id, IterationStatus.KILLED)  # DearDiary's status overload
    assert tracker.get_iteration(iteration_id).status is IterationStatus.KILLED
    bob, _ = tracker.create_user("Bob", "B", "bob", "bob-password")
    permission_id, _ = diary.create_userpermission(tracker, bob, project_id, False, True, True, False)
    permission = tracker.get_user_permission(bob, project_id)
    assert (permission.id, permission.create_permission, permission.read_permission,
            permission.update_permission, permission.delete_permission) == (
        permission_id, False, True, True, False)
    # Our own order keeps working beside DearDiary's.
    other, _ = diary.create_project(tracker, "Ours", description="x", user_id=ada)
    assert tracker.get_project(other).description == "x"


def test_a_bad_call_names_the_public_function_and_writes_nothing(default_database):
    with pytest.raises(TypeError, match=r"^create_project\(\) got an unexpected keyword argument 'nme'$"):
        diary.create_project("x", nme="y")
    with pytest.raises(TypeError, match=r"^create_project\(\) missing a required argument: 'name'$"):
        diary.create_project()
    with pytest.raises(TypeError, match=r"^create_project\(\) got multiple values for argument 'user_id'$"):
        diary.create_project(1, "x", user_id=1)
    with pytest.raises(TypeError, match=r"^update_project\(\) takes at most 3 positional arguments"):
        diary.update_project(1, "a", "b", "c")
    with pytest.raises(TypeError, match=r"^get_iteration\(\) too many positional arguments$"):
        diary.get_iteration(1, 2)
    assert LocalTracker(default_database).get_projects() == []


def test_every_function_documents_itself():
    for name in METHODS:
        function = getattr(diary, name)
        assert function.__name__ == name and function.__module__ == "diary_integrations"
        doc = inspect.getdoc(function)
        assert doc and not doc.startswith("Called as"), f"{name} has no description of its own"
        assert f"{name}(tracker, ...)" in doc
        assert "self" not in inspect.signature(function).parameters
    assert "create_project(user_id, name)" in diary.create_project.__doc__


def test_star_import_gives_the_deardiary_surface():
    namespace: dict[str, object] = {}
    exec("from diary_integrations import *", namespace)
    assert {"create_project", "with_iteration", "get_child_iterations", "connect", "IterationStatus"} <= set(namespace)


@pytest.mark.slow
def test_the_deardiary_guide_runs_as_written(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "deardiary_guide.py"), str(tmp_path / "guide.db")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.rstrip().endswith("every value the guide shows was reproduced")
    guide = LocalTracker(tmp_path / "guide.db")
    (project,) = guide.get_projects()
    assert project.name == "Fraud detection"
    (experiment,) = guide.get_experiments(project.id)
    iterations = guide.get_iterations(experiment.id)
    assert len(iterations) == 6 and all(it.parent_iteration_id is None for it in iterations)  # driver deleted
    # The four trials made with create_iteration were never ended: their process has exited, so they read
    # KILLED (DearDiary would leave them RUNNING); the with_iteration trials kept their truthful ends.
    statuses = sorted(it.status.name for it in iterations)
    assert statuses == ["FAILED", "KILLED", "KILLED", "KILLED", "KILLED", "SUCCEEDED"]


def test_get_or_create_finds_what_a_first_run_made(tracker):
    project = tracker.get_or_create_project("Fraud detection", description="cards")
    assert tracker.get_or_create_project("Fraud detection") == project  # a second run finds it
    experiment = tracker.get_or_create_experiment(project.id, "Sweep")
    assert experiment.status is ExperimentStatus.IN_PROGRESS and experiment.project_id == project.id
    assert tracker.get_or_create_experiment(project.id, "Sweep") == experiment
    assert [p.name for p in tracker.get_projects()] == ["Fraud detection"]
    assert [e.name for e in tracker.get_experiments(project.id)] == ["Sweep"]
    with pytest.raises(diary.Unprocessable) as refused:
        tracker.get_or_create_experiment(project.id, "")
    assert refused.value.field == "name"
    assert [e.name for e in tracker.get_experiments(project.id)] == ["Sweep"]
