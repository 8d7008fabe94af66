"""RemoteTracker: the Tracker API over REST, against `diary server`.

Same methods, return types and errors as LocalTracker: a 422 raises `Unprocessable`, a 409 `Conflict`,
a 401 `AuthError`, a 403 `PermissionDenied`; `get_*` of a missing entity returns None. Connections are
pooled; list calls walk the server's pages; a tracker pickles to its URL and credentials and
reconnects lazily in the new process.

One module per group of entities, at the same relative place as in `tracker/local/` (users, projects,
iterations, parameters, metrics, tags, resources, models); the plumbing under them has modules of its own:
`transport` (connection, auth, error mapping, pages), `retry` (when a send is repeated), `idempotency`
(the key a write carries, batches cut into keyed parts) and `journaling` (writes kept when the server is
gone), with `base` holding the constants and encoders they share.
"""

from __future__ import annotations

from .base import MAX_BATCH_IDS, MAX_SERIES_BUDGET, METRIC_PAGE_SIZE, PAGE_SIZE, SMALL_BODY_BYTES
from .idempotency import PendingWrite
from .iterations import IterationsMixin
from .journaling import JournalMixin
from .metrics import MetricsMixin
from .models import ModelsMixin
from .parameters import ParametersMixin
from .projects import ProjectsMixin
from .resources import ResourcesMixin
from .search import SearchMixin
from .tags import TagsMixin
from .transport import RemoteBase
from .users import UsersMixin

__all__ = [
    "MAX_BATCH_IDS",
    "MAX_SERIES_BUDGET",
    "METRIC_PAGE_SIZE",
    "PAGE_SIZE",
    "SMALL_BODY_BYTES",
    "PendingWrite",
    "RemoteTracker",
]


class RemoteTracker(
    UsersMixin,
    ProjectsMixin,
    IterationsMixin,
    ParametersMixin,
    MetricsMixin,
    TagsMixin,
    ResourcesMixin,
    ModelsMixin,
    SearchMixin,
    JournalMixin,
    RemoteBase,
):
    """The tracker behind a tracking server (`http://host:9000`).

    With `username`/`password` it logs in on first use (and again when the token expires); with `token`
    it sends that bearer token; with neither it talks to a server whose auth is off.
    """
