"""Iterations: trees, ends, heartbeats, the reaper and environment snapshots."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)

from .. import hotpath, liveness
from .. import schema as t
from ..enums import ExperimentStatus, IterationStatus, Result
from ..environment import capture_environment
from ..errors import Conflict, IterationEnded, Unprocessable
from ..lifecycle import OpensIterationRuns
from ..records import (
    Created,
    Environment,
    Iteration,
    IterationEnding,
    NewIteration,
)
from ..reopening import reopened_notes
from ..statements import can_hold, fetch_by_id, insert_row, insert_rows, update_row, update_rows
from ..validation import (
    MAX_REOPEN_REASON,
    MAX_TEXT,
    batch_item,
    check_bool,
    check_datetime,
    check_enum,
    check_id,
    check_iteration_name,
    check_optional_id,
    check_text,
    checked_batch,
    checked_new_iteration,
    checked_parameters,
    listed_points,
)
from .base import (
    _UNSET,
    TrackerBase,
    _chunks,
    _iteration,
    _none_stored,
    _now,
    _paged,
    _record,
)
from .parameters import store_parameters


class IterationsMixin(OpensIterationRuns, TrackerBase):

    def create_iteration(
        self,
        experiment_id: int,
        *,
        parent_iteration_id: int | None = None,
        notes: str = "",
        snapshot: bool | None = None,
        parameters: Mapping[str, Any] | None = None,
        name: str = "",
    ) -> Created:
        """A RUNNING iteration. A parent must exist in the same experiment. `snapshot` (default: only
        for top-level iterations) stores the environment beside it; `parameters` are set in the same
        transaction (a sweep's child is created with its configuration, all or nothing). `name` is a
        readable label (not unique)."""
        experiment_id = check_id(experiment_id, "experiment_id")
        parent_iteration_id = check_optional_id(parent_iteration_id, "parent_iteration_id")
        spec = (*checked_new_iteration(NewIteration(notes, parameters)), check_iteration_name(name))
        if snapshot is None:
            snapshot = parent_iteration_id is None
        env = capture_environment() if check_bool(snapshot, "snapshot") else None
        with self._write() as conn:
            _check_new_place(conn, experiment_id, parent_iteration_id)
            (new_id,) = _insert_iterations(conn, experiment_id, parent_iteration_id, [spec])
            _claim(conn, [new_id], self._identity(), new=True)
            if env is not None:
                insert_row(conn, t.environments, {"iteration_id": new_id, **dataclasses.asdict(env)})
        self._last_beat[new_id] = time.monotonic()
        return Created(new_id, Result.CREATED)

    def create_iterations(
        self, experiment_id: int, iterations: Sequence[NewIteration], *, parent_iteration_id: int | None = None
    ) -> list[int]:
        """Several RUNNING iterations (each with its notes and parameters) in one transaction, all or
        nothing: a sweep's children a batch at a time. No environment snapshots. Their ids, in order."""
        experiment_id = check_id(experiment_id, "experiment_id")
        parent_iteration_id = check_optional_id(parent_iteration_id, "parent_iteration_id")
        specs = []
        for n, item in enumerate(checked_batch(iterations, "iterations", NewIteration)):
            with batch_item("iterations", n):
                specs.append((*checked_new_iteration(item), check_iteration_name(item.name)))
        with self._write() as conn:
            _check_new_place(conn, experiment_id, parent_iteration_id)
            ids = _insert_iterations(conn, experiment_id, parent_iteration_id, specs) if specs else []
            _claim(conn, ids, self._identity(), new=True)
        beat = time.monotonic()
        for i in ids:
            self._last_beat[i] = beat
        return ids

    def get_iteration(self, iteration_id: int) -> Iteration | None:
        """The iteration as it truly is: RUNNING only while its process lives (see `_settled`)."""
        iteration_id = check_id(iteration_id, "iteration_id")
        with self._read() as conn:
            found = _iteration(fetch_by_id(conn, t.iterations, iteration_id))
            watched = _watched(conn, [found] if found is not None else [])
        if not watched or found is None:
            return found
        settled = self._settled([found], watched)
        return settled[0] if settled else None  # deleted meanwhile

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
        wanted = None if status is None else check_enum(status, IterationStatus, "status")
        if wanted is not None:
            stmt = stmt.where(it.c.status == int(wanted))
        if not can_hold(it.c.experiment_id, experiment_id):
            return _none_stored(limit, offset)
        if wanted is not None and wanted is not IterationStatus.RUNNING:
            # Dead runs of this experiment become KILLED first, so a KILLED listing already holds them.
            with self._read() as conn:
                here = {"experiment": experiment_id, "host": liveness.this_host()}
                owners = {(row[0], row[1]) for row in conn.execute(_RUNNING_HERE, here)}
            if owners:
                self._settled([], owners)
        with self._read() as conn:
            found = [_iteration(r) for r in conn.execute(_paged(stmt, limit, offset))]
            watched = _watched(conn, found, (_RUNNING_HERE, {"experiment": experiment_id}))  # type: ignore[arg-type]
        if not watched:
            return found  # type: ignore[return-value]
        settled = self._settled(found, watched)  # type: ignore[arg-type]
        return [i for i in settled if wanted is None or i.status is wanted]

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
            found = [_iteration(r) for r in conn.execute(_paged(stmt, limit, offset))]
            watched = _watched(conn, found, (_RUNNING_CHILDREN_HERE, {"parent": iteration_id}))  # type: ignore[arg-type]
        return self._settled(found, watched) if watched else found  # type: ignore[arg-type,return-value]

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
            if status is IterationStatus.RUNNING:
                # Reopened: alive while the process reopening it lives (through a server: its lease).
                _claim(conn, [iteration_id], self._identity())
        return Result.UPDATED

    def reopen_iteration(
        self, iteration_id: int, *, expected_status: IterationStatus | int, reason: str
    ) -> Result:
        """Continue an iteration (a requeued or resumed run): back to RUNNING, its end, error and traceback
        cleared, a fresh heartbeat, this process as its owner, and a line appended to its notes saying when,
        from which status (with the error it had) and why. Compare-and-set on `expected_status`: if the
        iteration is no longer in the status the caller saw (another process reopened or ended it
        meanwhile), `Conflict` and nothing is written, so two requeued copies cannot both take it over."""
        iteration_id = check_id(iteration_id, "iteration_id")
        expected = check_enum(expected_status, IterationStatus, "expected_status")
        reason = check_text(reason, "reason", max_length=MAX_REOPEN_REASON, allow_empty=False)
        it = t.iterations
        with self._write() as conn:
            row = self._require(conn, it, iteration_id, "iteration_id")
            if row.status != int(expected):
                raise Conflict(
                    f"iteration {iteration_id} is {IterationStatus(row.status).name}, not {expected.name}: "
                    "another process reopened or ended it; it was not reopened", field="expected_status",
                )
            now = _now()
            values = {"status": int(IterationStatus.RUNNING), "end_date": None, "heartbeat_date": now,
                      "error_message": "", "traceback": "",
                      "notes": reopened_notes(row.notes, now, expected, row.error_message, reason)}
            # The status is in the WHERE too: a concurrent writer between the read and this update loses.
            done = conn.execute(update(it).where(it.c.id == iteration_id, it.c.status == int(expected)).values(values))
            if done.rowcount != 1:
                raise Conflict(f"iteration {iteration_id} changed while it was being reopened", field="expected_status")
            # Alive while this process lives (through a server: by its lease, from the fresh heartbeat).
            _claim(conn, [iteration_id], self._identity())
        self._last_beat[iteration_id] = time.monotonic()
        return Result.UPDATED

    def end_iteration(
        self,
        iteration_id: int,
        status: IterationStatus | int = IterationStatus.SUCCEEDED,
        *,
        error_message: str = "",
        traceback: str = "",
        parameters: Mapping[str, Any] | None = None,
        points: Iterable[Sequence[Any]] | None = None,
        notes: str | None = None,
    ) -> Result:
        """Finish a RUNNING iteration with its final status. Ending an ended iteration is refused, so a
        late or duplicate finaliser can never overwrite the status that was first recorded.
        `parameters` (as `log_parameters`), `points` (as `log_metric_points`) and `notes` are written in
        the same transaction: an iteration's last data and its end land together or not at all."""
        ending = _checked_ending(
            IterationEnding(iteration_id, status, error_message, traceback, parameters, listed_points(points), notes)
        )
        with self._write() as conn:
            _apply_endings(conn, [ending])
        self._last_beat.pop(ending.iteration_id, None)
        return Result.UPDATED

    def end_iterations(self, endings: Sequence[IterationEnding]) -> int:
        """End several RUNNING iterations, each with its own status and last data, in one transaction, all
        or nothing (an unknown, already ended or repeated iteration refuses the whole batch). Returns how
        many were ended."""
        checked = []
        for n, item in enumerate(checked_batch(endings, "endings", IterationEnding)):
            with batch_item("endings", n):
                checked.append(_checked_ending(item))
        if checked:
            with self._write() as conn:
                _apply_endings(conn, checked, batch="endings")
        for ending in checked:
            self._last_beat.pop(ending.iteration_id, None)
        return len(checked)

    def delete_iteration(self, iteration_id: int) -> bool:
        """Deletes the iteration and its data; its children stay, as top-level iterations."""
        return self._delete(t.iterations, iteration_id, "iteration_id")

    def heartbeat(self, *iteration_ids: int) -> None:
        """Mark these iterations alive now. Those already ended (a reaper's KILLED, another writer's end)
        are never reopened: after beating the live ones, `IterationEnded` names them and their status.
        Ids of no iteration are ignored."""
        ids = [i for i in (check_id(i, "iteration_id") for i in iteration_ids) if can_hold(t.iterations.c.id, i)]
        if not ids:
            return
        it = t.iterations
        ended: dict[int, str] = {}
        reasons: list[str] = []
        with self._write() as conn:
            for chunk in _chunks(sorted(set(ids))):
                conn.execute(
                    update(it)
                    .where(it.c.id.in_(chunk), it.c.status == int(IterationStatus.RUNNING))
                    .values(heartbeat_date=_now())
                )
                running = []
                for row in conn.execute(select(it.c.id, it.c.status, it.c.error_message).where(it.c.id.in_(chunk))):
                    if row.status == IterationStatus.RUNNING:
                        running.append(row.id)
                        continue
                    ended[row.id] = IterationStatus(row.status).name
                    reason = f": {row.error_message}" if row.error_message else ""
                    reasons.append(f"iteration {row.id} has ended as {ended[row.id]}{reason}")
                _adopt(conn, running, self._identity())
        beat = time.monotonic()
        for i in ids:
            if i not in ended:
                self._last_beat[i] = beat
        if ended:
            raise IterationEnded(
                "; ".join(reasons[:20]) + ". A heartbeat does not reopen an ended iteration", ended=ended
            )

    def reap(
        self, older_than: float | timedelta = 300.0, *, experiment_id: int | None = None, force: bool = False,
        mlflow_lease: float | None = None,
    ) -> list[int]:
        """Mark KILLED every RUNNING iteration whose heartbeat is older than `older_than` (seconds):
        its process died without a word (SIGKILL, OOM killer, lost node). Returns their ids. Any age is
        taken here (`force` is for a server's floor); `diary reap` and the REST route refuse ages under
        the lease. `mlflow_lease` (seconds): runs logged through MLflow's API (which sends no heartbeat)
        are reaped only after this long, if it is longer."""
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise Unprocessable(f"older_than must be a non-negative number of seconds, got {older_than!r}",
                                field="older_than")
        cutoff = _now() - timedelta(seconds=seconds)
        it = t.iterations
        stmt = select(it.c.id, it.c.heartbeat_date).where(
            it.c.status == int(IterationStatus.RUNNING), it.c.heartbeat_date < cutoff
        )
        if mlflow_lease is not None and mlflow_lease > seconds:
            mlflow_run = select(t.mlflow_runs.c.iteration_id).where(t.mlflow_runs.c.iteration_id == it.c.id).exists()
            stmt = stmt.where(or_(~mlflow_run, it.c.heartbeat_date < _now() - timedelta(seconds=mlflow_lease)))
        if experiment_id is not None:
            experiment_id = check_id(experiment_id, "experiment_id")
            if not can_hold(it.c.experiment_id, experiment_id):
                return []
            stmt = stmt.where(it.c.experiment_id == experiment_id)
        with self._write() as conn:
            stale = conn.execute(stmt.order_by(it.c.id)).all()
            # Only those this call ended: a reaper of another server process may have ended some first.
            return _end_killed(conn, stale, lambda row, seen: f"heartbeat lost: last seen {seen.isoformat()}")

    def _identity(self) -> tuple[str, int, float] | None:
        """The process to record beside iterations this tracker creates, beats or reopens."""
        return liveness.own_process() if self.record_processes else None

    def _settled(self, iterations: list[Iteration], watched: set[tuple[int, float]]) -> list[Iteration]:
        """`iterations` as they truly are. Of the `watched` processes (pid, start) of this host that run
        RUNNING iterations, those that are gone end every RUNNING iteration they own KILLED now, in a write,
        and the affected ones among `iterations` are read again; a live process is never touched."""
        dead = [process for process in watched if liveness.is_gone(*process)]
        if not dead:
            return iterations
        it, p = t.iterations, t.iteration_processes
        host = liveness.this_host()
        killed: dict[int, Iteration] = {}
        with self._write() as conn:
            for pid, start in dead:
                # Still RUNNING and still owned by that process (a resume elsewhere may have claimed it).
                stale = conn.execute(
                    select(it.c.id, it.c.heartbeat_date)
                    .join(p, p.c.iteration_id == it.c.id)
                    .where(p.c.host == host, p.c.pid == pid, p.c.process_start == start,
                           it.c.status == int(IterationStatus.RUNNING))
                    .order_by(it.c.id)
                ).all()
                _end_killed(conn, stale, lambda row, seen, pid=pid: liveness.exit_message(pid))
                killed.update(dict.fromkeys((row.id for row in stale), None))  # type: ignore[arg-type]
            mine = sorted(i.id for i in iterations if i.id in killed)
            for chunk in _chunks(mine):
                killed.update((row.id, _iteration(row)) for row in conn.execute(select(it).where(it.c.id.in_(chunk))))
        return [found for found in (killed.get(i.id, i) for i in iterations) if found is not None]


def _owners_of_running(condition: Any) -> Any:
    """The distinct processes of this host owning RUNNING iterations that meet `condition`."""
    return (
        select(t.iteration_processes.c.pid, t.iteration_processes.c.process_start)
        .distinct()
        .join(t.iterations, t.iterations.c.id == t.iteration_processes.c.iteration_id)
        .where(
            condition,
            t.iterations.c.status == int(IterationStatus.RUNNING),
            t.iteration_processes.c.host == bindparam("host"),
        )
    )


_RUNNING_HERE = _owners_of_running(t.iterations.c.experiment_id == bindparam("experiment"))
_RUNNING_CHILDREN_HERE = _owners_of_running(t.iterations.c.parent_iteration_id == bindparam("parent"))
# Past this many RUNNING rows in a page, their owners are found by the page's experiment or parent (one
# query over an index) rather than by a list of ids (binding thousands of parameters costs more).
_BY_SCOPE_ABOVE = 100
# The distinct processes of this host behind some iterations: a page of 10,000 RUNNING children of one
# sweep is one row, not 10,000.
_PROCESSES = (
    select(t.iteration_processes.c.pid, t.iteration_processes.c.process_start)
    .distinct()
    .where(
        t.iteration_processes.c.iteration_id.in_(bindparam("ids", expanding=True)),
        t.iteration_processes.c.host == bindparam("host"),
    )
)


def _watched(
    conn: Connection, iterations: list[Iteration], scope: tuple[Any, dict[str, Any]] | None = None
) -> set[tuple[int, float]]:
    """The processes of this host (pid, start) that own the RUNNING ones among `iterations` (or, for a
    large page, those of its whole `scope`: statement, parameters): one indexed query, and none at all
    when nothing is RUNNING (or liveness is not supported here)."""
    running = [i.id for i in iterations if i.status is IterationStatus.RUNNING]
    if not running or not liveness.supported():
        return set()
    host = liveness.this_host()
    if scope is not None and len(running) > _BY_SCOPE_ABOVE:
        return {(row[0], row[1]) for row in conn.execute(scope[0], {**scope[1], "host": host})}
    return {
        (row[0], row[1]) for chunk in _chunks(running) for row in conn.execute(_PROCESSES, {"ids": chunk, "host": host})
    }


def _claim(conn: Connection, ids: list[int], identity: tuple[str, int, float] | None, *, new: bool = False) -> None:
    """Record `identity` (host, pid, start) as the process running these iterations; None forgets any
    recorded one, leaving them to the lease. `new` iterations have no record yet."""
    if not ids or (identity is None and new):
        return
    p = t.iteration_processes
    for chunk in _chunks(sorted(ids)):
        if identity is None:
            conn.execute(delete(p).where(p.c.iteration_id.in_(chunk)))
            continue
        host, pid, start = identity
        have: set[int] = set()
        if not new:
            conn.execute(delete(p).where(
                p.c.iteration_id.in_(chunk), or_(p.c.host != host, p.c.pid != pid, p.c.process_start != start)
            ))
            have = set(conn.execute(select(p.c.iteration_id).where(p.c.iteration_id.in_(chunk))).scalars())
        rows = [{"iteration_id": i, "host": host, "pid": pid, "process_start": start} for i in chunk if i not in have]
        if rows:
            insert_rows(conn, p, rows)


def _adopt(conn: Connection, ids: list[int], identity: tuple[str, int, float] | None) -> None:
    """A process beating RUNNING iterations takes over those no live process owns (no record, or one of
    this host whose process is gone): a run handed on to another process lives by that one. A live
    owner keeps its runs (a DDP launcher's driver beaten by its spawned rank)."""
    if identity is None or not ids:
        return
    p = t.iteration_processes
    host = identity[0]
    owned = {row.iteration_id: row for row in conn.execute(select(p).where(p.c.iteration_id.in_(ids)))}
    orphans = [i for i in ids if (row := owned.get(i)) is None
               or (row.host == host and (row.pid, row.process_start) != identity[1:]
                   and liveness.is_gone(row.pid, row.process_start))]
    _claim(conn, orphans, identity)


def _end_killed(conn: Connection, stale: Sequence[Any], message: Any) -> list[int]:
    """End these RUNNING iterations (rows with `id` and `heartbeat_date`) KILLED at their last sign of
    life, each with `message(row, seen)`; one another writer ended meanwhile keeps its status. The ids
    this call ended."""
    if not stale:
        return []
    it, m = t.iterations, t.metrics
    ids = [row.id for row in stale]
    # The last sign of life is the truest end we know: the heartbeat, or a later metric (writes refresh
    # the heartbeat only every few seconds).
    last_metric: dict[int, Any] = {}
    for chunk in _chunks(ids):
        last_metric.update(conn.execute(
            select(m.c.iteration_id, func.max(m.c.recorded_at)).where(m.c.iteration_id.in_(chunk))
            .group_by(m.c.iteration_id)
        ).all())
    ended = []
    for row in stale:
        seen = max(row.heartbeat_date, last_metric.get(row.id) or row.heartbeat_date)
        done = conn.execute(
            update(it)
            .where(it.c.id == row.id, it.c.status == int(IterationStatus.RUNNING))
            .values(status=int(IterationStatus.KILLED), end_date=seen, error_message=message(row, seen))
        )
        if done.rowcount:
            ended.append(row.id)
    return ended


@dataclasses.dataclass(frozen=True, slots=True)
class _CheckedEnding:
    iteration_id: int
    values: dict[str, Any]  # the iteration row's new columns
    parameters: dict[str, str]
    metric_rows: list[tuple[Any, ...]]


def _check_new_place(conn: Connection, experiment_id: int, parent_iteration_id: int | None) -> None:
    """New iterations go into an IN_PROGRESS experiment, under a parent of the same experiment."""
    experiment = TrackerBase._require(conn, t.experiments, experiment_id, "experiment_id")
    if experiment.status != ExperimentStatus.IN_PROGRESS:
        raise Unprocessable(
            f"experiment_id: experiment {experiment_id} is {ExperimentStatus(experiment.status).name}; "
            "iterations can only be added to an IN_PROGRESS experiment",
            field="experiment_id",
        )
    if parent_iteration_id is None:
        return
    parent = fetch_by_id(conn, t.iterations, parent_iteration_id)
    if parent is None:
        raise Unprocessable(
            f"parent_iteration_id: iteration {parent_iteration_id} does not exist", field="parent_iteration_id"
        )
    if parent.experiment_id != experiment_id:
        raise Unprocessable(
            f"parent_iteration_id: iteration {parent_iteration_id} belongs to experiment "
            f"{parent.experiment_id}, not {experiment_id}; a parent must be in the same experiment",
            field="parent_iteration_id",
        )


def _insert_iterations(
    conn: Connection, experiment_id: int, parent_iteration_id: int | None,
    specs: list[tuple[str, dict[str, str], str]],
) -> list[int]:
    """Insert RUNNING iterations (notes, parameter rows, name) and their parameters; their ids, in order."""
    now = _now()
    ids = [
        insert_row(conn, t.iterations, {
            "experiment_id": experiment_id,
            "parent_iteration_id": parent_iteration_id,
            "status": int(IterationStatus.RUNNING),
            "notes": notes,
            "error_message": "",
            "traceback": "",
            "created_date": now,
            "end_date": None,
            "heartbeat_date": now,
            "name": name,
        })
        for notes, _, name in specs
    ]
    # New iterations have no parameters yet: nothing to compare with, so a plain insert.
    rows = [
        {"iteration_id": new_id, "key": k, "value": v}
        for new_id, (_, parameters, _) in zip(ids, specs, strict=True)
        for k, v in parameters.items()
    ]
    if rows:
        insert_rows(conn, t.parameters, rows)
    return ids


def _checked_ending(item: IterationEnding) -> _CheckedEnding:
    iteration_id = check_id(item.iteration_id, "iteration_id")
    status = check_enum(item.status, IterationStatus, "status")
    if not status.ended:
        raise Unprocessable("status: an iteration is ended with SUCCEEDED, FAILED or KILLED", field="status")
    values = {
        "status": int(status),
        "error_message": check_text(item.error_message, "error_message"),
        "traceback": check_text(item.traceback, "traceback", max_length=4 * MAX_TEXT),
    }
    if item.notes is not None:
        values["notes"] = check_text(item.notes, "notes")
    parameters = {} if item.parameters is None else checked_parameters(item.parameters)
    metric_rows = [] if item.points is None else hotpath.metric_rows(iteration_id, item.points)
    return _CheckedEnding(iteration_id, values, parameters, metric_rows)


# FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers): two enders of the same
# iteration queue here, and the second sees it ended instead of overwriting the first status.
_STATES = (
    select(t.iterations.c.id, t.iterations.c.status)
    .where(t.iterations.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(t.iterations.c.id)
    .with_for_update()
)


def _apply_endings(conn: Connection, endings: list[_CheckedEnding], *, batch: str | None = None) -> None:
    """Write each ending's last data and end its iteration, inside the caller's transaction. An iteration
    that is missing, already ended or ended twice in the batch refuses the whole batch."""
    ids = [e.iteration_id for e in endings]
    stored = [i for i in ids if can_hold(t.iterations.c.id, i)]
    statuses: dict[int, int] = {}
    for chunk in _chunks(sorted(stored)):
        statuses.update(conn.execute(_STATES, {"ids": chunk}).all())
    seen: set[int] = set()
    for n, iteration_id in enumerate(ids):
        where = "" if batch is None else f"{batch}[{n}]."
        status = statuses.get(iteration_id)
        if status is None:
            raise Unprocessable(f"{where}iteration_id: iteration {iteration_id} does not exist",
                                field=f"{where}iteration_id")
        if status != IterationStatus.RUNNING or iteration_id in seen:
            already = "is ended twice in this batch" if iteration_id in seen else (
                f"already ended as {IterationStatus(status).name}")
            raise Unprocessable(f"{where}iteration_id: iteration {iteration_id} {already}",
                                field=f"{where}iteration_id")
        seen.add(iteration_id)
    store_parameters(conn, {e.iteration_id: e.parameters for e in endings})
    metric_rows = [row for e in endings for row in e.metric_rows]
    if metric_rows:
        hotpath.insert_rows(conn, metric_rows)
    now = _now()
    update_rows(conn, t.iterations, [(e.iteration_id, {**e.values, "end_date": now}) for e in endings])
