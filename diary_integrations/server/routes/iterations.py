"""/iteration/...: iterations and their trees, finalisation, heartbeats and the reaper."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import Field, StrictBool, StrictInt, StrictStr

from ...restore import requirements_text
from ...tracker.errors import Unprocessable
from ...tracker.records import IterationEnding, NewIteration, encode_float, to_dict
from ...tracker.totals import check_snapshot, count_child_iterations, count_iterations, save_environment
from ...tracker.validation import MAX_BATCH
from ..auth import require_admin
from ..bodies import RequestBody, StatusBody
from ..deps import Limit, Me, Offset, OptionalId, PathId, Tracker
from ..idempotency import idempotent
from ..permissions import Action, authorize
from ..responses import MAX_INT64, FastJSON, created, deleted, error, one, page, updated
from .data import ParameterValue, decoded_points

router = APIRouter(tags=["iterations"])
Status = StrictInt | StrictStr


class Snapshot(RequestBody):
    python_version: StrictStr = ""
    platform: StrictStr = ""
    hostname: StrictStr = ""
    git_sha: StrictStr = ""
    git_dirty: StrictBool = False
    entrypoint: StrictStr = ""
    packages: StrictStr = ""


class IterationCreate(RequestBody):
    notes: StrictStr = ""
    name: StrictStr = Field("", description="a readable label, not unique")
    parameters: dict[str, ParameterValue] | None = Field(None, description="set in the same transaction")
    environment: Snapshot | None = Field(
        None, description="the environment captured by the client's process (the server never snapshots its own)"
    )


class IterationUpdate(StatusBody):
    notes: StrictStr | None = None
    status_id: Status | None = None
    error_message: StrictStr | None = None
    traceback: StrictStr | None = None
    end_date: StrictStr | float | None = Field(None, description="ISO 8601 or epoch seconds; null clears it")


class IterationEnd(StatusBody):
    status_id: Status = 2
    error_message: StrictStr = ""
    traceback: StrictStr = ""
    parameters: dict[str, ParameterValue] | None = Field(None, description="written with the end, all or nothing")
    points: list[list[Any]] | None = Field(
        None, description='[key, value, step(, recorded_at)] as the metric batch; values may be "NaN", "Infinity"'
    )
    notes: StrictStr | None = None


class NewIterationBody(RequestBody):
    notes: StrictStr = ""
    name: StrictStr = ""
    parameters: dict[str, ParameterValue] | None = None


class IterationBatch(RequestBody):
    iterations: list[NewIterationBody] = Field(max_length=MAX_BATCH)


class EndingBody(IterationEnd):
    iteration_id: Annotated[StrictInt, Field(ge=1, le=MAX_INT64)]


class EndingBatch(RequestBody):
    endings: list[EndingBody] = Field(max_length=MAX_BATCH)


class Heartbeat(RequestBody):
    iteration_ids: list[Annotated[StrictInt, Field(ge=1, le=MAX_INT64)]] = Field(max_length=10_000)


class Reap(RequestBody):
    older_than: float = Field(300.0, ge=0, description="seconds since the last heartbeat (at least the lease)")
    experiment_id: Annotated[StrictInt | None, Field(ge=1, le=MAX_INT64)] = None
    force: StrictBool = Field(False, description="admins only: allow an age under the lease (kills live runs)")


@router.get("/iteration/experiment/{experiment_id}")
def list_iterations(
    experiment_id: PathId, tracker: Tracker, me: Me, status: Status | None = None, limit: Limit = None,
    offset: Offset = 0,
) -> FastJSON:
    authorize(tracker, me, "experiment", experiment_id, Action.READ)
    status_value = int(status) if isinstance(status, str) and status.isdigit() else status
    return page(
        lambda n, o: tracker.get_iterations(experiment_id, status=status_value, limit=n, offset=o),
        lambda: count_iterations(tracker, experiment_id, status=status_value), limit, offset,
    )


@router.post("/iteration/experiment/{experiment_id}", status_code=201)
@idempotent
def create_iteration(
    experiment_id: PathId, tracker: Tracker, me: Me, parent_iteration_id: OptionalId = None,
    body: Annotated[IterationCreate | None, Body()] = None,
) -> FastJSON:
    authorize(tracker, me, "experiment", experiment_id, Action.CREATE)
    body = body or IterationCreate()
    snapshot = None if body.environment is None else check_snapshot(body.environment.model_dump())
    new = tracker.create_iteration(
        experiment_id, parent_iteration_id=parent_iteration_id, notes=body.notes, snapshot=False,
        parameters=body.parameters, name=body.name,
    )
    if snapshot is not None:
        save_environment(tracker, new.id, snapshot)
    return created("iteration", new.id)


@router.post("/iteration/experiment/{experiment_id}/batch", status_code=201)
@idempotent
def create_iterations(
    experiment_id: PathId, body: IterationBatch, tracker: Tracker, me: Me, parent_iteration_id: OptionalId = None,
) -> FastJSON:
    """Several RUNNING iterations in one transaction, all or nothing: 201 `{"iteration_ids": [...]}` in order."""
    authorize(tracker, me, "experiment", experiment_id, Action.CREATE)
    ids = tracker.create_iterations(
        experiment_id, [NewIteration(item.notes, item.parameters, item.name) for item in body.iterations],
        parent_iteration_id=parent_iteration_id,
    )
    return FastJSON({"iteration_ids": ids}, status_code=201)


@router.post("/iteration/end")
@idempotent
def end_iterations(body: EndingBatch, tracker: Tracker, me: Me) -> FastJSON:
    """End several RUNNING iterations with their last data in one transaction, all or nothing: `{"count": n}`."""
    for item in body.endings if not me.is_admin else ():
        _authorize_ending(tracker, me, item.iteration_id, item)
    count = tracker.end_iterations([_ending(item.iteration_id, item) for item in body.endings])
    return FastJSON({"count": count})


@router.post("/iteration/heartbeat")
def heartbeat(body: Heartbeat, tracker: Tracker, me: Me) -> dict[str, str]:
    for iteration_id in body.iteration_ids if not me.is_admin else ():
        authorize(tracker, me, "iteration", iteration_id, Action.UPDATE)
    tracker.heartbeat(*body.iteration_ids)
    return {"message": "OK"}


@router.post("/iteration/reap")
def reap(body: Reap, tracker: Tracker, me: Me, request: Request) -> dict[str, list[int]]:
    """Mark KILLED the RUNNING iterations whose heartbeat stopped (all of them: admins only). The server's
    own reaper already does this once a lease expires; an age under the lease would kill live runs (their
    beats come every lease/3), so it is refused unless an admin forces it, as `diary reap` does."""
    if body.experiment_id is None or body.force:
        require_admin(me)
    else:
        authorize(tracker, me, "experiment", body.experiment_id, Action.UPDATE)
    lease = request.app.state.settings.heartbeat_lease
    if body.older_than < lease and not body.force:
        raise Unprocessable(
            f"older_than: {body.older_than:g}s would kill live runs: they beat every {lease / 3:g}s, so use at "
            f"least the lease, {lease:g}s (or force: true, as an admin)",
            field="older_than",
        )
    return {"iteration_ids": tracker.reap(body.older_than, experiment_id=body.experiment_id)}


@router.get("/iteration/{iteration_id}")
def get_iteration(iteration_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "iteration", iteration_id, Action.READ)
    return one(tracker.get_iteration(iteration_id), "Iteration")


@router.get("/iteration/{iteration_id}/children")
def child_iterations(iteration_id: PathId, tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0) -> Any:
    """The direct children, ordered by id."""
    authorize(tracker, me, "iteration", iteration_id, Action.READ)
    return page(
        lambda n, o: tracker.get_child_iterations(iteration_id, limit=n, offset=o),
        lambda: count_child_iterations(tracker, iteration_id), limit, offset,
    )


@router.get("/iteration/{iteration_id}/best-child")
def best_child(
    iteration_id: PathId, tracker: Tracker, me: Me, key: Annotated[str, Query(max_length=1000)],
    mode: Annotated[str, Query(max_length=10)] = "max",
    status: Annotated[str, Query(max_length=20, description="a status, or 'any'")] = "SUCCEEDED",
) -> Any:
    """The child with the best latest value of `key` (404 when no child has it); NaN never wins."""
    authorize(tracker, me, "iteration", iteration_id, Action.READ)
    wanted: Any = None if status.lower() == "any" else int(status) if status.isdigit() else status
    found = tracker.get_best_child_iteration(iteration_id, key, mode=mode, status=wanted)
    if found is None:
        return error(404, "NOT_FOUND", f"no child of iteration {iteration_id} has metric {key!r}")
    return FastJSON({"iteration": to_dict(found[0]), "value": encode_float(found[1])})


@router.get("/iteration/{iteration_id}/environment")
def get_environment(iteration_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "iteration", iteration_id, Action.READ)
    env = tracker.get_environment(iteration_id)
    return error(404, "NOT_FOUND", "Environment not found") if env is None else FastJSON(to_dict(env))


@router.get("/iteration/{iteration_id}/snapshot")
def get_snapshot(iteration_id: PathId, tracker: Tracker, me: Me) -> Any:
    """DearDiary's name: the environment snapshot, with the pinned requirements `restore_environment` writes."""
    authorize(tracker, me, "iteration", iteration_id, Action.READ)
    env = tracker.get_environment(iteration_id)
    if env is None:
        return error(404, "NOT_FOUND", "Snapshot not found")
    return FastJSON({**to_dict(env), "requirements": requirements_text(env)})


