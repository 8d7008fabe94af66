"""Where resource bytes live: inline in the database row, or as files under a filesystem root."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from .enums import ArtifactBackend


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    backend: ArtifactBackend
    uri: str
    data: bytes | None  # what goes into the row's data column
    size_bytes: int
    content_hash: str


def describe(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


class InlineStore:
    backend = ArtifactBackend.INLINE

    def write(self, data: bytes) -> StoredArtifact:
        size, digest = describe(data)
        return StoredArtifact(self.backend, "", data, size, digest)


class FilesystemStore:
    """`<root>/<aa>/<uuid4>` files, addressed by `file://` URIs; the directory is made on first write."""

    backend = ArtifactBackend.FILESYSTEM

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def write(self, data: bytes) -> StoredArtifact:
        name = uuid.uuid4().hex
        path = self.root / name[:2] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see a half-written file
        size, digest = describe(data)
        return StoredArtifact(self.backend, path.as_uri(), None, size, digest)


def _path_of(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"not a file:// artifact uri: {uri!r}")
    return Path(unquote(parsed.path))


def read_file_artifact(uri: str) -> bytes:
    return _path_of(uri).read_bytes()


def delete_file_artifact(uri: str) -> None:
    try:
        _path_of(uri).unlink()
    except FileNotFoundError:
        pass
