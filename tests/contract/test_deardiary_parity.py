"""Contract: the last of DearDiary's surface (issue 15): `status_id` on records, create_user in DearDiary's
positional order, get_user_by_username, create_userpermission, and the environment restore."""

from __future__ import annotations

import json

import pytest

from diary_integrations import ExperimentStatus, IterationStatus, Unprocessable
from diary_integrations.restore import restore_environment


def test_records_carry_status_id(tracker, experiment_id):
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    tracker.end_iteration(iteration_id, IterationStatus.FAILED)
    assert tracker.get_iteration(iteration_id).status_id == 3
    assert tracker.get_experiment(experiment_id).status_id == int(ExperimentStatus.IN_PROGRESS) == 1


def test_create_user_in_deardiary_order_and_by_keyword(tracker):
    ada, _ = tracker.create_user("Ada", "Lovelace", "ada", "ada-password")
    user = tracker.get_user_by_username("ada")
    assert (user.id, user.first_name, user.last_name) == (ada, "Ada", "Lovelace")
    assert tracker.authenticate("ada", "ada-password").id == ada
    bob, _ = tracker.create_user("bob", "bob-password", first_name="Bob")  # the earlier (username, password)
    assert tracker.get_user_by_username("bob").first_name == "Bob"
    cy, _ = tracker.create_user(username="cy", password="cy-password", last_name="Young")
    assert tracker.get_user(cy).last_name == "Young"
    assert tracker.get_user_by_username("nobody") is None
    with pytest.raises(TypeError):
        tracker.create_user("only-three", "args", "given")
    with pytest.raises(Unprocessable, match="username"):
        tracker.get_user_by_username("")
    assert {u.username for u in tracker.get_users()} == {"default", "ada", "bob", "cy"}


def test_create_userpermission_is_create_user_permission(tracker):
    user_id, _ = tracker.create_user("Ada", "Lovelace", "ada", "ada-password")
    project_id, _ = tracker.create_project("Shared")
    tracker.create_userpermission(user_id, project_id, create=True)
    permission = tracker.get_user_permission(user_id, project_id)
    assert permission.create_permission and permission.read_permission and not permission.delete_permission


def test_restore_environment_writes_what_the_snapshot_recorded(tracker, experiment_id, tmp_path):
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=True)
    env = tracker.get_environment(iteration_id)
    restored = restore_environment(iteration_id, tmp_path / "restore", tracker=tracker)
    pins = [line for line in restored.requirements.read_text().splitlines() if not line.startswith("#")]
    assert pins == [line for line in env.packages.splitlines() if line.strip()]
    assert any(line.startswith("pytest==") for line in pins)
    summary = json.loads((tmp_path / "restore" / "environment.json").read_text())
    assert summary["git_sha"] == env.git_sha == restored.git_sha and summary["entrypoint"] == env.entrypoint
    assert restored.python_version == env.python_version
    child, _ = tracker.create_iteration(experiment_id, parent_iteration_id=iteration_id)
    with pytest.raises(Unprocessable, match="no environment snapshot"):
        restore_environment(child, tmp_path / "child", tracker=tracker)
    with pytest.raises(Unprocessable, match="does not exist"):
        restore_environment(999_999, tmp_path / "missing", tracker=tracker)
