"""The model registry: models of a project, their numbered versions, stages and aliases.

Every write that numbers versions, changes a stage or moves an alias first locks the model's row
(`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's writes hold the database's write lock from BEGIN
IMMEDIATE), so concurrent writers on one model run one after the other: two new versions get two
numbers, and of two promotions to PRODUCTION the later archives the earlier.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import schema as t
from ..enums import ModelStage, Result
from ..errors import Conflict, Unprocessable
from ..records import Created, Model, ModelAlias, ModelVersion
from ..statements import can_hold, update_row
from ..validation import check_enum, check_id, check_name, check_text
from .base import _UNSET, TrackerBase, _none_stored, _now, _paged


class ModelsMixin(TrackerBase):
    # -- models -----------------------------------------------------------------------------------

    def create_model(self, project_id: int, name: str, *, description: str = "") -> Created:
        """A registered model in a project; its name is unique there (Conflict otherwise)."""
        project_id = check_id(project_id, "project_id")
        name = check_name(name)
        description = check_text(description, "description")
        with _name_race(name), self._write() as conn:
            self._require(conn, t.projects, project_id, "project_id")
            _check_free_model_name(conn, project_id, name)
            new_id = conn.execute(
                insert(t.models).values(
                    project_id=project_id,
                    name=name,
                    description=description,
                    created_date=_now(),
                    updated_date=None,
                    latest_version=0,
                )
            ).inserted_primary_key[0]
        return Created(new_id, Result.CREATED)

    def get_model(self, model_id: int) -> Model | None:
        return _model(self._fetch_one(t.models, model_id, "model_id"))

    def get_model_by_name(self, project_id: int, name: str) -> Model | None:
        project_id = check_id(project_id, "project_id")
        name = check_name(name)
        if not can_hold(t.models.c.project_id, project_id):
            return None
        m = t.models
        with self._read() as conn:
            return _model(conn.execute(select(m).where(m.c.project_id == project_id, m.c.name == name)).first())

    def get_models(self, project_id: int, *, limit: int | None = None, offset: int = 0) -> list[Model]:
        """A project's models, ordered by id."""
        project_id = check_id(project_id, "project_id")
        m = t.models
        if not can_hold(m.c.project_id, project_id):
            return _none_stored(limit, offset)
        stmt = select(m).where(m.c.project_id == project_id).order_by(m.c.id)
        with self._read() as conn:
            return [_model(row) for row in conn.execute(_paged(stmt, limit, offset))]  # type: ignore[misc]

    def update_model(self, model_id: int, *, name: str | None = None, description: str | None = None) -> Result:
        model_id = check_id(model_id, "model_id")
        values: dict[str, Any] = {"updated_date": _now()}
        if name is not None:
            values["name"] = check_name(name)
        if description is not None:
            values["description"] = check_text(description, "description")
        with _name_race(values.get("name", "")), self._write() as conn:
            row = self._require(conn, t.models, model_id, "model_id")
            if "name" in values:
                _check_free_model_name(conn, row.project_id, values["name"], model_id)
            update_row(conn, t.models, model_id, values)
        return Result.UPDATED

    def delete_model(self, model_id: int) -> bool:
        """Deletes the model with its versions and aliases; the resources holding weights stay."""
        return self._delete(t.models, model_id, "model_id")

    # -- versions ---------------------------------------------------------------------------------

    def create_model_version(
        self, model_id: int, iteration_id: int, *, resource_id: int | None = None, description: str = ""
    ) -> Created:
        """The model's next version (1, 2, ...; a number is never handed out twice), made by
        `iteration_id`, its weights in `resource_id`; both must belong to the model's project. It
        starts at NO_STAGE."""
        model_id = check_id(model_id, "model_id")
        iteration_id = check_id(iteration_id, "iteration_id")
        resource_id = None if resource_id is None else check_id(resource_id, "resource_id")
        description = check_text(description, "description")
        with self._write() as conn:
            model = _lock_model(conn, model_id)
            _check_in_project(conn, "iteration", iteration_id, model.project_id)
            if resource_id is not None:
                _check_in_project(conn, "resource", resource_id, model.project_id)
            number = model.latest_version + 1
            now = _now()
            conn.execute(update(t.models).where(t.models.c.id == model_id).values(latest_version=number))
            new_id = conn.execute(
                insert(t.model_versions).values(
                    model_id=model_id,
                    version=number,
                    iteration_id=iteration_id,
                    resource_id=resource_id,
                    stage=int(ModelStage.NO_STAGE),
                    description=description,
                    created_date=now,
                    updated_date=None,
                )
            ).inserted_primary_key[0]
        return Created(new_id, Result.CREATED)

    def get_model_version(self, model_version_id: int) -> ModelVersion | None:
        return _version(self._fetch_one(t.model_versions, model_version_id, "model_version_id"))

    def get_model_versions(
        self,
        model_id: int,
        *,
        stage: ModelStage | int | str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ModelVersion]:
        """A model's versions ordered by number (only those at `stage` when given)."""
        model_id = check_id(model_id, "model_id")
        v = t.model_versions
        stmt = select(v).where(v.c.model_id == model_id).order_by(v.c.version)
        if stage is not None:
            stmt = stmt.where(v.c.stage == int(check_enum(stage, ModelStage, "stage")))
        if not can_hold(v.c.model_id, model_id):
            return _none_stored(limit, offset)
        with self._read() as conn:
            return [_version(row) for row in conn.execute(_paged(stmt, limit, offset))]  # type: ignore[misc]

    def update_model_version(
        self,
        model_version_id: int,
        *,
        stage: ModelStage | int | str | None = None,
        description: str | None = None,
        resource_id: int | None = _UNSET,
    ) -> Result:
        """Change a version's stage, description or resource (None detaches it). Any stage may follow
        any other; moving one to PRODUCTION archives the model's other PRODUCTION versions in the
        same transaction, so a model never has two."""
        model_version_id = check_id(model_version_id, "model_version_id")
        values: dict[str, Any] = {}
        if stage is not None:
            values["stage"] = int(check_enum(stage, ModelStage, "stage"))
        if description is not None:
            values["description"] = check_text(description, "description")
        if resource_id is not _UNSET:
            values["resource_id"] = None if resource_id is None else check_id(resource_id, "resource_id")
        with self._write() as conn:
            row = self._require(conn, t.model_versions, model_version_id, "model_version_id")
            model = _lock_model(conn, row.model_id)
            if values.get("resource_id") is not None:
                _check_in_project(conn, "resource", values["resource_id"], model.project_id)
            now = _now()
            if values.get("stage") == ModelStage.PRODUCTION:
                v = t.model_versions
                conn.execute(
                    update(v)
                    .where(
                        v.c.model_id == row.model_id,
                        v.c.stage == int(ModelStage.PRODUCTION),
                        v.c.id != model_version_id,
                    )
                    .values(stage=int(ModelStage.ARCHIVED), updated_date=now)
                )
            update_row(conn, t.model_versions, model_version_id, {**values, "updated_date": now})
        return Result.UPDATED

    def delete_model_version(self, model_version_id: int) -> bool:
        """Deletes the version and the aliases pointing at it; its number is not handed out again."""
        return self._delete(t.model_versions, model_version_id, "model_version_id")

    # -- aliases ----------------------------------------------------------------------------------

    def set_model_alias(self, model_id: int, alias: str, version: int) -> Result:
        """Point `alias` (`champion`) at the model's version `version`, moving it if it pointed
        elsewhere: CREATED for a new alias, UPDATED for a moved one."""
        model_id = check_id(model_id, "model_id")
        alias = check_name(alias, "alias")
        version = check_id(version, "version")
        v, a = t.model_versions, t.model_aliases
        with self._write() as conn:
            _lock_model(conn, model_id)
            target = conn.execute(select(v.c.id).where(v.c.model_id == model_id, v.c.version == version)).first()
            if target is None:
                raise Unprocessable(f"version: model {model_id} has no version {version}", field="version")
            moved = conn.execute(
                update(a).where(a.c.model_id == model_id, a.c.alias == alias).values(model_version_id=target.id)
            ).rowcount
            if not moved:
                conn.execute(insert(a).values(model_id=model_id, alias=alias, model_version_id=target.id))
        return Result.UPDATED if moved else Result.CREATED

    def get_model_aliases(self, model_id: int) -> list[ModelAlias]:
        """The model's aliases, ordered by name."""
        model_id = check_id(model_id, "model_id")
        v, a = t.model_versions, t.model_aliases
        if not can_hold(a.c.model_id, model_id):
            return []
        stmt = (
            select(a.c.model_id, a.c.alias, a.c.model_version_id, v.c.version)
            .join(v, v.c.id == a.c.model_version_id)
            .where(a.c.model_id == model_id)
            .order_by(a.c.alias)
        )
        with self._read() as conn:
            return [ModelAlias(*row) for row in conn.execute(stmt)]

    def delete_model_alias(self, model_id: int, alias: str) -> bool:
        model_id = check_id(model_id, "model_id")
        alias = check_name(alias, "alias")
        a = t.model_aliases
        if not can_hold(a.c.model_id, model_id):
            return False
        with self._write() as conn:
            return conn.execute(delete(a).where(a.c.model_id == model_id, a.c.alias == alias)).rowcount > 0


