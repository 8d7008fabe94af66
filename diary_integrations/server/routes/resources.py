"""/resource/...: artifact bytes on an experiment (multipart upload, raw download)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile

from ...tracker.totals import count_resources
from ..deps import Limit, Me, Offset, PathId, Tracker
from ..permissions import Action, authorize
from ..responses import FastJSON, created, deleted, error, one, page, updated

router = APIRouter(tags=["resources"])


@router.get("/resource/experiment/{experiment_id}")
def list_resources(
    experiment_id: PathId, tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0
) -> FastJSON:
    authorize(tracker, me, "experiment", experiment_id, Action.READ)
    return page(
        lambda n, o: tracker.get_resources(experiment_id, limit=n, offset=o),
        lambda: count_resources(tracker, experiment_id), limit, offset,
    )


@router.post("/resource/experiment/{experiment_id}", status_code=201)
def create_resource(
    experiment_id: PathId, tracker: Tracker, me: Me, name: Annotated[str, Form()],
    data: Annotated[UploadFile, File()], description: Annotated[str, Form()] = "",
) -> FastJSON:
    authorize(tracker, me, "experiment", experiment_id, Action.CREATE)
    new = tracker.create_resource(experiment_id, name, data.file.read(), description=description)
    return created("resource", new.id)


@router.get("/resource/{resource_id}")
def get_resource(resource_id: PathId, tracker: Tracker, me: Me) -> Any:
    """The metadata (size, sha256, ...); the bytes are at /resource/{id}/data."""
    authorize(tracker, me, "resource", resource_id, Action.READ)
    return one(tracker.get_resource(resource_id), "Resource")


@router.get("/resource/{resource_id}/data", response_class=Response)
def get_resource_data(resource_id: PathId, tracker: Tracker, me: Me) -> Response:
    authorize(tracker, me, "resource", resource_id, Action.READ)
    data = tracker.get_resource_data(resource_id)
    if data is None:
        return error(404, "NOT_FOUND", "Resource not found")
    return Response(data, media_type="application/octet-stream")


@router.patch("/resource/{resource_id}")
def update_resource(
    resource_id: PathId, tracker: Tracker, me: Me, name: Annotated[str | None, Form()] = None,
    description: Annotated[str | None, Form()] = None, data: Annotated[UploadFile | None, File()] = None,
) -> dict[str, str]:
    authorize(tracker, me, "resource", resource_id, Action.UPDATE)
    payload = None if data is None else data.file.read()
    tracker.update_resource(resource_id, name=name, description=description, data=payload)
    return updated()


@router.delete("/resource/{resource_id}")
def delete_resource(resource_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "resource", resource_id, Action.DELETE)
    return deleted() if tracker.delete_resource(resource_id) else error(404, "NOT_FOUND", "Resource not found")
