"""RemoteTracker: the mixins of this package put together into the Tracker API over REST."""

from __future__ import annotations

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
