"""/model/... and /modelversion/...: the model registry (models of a project, their versions, aliases).

Permissions are the project's: a model belongs to the project it was created in, a version to its
model's project. Every write that creates something is `@idempotent`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field, StrictInt, StrictStr

from ...tracker.errors import Unprocessable
from ...tracker.totals import count_model_versions, count_models
from ..bodies import RequestBody
from ..deps import Limit, Me, Offset, PathId, Tracker
from ..idempotency import idempotent
from ..permissions import Action, authorize
from ..responses import MAX_INT64, FastJSON, created, deleted, error, one, page, updated

router = APIRouter()
Name = Annotated[str, Query(max_length=1000)]
AliasName = Annotated[str, Path(max_length=250)]
OptionalRef = Annotated[StrictInt | None, Field(ge=1, le=MAX_INT64)]


class ModelCreate(RequestBody):
    name: StrictStr
    description: StrictStr = ""


class ModelUpdate(RequestBody):
    name: StrictStr | None = None
    description: StrictStr | None = None


class VersionCreate(RequestBody):
    iteration_id: Annotated[StrictInt, Field(ge=1, le=MAX_INT64)]
    resource_id: OptionalRef = None
    description: StrictStr = ""


class VersionUpdate(RequestBody):
    stage: StrictInt | StrictStr | None = None
    stage_id: StrictInt | StrictStr | None = Field(None, description="DearDiary's name for `stage`")
    description: StrictStr | None = None
    resource_id: OptionalRef = Field(None, description="null detaches the resource")


class AliasSet(RequestBody):
    version: Annotated[StrictInt, Field(ge=1, le=MAX_INT64)]


@router.get("/model/project/{project_id}", tags=["models"])
def list_models(project_id: PathId, tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0) -> FastJSON:
    authorize(tracker, me, "project", project_id, Action.READ)
    return page(
        lambda n, o: tracker.get_models(project_id, limit=n, offset=o),
        lambda: count_models(tracker, project_id),
        limit,
        offset,
    )


@router.get("/model/project/{project_id}/by-name", tags=["models"])
def model_by_name(project_id: PathId, tracker: Tracker, me: Me, name: Name) -> Any:
    authorize(tracker, me, "project", project_id, Action.READ)
    return one(tracker.get_model_by_name(project_id, name), "Model")


@router.post("/model/project/{project_id}", status_code=201, tags=["models"])
@idempotent
def create_model(project_id: PathId, body: ModelCreate, tracker: Tracker, me: Me) -> FastJSON:
    authorize(tracker, me, "project", project_id, Action.CREATE)
    return created("model", tracker.create_model(project_id, body.name, description=body.description).id)


@router.get("/model/{model_id}", tags=["models"])
def get_model(model_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "model", model_id, Action.READ)
    return one(tracker.get_model(model_id), "Model")


@router.patch("/model/{model_id}", tags=["models"])
@idempotent
def update_model(model_id: PathId, body: ModelUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    authorize(tracker, me, "model", model_id, Action.UPDATE)
    tracker.update_model(model_id, name=body.name, description=body.description)
    return updated()


@router.delete("/model/{model_id}", tags=["models"])
def delete_model(model_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "model", model_id, Action.DELETE)
    return deleted() if tracker.delete_model(model_id) else error(404, "NOT_FOUND", "Model not found")


@router.get("/model/{model_id}/alias", tags=["models"])
def list_aliases(model_id: PathId, tracker: Tracker, me: Me) -> FastJSON:
    authorize(tracker, me, "model", model_id, Action.READ)
    if tracker.get_model(model_id) is None:
        return error(404, "NOT_FOUND", "Model not found")
    return FastJSON([_alias(a) for a in tracker.get_model_aliases(model_id)])


@router.put("/model/{model_id}/alias/{alias}", tags=["models"])
@idempotent
def set_alias(model_id: PathId, alias: AliasName, body: AliasSet, tracker: Tracker, me: Me) -> dict[str, str]:
    authorize(tracker, me, "model", model_id, Action.UPDATE)
    return {"message": tracker.set_model_alias(model_id, alias, body.version).value}


@router.delete("/model/{model_id}/alias/{alias}", tags=["models"])
def delete_alias(model_id: PathId, alias: AliasName, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "model", model_id, Action.UPDATE)
    return deleted() if tracker.delete_model_alias(model_id, alias) else error(404, "NOT_FOUND", "Alias not found")


@router.get("/modelversion/model/{model_id}", tags=["models"])
def list_versions(
    model_id: PathId,
    tracker: Tracker,
    me: Me,
    stage: Annotated[str | None, Query(max_length=20)] = None,
    limit: Limit = None,
    offset: Offset = 0,
) -> FastJSON:
    authorize(tracker, me, "model", model_id, Action.READ)
    wanted: Any = int(stage) if stage is not None and stage.isdigit() else stage
    return page(
        lambda n, o: tracker.get_model_versions(model_id, stage=wanted, limit=n, offset=o),
        lambda: count_model_versions(tracker, model_id, stage=wanted),
        limit,
        offset,
    )


@router.post("/modelversion/model/{model_id}", status_code=201, tags=["models"])
@idempotent
def create_version(model_id: PathId, body: VersionCreate, tracker: Tracker, me: Me) -> FastJSON:
    authorize(tracker, me, "model", model_id, Action.CREATE)
    new = tracker.create_model_version(
        model_id, body.iteration_id, resource_id=body.resource_id, description=body.description
    )
    return created("modelversion", new.id)


@router.get("/modelversion/{model_version_id}", tags=["models"])
def get_version(model_version_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "modelversion", model_version_id, Action.READ)
    return one(tracker.get_model_version(model_version_id), "Model version")


@router.patch("/modelversion/{model_version_id}", tags=["models"])
@idempotent
def update_version(model_version_id: PathId, body: VersionUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    authorize(tracker, me, "modelversion", model_version_id, Action.UPDATE)
    if body.stage is not None and body.stage_id is not None and body.stage != body.stage_id:
        raise Unprocessable("stage_id: stage and stage_id disagree; send one of them", field="stage_id")
    extra: dict[str, Any] = {"resource_id": body.resource_id} if "resource_id" in body.model_fields_set else {}
    stage = body.stage if body.stage is not None else body.stage_id
    tracker.update_model_version(model_version_id, stage=stage, description=body.description, **extra)
    return updated()


@router.delete("/modelversion/{model_version_id}", tags=["models"])
def delete_version(model_version_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "modelversion", model_version_id, Action.DELETE)
    if tracker.delete_model_version(model_version_id):
        return deleted()
    return error(404, "NOT_FOUND", "Model version not found")


def _alias(alias: Any) -> dict[str, Any]:
    return {
        "model_id": alias.model_id,
        "alias": alias.alias,
        "model_version_id": alias.model_version_id,
        "version": alias.version,
    }
