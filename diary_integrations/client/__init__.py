"""RemoteTracker: the Tracker API over REST, against `diary server`.

Same methods, return types and errors as LocalTracker: a 422 raises `Unprocessable`, a 409 `Conflict`,
a 401 `AuthError`, a 403 `PermissionDenied`; `get_*` of a missing entity returns None. Connections are
pooled; list calls walk the server's pages; a tracker pickles to its URL and credentials and
reconnects lazily in the new process.

One module per group of entities, at the same relative place as in `tracker/local/` (users, projects,
iterations, parameters, metrics, tags, resources, models); the plumbing under them has modules of its own:
`transport` (connection, auth, error mapping, pages), `retry` (when a send is repeated), `idempotency`
(the key a write carries, batches cut into keyed parts) and `journaling` (writes kept when the server is
gone), with `base` holding the constants and encoders they share; `remote` puts the mixins together.
`journal` is the on-disk journal those kept writes go to (and `diary sync` and the metric writer read):
it imports `idempotency` only, never the tracker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import MAX_BATCH_IDS, MAX_SERIES_BUDGET, METRIC_PAGE_SIZE, PAGE_SIZE, SMALL_BODY_BYTES
    from .idempotency import PendingWrite
    from .remote import RemoteTracker

# Loaded on first use: the metric writer imports `client.journal`, and that must not pull in httpx and
# a RemoteTracker that a run on a local database never makes.
_HOMES = {
    "MAX_BATCH_IDS": ".base",
    "MAX_SERIES_BUDGET": ".base",
    "METRIC_PAGE_SIZE": ".base",
    "PAGE_SIZE": ".base",
    "SMALL_BODY_BYTES": ".base",
    "PendingWrite": ".idempotency",
    "RemoteTracker": ".remote",
}

__all__ = [
    "MAX_BATCH_IDS",
    "MAX_SERIES_BUDGET",
    "METRIC_PAGE_SIZE",
    "PAGE_SIZE",
    "SMALL_BODY_BYTES",
    "PendingWrite",
    "RemoteTracker",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value
