"""connect() and the default tracker that the module-level functions act on."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .tracker.defaults import DEFAULT_URI

if TYPE_CHECKING:
    from .tracker.protocol import Tracker

ENV_URI = "DIARY_TRACKING_URI"
ENV_ARTIFACT_ROOT = "DIARY_ARTIFACT_ROOT"
# Credentials for a tracking server with auth on, read when `connect` is given none (a DDP rank, a
# sweep worker on another host: export them once for every process of the job).
ENV_USERNAME, ENV_PASSWORD, ENV_TOKEN = "DIARY_USERNAME", "DIARY_PASSWORD", "DIARY_TOKEN"

_default: Tracker | None = None
_default_lock = threading.Lock()


def resolve_uri(uri: str | os.PathLike[str] | None = None) -> str:
    """An explicit URI, else $DIARY_TRACKING_URI, else `sqlite:///deardiary.db` in the working directory."""
    if uri is not None:
        return os.fspath(uri)
    return os.environ.get(ENV_URI) or DEFAULT_URI


# "localhost:9000" or "tracker.example:443/x": a server address that lost its http:// (else it would
# silently become a SQLite file of that name).
_BARE_SERVER = re.compile(r"^[A-Za-z0-9.-]+:\d+(/.*)?$")


ACCEPTED_URIS = (
    "a SQLite file path (runs.db), sqlite:///path/to/runs.db, "
    "postgresql+psycopg://user@host/db or http(s)://host:port"
)
_DATABASE_BACKENDS = {"sqlite", "postgresql"}


def check_uri(target: str, *, database_only: bool = False) -> str:
    """`target` if it names something a tracker can be made for, else an `Unprocessable` naming `uri` and
    the accepted forms: an unknown scheme, a malformed URL or a SQLite file under a missing directory is
    refused before anything is created (else the first call dies deep inside SQLAlchemy, or a typo makes a
    database in a new directory). `database_only` refuses http(s) (the tracking server's own `--db`)."""
    from urllib.parse import urlsplit

    from .tracker.errors import Unprocessable

    def refuse(problem: str) -> Unprocessable:
        forms = ACCEPTED_URIS.replace(" or http(s)://host:port", "") if database_only else ACCEPTED_URIS
        return Unprocessable(f"uri: {problem}; use {forms}", field="uri")

    if not isinstance(target, str) or not target.strip():
        raise refuse(f"{target!r} is not a database path or URL")
    if _BARE_SERVER.match(target):
        raise refuse(f"{target!r} looks like a server address without its scheme (write http://{target})")
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    if scheme in ("http", "https"):
        if database_only:
            raise refuse(f"{target!r} is a server, not a database")
        try:
            parts = urlsplit(target)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise refuse(f"{target!r} is not a valid URL ({exc})") from None
        if not parts.hostname:
            raise refuse(f"{target!r} has no host")
        return target
    if scheme == "sqlite" and target.startswith("sqlite:///") and not any(c in target for c in "?#@"):
        path = target[len("sqlite:///"):]  # what SQLAlchemy makes of a plain file URL, without importing it
    elif scheme:
        # SQLAlchemy only for a database URL: a server's client never imports it (~0.15 s of CPU).
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url("postgresql" + target[len("postgres"):] if scheme == "postgres" else target)
        except ArgumentError:
            raise refuse(f"{target!r} is not a valid URL") from None
        if url.get_backend_name() not in _DATABASE_BACKENDS:
            raise refuse(f"unknown scheme {scheme + '://'!r} in {target!r}")
        if url.get_backend_name() != "sqlite":
            return target
        path = url.database or ""
    else:
        path = target
    if path and path != ":memory:" and not path.startswith("file:"):
        parent = Path(path).expanduser().parent
        if not parent.is_dir():
            raise refuse(f"the directory {str(parent)!r} for the database {path!r} does not exist")
    return target


def missing_database_file(target: str) -> Path | None:
    """The SQLite file a path or `sqlite:///` URL names, when it does not exist yet (else None). Read-only
    commands use it so that a typo reports "no database" instead of creating an empty one."""
    if target.startswith("sqlite:///"):
        path = target[len("sqlite:///"):]
    elif "://" in target:
        return None
    else:
        path = target
    if not path or path == ":memory:":
        return None
    return None if Path(path).expanduser().exists() else Path(path)


def connect(
    uri: str | os.PathLike[str] | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    artifact_root: str | os.PathLike[str] | None = None,
    sidecar: bool = False,
) -> Tracker:
    """The tracker for a URI: http(s):// gives a RemoteTracker, a SQLite path or URL or a PostgreSQL URL a
    LocalTracker; anything else is an `Unprocessable` naming `uri` (see `check_uri`). For a server, with
    none of `username`, `password`, `token` given, they come from $DIARY_USERNAME, $DIARY_PASSWORD and
    $DIARY_TOKEN. `sidecar=True` runs a database's LocalTracker in a process of its own (a
    SidecarTracker), so this process never imports SQLAlchemy: what DiaryLogger does by default."""
    target = check_uri(resolve_uri(uri))
    if target.startswith(("http://", "https://")):
        try:
            from .client import RemoteTracker
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                f"connecting to a tracking server needs {exc.name}: pip install 'diary-integrations[client]'",
                name=exc.name,
            ) from exc

        if username is None and password is None and token is None:
            username, password = os.environ.get(ENV_USERNAME) or None, os.environ.get(ENV_PASSWORD) or None
            token = os.environ.get(ENV_TOKEN) or None
        return RemoteTracker(target, username=username, password=password, token=token)
    root = artifact_root if artifact_root is not None else os.environ.get(ENV_ARTIFACT_ROOT) or None
    if sidecar:
        from .sidecar import SidecarTracker, usable_for

        if usable_for(target):
            return SidecarTracker(target, artifact_root=root)  # type: ignore[return-value]
    from .tracker.local import LocalTracker

    return LocalTracker(target, artifact_root=root)


def initialize_database(path_or_url: str | os.PathLike[str] | None = None, **kwargs: Any) -> Tracker:
    """Make the tracker for this path or URL the default one (creating the database if needed)."""
    global _default
    tracker = connect(path_or_url, **kwargs)
    getattr(tracker, "engine", None)  # a local database is created and migrated now, not on first write
    with _default_lock:
        old, _default = _default, tracker
    if old is not None and old is not tracker:
        old.close()
    return tracker


def get_tracker() -> Tracker:
    """The default tracker, created from the environment on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = connect()
    return _default


def set_tracker(tracker: Tracker | None) -> None:
    global _default
    with _default_lock:
        _default = tracker
