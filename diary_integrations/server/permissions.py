"""Per-project permissions: find the project an entity belongs to, then check the user's flag on it.

Administrators bypass every check (and pay for no lookups). For anyone else, an entity whose project
cannot be found, or whose project the caller may not read, is the same 404: a caller learns nothing
about what it may not read, not even that it exists or which project it belongs to. A caller who may
read the project but lacks the flag for a write gets a 403.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from ..tracker.records import User
from .errors import ApiError


class Action(str, Enum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"


def project_of(tracker: Any, kind: str, entity_id: int) -> int | None:
    """The project id of a project, experiment, iteration, parameter, metric, resource, model or model
    version; None if missing."""
    if kind == "project":
        return entity_id if tracker.get_project(entity_id) is not None else None
    if kind == "experiment":
        experiment = tracker.get_experiment(entity_id)
        return None if experiment is None else experiment.project_id
    if kind == "iteration":
        iteration = tracker.get_iteration(entity_id)
        return None if iteration is None else project_of(tracker, "experiment", iteration.experiment_id)
    if kind in ("parameter", "metric"):
        record = tracker.get_parameter(entity_id) if kind == "parameter" else tracker.get_metric(entity_id)
        return None if record is None else project_of(tracker, "iteration", record.iteration_id)
    if kind == "resource":
        resource = tracker.get_resource(entity_id)
        return None if resource is None else project_of(tracker, "experiment", resource.experiment_id)
    if kind == "model":
        model = tracker.get_model(entity_id)
        return None if model is None else model.project_id
    if kind == "modelversion":
        version = tracker.get_model_version(entity_id)
        return None if version is None else project_of(tracker, "model", version.model_id)
    raise ValueError(f"unknown entity kind {kind!r}")


def not_found(kind: str, entity_id: int) -> ApiError:
    """The one answer for a missing entity and for one the caller may not read."""
    return ApiError(404, "NOT_FOUND", f"{kind} {entity_id} not found")


def check_project(
    tracker: Any, user: User, project_id: int, action: Action, *, seen_as: tuple[str, int] | None = None
) -> None:
    """Raise unless `user` may do `action` on the project: a 404 (naming `seen_as`, the entity asked for,
    else the project) without read permission, a 403 with read permission but not this one."""
    if user.is_admin:
        return
    permission = tracker.get_user_permission(user.id, project_id)
    if permission is None or not permission.read_permission:
        raise not_found(*(seen_as or ("project", project_id)))
    if not getattr(permission, f"{action.value}_permission"):
        raise ApiError(
            403, "PROJECT_PERMISSION_REQUIRED", f"{action.value} permission on project {project_id} is required"
        )


def authorize(tracker: Any, user: User, kind: str, entity_id: int, action: Action) -> None:
    """Raise unless `user` may do `action` on the project that owns this entity."""
    if user.is_admin:
        return
    project_id = project_of(tracker, kind, entity_id)
    if project_id is None:
        raise not_found(kind, entity_id)
    check_project(tracker, user, project_id, action, seen_as=(kind, entity_id))
