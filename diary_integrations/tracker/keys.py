"""Idempotency keys on the calling side: what a key looks like, and the key the next write of this
thread carries (`using_key`). Kept apart from idempotency.py, which stores keys in the database, so a
tracking server's client never imports SQLAlchemy."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import Unprocessable

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 100
_KEY = re.compile(r"[A-Za-z0-9._:-]{8,100}")

# The key of the write this thread is about to make (set by `using_key`).
current: ContextVar[str | None] = ContextVar("diary_idempotency_key", default=None)


def new_key() -> str:
    """A fresh key for one logical write."""
    return uuid.uuid4().hex


def derived_key(integration: str, prefix: str, *parts: object) -> str:
    """A deterministic key made of what names one write (a study and a trial, a Tune experiment and a
    trial): the same write from any process, or again after a restart, carries the same key."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:40]
    return f"diary-{integration}-{prefix}:{digest}"


def check_key(key: object, field: str = "idempotency_key") -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise Unprocessable(
            f"{field} must be 8 to {MAX_KEY_LENGTH} characters of letters, digits and . _ : -, got {key!r:.120}",
            field=field,
        )
    return key


@contextmanager
def using_key(key: str) -> Iterator[str]:
    """The next write this thread makes carries `key` (a journal replays its writes with their first
    keys). A RemoteTracker sends it; a LocalTracker records it with the write."""
    token = current.set(check_key(key))
    try:
        yield key
    finally:
        current.reset(token)


def current_key() -> str | None:
    return current.get()
