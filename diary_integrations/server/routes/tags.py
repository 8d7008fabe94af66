"""/tag/...: one shared vocabulary of tags, attached to projects, experiments and iterations.

An administrator reads the whole vocabulary; anyone else reads a tag only through a project they may
read (a tag on such a project, or on one of its experiments or iterations), so tag values never leak
across projects.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import StrictStr
from sqlalchemy import func, select, union

from ...tracker import schema as t
from ...tracker.database import read_transaction
from ...tracker.enums import TagTarget
from ...tracker.records import Tag
from ...tracker.totals import count_tags
from ..auth import require_admin
from ..bodies import RequestBody
from ..deps import Limit, Me, Offset, PathId, Tracker
from ..idempotency import idempotent
from ..permissions import Action, authorize
from ..responses import FastJSON, created, deleted, error, one, page, updated

router = APIRouter(tags=["tags"])
Value = Annotated[str, Query(max_length=1000)]


class TagBody(RequestBody):
    value: StrictStr


def _visible_tag_ids(user_id: int) -> Any:
    """The ids of the tags a user may read: those on projects they have read permission on, and on
    those projects' experiments and iterations."""
    up = t.user_permissions
    readable = select(up.c.project_id).where(up.c.user_id == user_id, up.c.read_permission.is_(True))
    e, i = t.experiments, t.iterations
    on_projects = select(t.project_tags.c.tag_id).where(t.project_tags.c.project_id.in_(readable))
    on_experiments = (select(t.experiment_tags.c.tag_id)
                      .join(e, e.c.id == t.experiment_tags.c.experiment_id).where(e.c.project_id.in_(readable)))
    on_iterations = (select(t.iteration_tags.c.tag_id).join(i, i.c.id == t.iteration_tags.c.iteration_id)
                     .join(e, e.c.id == i.c.experiment_id).where(e.c.project_id.in_(readable)))
    return union(on_projects, on_experiments, on_iterations)


def _visible(tracker: Any, me: Any, tag: Tag | None) -> Tag | None:
    if tag is None or me.is_admin or not hasattr(tracker, "engine"):
        return tag
    with read_transaction(tracker.engine) as conn:
        ids = _visible_tag_ids(me.id).subquery()
        return tag if conn.execute(select(ids.c.tag_id).where(ids.c.tag_id == tag.id)).first() else None


@router.get("/tag/")
def list_tags(tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0) -> FastJSON:
    if me.is_admin or not hasattr(tracker, "engine"):
        return page(lambda n, o: tracker.get_tags(limit=n, offset=o), lambda: count_tags(tracker), limit, offset)
    visible = t.tags.c.id.in_(select(_visible_tag_ids(me.id).subquery().c.tag_id))

    def rows(n: int | None, o: int) -> list[Tag]:
        stmt = select(t.tags).where(visible).order_by(t.tags.c.id).offset(o)
        with read_transaction(tracker.engine) as conn:
            return [Tag(**r._mapping) for r in conn.execute(stmt if n is None else stmt.limit(n))]

    def total() -> int:
        with read_transaction(tracker.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(t.tags).where(visible)).scalar_one())

    return page(rows, total, limit, offset)


@router.get("/tag/by-value")
def tag_by_value(tracker: Tracker, me: Me, value: Value) -> Any:
    return one(_visible(tracker, me, tracker.get_tag(value)), "Tag")


@router.post("/tag/", status_code=201)
@idempotent
def create_tag(body: TagBody, tracker: Tracker, me: Me) -> FastJSON:
    # Admin-only, as renaming and deleting are: its 409 would tell anyone which values exist elsewhere.
    # Everyone else gets new tags by attaching them (POST /tag/{target}/{id}, create permission there).
    require_admin(me)
    return created("tag", tracker.create_tag(body.value).id)


@router.get("/tag/{tag_id}")
def get_tag(tag_id: PathId, tracker: Tracker, me: Me) -> Any:
    return one(_visible(tracker, me, tracker.get_tag(tag_id)), "Tag")


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
