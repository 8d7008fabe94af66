"""Finding the experiment an integration writes into, from names (found, or created when missing) or ids."""

from __future__ import annotations

from typing import Any

from .tracker.enums import ExperimentStatus
from .tracker.errors import Unprocessable


def experiment_for(tracker: Any, project: str | int, experiment: str | int) -> int:
    """The id of `experiment` in `project`. A name is looked up (the oldest match) and created if missing;
    an id must exist."""
    if not isinstance(experiment, str):
        if tracker.get_experiment(experiment) is None:
            raise Unprocessable(f"experiment: experiment {experiment} does not exist", field="experiment")
        return int(experiment)
    if isinstance(project, str):
        found = tracker.get_project_by_name(project)
        project_id = found.id if found is not None else tracker.create_project(project).id
    else:
        project_id = int(project)
        if tracker.get_project(project_id) is None:
            raise Unprocessable(f"project: project {project_id} does not exist", field="project")
    existing = tracker.get_experiment_by_name(project_id, experiment)
    if existing is not None:
        return existing.id
    return tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, experiment).id
