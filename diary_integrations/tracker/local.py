"""LocalTracker: DearDiary's rules over SQLAlchemy, one transaction per call.

Every public method validates its input before it opens a transaction, so a bad input raises a typed
error (naming the field and the rule) and writes nothing. Foreign keys do the cascades, and
`iteration.parent_iteration_id` is `ON DELETE SET NULL`, so children outlive a deleted driver.
"""

from __future__ import annotations

import atexit
import dataclasses
import math
import os
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from . import hotpath
from . import schema as t
from .artifacts import FilesystemStore, InlineStore, delete_file_artifact, read_file_artifact
from .database import DEFAULT_URI, create_tracker_engine, normalize_url, read_transaction, write_transaction
from .enums import ArtifactBackend, ExperimentStatus, IterationStatus, Result, TagTarget
from .environment import capture_environment
from .errors import Conflict, Unprocessable
from .lifecycle import IterationRun
from .migrate import upgrade_to_head
from .records import (
    Created,
    Environment,
    Experiment,
    Iteration,
    Metric,
    Parameter,
    Project,
    Resource,
    Tag,
    User,
    UserPermission,
)
from .statements import can_hold, fetch_by_id, insert_row, insert_rows, select_where, update_row
from .validation import (
    MAX_PASSWORD,
    MAX_TEXT,
    MAX_USERNAME,
    check_bool,
    check_datetime,
    check_enum,
    check_id,
    check_key,
    check_max_points,
    check_metric_value,
    check_name,
    check_optional_id,
    check_page,
    check_step,
    check_text,
    format_parameter_value,
)

DEFAULT_USERNAME = "default"
DEFAULT_PASSWORD = "default"
# Writes refresh an iteration's heartbeat at most this often, so the hot path pays for it rarely.
HEARTBEAT_REFRESH_SECONDS = 5.0

_UNSET: Any = object()
_hasher = PasswordHasher()

