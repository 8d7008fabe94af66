"""Projects and their experiments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from .. import schema as t
from ..enums import ExperimentStatus, Result
from ..errors import Conflict, Unprocessable
from ..finding import FindsOrCreates
from ..records import (
    Created,
    Experiment,
    Project,
)
from ..statements import can_hold, update_row
from ..validation import (
    check_datetime,
    check_enum,
    check_id,
    check_name,
    check_text,
)
from .base import (
    _UNSET,
    DEFAULT_USERNAME,
    TrackerBase,
    _experiment,
    _none_stored,
    _now,
    _paged,
    _record,
)


class ProjectsMixin(FindsOrCreates, TrackerBase):

    def create_project(self, name: str, *, description: str = "", user_id: int | None = None) -> Created:
        """A project, owned by `user_id` (default: the `default` user), who gets every permission on it."""
        name = check_name(name)
        description = check_text(description, "description")
        with _name_race("a project", name), self._write() as conn:
            if user_id is None:
                owner = conn.execute(select(t.users.c.id).where(t.users.c.username == DEFAULT_USERNAME)).first()
                owner_id = owner.id
            else:
                owner_id = self._require(conn, t.users, check_id(user_id, "user_id"), "user_id").id
            _check_free_project_name(conn, name)
            new_id = conn.execute(
                insert(t.projects).values(name=name, description=description, created_date=_now())
            ).inserted_primary_key[0]
            conn.execute(
                insert(t.user_permissions).values(
                    user_id=owner_id,
                    project_id=new_id,
                    create_permission=True,
                    read_permission=True,
                    update_permission=True,
                    delete_permission=True,
                )
            )
        return Created(new_id, Result.CREATED)

    def get_project(self, project_id: int) -> Project | None:
        return _record(Project, self._fetch_one(t.projects, project_id, "project_id"))

    def get_projects(
        self, *, user_id: int | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Project]:
        """Every project, or with `user_id` the ones that user may read (an admin reads all)."""
        stmt = select(t.projects).order_by(t.projects.c.id)
        with self._read() as conn:
            if user_id is not None:
                user = self._require(conn, t.users, check_id(user_id, "user_id"), "user_id")
                if not user.is_admin:
                    up = t.user_permissions
                    readable = select(up.c.project_id).where(up.c.user_id == user.id, up.c.read_permission)
                    stmt = stmt.where(t.projects.c.id.in_(readable))
            return [_record(Project, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def get_project_by_name(self, name: str) -> Project | None:
        """The project with this name (names are unique; the match is exact)."""
        name = check_name(name)
        with self._read() as conn:
            stmt = select(t.projects).where(t.projects.c.name == name).order_by(t.projects.c.id).limit(1)
            return _record(Project, conn.execute(stmt).first())

    def update_project(self, project_id: int, *, name: str | None = None, description: str | None = None) -> Result:
        project_id = check_id(project_id, "project_id")
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = check_name(name)
        if description is not None:
            values["description"] = check_text(description, "description")
        with _name_race("a project", values.get("name", "")), self._write() as conn:
            self._require(conn, t.projects, project_id, "project_id")
            if "name" in values:
                _check_free_project_name(conn, values["name"], project_id)
            if values:
                update_row(conn, t.projects, project_id, values)
        return Result.UPDATED

    def delete_project(self, project_id: int) -> bool:
        """Deletes the project with its experiments, iterations and resources (files included)."""
        return self._delete(t.projects, project_id, "project_id", files=lambda project: t.resources.c.experiment_id.in_(
            select(t.experiments.c.id).where(t.experiments.c.project_id == project)
        ))

    def create_experiment(
        self, project_id: int, status: ExperimentStatus | int, name: str, *, description: str = ""
    ) -> Created:
        project_id = check_id(project_id, "project_id")
        status = check_enum(status, ExperimentStatus, "status")
        if status is not ExperimentStatus.IN_PROGRESS:
            raise Unprocessable("status: a new experiment must be IN_PROGRESS", field="status")
        name = check_name(name)
        description = check_text(description, "description")
        with _name_race("an experiment", name), self._write() as conn:
            self._require(conn, t.projects, project_id, "project_id")
            _check_free_experiment_name(conn, project_id, name)
            new_id = conn.execute(
                insert(t.experiments).values(
                    project_id=project_id, status=int(status), name=name, description=description,
                    created_date=_now(), end_date=None,
                )
            ).inserted_primary_key[0]
        return Created(new_id, Result.CREATED)

    def get_experiment(self, experiment_id: int) -> Experiment | None:
        return _experiment(self._fetch_one(t.experiments, experiment_id, "experiment_id"))

    def get_experiments(self, project_id: int, *, limit: int | None = None, offset: int = 0) -> list[Experiment]:
        project_id = check_id(project_id, "project_id")
        if not can_hold(t.experiments.c.project_id, project_id):
            return _none_stored(limit, offset)
        e = t.experiments
        stmt = select(e).where(e.c.project_id == project_id).order_by(e.c.id)
        with self._read() as conn:
            return [_experiment(r) for r in conn.execute(_paged(stmt, limit, offset))]  # type: ignore[misc]

    def get_experiment_by_name(self, project_id: int, name: str) -> Experiment | None:
        project_id = check_id(project_id, "project_id")
        if not can_hold(t.experiments.c.project_id, project_id):
            return None
        name = check_name(name)
        e = t.experiments
        stmt = select(e).where(e.c.project_id == project_id, e.c.name == name).order_by(e.c.id).limit(1)
        with self._read() as conn:
            return _experiment(conn.execute(stmt).first())

    def update_experiment(
        self,
        experiment_id: int,
        *,
        status: ExperimentStatus | int | None = None,
        name: str | None = None,
        description: str | None = None,
        end_date: datetime | None = _UNSET,
    ) -> Result:
        """Moving to STOPPED or FINISHED stamps `end_date` (unless given); back to IN_PROGRESS clears it."""
        experiment_id = check_id(experiment_id, "experiment_id")
        values: dict[str, Any] = {}
        if status is not None:
            status = check_enum(status, ExperimentStatus, "status")
            values["status"] = int(status)
            values["end_date"] = None if status is ExperimentStatus.IN_PROGRESS else _now()
        if name is not None:
            values["name"] = check_name(name)
        if description is not None:
            values["description"] = check_text(description, "description")
        if end_date is not _UNSET:
            values["end_date"] = None if end_date is None else check_datetime(end_date, "end_date")
        with _name_race("an experiment", values.get("name", "")), self._write() as conn:
            row = self._require(conn, t.experiments, experiment_id, "experiment_id")
            if "name" in values:
                _check_free_experiment_name(conn, row.project_id, values["name"], experiment_id)
            if values:
                update_row(conn, t.experiments, experiment_id, values)
        return Result.UPDATED

    def delete_experiment(self, experiment_id: int) -> bool:
        return self._delete(t.experiments, experiment_id, "experiment_id",
                            files=lambda experiment: t.resources.c.experiment_id == experiment)


# Checked inside the writing transaction (SQLite's write lock serialises it); on PostgreSQL two concurrent
# creators can both pass the check, and the unique index refuses the second: `_name_race` makes that the
# same Conflict.
def _check_free_project_name(conn: Any, name: str, own_id: int | None = None) -> None:
    found = conn.execute(select(t.projects.c.id).where(t.projects.c.name == name)).first()
    if found is not None and found.id != own_id:
        raise Conflict(f"name: a project named {name!r} already exists (#{found.id})", field="name")


def _check_free_experiment_name(conn: Any, project_id: int, name: str, own_id: int | None = None) -> None:
    e = t.experiments
    found = conn.execute(select(e.c.id).where(e.c.project_id == project_id, e.c.name == name)).first()
    if found is not None and found.id != own_id:
        raise Conflict(
            f"name: project {project_id} already has an experiment named {name!r} (#{found.id})", field="name"
        )


@contextmanager
def _name_race(what: str, name: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        text = str(exc.orig)
        if "uq_project_name" not in text and "uq_experiment_project_id_name" not in text and (
            "UNIQUE constraint failed" not in text or ".name" not in text
        ):
            raise
        raise Conflict(f"name: {what} named {name!r} already exists", field="name") from None
