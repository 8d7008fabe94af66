"""Projects and their experiments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..tracker.enums import Result
from ..tracker.finding import FindsOrCreates
from ..tracker.records import (
    Created,
    Experiment,
    Project,
)
from ..tracker.validation import (
    check_id,
    check_name,
)
from .base import (
    _UNSET,
    _enum_value,
    _id_path,
    _when,
)
from .transport import RemoteBase


class ProjectsMixin(FindsOrCreates, RemoteBase):
    # -- projects ---------------------------------------------------------------------------------

    def create_project(self, name: str, *, description: str = "", user_id: int | None = None) -> Created:
        """A project, owned by `user_id` (default: the caller), who gets every permission on it."""
        body = {"name": name, "description": description}
        if user_id is not None:
            body["user_id"] = check_id(user_id, "user_id")
        return self._created(self._call("POST", "/project/", body=body), "project")

    def get_project(self, project_id: int) -> Project | None:
        return self._one(Project, _id_path("/project/{}", project_id, "project_id"))

    def get_projects(self, *, user_id: int | None = None, limit: int | None = None, offset: int = 0) -> list[Project]:
        """Every project, or with `user_id` the ones that user may read (an admin reads all)."""
        uid = None if user_id is None else check_id(user_id, "user_id")
        return self._list(Project, "/project/", limit, offset, user_id=uid)

    def get_project_by_name(self, name: str) -> Project | None:
        return self._one(Project, "/project/by-name", name=check_name(name))

    def update_project(self, project_id: int, *, name: str | None = None, description: str | None = None) -> Result:
        body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
        self._call("PATCH", f"/project/{check_id(project_id, 'project_id')}", body=body)
        return Result.UPDATED

    def delete_project(self, project_id: int) -> bool:
        """Deletes the project with its experiments, iterations and resources (files included)."""
        return self._deleted(_id_path("/project/{}", project_id, "project_id"))

    # -- experiments ------------------------------------------------------------------------------

    def create_experiment(self, project_id: int, status: Any, name: str, *, description: str = "") -> Created:
        body = {"status_id": _enum_value(status), "name": name, "description": description}
        path = f"/experiment/project/{check_id(project_id, 'project_id')}"
        return self._created(self._call("POST", path, body=body), "experiment")

    def get_experiment(self, experiment_id: int) -> Experiment | None:
        return self._one(Experiment, _id_path("/experiment/{}", experiment_id, "experiment_id"))

    def get_experiments(self, project_id: int, *, limit: int | None = None, offset: int = 0) -> list[Experiment]:
        return self._list(Experiment, _id_path("/experiment/project/{}", project_id, "project_id"), limit, offset)

    def get_experiment_by_name(self, project_id: int, name: str) -> Experiment | None:
        path = _id_path("/experiment/project/{}/by-name", project_id, "project_id")
        return self._one(Experiment, path, name=check_name(name))

    def update_experiment(
        self,
        experiment_id: int,
        *,
        status: Any = None,
        name: str | None = None,
        description: str | None = None,
        end_date: datetime | None = _UNSET,
    ) -> Result:
        """Moving to STOPPED or FINISHED stamps `end_date` (unless given); back to IN_PROGRESS clears it."""
        body: dict[str, Any] = {"status_id": _enum_value(status), "name": name, "description": description}
        body = {k: v for k, v in body.items() if v is not None}
        if end_date is not _UNSET:
            body["end_date"] = _when(end_date, "end_date")
        self._call("PATCH", f"/experiment/{check_id(experiment_id, 'experiment_id')}", body=body)
        return Result.UPDATED

    def delete_experiment(self, experiment_id: int) -> bool:
        return self._deleted(_id_path("/experiment/{}", experiment_id, "experiment_id"))
