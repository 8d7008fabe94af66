"""LocalTracker: DearDiary's rules over SQLAlchemy, one transaction per call.

Every public method validates its input before it opens a transaction, so a bad input raises a typed
error (naming the field and the rule) and writes nothing. Foreign keys do the cascades, and
`iteration.parent_iteration_id` is `ON DELETE SET NULL`, so children outlive a deleted driver. One
module per group of entities; `base` holds the connection and shared helpers.
"""

from __future__ import annotations

from .base import DEFAULT_PASSWORD, DEFAULT_USERNAME, HEARTBEAT_REFRESH_SECONDS, TrackerBase
from .iterations import IterationsMixin
from .metrics import MetricsMixin
from .parameters import ParametersMixin
from .projects import ProjectsMixin
from .resources import ResourcesMixin
from .tags import TagsMixin
from .users import UsersMixin

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "HEARTBEAT_REFRESH_SECONDS", "LocalTracker"]


class LocalTracker(
    UsersMixin, ProjectsMixin, IterationsMixin, ParametersMixin, MetricsMixin, TagsMixin, ResourcesMixin,
    TrackerBase,
):
    """The tracker on a database reached directly: `sqlite:///file.db` (default) or PostgreSQL.

    It pickles to its URL and artifact root and reconnects lazily in the new process, which is how
    scikit-learn workers and DDP ranks share one tracker.
    """
