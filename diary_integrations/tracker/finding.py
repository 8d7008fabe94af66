"""Find-or-create by name, written once for every transport (it only calls the tracker's own methods, as
`lifecycle.OpensIterationRuns` does for `with_iteration`). The integrations find their project and
experiment this way, and so can a script that must run twice (`get_or_create_project("Fraud detection")`
finds the project the first run made instead of raising Conflict)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .enums import ExperimentStatus
from .errors import Conflict
from .records import Experiment, Project

T = TypeVar("T")


class FindsOrCreates:
    """`get_or_create_project` and `get_or_create_experiment` on top of a tracker's get/create methods."""

    def get_or_create_project(self, name: str, *, description: str = "", user_id: int | None = None) -> Project:
        """The project named `name`, created (with `description`, owned by `user_id`) when there is none.
        Two processes asking at once both get the one project."""
        tracker: Any = self
        return _found_or_created(
            lambda: tracker.get_project_by_name(name),
            lambda: tracker.create_project(name, description=description, user_id=user_id).id,
            tracker.get_project,
        )

    def get_or_create_experiment(self, project_id: int, name: str, *, description: str = "") -> Experiment:
        """The project's experiment named `name`, created IN_PROGRESS (with `description`) when there is
        none. Two processes asking at once both get the one experiment."""
        tracker: Any = self
        return _found_or_created(
            lambda: tracker.get_experiment_by_name(project_id, name),
            lambda: tracker.create_experiment(
                project_id, ExperimentStatus.IN_PROGRESS, name, description=description
            ).id,
            tracker.get_experiment,
        )


def _found_or_created(find: Callable[[], T | None], create: Callable[[], int], get: Callable[[int], T | None]) -> T:
    found = find()
    if found is not None:
        return found
    try:
        made = get(create())
    except Conflict:  # another process created it between our read and our write
        made = find()
        if made is None:
            raise
    assert made is not None
    return made