_TAG_LINKS: dict[TagTarget, tuple[Table, str, Table]] = {
    TagTarget.PROJECT: (t.project_tags, "project_id", t.projects),
    TagTarget.EXPERIMENT: (t.experiment_tags, "experiment_id", t.experiments),
    TagTarget.ITERATION: (t.iteration_tags, "iteration_id", t.iterations),
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _paged(stmt: Select[Any], limit: int | None, offset: int) -> Select[Any]:
    limit, offset = check_page(limit, offset)
    if offset:
        stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def _none_stored(limit: int | None, offset: int) -> list[Any]:
    """The empty page for an id no row can have; the paging arguments are still checked."""
    check_page(limit, offset)
    return []


def _chunks(ids: list[int], size: int = 900) -> list[list[int]]:
    """Id lists cut to stay under SQLite's bound-parameter limit on old builds."""
    return [ids[n : n + size] for n in range(0, len(ids), size)] if ids else []


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _same_point(a: tuple[int, float], b: tuple[int, float]) -> bool:
    return a[0] == b[0] and (a[1] == b[1] or (a[1] != a[1] and b[1] != b[1]))


def _record(cls: type, row: Any) -> Any:
    return None if row is None else cls(**row._mapping)


def _user(row: Any) -> User | None:
    if row is None:
        return None
    m = row._mapping
    return User(m["id"], m["username"], m["first_name"], m["last_name"], m["is_admin"], m["created_date"])


def _experiment(row: Any) -> Experiment | None:
    if row is None:
        return None
    m = dict(row._mapping)
    m["status"] = ExperimentStatus(m["status"])
    return Experiment(**m)


_STATUSES = {int(status): status for status in IterationStatus}
# Iteration records are built positionally (listing 10,000 children is a hot read): the table's
# columns and the record's fields must stay in the same order.
assert [c.name for c in t.iterations.c] == [f.name for f in dataclasses.fields(Iteration)]


def _iteration(row: Any) -> Iteration | None:
    if row is None:
        return None
    return Iteration(row[0], row[1], row[2], _STATUSES[row[3]], *row[4:])


_RESOURCE_COLUMNS = [c for c in t.resources.c if c.name != "data"]


def _resource(row: Any) -> Resource | None:
    if row is None:
        return None
    m = dict(row._mapping)
    m["backend"] = ArtifactBackend(m["backend"])
    return Resource(**m)


_open_trackers: weakref.WeakSet[LocalTracker] = weakref.WeakSet()


@atexit.register
def _close_open_trackers() -> None:
    # Closing the last connection lets SQLite fold its WAL back into the .db file, so a database
    # copied after the program ends is complete. Registered at import, so it runs after the
    # integrations' own exit flushes (atexit runs last-registered first).
    for tracker in list(_open_trackers):
        tracker.close()


class LocalTracker:
    """The tracker on a database reached directly: `sqlite:///file.db` (default) or PostgreSQL.

    It pickles to its URL and artifact root and reconnects lazily in the new process, which is how
    scikit-learn workers and DDP ranks share one tracker.
    """

    def __init__(
        self, url: str | os.PathLike[str] = DEFAULT_URI, *, artifact_root: str | os.PathLike[str] | None = None
    ) -> None:
        self.url = normalize_url(url)
        self.artifact_root = None if artifact_root is None else str(Path(artifact_root).expanduser().resolve())
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._last_beat: dict[int, float] = {}

    # -- connection -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"LocalTracker({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "artifact_root": self.artifact_root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], artifact_root=state["artifact_root"])  # type: ignore[misc]

    @property
    def engine(self) -> Engine:
        """The engine, created (and the schema migrated, the default user seeded) on first use."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    engine = create_tracker_engine(self.url)
                    upgrade_to_head(engine)
                    self._seed_default_user(engine)
                    self._engine = engine
                    _open_trackers.add(self)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _seed_default_user(self, engine: Engine) -> None:
        with engine.connect() as conn:
            if conn.execute(select(t.users.c.id).where(t.users.c.username == DEFAULT_USERNAME)).first():
                return
        try:
            with write_transaction(engine) as conn:
                conn.execute(
                    insert(t.users).values(
                        username=DEFAULT_USERNAME,
                        password_hash=_hasher.hash(DEFAULT_PASSWORD),
                        first_name="Default User",
                        last_name="",
                        is_admin=True,
                        created_date=_now(),
                    )
                )
        except IntegrityError:
            pass  # another process seeded it first

    def _write(self):  # type: ignore[no-untyped-def]
        return write_transaction(self.engine)

    def _read(self):  # type: ignore[no-untyped-def]
        return read_transaction(self.engine)

    @staticmethod
    def _require(conn: Connection, table: Table, id_: int, field: str) -> Any:
        row = fetch_by_id(conn, table, id_)
        if row is None:
            raise Unprocessable(f"{field}: {table.name} {id_} does not exist", field=field)
        return row

    def _fetch_one(self, table: Table, id_: Any, field: str = "id") -> Any:
        id_ = check_id(id_, field)
        with self._read() as conn:
            return fetch_by_id(conn, table, id_)

    def _delete(self, table: Table, id_: Any, field: str = "id") -> bool:
        id_ = check_id(id_, field)
        if not can_hold(table.c.id, id_):
            return False
        with self._write() as conn:
            return conn.execute(delete(table).where(table.c.id == id_)).rowcount > 0

    # -- users ------------------------------------------------------------------------------------

    def get_user(self, user: int | str) -> User | None:
        """By id, or by username when given a string."""
        if isinstance(user, str):
            with self._read() as conn:
                return _user(conn.execute(select(t.users).where(t.users.c.username == user)).first())
        return _user(self._fetch_one(t.users, user, "user_id"))

    def get_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        with self._read() as conn:
            rows = conn.execute(_paged(select(t.users).order_by(t.users.c.id), limit, offset))
            return [_user(r) for r in rows]  # type: ignore[misc]

    def create_user(
        self,
        username: str,
        password: str,
        *,
        first_name: str = "",
        last_name: str = "",
        is_admin: bool = False,
    ) -> Created:
        username = check_text(username, "username", max_length=MAX_USERNAME, allow_empty=False)
        password = check_text(password, "password", max_length=MAX_PASSWORD, allow_empty=False)
        values = {
            "username": username,
            "password_hash": _hasher.hash(password),
            "first_name": check_text(first_name, "first_name", max_length=MAX_USERNAME),
            "last_name": check_text(last_name, "last_name", max_length=MAX_USERNAME),
            "is_admin": check_bool(is_admin, "is_admin"),
            "created_date": _now(),
        }
        try:
            with self._write() as conn:
                if conn.execute(select(t.users.c.id).where(t.users.c.username == username)).first():
                    raise Conflict(f"username {username!r} is taken", field="username")
                new_id = insert_row(conn, t.users, values)
        except IntegrityError:
            raise Conflict(f"username {username!r} is taken", field="username") from None
        return Created(new_id, Result.CREATED)

    def update_user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        password: str | None = None,
        is_admin: bool | None = None,
    ) -> Result:
        user_id = check_id(user_id, "user_id")
        values: dict[str, Any] = {}
        if first_name is not None:
            values["first_name"] = check_text(first_name, "first_name", max_length=MAX_USERNAME)
        if last_name is not None:
            values["last_name"] = check_text(last_name, "last_name", max_length=MAX_USERNAME)
        if password is not None:
            password = check_text(password, "password", max_length=MAX_PASSWORD, allow_empty=False)
            values["password_hash"] = _hasher.hash(password)
        if is_admin is not None:
            values["is_admin"] = check_bool(is_admin, "is_admin")
        with self._write() as conn:
            row = self._require(conn, t.users, user_id, "user_id")
            if row.username == DEFAULT_USERNAME and values.get("is_admin") is False:
                raise Unprocessable("is_admin: the default user stays an administrator", field="is_admin")
            if values:
                conn.execute(update(t.users).where(t.users.c.id == user_id).values(values))
        return Result.UPDATED

    def delete_user(self, user_id: int) -> bool:
        user_id = check_id(user_id, "user_id")
        if not can_hold(t.users.c.id, user_id):
            return False
        with self._write() as conn:
            row = conn.execute(select(t.users.c.username).where(t.users.c.id == user_id)).first()
            if row is None:
                return False
            if row.username == DEFAULT_USERNAME:
                raise Unprocessable("user_id: the default user cannot be deleted", field="user_id")
            conn.execute(delete(t.users).where(t.users.c.id == user_id))
        return True

    def authenticate(self, username: str, password: str) -> User | None:
        """The user whose password this is, or None."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        with self._read() as conn:
            row = conn.execute(select(t.users).where(t.users.c.username == username)).first()
        if row is None:
            return None
        try:
            _hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return _user(row)

    # -- permissions ------------------------------------------------------------------------------

    def create_user_permission(
        self,
        user_id: int,
        project_id: int,
        *,
        create: bool = False,
        read: bool = True,
        update: bool = False,
        delete: bool = False,
    ) -> Created:
        user_id = check_id(user_id, "user_id")
        project_id = check_id(project_id, "project_id")
        values = {
            "user_id": user_id,
            "project_id": project_id,
            "create_permission": check_bool(create, "create"),
            "read_permission": check_bool(read, "read"),
            "update_permission": check_bool(update, "update"),
            "delete_permission": check_bool(delete, "delete"),
        }
        with self._write() as conn:
            self._require(conn, t.users, user_id, "user_id")
            self._require(conn, t.projects, project_id, "project_id")
            up = t.user_permissions
            if conn.execute(
                select(up.c.id).where(up.c.user_id == user_id, up.c.project_id == project_id)
            ).first():
                raise Conflict(
                    f"user {user_id} already has a permission row on project {project_id}", field="project_id"
                )
            new_id = insert_row(conn, up, values)
        return Created(new_id, Result.CREATED)

    def get_user_permission(self, user_id: int, project_id: int) -> UserPermission | None:
        user_id = check_id(user_id, "user_id")
        project_id = check_id(project_id, "project_id")
        up = t.user_permissions
        if not (can_hold(up.c.user_id, user_id) and can_hold(up.c.project_id, project_id)):
            return None
        with self._read() as conn:
            row = conn.execute(
                select(up).where(up.c.user_id == user_id, up.c.project_id == project_id)
            ).first()
        return _record(UserPermission, row)

    def get_user_permissions(
        self,
        *,
        user_id: int | None = None,
        project_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[UserPermission]:
        up = t.user_permissions
        stmt = select(up).order_by(up.c.id)
        wanted = {f: check_id(i, f) for f, i in (("user_id", user_id), ("project_id", project_id)) if i is not None}
        for field, id_ in wanted.items():
            if not can_hold(up.c[field], id_):
                return _none_stored(limit, offset)
            stmt = stmt.where(up.c[field] == id_)
        with self._read() as conn:
            return [_record(UserPermission, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def update_user_permission(
        self,
        permission_id: int,
        *,
        create: bool | None = None,
        read: bool | None = None,
        update: bool | None = None,
        delete: bool | None = None,
    ) -> Result:
        permission_id = check_id(permission_id, "permission_id")
        flags = {"create": create, "read": read, "update": update, "delete": delete}
        values = {f"{k}_permission": check_bool(v, k) for k, v in flags.items() if v is not None}
        with self._write() as conn:
            self._require(conn, t.user_permissions, permission_id, "permission_id")
            if values:
                update_row(conn, t.user_permissions, permission_id, values)
        return Result.UPDATED

    def delete_user_permission(self, permission_id: int) -> bool:
        return self._delete(t.user_permissions, permission_id, "permission_id")

    # -- projects ---------------------------------------------------------------------------------

    def create_project(self, name: str, *, description: str = "", user_id: int | None = None) -> Created:
        """A project, owned by `user_id` (default: the `default` user), who gets every permission on it."""
        name = check_name(name)
        description = check_text(description, "description")
        with self._write() as conn:
            if user_id is None:
                owner = conn.execute(select(t.users.c.id).where(t.users.c.username == DEFAULT_USERNAME)).first()
                owner_id = owner.id
            else:
                owner_id = self._require(conn, t.users, check_id(user_id, "user_id"), "user_id").id
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
        """The oldest project with this name (names are not unique, as in DearDiary)."""
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
        with self._write() as conn:
            self._require(conn, t.projects, project_id, "project_id")
            if values:
                update_row(conn, t.projects, project_id, values)
        return Result.UPDATED

    def delete_project(self, project_id: int) -> bool:
        """Deletes the project with its experiments, iterations and resources (files included)."""
        project_id = check_id(project_id, "project_id")
        if not can_hold(t.projects.c.id, project_id):
            return False
        with self._write() as conn:
            uris = self._file_uris(conn, t.resources.c.experiment_id.in_(
                select(t.experiments.c.id).where(t.experiments.c.project_id == project_id)
            ))
            deleted = conn.execute(delete(t.projects).where(t.projects.c.id == project_id)).rowcount > 0
        self._remove_files(uris)
        return deleted

    # -- experiments ------------------------------------------------------------------------------

    def create_experiment(
        self, project_id: int, status: ExperimentStatus | int, name: str, *, description: str = ""
    ) -> Created:
        project_id = check_id(project_id, "project_id")
        status = check_enum(status, ExperimentStatus, "status")
        if status is not ExperimentStatus.IN_PROGRESS:
            raise Unprocessable("status: a new experiment must be IN_PROGRESS", field="status")
        name = check_name(name)
        description = check_text(description, "description")
        with self._write() as conn:
            self._require(conn, t.projects, project_id, "project_id")
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
        with self._write() as conn:
            self._require(conn, t.experiments, experiment_id, "experiment_id")
            if values:
                update_row(conn, t.experiments, experiment_id, values)
        return Result.UPDATED

    def delete_experiment(self, experiment_id: int) -> bool:
        experiment_id = check_id(experiment_id, "experiment_id")
        if not can_hold(t.experiments.c.id, experiment_id):
            return False
        with self._write() as conn:
            uris = self._file_uris(conn, t.resources.c.experiment_id == experiment_id)
            deleted = conn.execute(delete(t.experiments).where(t.experiments.c.id == experiment_id)).rowcount > 0
        self._remove_files(uris)
        return deleted

    # -- iterations -------------------------------------------------------------------------------

    def create_iteration(
        self,
        experiment_id: int,
        *,
        parent_iteration_id: int | None = None,
        notes: str = "",
        snapshot: bool | None = None,
    ) -> Created:
        """A RUNNING iteration. A parent must exist in the same experiment. `snapshot` (default: only
        for top-level iterations) stores the environment beside it."""
        experiment_id = check_id(experiment_id, "experiment_id")
        parent_iteration_id = check_optional_id(parent_iteration_id, "parent_iteration_id")
        notes = check_text(notes, "notes")
        if snapshot is None:
            snapshot = parent_iteration_id is None
        env = capture_environment() if check_bool(snapshot, "snapshot") else None
        now = _now()
        with self._write() as conn:
            experiment = self._require(conn, t.experiments, experiment_id, "experiment_id")
            if experiment.status != ExperimentStatus.IN_PROGRESS:
                raise Unprocessable(
                    f"experiment_id: experiment {experiment_id} is {ExperimentStatus(experiment.status).name}; "
                    "iterations can only be added to an IN_PROGRESS experiment",
                    field="experiment_id",
                )
            if parent_iteration_id is not None:
                parent = fetch_by_id(conn, t.iterations, parent_iteration_id)
                if parent is None:
                    raise Unprocessable(
                        f"parent_iteration_id: iteration {parent_iteration_id} does not exist",
                        field="parent_iteration_id",
                    )
                if parent.experiment_id != experiment_id:
                    raise Unprocessable(
                        f"parent_iteration_id: iteration {parent_iteration_id} belongs to experiment "
                        f"{parent.experiment_id}, not {experiment_id}; a parent must be in the same experiment",
                        field="parent_iteration_id",
                    )
            new_id = insert_row(conn, t.iterations, {
                "experiment_id": experiment_id,
                "parent_iteration_id": parent_iteration_id,
                "status": int(IterationStatus.RUNNING),
                "notes": notes,
                "error_message": "",
                "traceback": "",
                "created_date": now,
                "end_date": None,
                "heartbeat_date": now,
            })
            if env is not None:
                insert_row(conn, t.environments, {"iteration_id": new_id, **dataclasses.asdict(env)})
        self._last_beat[new_id] = time.monotonic()
        return Created(new_id, Result.CREATED)

    def get_iteration(self, iteration_id: int) -> Iteration | None:
        return _iteration(self._fetch_one(t.iterations, iteration_id, "iteration_id"))

    def get_iterations(
        self,
        experiment_id: int,
        *,
        status: IterationStatus | int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Iteration]:
        experiment_id = check_id(experiment_id, "experiment_id")
        it = t.iterations
        stmt = select(it).where(it.c.experiment_id == experiment_id).order_by(it.c.id)
        if status is not None:
            stmt = stmt.where(it.c.status == int(check_enum(status, IterationStatus, "status")))
        if not can_hold(it.c.experiment_id, experiment_id):
            return _none_stored(limit, offset)
        with self._read() as conn:
            return [_iteration(r) for r in conn.execute(_paged(stmt, limit, offset))]  # type: ignore[misc]

    def get_child_iterations(
        self, iteration_id: int, *, limit: int | None = None, offset: int = 0
    ) -> list[Iteration]:
        """The direct children of an iteration, ordered by id."""
        iteration_id = check_id(iteration_id, "iteration_id")
        it = t.iterations
        if not can_hold(it.c.parent_iteration_id, iteration_id):
            return _none_stored(limit, offset)
        stmt = select(it).where(it.c.parent_iteration_id == iteration_id).order_by(it.c.id)
        with self._read() as conn:
            return [_iteration(r) for r in conn.execute(_paged(stmt, limit, offset))]  # type: ignore[misc]

    def get_environment(self, iteration_id: int) -> Environment | None:
        iteration_id = check_id(iteration_id, "iteration_id")
        env = t.environments
        if not can_hold(env.c.iteration_id, iteration_id):
            return None
        with self._read() as conn:
            return _record(Environment, conn.execute(select(env).where(env.c.iteration_id == iteration_id)).first())

    def update_iteration(
        self,
        iteration_id: int,
        *,
        notes: str | None = None,
        status: IterationStatus | int | None = None,
        error_message: str | None = None,
        traceback: str | None = None,
        end_date: datetime | None = _UNSET,
    ) -> Result:
        """Change an iteration. A status other than RUNNING stamps `end_date` unless one is given."""
        iteration_id = check_id(iteration_id, "iteration_id")
        values: dict[str, Any] = {}
        if notes is not None:
            values["notes"] = check_text(notes, "notes")
        if status is not None:
            status = check_enum(status, IterationStatus, "status")
            values["status"] = int(status)
            values["end_date"] = _now() if status.ended else None
        if error_message is not None:
            values["error_message"] = check_text(error_message, "error_message")
        if traceback is not None:
            values["traceback"] = check_text(traceback, "traceback", max_length=4 * MAX_TEXT)
        if end_date is not _UNSET:
            values["end_date"] = None if end_date is None else check_datetime(end_date, "end_date")
        with self._write() as conn:
            self._require(conn, t.iterations, iteration_id, "iteration_id")
            if values:
                update_row(conn, t.iterations, iteration_id, values)
        return Result.UPDATED

    def end_iteration(
        self,
        iteration_id: int,
        status: IterationStatus | int = IterationStatus.SUCCEEDED,
        *,
        error_message: str = "",
        traceback: str = "",
    ) -> Result:
        """Finish a RUNNING iteration with its final status. Ending an ended iteration is refused, so a
        late or duplicate finaliser can never overwrite the status that was first recorded."""
        iteration_id = check_id(iteration_id, "iteration_id")
        status = check_enum(status, IterationStatus, "status")
        if not status.ended:
            raise Unprocessable("status: an iteration is ended with SUCCEEDED, FAILED or KILLED", field="status")
        values = {
            "status": int(status),
            "error_message": check_text(error_message, "error_message"),
            "traceback": check_text(traceback, "traceback", max_length=4 * MAX_TEXT),
            "end_date": _now(),
        }
        with self._write() as conn:
            row = self._require(conn, t.iterations, iteration_id, "iteration_id")
            if row.status != IterationStatus.RUNNING:
                raise Unprocessable(
                    f"iteration_id: iteration {iteration_id} already ended as {IterationStatus(row.status).name}",
                    field="iteration_id",
                )
            update_row(conn, t.iterations, iteration_id, values)
        self._last_beat.pop(iteration_id, None)
        return Result.UPDATED

    def delete_iteration(self, iteration_id: int) -> bool:
        """Deletes the iteration and its data; its children stay, as top-level iterations."""
        return self._delete(t.iterations, iteration_id, "iteration_id")

    def heartbeat(self, *iteration_ids: int) -> None:
        """Mark these iterations alive now (only those still RUNNING)."""
        ids = [i for i in (check_id(i, "iteration_id") for i in iteration_ids) if can_hold(t.iterations.c.id, i)]
        if not ids:
            return
        with self._write() as conn:
            conn.execute(
                update(t.iterations)
                .where(t.iterations.c.id.in_(ids), t.iterations.c.status == int(IterationStatus.RUNNING))
                .values(heartbeat_date=_now())
            )
        beat = time.monotonic()
        for i in ids:
            self._last_beat[i] = beat

    def reap(self, older_than: float | timedelta = 300.0, *, experiment_id: int | None = None) -> list[int]:
        """Mark KILLED every RUNNING iteration whose heartbeat is older than `older_than` (seconds):
        its process died without a word (SIGKILL, OOM killer, lost node). Returns their ids."""
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise Unprocessable(f"older_than must be a non-negative number of seconds, got {older_than!r}",
                                field="older_than")
        cutoff = _now() - timedelta(seconds=seconds)
        it = t.iterations
        stmt = select(it.c.id, it.c.heartbeat_date).where(
            it.c.status == int(IterationStatus.RUNNING), it.c.heartbeat_date < cutoff
        )
        if experiment_id is not None:
            experiment_id = check_id(experiment_id, "experiment_id")
            if not can_hold(it.c.experiment_id, experiment_id):
                return []
            stmt = stmt.where(it.c.experiment_id == experiment_id)
        m = t.metrics
        with self._write() as conn:
            stale = conn.execute(stmt.order_by(it.c.id)).all()
            ids = [row.id for row in stale]
            # The last sign of life is the truest end we know: the heartbeat, or a later metric (writes
            # refresh the heartbeat only every few seconds).
            last_metric = dict(conn.execute(
                select(m.c.iteration_id, func.max(m.c.recorded_at)).where(m.c.iteration_id.in_(ids))
                .group_by(m.c.iteration_id)
            ).all()) if ids else {}
            for row in stale:
                seen = max(row.heartbeat_date, last_metric.get(row.id) or row.heartbeat_date)
                conn.execute(
                    update(it)
                    .where(it.c.id == row.id, it.c.status == int(IterationStatus.RUNNING))
                    .values(
                        status=int(IterationStatus.KILLED),
                        end_date=seen,
                        error_message=f"heartbeat lost: last seen {seen.isoformat()}",
                    )
                )
        return ids

    def with_iteration(
        self,
        experiment_id: int,
        *,
        parent_iteration_id: int | None = None,
        notes: str = "",
        snapshot: bool | None = None,
    ) -> IterationRun:
        """A context manager (and call form) that opens an iteration and finalises it truthfully."""
        return IterationRun(
            self, experiment_id, parent_iteration_id=parent_iteration_id, notes=notes, snapshot=snapshot
        )

    def _writable_iteration(self, conn: Connection, iteration_id: int) -> None:
        """Refuse writes to a missing or ended iteration; refresh its heartbeat now and then."""
        stored = can_hold(t.iterations.c.id, iteration_id)
        row = conn.execute(hotpath.ITERATION_STATE, {"id": iteration_id}).first() if stored else None
        if row is None:
            raise Unprocessable(f"iteration_id: iteration {iteration_id} does not exist", field="iteration_id")
        if row.status != IterationStatus.RUNNING or row.end_date is not None:
            raise Unprocessable(
                f"iteration_id: iteration {iteration_id} has ended ({IterationStatus(row.status).name}) "
                "and takes no new parameters or metrics",
                field="iteration_id",
            )
        beat = time.monotonic()
        if beat - self._last_beat.get(iteration_id, 0.0) >= HEARTBEAT_REFRESH_SECONDS:
            conn.execute(hotpath.TOUCH_HEARTBEAT, {"iteration": iteration_id, "now": _now()})
            self._last_beat[iteration_id] = beat

    # -- parameters -------------------------------------------------------------------------------

    def create_parameter(self, iteration_id: int, key: str, value: Any) -> Created:
        """A parameter, stored as text. A key is set once per iteration (Conflict otherwise)."""
        iteration_id = check_id(iteration_id, "iteration_id")
        key = check_key(key)
        text = format_parameter_value(value)
        p = t.parameters
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            if conn.execute(select(p.c.id).where(p.c.iteration_id == iteration_id, p.c.key == key)).first():
                raise Conflict(f"key: parameter {key!r} is already set on iteration {iteration_id}", field="key")
            new_id = insert_row(conn, p, {"iteration_id": iteration_id, "key": key, "value": text})
        return Created(new_id, Result.CREATED)

    def log_parameters(self, iteration_id: int, parameters: Mapping[str, Any]) -> int:
        """Set several parameters in one transaction, all or nothing. A key already set to the same
        value is skipped (so a re-run of the same logging is harmless); a different value is a Conflict.
        Returns how many were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        if not isinstance(parameters, Mapping):
            raise Unprocessable("parameters must be a mapping of key to value", field="parameters")
        rows = {check_key(k): format_parameter_value(v, f"parameters[{k!r}]") for k, v in parameters.items()}
        if not rows:
            return 0
        p = t.parameters
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            existing = dict(select_where(conn, p, ("key", "value"), "iteration_id", iteration_id).all())
            for key, text in rows.items():
                if key in existing and existing[key] != text:
                    raise Conflict(
                        f"parameters[{key!r}]: already {existing[key]!r} on iteration {iteration_id}, "
                        f"cannot become {text!r}",
                        field="key",
                    )
            new = [{"iteration_id": iteration_id, "key": k, "value": v} for k, v in rows.items() if k not in existing]
            if new:
                insert_rows(conn, p, new)
        return len(new)

    def get_parameter(self, parameter_id: int) -> Parameter | None:
        return _record(Parameter, self._fetch_one(t.parameters, parameter_id, "parameter_id"))

    def get_parameters(self, iteration_id: int, *, limit: int | None = None, offset: int = 0) -> list[Parameter]:
        iteration_id = check_id(iteration_id, "iteration_id")
        p = t.parameters
        if not can_hold(p.c.iteration_id, iteration_id):
            return _none_stored(limit, offset)
        stmt = select(p).where(p.c.iteration_id == iteration_id).order_by(p.c.id)
        with self._read() as conn:
            return [_record(Parameter, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def update_parameter(self, parameter_id: int, *, key: str | None = None, value: Any = _UNSET) -> Result:
        parameter_id = check_id(parameter_id, "parameter_id")
        values: dict[str, Any] = {}
        if key is not None:
            values["key"] = check_key(key)
        if value is not _UNSET:
            values["value"] = format_parameter_value(value)
        with self._write() as conn:
            row = self._require(conn, t.parameters, parameter_id, "parameter_id")
            self._writable_iteration(conn, row.iteration_id)
            if values:
                try:
                    update_row(conn, t.parameters, parameter_id, values)
                except IntegrityError:
                    raise Conflict(f"key: parameter {key!r} is already set on this iteration", field="key") from None
        return Result.UPDATED

    def delete_parameter(self, parameter_id: int) -> bool:
        return self._delete(t.parameters, parameter_id, "parameter_id")

    # -- metrics ----------------------------------------------------------------------------------

    def create_metric(
        self,
        iteration_id: int,
        key: str,
        value: float,
        *,
        step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> Created:
        """One metric point. Without `step`, the key's next step (0, 1, 2, ...)."""
        iteration_id = check_id(iteration_id, "iteration_id")
        when = time.time() if recorded_at is None else check_datetime(recorded_at, "recorded_at").timestamp()
        row = hotpath.single_row(iteration_id, key, value, step, when)
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            if row[3] is None:
                row[3] = hotpath.next_steps(conn, iteration_id, [row[1]])[row[1]]
            params = dict(zip(hotpath.COLUMNS, row, strict=True))
            new_id = conn.execute(hotpath.INSERT_ONE, params).inserted_primary_key[0]
        return Created(new_id, Result.CREATED)

    def log_metrics(
        self,
        iteration_id: int,
        metrics: Mapping[str, float],
        *,
        step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> int:
        """Several keys at one step, in one transaction, all or nothing. Without `step`, each key takes
        its own next step. Returns how many points were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        if not isinstance(metrics, Mapping):
            raise Unprocessable("metrics must be a mapping of key to number", field="metrics")
        step = None if step is None else check_step(step)
        when = time.time() if recorded_at is None else check_datetime(recorded_at, "recorded_at").timestamp()
        values = {check_key(k, "metrics key"): check_metric_value(v, f"metrics[{k!r}]") for k, v in metrics.items()}
        if not values:
            return 0
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            steps = hotpath.next_steps(conn, iteration_id, list(values)) if step is None else None
            rows = [
                (iteration_id, k, v if v == v else None, step if steps is None else steps[k], when)
                for k, v in values.items()
            ]
            hotpath.insert_rows(conn, rows)
        return len(rows)

    def log_metric_points(self, iteration_id: int, points: Iterable[Sequence[Any]]) -> int:
        """The bulk path: `(key, value, step)` or `(key, value, step, recorded_at)` tuples, any number
        of steps, written with one executemany in one transaction. Returns how many were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = hotpath.metric_rows(iteration_id, points)
        if not rows:
            return 0
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            hotpath.insert_rows(conn, rows)
        return len(rows)

    def get_metric(self, metric_id: int) -> Metric | None:
        return _record(Metric, self._fetch_one(t.metrics, metric_id, "metric_id"))

    def get_metrics(
        self, iteration_id: int, *, key: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Metric]:
        """An iteration's metric points ordered by step then id (one key's series with `key=`)."""
        iteration_id = check_id(iteration_id, "iteration_id")
        m = t.metrics
        stmt = select(m).where(m.c.iteration_id == iteration_id)
        if key is not None:
            stmt = stmt.where(m.c.key == check_key(key))
        if not can_hold(m.c.iteration_id, iteration_id):
            return _none_stored(limit, offset)
        stmt = stmt.order_by(m.c.step, m.c.id)
        with self._read() as conn:
            return [_record(Metric, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def get_latest_metrics(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """For each iteration, each key's value at its highest step: what a sweep table shows."""
        ids = [check_id(i, "iteration_ids") for i in iteration_ids]
        m = t.metrics
        # Ids beyond the column's range name nothing: they get an empty entry without reaching the database.
        stored = [i for i in ids if can_hold(m.c.iteration_id, i)]
        if not stored:
            return {i: {} for i in ids}
        latest_step = (
            select(m.c.iteration_id, m.c.key, func.max(m.c.step).label("step"))
            .where(m.c.iteration_id.in_(stored))
            .group_by(m.c.iteration_id, m.c.key)
            .subquery()
        )
        # The newest point at the highest step of each key.
        stmt = (
            select(m.c.iteration_id, m.c.key, func.max(m.c.id).label("id"))
            .join(latest_step, and_(
                m.c.iteration_id == latest_step.c.iteration_id,
                m.c.key == latest_step.c.key,
                m.c.step == latest_step.c.step,
            ))
            .group_by(m.c.iteration_id, m.c.key)
            .subquery()
        )
        out: dict[int, dict[str, float]] = {i: {} for i in ids}
        with self._read() as conn:
            for row in conn.execute(select(m.c.iteration_id, m.c.key, m.c.value).where(m.c.id.in_(select(stmt.c.id)))):
                out[row.iteration_id][row.key] = row.value
        return out

    def get_best_child_iteration(
        self,
        iteration_id: int,
        key: str,
        *,
        mode: str = "max",
        status: IterationStatus | int | None = IterationStatus.SUCCEEDED,
    ) -> tuple[Iteration, float] | None:
        """The child whose latest `key` value is highest (`mode="max"`) or lowest (`"min"`), with that
        value; among SUCCEEDED children by default (`status=None`: any). NaN never wins. None if no child
        has the metric."""
        iteration_id = check_id(iteration_id, "iteration_id")
        key = check_key(key)
        if mode not in ("max", "min"):
            raise Unprocessable(f"mode must be 'max' or 'min', got {mode!r}", field="mode")
        it, m = t.iterations, t.metrics
        if not can_hold(it.c.parent_iteration_id, iteration_id):
            return None
        kids = select(it.c.id).where(it.c.parent_iteration_id == iteration_id)
        if status is not None:
            kids = kids.where(it.c.status == int(check_enum(status, IterationStatus, "status")))
        newest = func.row_number().over(partition_by=m.c.iteration_id, order_by=(m.c.step.desc(), m.c.id.desc()))
        latest = (
            select(m.c.iteration_id, m.c.value, newest.label("n"))
            .where(m.c.key == key, m.c.iteration_id.in_(kids))
            .subquery()
        )
        order = latest.c.value.desc() if mode == "max" else latest.c.value.asc()
        stmt = (
            select(it, latest.c.value)
            .join(latest, latest.c.iteration_id == it.c.id)
            .where(latest.c.n == 1, latest.c.value.is_not(None))  # NULL is how NaN is stored
            .order_by(order, it.c.id)
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return _iteration(row[:-1]), float(row[-1])

    def get_parameter_values(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """For each iteration, its parameters as `{key: value}`, in one query: what a sweep table shows."""
        ids = [check_id(i, "iteration_ids") for i in iteration_ids]
        out: dict[int, dict[str, str]] = {i: {} for i in ids}
        p = t.parameters
        with self._read() as conn:
            for chunk in _chunks([i for i in ids if can_hold(p.c.iteration_id, i)]):
                stmt = select(p.c.iteration_id, p.c.key, p.c.value).where(p.c.iteration_id.in_(chunk)).order_by(p.c.id)
                for row in conn.execute(stmt):
                    out[row.iteration_id][row.key] = row.value
        return out

    def get_metric_series(
        self, iteration_ids: Sequence[int], key: str, *, max_points: int | None = None
    ) -> dict[int, list[tuple[int, float]]]:
        """Each iteration's `(step, value)` series for one key, ordered by step. With `max_points`, a longer
        series is cut into `max_points // 2` step buckets inside the database, each giving its lowest and
        highest value, so a chart keeps every peak and trough (NaN points of a bucketed series drop out)."""
        ids = [check_id(i, "iteration_ids") for i in iteration_ids]
        key = check_key(key)
        max_points = check_max_points(max_points)
        out: dict[int, list[tuple[int, float]]] = {i: [] for i in ids}
        m = t.metrics
        with self._read() as conn:
            for chunk in _chunks([i for i in ids if can_hold(m.c.iteration_id, i)]):
                where = and_(m.c.iteration_id.in_(chunk), m.c.key == key)
                small, large = list(chunk), {}
                if max_points is not None:
                    counted = (
                        select(m.c.iteration_id, func.count(), func.min(m.c.step), func.max(m.c.step))
                        .where(where)
                        .group_by(m.c.iteration_id)
                    )
                    for iteration_id, count, lo, hi in conn.execute(counted):
                        if count > max_points:
                            # Sweeps share a step range: one bucketing query per range, not per child.
                            large.setdefault((lo, hi), []).append(iteration_id)
                    small = sorted(set(chunk) - {i for ids_ in large.values() for i in ids_})
                if small:
                    raw = (
                        select(m.c.iteration_id, m.c.step, m.c.value)
                        .where(m.c.iteration_id.in_(small), m.c.key == key)
                        .order_by(m.c.iteration_id, m.c.step, m.c.id)
                    )
                    for row in conn.execute(raw):
                        out[row.iteration_id].append((row.step, row.value))
                for (lo, hi), ids_ in large.items():
                    self._bucketed_series(conn, ids_, key, lo, hi, int(max_points or 2) // 2, out)
        return out

    @staticmethod
    def _bucketed_series(
        conn: Connection,
        ids: list[int],
        key: str,
        lo: int,
        hi: int,
        buckets: int,
        out: dict[int, list[tuple[int, float]]],
    ) -> None:
        m = t.metrics
        # The range is a literal, not a join: PostgreSQL without fresh statistics plans a join to a
        # per-iteration aggregate as a nested loop over every point. BigInteger arithmetic, since
        # step * buckets overflows a 32-bit integer for long runs.
        offset = cast(m.c.step - lo, BigInteger) * buckets
        bucket = (offset // (hi - lo + 1)).label("bucket")
        stmt = (
            select(
                m.c.iteration_id,
                func.min(m.c.step).label("first_step"),
                func.max(m.c.step).label("last_step"),
                func.min(m.c.value).label("low"),
                func.max(m.c.value).label("high"),
                func.avg(m.c.value).label("mean"),
            )
            .where(m.c.iteration_id.in_(ids), m.c.key == key)
            .group_by(m.c.iteration_id, bucket)
            .order_by(m.c.iteration_id, "first_step")
        )
        rows: dict[int, list[Any]] = {}
        for row in conn.execute(stmt):
            rows.setdefault(row.iteration_id, []).append(row)
        for iteration_id, group in rows.items():
            series = out[iteration_id]
            for n, row in enumerate(group):
                # The extremes are placed at the bucket's edges, in the order the series runs there
                # (judged from the neighbouring buckets' means): the envelope is exact, a chart keeps
                # every peak and trough, and the line does not zigzag against the trend.
                before = group[max(n - 1, 0)].mean
                after = group[min(n + 1, len(group) - 1)].mean
                low, high = _nan(row.low), _nan(row.high)
                rising = before is not None and after is not None and after >= before
                points = [(row.first_step, low), (row.last_step, high)]
                if not rising:
                    points = [(row.first_step, high), (row.last_step, low)]
                if row.first_step == row.last_step or low == high:
                    points = [(row.first_step, low)]
                for point in points:
                    if not series or not _same_point(series[-1], point):
                        series.append(point)

    def update_metric(
        self, metric_id: int, *, value: float | None = None, step: int | None = None
    ) -> Result:
        metric_id = check_id(metric_id, "metric_id")
        values: dict[str, Any] = {}
        if value is not None:
            values["value"] = check_metric_value(value)
        if step is not None:
            values["step"] = check_step(step)
        with self._write() as conn:
            row = self._require(conn, t.metrics, metric_id, "metric_id")
            self._writable_iteration(conn, row.iteration_id)
            if values:
                update_row(conn, t.metrics, metric_id, values)
        return Result.UPDATED

    def delete_metric(self, metric_id: int) -> bool:
        return self._delete(t.metrics, metric_id, "metric_id")

    # -- tags -------------------------------------------------------------------------------------

    def create_tag(self, value: str) -> Created:
        value = check_name(value, "value")
        try:
            with self._write() as conn:
                if conn.execute(select(t.tags.c.id).where(t.tags.c.value == value)).first():
                    raise Conflict(f"value: tag {value!r} already exists", field="value")
                new_id = insert_row(conn, t.tags, dict(value=value))
        except IntegrityError:
            raise Conflict(f"value: tag {value!r} already exists", field="value") from None
        return Created(new_id, Result.CREATED)

    def get_tag(self, tag: int | str) -> Tag | None:
        """By id, or by value when given a string."""
        if isinstance(tag, str):
            with self._read() as conn:
                return _record(Tag, conn.execute(select(t.tags).where(t.tags.c.value == tag)).first())
        return _record(Tag, self._fetch_one(t.tags, tag, "tag_id"))

    def get_tags(
        self,
        target: TagTarget | str | None = None,
        target_id: int | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Tag]:
        """Every tag, or the tags on one project, experiment or iteration."""
        stmt = select(t.tags).order_by(t.tags.c.id)
        if target is not None:
            link, column, _ = _TAG_LINKS[check_enum(target, TagTarget, "target")]
            target_id = check_id(target_id, "target_id")
            if not can_hold(link.c[column], target_id):
                return _none_stored(limit, offset)
            stmt = stmt.where(t.tags.c.id.in_(select(link.c.tag_id).where(link.c[column] == target_id)))
        with self._read() as conn:
            return [_record(Tag, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def update_tag(self, tag_id: int, value: str) -> Result:
        tag_id = check_id(tag_id, "tag_id")
        value = check_name(value, "value")
        try:
            with self._write() as conn:
                self._require(conn, t.tags, tag_id, "tag_id")
                update_row(conn, t.tags, tag_id, dict(value=value))
        except IntegrityError:
            raise Conflict(f"value: tag {value!r} already exists", field="value") from None
        return Result.UPDATED

    def delete_tag(self, tag_id: int) -> bool:
        """Deletes the tag and detaches it from everything it was on."""
        return self._delete(t.tags, tag_id, "tag_id")

    def add_tag(self, target: TagTarget | str, target_id: int, value: str) -> Created:
        """Attach a tag (created if new) to a project, experiment or iteration; Conflict if already on it."""
        kind = check_enum(target, TagTarget, "target")
        link, column, owner = _TAG_LINKS[kind]
        target_id = check_id(target_id, "target_id")
        value = check_name(value, "value")
        with self._write() as conn:
            self._require(conn, owner, target_id, "target_id")
            tag = conn.execute(select(t.tags.c.id).where(t.tags.c.value == value)).first()
            tag_id = tag.id if tag else insert_row(conn, t.tags, dict(value=value))
            if conn.execute(select(link.c.id).where(link.c[column] == target_id, link.c.tag_id == tag_id)).first():
                raise Conflict(f"value: {kind.value} {target_id} already has tag {value!r}", field="value")
            conn.execute(insert(link).values({column: target_id, "tag_id": tag_id}))
        return Created(tag_id, Result.CREATED)

    def remove_tag(self, target: TagTarget | str, target_id: int, value: str) -> bool:
        kind = check_enum(target, TagTarget, "target")
        link, column, _ = _TAG_LINKS[kind]
        target_id = check_id(target_id, "target_id")
        value = check_name(value, "value")
        with self._write() as conn:
            tag_ids = select(t.tags.c.id).where(t.tags.c.value == value)
            return conn.execute(
                delete(link).where(link.c[column] == target_id, link.c.tag_id.in_(tag_ids))
            ).rowcount > 0

    # -- resources --------------------------------------------------------------------------------

    def _store(self) -> InlineStore | FilesystemStore:
        return InlineStore() if self.artifact_root is None else FilesystemStore(self.artifact_root)

    @staticmethod
    def _read_data(data: Any) -> bytes:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return bytes(data)
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            if not path.is_file():
                raise Unprocessable(f"data: {str(path)!r} is not a readable file", field="data")
            return path.read_bytes()
        raise Unprocessable(f"data must be bytes or a file path, got {type(data).__name__}", field="data")

    def create_resource(
        self, experiment_id: int, name: str, data: bytes | str | os.PathLike[str], *, description: str = ""
    ) -> Created:
        """Store artifact bytes (or a file's bytes) on an experiment, with their size and sha256."""
        experiment_id = check_id(experiment_id, "experiment_id")
        name = check_name(name)
        description = check_text(description, "description")
        payload = self._read_data(data)
        with self._read() as conn:
            self._require(conn, t.experiments, experiment_id, "experiment_id")
        stored = self._store().write(payload)
        try:
            with self._write() as conn:
                self._require(conn, t.experiments, experiment_id, "experiment_id")
                new_id = conn.execute(
                    insert(t.resources).values(
                        experiment_id=experiment_id, name=name, description=description,
                        backend=stored.backend.value, uri=stored.uri, data=stored.data,
                        size_bytes=stored.size_bytes, content_hash=stored.content_hash,
                        created_date=_now(), updated_date=None,
                    )
                ).inserted_primary_key[0]
        except BaseException:
            self._remove_files([stored.uri] if stored.uri else [])
            raise
        return Created(new_id, Result.CREATED)

    def get_resource(self, resource_id: int) -> Resource | None:
        resource_id = check_id(resource_id, "resource_id")
        if not can_hold(t.resources.c.id, resource_id):
            return None
        with self._read() as conn:
            return _resource(conn.execute(select(*_RESOURCE_COLUMNS).where(t.resources.c.id == resource_id)).first())

    def get_resource_data(self, resource_id: int) -> bytes | None:
        resource_id = check_id(resource_id, "resource_id")
        r = t.resources
        if not can_hold(r.c.id, resource_id):
            return None
        with self._read() as conn:
            row = conn.execute(select(r.c.backend, r.c.uri, r.c.data).where(r.c.id == resource_id)).first()
        if row is None:
            return None
        if row.backend == ArtifactBackend.FILESYSTEM.value:
            return read_file_artifact(row.uri)
        return bytes(row.data or b"")

    def get_resources(self, experiment_id: int, *, limit: int | None = None, offset: int = 0) -> list[Resource]:
        experiment_id = check_id(experiment_id, "experiment_id")
        r = t.resources
        if not can_hold(r.c.experiment_id, experiment_id):
            return _none_stored(limit, offset)
        stmt = select(*_RESOURCE_COLUMNS).where(r.c.experiment_id == experiment_id).order_by(r.c.id)
        with self._read() as conn:
            return [_resource(row) for row in conn.execute(_paged(stmt, limit, offset))]  # type: ignore[misc]

    def update_resource(
        self,
        resource_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        data: bytes | str | os.PathLike[str] | None = None,
    ) -> Result:
        resource_id = check_id(resource_id, "resource_id")
        values: dict[str, Any] = {"updated_date": _now()}
        if name is not None:
            values["name"] = check_name(name)
        if description is not None:
            values["description"] = check_text(description, "description")
        stored = None
        if data is not None:
            stored = self._store().write(self._read_data(data))
            values.update(backend=stored.backend.value, uri=stored.uri, data=stored.data,
                          size_bytes=stored.size_bytes, content_hash=stored.content_hash)
        old_uris: list[str] = []
        try:
            with self._write() as conn:
                row = self._require(conn, t.resources, resource_id, "resource_id")
                if stored is not None and row.uri:
                    old_uris.append(row.uri)
                update_row(conn, t.resources, resource_id, values)
        except BaseException:
            if stored is not None and stored.uri:
                self._remove_files([stored.uri])
            raise
        self._remove_files(old_uris)
        return Result.UPDATED

    def delete_resource(self, resource_id: int) -> bool:
        resource_id = check_id(resource_id, "resource_id")
        if not can_hold(t.resources.c.id, resource_id):
            return False
        with self._write() as conn:
            uris = self._file_uris(conn, t.resources.c.id == resource_id)
            deleted = conn.execute(delete(t.resources).where(t.resources.c.id == resource_id)).rowcount > 0
        self._remove_files(uris)
        return deleted

    @staticmethod
    def _file_uris(conn: Connection, condition: Any) -> list[str]:
        r = t.resources
        stmt = select(r.c.uri).where(condition, r.c.backend == ArtifactBackend.FILESYSTEM.value)
        return [row.uri for row in conn.execute(stmt)]

    @staticmethod
    def _remove_files(uris: list[str]) -> None:
        # Files go only after the rows' deletion committed, so a rollback never loses bytes.
        for uri in uris:
            delete_file_artifact(uri)

