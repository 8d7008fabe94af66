"""Resources: artifact bytes on an experiment, inline or under a filesystem root."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import (
    insert,
    select,
)

from .. import schema as t
from ..artifacts import FilesystemStore, InlineStore, read_file_artifact
from ..enums import ArtifactBackend, Result
from ..records import (
    Created,
    Resource,
)
from ..statements import can_hold, update_row
from ..validation import (
    check_id,
    check_name,
    check_text,
    resource_bytes,
)
from .base import (
    _RESOURCE_COLUMNS,
    TrackerBase,
    _none_stored,
    _now,
    _paged,
    _resource,
)


class ResourcesMixin(TrackerBase):

    def _store(self) -> InlineStore | FilesystemStore:
        return InlineStore() if self.artifact_root is None else FilesystemStore(self.artifact_root)

    def create_resource(
        self, experiment_id: int, name: str, data: bytes | str | os.PathLike[str], *, description: str = ""
    ) -> Created:
        """Store artifact bytes (or a file's bytes) on an experiment, with their size and sha256."""
        experiment_id = check_id(experiment_id, "experiment_id")
        name = check_name(name)
        description = check_text(description, "description")
        payload = resource_bytes(data)
        with self._read() as conn:
            self._require(conn, t.experiments, experiment_id, "experiment_id")
        stored = self._store().write(payload)
        try:
            with self._write() as conn:
                self._require(conn, t.experiments, experiment_id, "experiment_id")
                new_id = conn.execute(
                    insert(t.resources).values(
                        experiment_id=experiment_id, name=name, description=description,
                        backend=stored.backend.value, uri=stored.uri, data=stored.data,
                        size_bytes=stored.size_bytes, content_hash=stored.content_hash,
                        created_date=_now(), updated_date=None,
                    )
                ).inserted_primary_key[0]
        except BaseException:
            self._remove_files([stored.uri] if stored.uri else [])
            raise
        return Created(new_id, Result.CREATED)

    def get_resource(self, resource_id: int) -> Resource | None:
        resource_id = check_id(resource_id, "resource_id")
        if not can_hold(t.resources.c.id, resource_id):
            return None
        with self._read() as conn:
            return _resource(conn.execute(select(*_RESOURCE_COLUMNS).where(t.resources.c.id == resource_id)).first())

    def get_resource_data(self, resource_id: int) -> bytes | None:
        resource_id = check_id(resource_id, "resource_id")
        r = t.resources
        if not can_hold(r.c.id, resource_id):
            return None
        with self._read() as conn:
            row = conn.execute(select(r.c.backend, r.c.uri, r.c.data).where(r.c.id == resource_id)).first()
        if row is None:
            return None
        if row.backend == ArtifactBackend.FILESYSTEM.value:
            return read_file_artifact(row.uri)
        return bytes(row.data or b"")

    def get_resources(self, experiment_id: int, *, limit: int | None = None, offset: int = 0) -> list[Resource]:
        experiment_id = check_id(experiment_id, "experiment_id")
        r = t.resources
        if not can_hold(r.c.experiment_id, experiment_id):
            return _none_stored(limit, offset)
        stmt = select(*_RESOURCE_COLUMNS).where(r.c.experiment_id == experiment_id).order_by(r.c.id)
        with self._read() as conn:
            return [_resource(row) for row in conn.execute(_paged(stmt, limit, offset))]  # type: ignore[misc]

    def update_resource(
        self,
        resource_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        data: bytes | str | os.PathLike[str] | None = None,
    ) -> Result:
        resource_id = check_id(resource_id, "resource_id")
        values: dict[str, Any] = {"updated_date": _now()}
        if name is not None:
            values["name"] = check_name(name)
        if description is not None:
            values["description"] = check_text(description, "description")
        stored = None
        if data is not None:
            stored = self._store().write(resource_bytes(data))
            values.update(backend=stored.backend.value, uri=stored.uri, data=stored.data,
                          size_bytes=stored.size_bytes, content_hash=stored.content_hash)
        old_uris: list[str] = []
        try:
            with self._write() as conn:
                row = self._require(conn, t.resources, resource_id, "resource_id")
                if stored is not None and row.uri:
                    old_uris.append(row.uri)
                update_row(conn, t.resources, resource_id, values)
        except BaseException:
            if stored is not None and stored.uri:
                self._remove_files([stored.uri])
            raise
        self._remove_files(old_uris)
        return Result.UPDATED

    def delete_resource(self, resource_id: int) -> bool:
        return self._delete(t.resources, resource_id, "resource_id", files=lambda row: t.resources.c.id == row)
