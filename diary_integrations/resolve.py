"""Finding the experiment an integration writes into, from names (found, or created when missing) or ids."""

from __future__ import annotations

import os
from typing import Any

from .connection import check_uri, resolve_uri
from .tracker.errors import Unprocessable


def uri_argument(uri: object) -> str | None:
    """An integration's `uri` argument as text: None, a string or a path; anything else is refused."""
    if uri is not None and not isinstance(uri, (str, os.PathLike)):
        raise Unprocessable(f"uri must be a string or a path, got {type(uri).__name__}", field="uri")
    return None if uri is None else os.fspath(uri)


def check_destination(project: object, experiment: object, uri: object) -> str:
    """An integration's project and experiment names and `uri`, checked when it is made rather than at its
    first write; returns the URI it will connect to."""
    for name, value in (("project", project), ("experiment", experiment)):
        if not isinstance(value, str) or not value.strip():
            raise Unprocessable(f"{name} must be a non-empty name, got {value!r}", field=name)
    return check_uri(resolve_uri(uri_argument(uri)))


def experiment_for(tracker: Any, project: str | int, experiment: str | int) -> int:
    """The id of `experiment` in `project`. A name is looked up exactly (names are unique) and created if
    missing; an id must exist. Two processes creating the same name at once both end up with the one row."""
    if not isinstance(experiment, str):
        if tracker.get_experiment(experiment) is None:
            raise Unprocessable(f"experiment: experiment {experiment} does not exist", field="experiment")
        return int(experiment)
    if isinstance(project, str):
        project_id = tracker.get_or_create_project(project).id
    else:
        project_id = int(project)
        if tracker.get_project(project_id) is None:
            raise Unprocessable(f"project: project {project_id} does not exist", field="project")
    return int(tracker.get_or_create_experiment(project_id, experiment).id)
