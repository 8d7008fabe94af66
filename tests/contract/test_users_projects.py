"""Contract: users, per-project permissions, projects. Runs against every tracker kind."""

from __future__ import annotations

import pytest

from diary_integrations import Conflict, Result, Unprocessable


def test_default_admin_user_is_seeded(tracker):
    user = tracker.get_user("default")
    assert user is not None and user.is_admin and user.username == "default"
    assert tracker.get_user(user.id) == user
    assert not hasattr(user, "password_hash")


def test_user_crud_and_rules(tracker):
    user_id, result = tracker.create_user("ada", "s3cret", first_name="Ada", last_name="Lovelace")
    assert result is Result.CREATED
    assert tracker.get_user("ada").first_name == "Ada"
    with pytest.raises(Conflict):
        tracker.create_user("ada", "other")
    assert tracker.update_user(user_id, last_name="King") is Result.UPDATED
    assert tracker.get_user(user_id).last_name == "King"
    assert [u.username for u in tracker.get_users()] == ["default", "ada"]
    assert [u.username for u in tracker.get_users(limit=1, offset=1)] == ["ada"]
    assert tracker.delete_user(user_id) is True
    assert tracker.get_user(user_id) is None
    assert tracker.delete_user(user_id) is False


def test_default_user_cannot_be_deleted_or_demoted(tracker):
    default = tracker.get_user("default")
    with pytest.raises(Unprocessable, match="default"):
        tracker.delete_user(default.id)
    with pytest.raises(Unprocessable, match="is_admin"):
        tracker.update_user(default.id, is_admin=False)
    assert tracker.get_user("default").is_admin


def test_empty_username_or_password_rejected(tracker):
    with pytest.raises(Unprocessable, match="username"):
        tracker.create_user("", "pw")
    with pytest.raises(Unprocessable, match="password"):
        tracker.create_user("bob", "")
    assert tracker.get_user("bob") is None


def test_creator_gets_full_permissions_and_others_none(tracker):
    ada, _ = tracker.create_user("ada", "pw")
    bob, _ = tracker.create_user("bob", "pw")
    project_id, _ = tracker.create_project("Fraud detection", user_id=ada)
    own = tracker.get_user_permission(ada, project_id)
    assert (own.create_permission, own.read_permission, own.update_permission, own.delete_permission) == (
        True, True, True, True,
    )
    assert tracker.get_user_permission(bob, project_id) is None
    assert tracker.get_projects(user_id=bob) == []
    assert [p.id for p in tracker.get_projects(user_id=ada)] == [project_id]
    default = tracker.get_user("default")
    assert [p.id for p in tracker.get_projects(user_id=default.id)] == [project_id]  # admins see all


def test_permission_crud(tracker):
    bob, _ = tracker.create_user("bob", "pw")
    project_id, _ = tracker.create_project("P")
    perm_id, _ = tracker.create_user_permission(bob, project_id)
    perm = tracker.get_user_permission(bob, project_id)
    assert perm.id == perm_id and perm.read_permission and not perm.create_permission
    with pytest.raises(Conflict):
        tracker.create_user_permission(bob, project_id)
    tracker.update_user_permission(perm_id, create=True)
    assert tracker.get_user_permission(bob, project_id).create_permission
    assert [p.id for p in tracker.get_user_permissions(user_id=bob)] == [perm_id]
    assert len(tracker.get_user_permissions(project_id=project_id)) == 2  # the creator's and bob's
    assert tracker.delete_user_permission(perm_id)
    assert tracker.get_user_permission(bob, project_id) is None
    with pytest.raises(Unprocessable, match="project_id"):
        tracker.create_user_permission(bob, 999_999)


def test_project_crud(tracker):
    project_id, result = tracker.create_project("Fraud detection", description="cards")
    assert result is Result.CREATED and isinstance(project_id, int)
    created = tracker.create_project("Churn")
    assert created.id == created[0] and created.result is Result.CREATED
    project = tracker.get_project(project_id)
    assert (project.name, project.description) == ("Fraud detection", "cards")
    assert project.created_date.tzinfo is not None
    tracker.update_project(project_id, name="Fraud")
    assert tracker.get_project(project_id).name == "Fraud"
    assert [p.name for p in tracker.get_projects()] == ["Fraud", "Churn"]
    assert [p.name for p in tracker.get_projects(limit=1, offset=1)] == ["Churn"]
    assert tracker.get_project_by_name("Churn").id == created.id
    assert tracker.delete_project(project_id)
    assert tracker.get_project(project_id) is None
    assert tracker.delete_project(project_id) is False
    assert tracker.get_project(999_999) is None


def test_create_project_for_missing_user(tracker):
    with pytest.raises(Unprocessable, match="user_id"):
        tracker.create_project("P", user_id=999_999)
    assert tracker.get_projects() == []


def test_delete_project_cascades(tracker):
    project_id, _ = tracker.create_project("P")
    exp_id, _ = tracker.create_experiment(project_id, 1, "E")
    it_id, _ = tracker.create_iteration(exp_id)
    tracker.create_metric(it_id, "loss", 1.0)
    res_id, _ = tracker.create_resource(exp_id, "weights.bin", b"12345")
    assert tracker.delete_project(project_id)
    assert tracker.get_experiment(exp_id) is None
    assert tracker.get_iteration(it_id) is None
    assert tracker.get_resource(res_id) is None
