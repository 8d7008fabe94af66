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
    func,
    select,
    update,
)

from .. import hotpath
from .. import schema as t
from ..enums import ExperimentStatus, IterationStatus, Result
from ..environment import capture_environment
from ..errors import Unprocessable
from ..lifecycle import IterationRun
from ..records import (
    Created,
    Environment,
    Iteration,
    IterationEnding,
    NewIteration,
)
from ..statements import can_hold, fetch_by_id, insert_row, insert_rows, update_row, update_rows
from ..validation import (
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


class IterationsMixin(TrackerBase):

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
        beat = time.monotonic()
        for i in ids:
            self._last_beat[i] = beat
        return ids

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
        name: str = "",
    ) -> IterationRun:
        """A context manager (and call form) that opens an iteration and finalises it truthfully."""
        return IterationRun(
            self, experiment_id, parent_iteration_id=parent_iteration_id, notes=notes, snapshot=snapshot, name=name
        )


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
