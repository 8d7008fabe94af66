"""connect() and the default tracker that the module-level functions act on."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from .tracker.database import DEFAULT_URI

if TYPE_CHECKING:
    from .tracker.protocol import Tracker

ENV_URI = "DIARY_TRACKING_URI"
ENV_ARTIFACT_ROOT = "DIARY_ARTIFACT_ROOT"

_default: Tracker | None = None
_default_lock = threading.Lock()


def resolve_uri(uri: str | os.PathLike[str] | None = None) -> str:
    """An explicit URI, else $DIARY_TRACKING_URI, else `sqlite:///deardiary.db` in the working directory."""
    if uri is not None:
        return os.fspath(uri)
    return os.environ.get(ENV_URI) or DEFAULT_URI


def connect(
    uri: str | os.PathLike[str] | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    artifact_root: str | os.PathLike[str] | None = None,
) -> Tracker:
    """The tracker for a URI: http(s):// gives a RemoteTracker, anything else (a SQLAlchemy URL or a
    file path) a LocalTracker."""
    target = resolve_uri(uri)
    if target.startswith(("http://", "https://")):
        from .client import RemoteTracker

        return RemoteTracker(target, username=username, password=password, token=token)
    from .tracker.local import LocalTracker

    root = artifact_root if artifact_root is not None else os.environ.get(ENV_ARTIFACT_ROOT) or None
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
