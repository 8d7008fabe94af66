"""The shared part of LocalTracker: connection, transactions and the helpers every entity uses."""

from __future__ import annotations

import atexit
import dataclasses
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from .. import hotpath
from .. import schema as t
from ..artifacts import delete_file_artifact
from ..database import DEFAULT_URI, create_tracker_engine, normalize_url, read_transaction, write_transaction
from ..enums import ArtifactBackend, ExperimentStatus, IterationStatus, TagTarget
from ..errors import Unprocessable
from ..lifecycle import Heartbeat
from ..migrate import upgrade_to_head
from ..records import (
    Experiment,
    Iteration,
    Resource,
    User,
)
from ..statements import can_hold, fetch_by_id
from ..validation import (
    check_id,
    check_page,
)

DEFAULT_USERNAME = "default"
DEFAULT_PASSWORD = "default"
# The argon2id hash of DEFAULT_PASSWORD, computed once: the password is public, so a salt of its own per
# database protects nothing, and hashing it cost every new database ~0.1-0.4 s of CPU (a new user's first
# run, every test's fresh database). A real password is always hashed with a fresh salt.
DEFAULT_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$a3LprIioQvvkknktlQiQeQ$PzRge+9t2NbwfjBXoARWe3Tdpp0PquOKzI5wSjdwp70"
)
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


_open_trackers: weakref.WeakSet[TrackerBase] = weakref.WeakSet()


@atexit.register
def _close_open_trackers() -> None:
    # Closing the last connection lets SQLite fold its WAL back into the .db file, so a database
    # copied after the program ends is complete. Registered at import, so it runs after the
    # integrations' own exit flushes (atexit runs last-registered first).
    for tracker in list(_open_trackers):
        tracker.close()


class TrackerBase:
    """Engine, transactions and row look-ups; the entity mixins build on these."""

    # Connections kept open on a server database (a tracking server sets DIARY_DB_POOL_SIZE here), and
    # whether each is tested before use (a tracking server does without: database.py says why).
    pool_size = 5
    pool_pre_ping = True

    def __init__(
        self, url: str | os.PathLike[str] = DEFAULT_URI, *, artifact_root: str | os.PathLike[str] | None = None,
        record_processes: bool = True,
    ) -> None:
        self.url = normalize_url(url)
        self.artifact_root = None if artifact_root is None else str(Path(artifact_root).expanduser().resolve())
        # Record this process beside the iterations it creates, beats or reopens (embedded liveness). Off
        # in a tracking server: its iterations run in the clients' processes, and the lease covers them.
        self.record_processes = record_processes
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._last_beat: dict[int, float] = {}

    def __repr__(self) -> str:
        return f"LocalTracker({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "artifact_root": self.artifact_root, "record_processes": self.record_processes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"], artifact_root=state["artifact_root"], record_processes=state.get("record_processes", True)
        )

    @property
    def engine(self) -> Engine:
        """The engine, created (and the schema migrated, the default user seeded) on first use."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    engine = create_tracker_engine(self.url, self.pool_size, pre_ping=self.pool_pre_ping)
                    try:
                        upgrade_to_head(engine)
                        self._seed_default_user(engine)
                    except BaseException:
                        engine.dispose()  # a database this package cannot use: no pool left behind
                        raise
                    self._engine = engine
                    _open_trackers.add(self)
        return self._engine

    def close(self) -> None:
        """Release the database connections; the tracker's heartbeat stops too (a closed tracker beats no
        more)."""
        Heartbeat.stop_for(self)
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
                        password_hash=DEFAULT_PASSWORD_HASH,
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

    def _delete(
        self, table: Table, id_: Any, field: str = "id", *, files: Callable[[int], Any] | None = None
    ) -> bool:
        """Delete one row (the foreign keys cascade). `files(id)` selects the resources the cascade takes
        along; their files are removed only after the deletion committed, so a rollback never loses bytes."""
        id_ = check_id(id_, field)
        if not can_hold(table.c.id, id_):
            return False
        with self._write() as conn:
            uris = [] if files is None else self._file_uris(conn, files(id_))
            deleted = conn.execute(delete(table).where(table.c.id == id_)).rowcount > 0
        self._remove_files(uris)
        return deleted

    @staticmethod
    def _remove_files(uris: list[str]) -> None:
        for uri in uris:
            delete_file_artifact(uri)

    @staticmethod
    def _file_uris(conn: Connection, condition: Any) -> list[str]:
        r = t.resources
        stmt = select(r.c.uri).where(condition, r.c.backend == ArtifactBackend.FILESYSTEM.value)
        return [row.uri for row in conn.execute(stmt)]

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
        self._touch_if_due(conn, iteration_id)

    def _touch_if_due(self, conn: Connection, iteration_id: int) -> None:
        """A write refreshes its iteration's heartbeat, at most every HEARTBEAT_REFRESH_SECONDS."""
        beat = time.monotonic()
        if beat - self._last_beat.get(iteration_id, 0.0) >= HEARTBEAT_REFRESH_SECONDS:
            conn.execute(hotpath.TOUCH_HEARTBEAT, {"iteration": iteration_id, "now": _now()})
            self._last_beat[iteration_id] = beat

    def heartbeat_due(self, iteration_id: int) -> bool:
        """Whether a write to this iteration should refresh its heartbeat now."""
        return time.monotonic() - self._last_beat.get(iteration_id, 0.0) >= HEARTBEAT_REFRESH_SECONDS

    def touch_heartbeat(self, iteration_id: int) -> None:
        """Refresh the iteration's heartbeat if it is due (the one-statement write paths call this)."""
        if self.heartbeat_due(iteration_id):
            with self._write() as conn:
                self._touch_if_due(conn, iteration_id)
