"""/tag/...: one shared vocabulary of tags, attached to projects, experiments and iterations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, StrictStr

from ...tracker.enums import TagTarget
from ...tracker.totals import count_tags
from ..auth import require_admin
from ..deps import Limit, Me, Offset, PathId, Tracker
from ..idempotency import idempotent
from ..permissions import Action, authorize
from ..responses import FastJSON, created, deleted, error, one, page, updated

router = APIRouter(tags=["tags"])
Value = Annotated[str, Query(max_length=1000)]


class TagBody(BaseModel):
    value: StrictStr


@router.get("/tag/")
def list_tags(tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0) -> FastJSON:
    return page(lambda n, o: tracker.get_tags(limit=n, offset=o), lambda: count_tags(tracker), limit, offset)


@router.get("/tag/by-value")
def tag_by_value(tracker: Tracker, me: Me, value: Value) -> Any:
    return one(tracker.get_tag(value), "Tag")


@router.post("/tag/", status_code=201)
@idempotent
def create_tag(body: TagBody, tracker: Tracker, me: Me) -> FastJSON:
    return created("tag", tracker.create_tag(body.value).id)


@router.get("/tag/{tag_id}")
def get_tag(tag_id: PathId, tracker: Tracker, me: Me) -> Any:
    return one(tracker.get_tag(tag_id), "Tag")


@router.patch("/tag/{tag_id}")
def update_tag(tag_id: PathId, body: TagBody, tracker: Tracker, me: Me) -> dict[str, str]:
    require_admin(me)  # renaming a tag renames it on every project
    tracker.update_tag(tag_id, body.value)
    return updated()


@router.delete("/tag/{tag_id}")
def delete_tag(tag_id: PathId, tracker: Tracker, me: Me) -> Any:
    require_admin(me)
    return deleted() if tracker.delete_tag(tag_id) else error(404, "NOT_FOUND", "Tag not found")


@router.get("/tag/{target}/{target_id}")
def target_tags(target: TagTarget, target_id: PathId, tracker: Tracker, me: Me, limit: Limit = None,
                offset: Offset = 0) -> FastJSON:
    authorize(tracker, me, target.value, target_id, Action.READ)
    return page(
        lambda n, o: tracker.get_tags(target, target_id, limit=n, offset=o),
        lambda: count_tags(tracker, target, target_id), limit, offset,
    )


@router.post("/tag/{target}/{target_id}", status_code=201)
@idempotent
def add_tag(target: TagTarget, target_id: PathId, body: TagBody, tracker: Tracker, me: Me) -> FastJSON:
    """Attach a tag (created if new); 409 if it is already there."""
    authorize(tracker, me, target.value, target_id, Action.CREATE)
    return created("tag", tracker.add_tag(target, target_id, body.value).id)


@router.delete("/tag/{target}/{target_id}")
def remove_tag(target: TagTarget, target_id: PathId, tracker: Tracker, me: Me, value: Value) -> Any:
    authorize(tracker, me, target.value, target_id, Action.DELETE)
    return deleted() if tracker.remove_tag(target, target_id, value) else error(404, "NOT_FOUND", "Tag not attached")
