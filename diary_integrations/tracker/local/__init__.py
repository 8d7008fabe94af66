"""LocalTracker: DearDiary's rules over SQLAlchemy, one transaction per call.

Every public method validates its input before it opens a transaction, so a bad input raises a typed
error (naming the field and the rule) and writes nothing. Foreign keys do the cascades, and
`iteration.parent_iteration_id` is `ON DELETE SET NULL`, so children outlive a deleted driver. One
module per group of entities; `base` holds the connection and shared helpers.
"""

from __future__ import annotations

from ..idempotency import keyed_once
from .base import DEFAULT_PASSWORD, DEFAULT_USERNAME, HEARTBEAT_REFRESH_SECONDS, TrackerBase
from .iterations import IterationsMixin
from .metrics import MetricsMixin
from .models import ModelsMixin
from .parameters import ParametersMixin
from .projects import ProjectsMixin
from .resources import ResourcesMixin
from .search import SearchMixin
from .tags import TagsMixin
from .users import UsersMixin

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "HEARTBEAT_REFRESH_SECONDS", "LocalTracker"]


class LocalTracker(
    UsersMixin, ProjectsMixin, IterationsMixin, ParametersMixin, MetricsMixin, TagsMixin, ResourcesMixin,
    ModelsMixin, SearchMixin, TrackerBase,
):
    """The tracker on a database reached directly: `sqlite:///file.db` (default) or PostgreSQL.

    It pickles to its URL and artifact root and reconnects lazily in the new process, which is how
    scikit-learn workers and DDP ranks share one tracker.
    """

    # The writes a caller may repeat (a journal's replay, a retried call) take an idempotency key
    # from `using_key` and are applied once per key, as the server's write routes are.
    create_project = keyed_once(ProjectsMixin.create_project)
    create_experiment = keyed_once(ProjectsMixin.create_experiment)
    create_iteration = keyed_once(IterationsMixin.create_iteration)
    create_iterations = keyed_once(IterationsMixin.create_iterations)
    end_iteration = keyed_once(IterationsMixin.end_iteration)
    reopen_iteration = keyed_once(IterationsMixin.reopen_iteration)
    end_iterations = keyed_once(IterationsMixin.end_iterations)
    create_parameter = keyed_once(ParametersMixin.create_parameter)
    log_parameters = keyed_once(ParametersMixin.log_parameters)
    create_metric = keyed_once(MetricsMixin.create_metric)
    log_metrics = keyed_once(MetricsMixin.log_metrics)
    log_metric_points = keyed_once(MetricsMixin.log_metric_points)
    create_tag = keyed_once(TagsMixin.create_tag)
    add_tag = keyed_once(TagsMixin.add_tag)
    create_user = keyed_once(UsersMixin.create_user)
    create_user_permission = keyed_once(UsersMixin.create_user_permission)
    create_userpermission = create_user_permission  # DearDiary's name for it
    create_model = keyed_once(ModelsMixin.create_model)
    create_model_version = keyed_once(ModelsMixin.create_model_version)
