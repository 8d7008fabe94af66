"""/project/... and /experiment/...: projects (admin-created) and their experiments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field, StrictInt, StrictStr

from ...tracker.totals import count_experiments, count_projects, count_user_permissions
from ..auth import require_admin
from ..bodies import RequestBody, StatusBody
from ..deps import Limit, Me, Offset, OptionalId, PathId, Tracker
from ..errors import ApiError
from ..idempotency import idempotent
from ..permissions import Action, authorize
from ..responses import MAX_INT64, FastJSON, created, deleted, error, one, page, updated

router = APIRouter()
Name = Annotated[str, Query(max_length=1000)]


class ProjectCreate(RequestBody):
    name: StrictStr
    description: StrictStr = ""
    user_id: Annotated[StrictInt | None, Field(ge=1, le=MAX_INT64)] = Field(
        None, description="the owner, who gets every permission (default: the caller)"
    )


class ProjectUpdate(RequestBody):
    name: StrictStr | None = None
    description: StrictStr | None = None


class ExperimentCreate(StatusBody):
    status_id: StrictInt | StrictStr = 1
    name: StrictStr
    description: StrictStr = ""


class ExperimentUpdate(StatusBody):
    status_id: StrictInt | StrictStr | None = None
    name: StrictStr | None = None
    description: StrictStr | None = None
    end_date: StrictStr | float | None = Field(None, description="ISO 8601 or epoch seconds; null clears it")


@router.get("/project/", tags=["projects"])
def list_projects(
    tracker: Tracker, me: Me, user_id: OptionalId = None, limit: Limit = None, offset: Offset = 0
) -> FastJSON:
    """Every project (admins), or the ones the caller may read."""
    if not me.is_admin:
        if user_id not in (None, me.id):
            raise ApiError(403, "SAME_USER_REQUIRED", "Only an administrator may list another user's projects")
        user_id = me.id
    return page(
        lambda n, o: tracker.get_projects(user_id=user_id, limit=n, offset=o),
        lambda: count_projects(tracker, user_id=user_id), limit, offset,
    )


@router.get("/project/by-name", tags=["projects"])
def project_by_name(tracker: Tracker, me: Me, name: Name) -> Any:
    found = tracker.get_project_by_name(name)
    if found is not None and not me.is_admin:
        # A project the caller may not read answers as a missing one: the name does not tell it exists.
        permission = tracker.get_user_permission(me.id, found.id)
        if permission is None or not permission.read_permission:
            found = None
    return one(found, "Project")


@router.get("/project/{project_id}", tags=["projects"])
def get_project(project_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "project", project_id, Action.READ)
    return one(tracker.get_project(project_id), "Project")


@router.get("/project/{project_id}/members", tags=["projects"])
def project_members(project_id: PathId, tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0) -> FastJSON:
    authorize(tracker, me, "project", project_id, Action.READ)
    return page(
        lambda n, o: tracker.get_user_permissions(project_id=project_id, limit=n, offset=o),
        lambda: count_user_permissions(tracker, project_id=project_id), limit, offset,
    )


@router.post("/project/", status_code=201, tags=["projects"])
@idempotent
def create_project(body: ProjectCreate, tracker: Tracker, me: Me) -> FastJSON:
    require_admin(me)
    owner = me.id if body.user_id is None else body.user_id
    return created("project", tracker.create_project(body.name, description=body.description, user_id=owner).id)


@router.patch("/project/{project_id}", tags=["projects"])
def update_project(project_id: PathId, body: ProjectUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    authorize(tracker, me, "project", project_id, Action.UPDATE)
    tracker.update_project(project_id, name=body.name, description=body.description)
    return updated()


@router.delete("/project/{project_id}", tags=["projects"])
def delete_project(project_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "project", project_id, Action.DELETE)
    return deleted() if tracker.delete_project(project_id) else error(404, "NOT_FOUND", "Project not found")


@router.get("/experiment/project/{project_id}", tags=["experiments"])
def list_experiments(project_id: PathId, tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0) -> FastJSON:
    authorize(tracker, me, "project", project_id, Action.READ)
    return page(
        lambda n, o: tracker.get_experiments(project_id, limit=n, offset=o),
        lambda: count_experiments(tracker, project_id), limit, offset,
    )


@router.get("/experiment/project/{project_id}/by-name", tags=["experiments"])
def experiment_by_name(project_id: PathId, tracker: Tracker, me: Me, name: Name) -> Any:
    authorize(tracker, me, "project", project_id, Action.READ)
    return one(tracker.get_experiment_by_name(project_id, name), "Experiment")


@router.post("/experiment/project/{project_id}", status_code=201, tags=["experiments"])
@idempotent
def create_experiment(project_id: PathId, body: ExperimentCreate, tracker: Tracker, me: Me) -> FastJSON:
    authorize(tracker, me, "project", project_id, Action.CREATE)
    new = tracker.create_experiment(project_id, body.status_id, body.name, description=body.description)
    return created("experiment", new.id)


@router.get("/experiment/{experiment_id}", tags=["experiments"])
def get_experiment(experiment_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "experiment", experiment_id, Action.READ)
    return one(tracker.get_experiment(experiment_id), "Experiment")


@router.patch("/experiment/{experiment_id}", tags=["experiments"])
def update_experiment(experiment_id: PathId, body: ExperimentUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    authorize(tracker, me, "experiment", experiment_id, Action.UPDATE)
    extra: dict[str, Any] = {"end_date": body.end_date} if "end_date" in body.model_fields_set else {}
    tracker.update_experiment(
        experiment_id, status=body.status_id, name=body.name, description=body.description, **extra
    )
    return updated()


@router.delete("/experiment/{experiment_id}", tags=["experiments"])
def delete_experiment(experiment_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "experiment", experiment_id, Action.DELETE)
    return deleted() if tracker.delete_experiment(experiment_id) else error(404, "NOT_FOUND", "Experiment not found")