def _model(row: Any) -> Model | None:
    if row is None:
        return None
    m = row._mapping
    return Model(m["id"], m["project_id"], m["name"], m["description"], m["created_date"], m["updated_date"])


def _version(row: Any) -> ModelVersion | None:
    if row is None:
        return None
    m = dict(row._mapping)
    m["stage"] = ModelStage(m["stage"])
    return ModelVersion(**m)


def _lock_model(conn: Connection, model_id: int) -> Any:
    """The model's row, locked until the transaction ends (FOR UPDATE is a no-op on SQLite, whose
    write transactions are already exclusive)."""
    m = t.models
    row = None
    if can_hold(m.c.id, model_id):
        row = conn.execute(select(m).where(m.c.id == model_id).with_for_update()).first()
    if row is None:
        raise Unprocessable(f"model_id: model {model_id} does not exist", field="model_id")
    return row


def _check_in_project(conn: Connection, kind: str, row_id: int, project_id: int) -> None:
    """The iteration or resource `row_id` exists and belongs (through its experiment) to `project_id`."""
    table = {"iteration": t.iterations, "resource": t.resources}[kind]
    e, field = t.experiments, f"{kind}_id"
    found = None
    if can_hold(table.c.id, row_id):
        stmt = select(e.c.project_id).join(table, table.c.experiment_id == e.c.id).where(table.c.id == row_id)
        found = conn.execute(stmt).first()
    if found is None:
        raise Unprocessable(f"{field}: {kind} {row_id} does not exist", field=field)
    if found.project_id != project_id:
        raise Unprocessable(
            f"{field}: {kind} {row_id} belongs to project {found.project_id}, not to the "
            f"model's project {project_id}",
            field=field,
        )


def _check_free_model_name(conn: Connection, project_id: int, name: str, own_id: int | None = None) -> None:
    m = t.models
    found = conn.execute(select(m.c.id).where(m.c.project_id == project_id, m.c.name == name)).first()
    if found is not None and found.id != own_id:
        raise Conflict(f"name: project {project_id} already has a model named {name!r} (#{found.id})", field="name")


@contextmanager
def _name_race(name: str) -> Iterator[None]:
    """Two creators of one name on PostgreSQL can both pass the check; the unique index refuses the
    second, which gets the same Conflict."""
    try:
        yield
    except IntegrityError as exc:
        text = str(exc.orig)
        if "uq_model_project_id_name" not in text and "model.project_id, model.name" not in text:
            raise
        raise Conflict(f"name: a model named {name!r} already exists", field="name") from None
