"""Tags, and attaching them to projects, experiments and iterations."""

from __future__ import annotations

from ..tracker.enums import Result, TagTarget
from ..tracker.records import (
    Created,
    Tag,
)
from ..tracker.validation import (
    check_enum,
    check_id,
    check_name,
)
from .base import (
    _enum_value,
    _id_path,
    _seg,
)
from .transport import RemoteBase


class TagsMixin(RemoteBase):
    # -- tags -------------------------------------------------------------------------------------

    def create_tag(self, value: str) -> Created:
        return self._created(self._call("POST", "/tag/", body={"value": value}), "tag")

    def get_tag(self, tag: int | str) -> Tag | None:
        """By id, or by value when given a string."""
        if isinstance(tag, str):
            return self._one(Tag, "/tag/by-value", value=tag)
        return self._one(Tag, _id_path("/tag/{}", tag, "tag_id"))

    def get_tags(
        self,
        target: TagTarget | str | None = None,
        target_id: int | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Tag]:
        """Every tag, or the tags on one project, experiment or iteration."""
        if target is None:
            return self._list(Tag, "/tag/", limit, offset)
        path = _id_path(f"/tag/{_seg(_enum_value(target))}/{{}}", target_id, "target_id")
        if path is None:
            check_enum(target, TagTarget, "target")  # the server would have named a bad target first
        return self._list(Tag, path, limit, offset)

    def update_tag(self, tag_id: int, value: str) -> Result:
        self._call("PATCH", f"/tag/{check_id(tag_id, 'tag_id')}", body={"value": value})
        return Result.UPDATED

    def delete_tag(self, tag_id: int) -> bool:
        """Deletes the tag and detaches it from everything it was on."""
        return self._deleted(_id_path("/tag/{}", tag_id, "tag_id"))

    def add_tag(self, target: TagTarget | str, target_id: int, value: str) -> Created:
        """Attach a tag (created if new) to a project, experiment or iteration; Conflict if already on it."""
        path = f"/tag/{_seg(_enum_value(target))}/{check_id(target_id, 'target_id')}"
        return self._created(self._call("POST", path, body={"value": value}), "tag")

    def remove_tag(self, target: TagTarget | str, target_id: int, value: str) -> bool:
        path = f"/tag/{_seg(_enum_value(target))}/{check_id(target_id, 'target_id')}"
        return self._call("DELETE", path, params={"value": check_name(value, "value")}, missing=False) is not False