@router.patch("/iteration/{iteration_id}")
def update_iteration(iteration_id: PathId, body: IterationUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    authorize(tracker, me, "iteration", iteration_id, Action.UPDATE)
    extra: dict[str, Any] = {"end_date": body.end_date} if "end_date" in body.model_fields_set else {}
    tracker.update_iteration(
        iteration_id, notes=body.notes, status=body.status_id, error_message=body.error_message,
        traceback=body.traceback, **extra,
    )
    return updated()


@router.post("/iteration/{iteration_id}/end")
@idempotent
def end_iteration(iteration_id: PathId, body: IterationEnd, tracker: Tracker, me: Me) -> dict[str, str]:
    """Finish a RUNNING iteration; ending an ended one is a 422, so the first status recorded stays. Its last
    parameters, points and notes, when sent, are written in the same transaction."""
    _authorize_ending(tracker, me, iteration_id, body)
    ending = _ending(iteration_id, body)
    tracker.end_iteration(
        iteration_id, ending.status, error_message=ending.error_message, traceback=ending.traceback,
        parameters=ending.parameters, points=ending.points, notes=ending.notes,
    )
    return updated()


class IterationReopen(RequestBody):
    expected_status: Status = Field(description="the status the caller saw; refused (409) if it changed")
    reason: StrictStr = Field(description="why it continues (a requeued job, a resume); kept in its notes")


@router.post("/iteration/{iteration_id}/reopen")
@idempotent
def reopen_iteration(iteration_id: PathId, body: IterationReopen, tracker: Tracker, me: Me) -> dict[str, str]:
    """Continue an ended (or orphaned RUNNING) iteration: RUNNING again with a fresh heartbeat and a notes
    line saying when, from what and why. A 409 if it is no longer in `expected_status`, so only one caller
    takes it over; a retry with the same idempotency key is answered with the first result."""
    authorize(tracker, me, "iteration", iteration_id, Action.UPDATE)
    tracker.reopen_iteration(iteration_id, expected_status=body.expected_status, reason=body.reason)
    return updated()


@router.delete("/iteration/{iteration_id}")
def delete_iteration(iteration_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "iteration", iteration_id, Action.DELETE)
    return deleted() if tracker.delete_iteration(iteration_id) else error(404, "NOT_FOUND", "Iteration not found")


def _ending(iteration_id: int, body: IterationEnd) -> IterationEnding:
    points = None if body.points is None else decoded_points(body.points)
    return IterationEnding(
        iteration_id, body.status_id, body.error_message, body.traceback, body.parameters, points, body.notes
    )


def _authorize_ending(tracker: Any, me: Any, iteration_id: int, body: IterationEnd) -> None:
    """Ending takes update permission; writing parameters or points with it also takes create, as their
    own routes do."""
    authorize(tracker, me, "iteration", iteration_id, Action.UPDATE)
    if body.parameters or body.points:
        authorize(tracker, me, "iteration", iteration_id, Action.CREATE)
