"""Resources: artifact bytes stored on an experiment."""

from __future__ import annotations

import os

from ..tracker.enums import Result
from ..tracker.records import (
    Created,
    Resource,
)
from ..tracker.validation import (
    check_id,
    check_name,
    check_text,
    resource_bytes,
)
from .base import (
    _id_path,
)
from .transport import RemoteBase


class ResourcesMixin(RemoteBase):
    # -- resources --------------------------------------------------------------------------------

    def create_resource(
        self, experiment_id: int, name: str, data: bytes | str | os.PathLike[str], *, description: str = ""
    ) -> Created:
        """Store artifact bytes (or a file's bytes) on an experiment, with their size and sha256."""
        experiment_id = check_id(experiment_id, "experiment_id")
        form = {"name": check_name(name), "description": check_text(description, "description")}
        files = {"data": (form["name"], resource_bytes(data), "application/octet-stream")}
        response = self._call("POST", f"/resource/experiment/{experiment_id}", data=form, files=files)
        return self._created(response, "resource")

    def get_resource(self, resource_id: int) -> Resource | None:
        return self._one(Resource, _id_path("/resource/{}", resource_id, "resource_id"))

    def get_resource_data(self, resource_id: int) -> bytes | None:
        path = _id_path("/resource/{}/data", resource_id, "resource_id")
        return None if path is None else self._call("GET", path, missing=None)

    def get_resources(self, experiment_id: int, *, limit: int | None = None, offset: int = 0) -> list[Resource]:
        return self._list(Resource, _id_path("/resource/experiment/{}", experiment_id, "experiment_id"), limit, offset)

    def update_resource(
        self,
        resource_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        data: bytes | str | os.PathLike[str] | None = None,
    ) -> Result:
        form = {}
        if name is not None:
            form["name"] = check_name(name)
        if description is not None:
            form["description"] = check_text(description, "description")
        files = {"data": ("data", resource_bytes(data), "application/octet-stream")} if data is not None else {}
        path = f"/resource/{check_id(resource_id, 'resource_id')}"
        self._call("PATCH", path, data=form, files=files or None)
        return Result.UPDATED

    def delete_resource(self, resource_id: int) -> bool:
        return self._deleted(_id_path("/resource/{}", resource_id, "resource_id"))
