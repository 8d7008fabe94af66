"""Iterations: creating them (with their environment snapshot), their tree, ending them, heartbeats, reaping."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..tracker.enums import Result
from ..tracker.environment import capture_environment
from ..tracker.errors import (
    IterationEnded,
    Unprocessable,
)
from ..tracker.lifecycle import OpensIterationRuns
from ..tracker.records import (
    Created,
    Environment,
    Iteration,
    IterationEnding,
    NewIteration,
)
from ..tracker.validation import (
    batch_item,
    check_id,
    check_iteration_name,
    checked_batch,
    checked_new_iteration,
    checked_parameters,
    listed_points,
)
from .base import (
    _UNSET,
    _enum_value,
    _id_path,
    _point_rows,
    _when,
)
from .journaling import JournalMixin


def _ending_body(ending: IterationEnding) -> dict[str, Any]:
    """An ending as the JSON the server takes, its parameters and points checked here first."""
    body: dict[str, Any] = {
        "iteration_id": check_id(ending.iteration_id, "iteration_id"),
        "status_id": _enum_value(ending.status),
        "error_message": ending.error_message,
        "traceback": ending.traceback,
    }
    if ending.parameters is not None:
        body["parameters"] = checked_parameters(ending.parameters)
    if ending.points is not None:
        body["points"] = _point_rows(ending.points)
    if ending.notes is not None:
        body["notes"] = ending.notes
    return body


class IterationsMixin(OpensIterationRuns, JournalMixin):
    # -- iterations -------------------------------------------------------------------------------

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
        """A RUNNING iteration, with `parameters` set in the same transaction. The environment snapshot
        (default: top-level iterations only) is taken here, in the process that runs the code, and sent."""
        experiment_id = check_id(experiment_id, "experiment_id")
        params = {
            "parent_iteration_id": None
            if parent_iteration_id is None
            else check_id(parent_iteration_id, "parent_iteration_id")
        }
        if snapshot is None:
            snapshot = parent_iteration_id is None
        body: dict[str, Any] = {"notes": notes}
        if name:
            body["name"] = check_iteration_name(name)
        if parameters is not None:
            body["parameters"] = checked_parameters(parameters)
        if snapshot is True:
            body["environment"] = dataclasses.asdict(capture_environment())
        elif snapshot is not False:
            raise Unprocessable(f"snapshot must be true or false, got {snapshot!r}", field="snapshot")
        data = self._call("POST", f"/iteration/experiment/{experiment_id}", body=body, params=params)
        return self._created(data, "iteration")

    def create_iterations(
        self, experiment_id: int, iterations: Sequence[NewIteration], *, parent_iteration_id: int | None = None
    ) -> list[int]:
        """Several RUNNING iterations (each with its notes and parameters) in one request and one
        transaction, all or nothing. No environment snapshots. Their ids, in order."""
        experiment_id = check_id(experiment_id, "experiment_id")
        params = {
            "parent_iteration_id": None
            if parent_iteration_id is None
            else check_id(parent_iteration_id, "parent_iteration_id")
        }
        body = []
        for n, item in enumerate(checked_batch(iterations, "iterations", NewIteration)):
            with batch_item("iterations", n):
                notes, parameters = checked_new_iteration(item)
                body.append({"notes": notes, "parameters": parameters, "name": check_iteration_name(item.name)})
        answers = self._call_in_parts(
            "POST", f"/iteration/experiment/{experiment_id}/batch", "iterations", body, params=params
        )
        return [int(i) for data in answers for i in data["iteration_ids"]]

    def get_iteration(self, iteration_id: int) -> Iteration | None:
        return self._one(Iteration, _id_path("/iteration/{}", iteration_id, "iteration_id"))

    def get_iterations(
        self, experiment_id: int, *, status: Any = None, limit: int | None = None, offset: int = 0
    ) -> list[Iteration]:
        path = _id_path("/iteration/experiment/{}", experiment_id, "experiment_id")
        return self._list(Iteration, path, limit, offset, status=_enum_value(status))

    def get_child_iterations(self, iteration_id: int, *, limit: int | None = None, offset: int = 0) -> list[Iteration]:
        """The direct children of an iteration, ordered by id."""
        return self._list(Iteration, _id_path("/iteration/{}/children", iteration_id, "iteration_id"), limit, offset)

    def get_environment(self, iteration_id: int) -> Environment | None:
        return self._one(Environment, _id_path("/iteration/{}/environment", iteration_id, "iteration_id"))

    def update_iteration(
        self,
        iteration_id: int,
        *,
        notes: str | None = None,
        status: Any = None,
        error_message: str | None = None,
        traceback: str | None = None,
        end_date: datetime | None = _UNSET,
    ) -> Result:
        """Change an iteration. A status other than RUNNING stamps `end_date` unless one is given."""
        body: dict[str, Any] = {
            "notes": notes,
            "status_id": _enum_value(status),
            "error_message": error_message,
            "traceback": traceback,
        }
        body = {k: v for k, v in body.items() if v is not None}
        if end_date is not _UNSET:
            body["end_date"] = _when(end_date, "end_date")
        self._call("PATCH", f"/iteration/{check_id(iteration_id, 'iteration_id')}", body=body)
        return Result.UPDATED

    def reopen_iteration(self, iteration_id: int, *, expected_status: Any, reason: str) -> Result:
        """Continue an iteration: RUNNING again, a notes line saying when, from what and why; `Conflict`
        unless it is still `expected_status`. Sent with an idempotency key, so a retry is applied once.
        A run's write like its end: behind the run's writes waiting in the local journal (a second entry
        point reopening a run whose first end is still there), journaled if the server cannot be reached."""
        iteration_id = check_id(iteration_id, "iteration_id")
        body = {"expected_status": _enum_value(expected_status), "reason": reason}
        self._write_or_journal(iteration_id, "reopen", 1, f"/iteration/{iteration_id}/reopen", body)
        return Result.UPDATED

    def end_iteration(
        self,
        iteration_id: int,
        status: Any = 2,
        *,
        error_message: str = "",
        traceback: str = "",
        parameters: Mapping[str, Any] | None = None,
        points: Iterable[Sequence[Any]] | None = None,
        notes: str | None = None,
    ) -> Result:
        """Finish a RUNNING iteration with its final status (ending an ended iteration is refused), with
        its last `parameters`, `points` and `notes` written in the same transaction on the server."""
        ending = IterationEnding(
            iteration_id, status, error_message, traceback, parameters, listed_points(points), notes
        )
        body = _ending_body(ending)
        iteration_id = body.pop("iteration_id")
        self._write_or_journal(iteration_id, "end", 1, f"/iteration/{iteration_id}/end", body)
        return Result.UPDATED

    def end_iterations(self, endings: Sequence[IterationEnding]) -> int:
        """End several RUNNING iterations, each with its own status and last data, in one request and one
        transaction, all or nothing. Returns how many were ended."""
        body = []
        for n, item in enumerate(checked_batch(endings, "endings", IterationEnding)):
            with batch_item("endings", n):
                body.append(_ending_body(item))
        if not body:
            return 0
        return sum(int(data["count"]) for data in self._call_in_parts("POST", "/iteration/end", "endings", body))

    def delete_iteration(self, iteration_id: int) -> bool:
        """Deletes the iteration and its data; its children stay, as top-level iterations."""
        return self._deleted(_id_path("/iteration/{}", iteration_id, "iteration_id"))

    def heartbeat(self, *iteration_ids: int) -> None:
        """Mark these iterations alive now (only those still RUNNING)."""
        ids = [check_id(i, "iteration_id") for i in iteration_ids]
        if not ids:
            return
        try:
            self._call("POST", "/iteration/heartbeat", body={"iteration_ids": ids})
        except IterationEnded as exc:
            from . import journal

            # Ended on the server, but this process's reopen of it may still wait in the local journal (a
            # test after a fit, while the server was away): not ended behind its back, so not reported.
            exc.ended = {i: s for i, s in exc.ended.items() if not journal.has_pending(self.url, i)}
            if exc.ended:
                raise

    def reap(
        self, older_than: float | timedelta = 300.0, *, experiment_id: int | None = None, force: bool = False
    ) -> list[int]:
        """Mark KILLED every RUNNING iteration whose heartbeat is older than `older_than` (seconds). The
        server refuses an age under its lease unless an admin `force`s it (its own reaper already acts at
        the lease)."""
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise Unprocessable(
                f"older_than must be a non-negative number of seconds, got {older_than!r}", field="older_than"
            )
        body = {
            "older_than": float(seconds),
            "experiment_id": None if experiment_id is None else check_id(experiment_id, "experiment_id"),
        }
        if force:
            body["force"] = True
        return list(self._call("POST", "/iteration/reap", body=body)["iteration_ids"])
