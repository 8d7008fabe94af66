"""The tag vocabulary and tags on projects, experiments and iterations."""

from __future__ import annotations

from sqlalchemy import (
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from .. import schema as t
from ..enums import Result, TagTarget
from ..errors import Conflict
from ..records import (
    Created,
    Tag,
)
from ..statements import can_hold, insert_row, update_row
from ..validation import (
    check_enum,
    check_id,
    check_name,
)
from .base import (
    _TAG_LINKS,
    TrackerBase,
    _none_stored,
    _paged,
    _record,
)


class TagsMixin(TrackerBase):

    def create_tag(self, value: str) -> Created:
        value = check_name(value, "value")
        try:
            with self._write() as conn:
                if conn.execute(select(t.tags.c.id).where(t.tags.c.value == value)).first():
                    raise Conflict(f"value: tag {value!r} already exists", field="value")
                new_id = insert_row(conn, t.tags, dict(value=value))
        except IntegrityError:
            raise Conflict(f"value: tag {value!r} already exists", field="value") from None
        return Created(new_id, Result.CREATED)

    def get_tag(self, tag: int | str) -> Tag | None:
        """By id, or by value when given a string."""
        if isinstance(tag, str):
            with self._read() as conn:
                return _record(Tag, conn.execute(select(t.tags).where(t.tags.c.value == tag)).first())
        return _record(Tag, self._fetch_one(t.tags, tag, "tag_id"))

    def get_tags(
        self,
        target: TagTarget | str | None = None,
        target_id: int | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Tag]:
        """Every tag, or the tags on one project, experiment or iteration."""
        stmt = select(t.tags).order_by(t.tags.c.id)
        if target is not None:
            link, column, _ = _TAG_LINKS[check_enum(target, TagTarget, "target")]
            target_id = check_id(target_id, "target_id")
            if not can_hold(link.c[column], target_id):
                return _none_stored(limit, offset)
            stmt = stmt.where(t.tags.c.id.in_(select(link.c.tag_id).where(link.c[column] == target_id)))
        with self._read() as conn:
            return [_record(Tag, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def update_tag(self, tag_id: int, value: str) -> Result:
        tag_id = check_id(tag_id, "tag_id")
        value = check_name(value, "value")
        try:
            with self._write() as conn:
                self._require(conn, t.tags, tag_id, "tag_id")
                update_row(conn, t.tags, tag_id, dict(value=value))
        except IntegrityError:
            raise Conflict(f"value: tag {value!r} already exists", field="value") from None
        return Result.UPDATED

    def delete_tag(self, tag_id: int) -> bool:
        """Deletes the tag and detaches it from everything it was on."""
        return self._delete(t.tags, tag_id, "tag_id")

    def add_tag(self, target: TagTarget | str, target_id: int, value: str) -> Created:
        """Attach a tag (created if new) to a project, experiment or iteration; Conflict if already on it."""
        kind = check_enum(target, TagTarget, "target")
        link, column, owner = _TAG_LINKS[kind]
        target_id = check_id(target_id, "target_id")
        value = check_name(value, "value")
        with self._write() as conn:
            self._require(conn, owner, target_id, "target_id")
            tag = conn.execute(select(t.tags.c.id).where(t.tags.c.value == value)).first()
            tag_id = tag.id if tag else insert_row(conn, t.tags, dict(value=value))
            if conn.execute(select(link.c.id).where(link.c[column] == target_id, link.c.tag_id == tag_id)).first():
                raise Conflict(f"value: {kind.value} {target_id} already has tag {value!r}", field="value")
            conn.execute(insert(link).values({column: target_id, "tag_id": tag_id}))
        return Created(tag_id, Result.CREATED)

    def remove_tag(self, target: TagTarget | str, target_id: int, value: str) -> bool:
        kind = check_enum(target, TagTarget, "target")
        link, column, _ = _TAG_LINKS[kind]
        target_id = check_id(target_id, "target_id")
        value = check_name(value, "value")
        with self._write() as conn:
            tag_ids = select(t.tags.c.id).where(t.tags.c.value == value)
            return conn.execute(
                delete(link).where(link.c[column] == target_id, link.c.tag_id.in_(tag_ids))
            ).rowcount > 0
