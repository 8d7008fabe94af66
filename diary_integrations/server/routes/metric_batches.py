"""`POST /metric/batch`: several iterations' metric points in one request and one transaction.

    {"iterations": [{"iteration_id": 12, "points": [[key, value, step(, recorded_at)], ...],
                     "idempotency_key": "..."}, ...]}

answers 201 `{"count": n, "counts": [n per group], "replayed": [bool per group]}`. All or nothing: a bad
point, or a missing or ended iteration, refuses the whole batch with a 422 naming the group. A group's
optional `idempotency_key` is the key its own `POST /metric/iteration/{id}/batch` would carry: it is
claimed here with that request's purpose, so the group is written once whichever way it arrives (here,
or alone from a run's journal later); a group applied before is counted, not written again. The
request's own `Idempotency-Key` header, if sent, guards the whole batch as on every write route.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...tracker import schema as t
from ...tracker.errors import Unprocessable
from ...tracker.idempotency import check_key, request_hash
from ...tracker.metric_groups import GroupResult, PointGroup, group_rows, write_groups
from ...tracker.statements import can_hold
from ..auth import current_user
from ..idempotency import answered_once
from ..permissions import Action, authorize
from ..responses import FastJSON
from .data import decoded_points

router = APIRouter()
# Groups per request (the client cuts a larger set into several requests).
MAX_GROUPS = 1000
_GROUP_FIELDS = frozenset({"iteration_id", "points", "idempotency_key"})

_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["iterations"], "additionalProperties": False,
            "properties": {"iterations": {"type": "array", "maxItems": MAX_GROUPS, "items": {
                "type": "object", "required": ["iteration_id", "points"], "additionalProperties": False,
                "properties": {
                    "iteration_id": {"type": "integer", "minimum": 1},
                    "points": {"type": "array", "items": {"type": "array", "minItems": 3, "maxItems": 4}},
                    "idempotency_key": {"type": "string"},
                },
            }}},
        }}},
    }
}


def single_batch_purpose(iteration_id: int) -> str:
    """The purpose a key has when sent with `POST /metric/iteration/{id}/batch` (server/idempotency.py)."""
    return request_hash("POST", f"/metric/iteration/{iteration_id}/batch", "")


def parsed_groups(body: Any) -> list[tuple[int, list[Any], str | None]]:
    """`(iteration_id, points, key)` per group, or a 422 naming what is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get("iterations"), list):
        raise Unprocessable("body must be an object with `iterations`, a list of "
                            "{iteration_id, points(, idempotency_key)}", field="iterations")
    unknown = sorted(set(body) - {"iterations"})
    if unknown:
        raise Unprocessable(f"{unknown[0]}: unknown field", field=unknown[0])
    entries = body["iterations"]
    if len(entries) > MAX_GROUPS:
        raise Unprocessable(f"iterations: at most {MAX_GROUPS} per request, got {len(entries)}", field="iterations")
    out = []
    seen: set[int] = set()
    for n, entry in enumerate(entries):
        where = f"iterations[{n}]"
        if not isinstance(entry, dict):
            raise Unprocessable(f"{where} must be an object with iteration_id and points", field=where)
        extra = sorted(set(entry) - _GROUP_FIELDS)
        if extra:
            raise Unprocessable(f"{where}.{extra[0]}: unknown field", field=f"{where}.{extra[0]}")
        iteration_id = entry.get("iteration_id")
        if type(iteration_id) is not int or iteration_id < 1:
            raise Unprocessable(f"{where}.iteration_id must be a positive integer, got {iteration_id!r}",
                                field=f"{where}.iteration_id")
        if iteration_id in seen:
            raise Unprocessable(f"{where}.iteration_id: iteration {iteration_id} appears twice; send its points "
                                "in one group", field=f"{where}.iteration_id")
        seen.add(iteration_id)
        points = entry.get("points")
        if not isinstance(points, list):
            raise Unprocessable(f"{where}.points must be a list of [key, value, step(, recorded_at)]",
                                field=f"{where}.points")
        key = entry.get("idempotency_key")
        if key is not None:
            key = check_key(key, f"{where}.idempotency_key")
        out.append((iteration_id, points, key))
    return out


def _answer(results: list[GroupResult]) -> FastJSON:
    return FastJSON({"count": sum(r.count for r in results), "counts": [r.count for r in results],
                     "replayed": [r.replayed for r in results]}, status_code=201)


def _groups_once(tracker: Any, request: Request, body: Any) -> Any:
    user = current_user(request)
    entries = parsed_groups(body)
    for n, (iteration_id, _, _) in enumerate(entries):
        if not can_hold(t.iterations.c.id, iteration_id):
            raise Unprocessable(f"iterations[{n}].iteration_id: iteration {iteration_id} does not exist",
                                field=f"iterations[{n}].iteration_id")
        authorize(tracker, user, "iteration", iteration_id, Action.CREATE)
    groups = [
        PointGroup(iteration_id, group_rows(iteration_id, decoded_points(points), f"iterations[{n}]"), key,
                   None if key is None else single_batch_purpose(iteration_id))
        for n, (iteration_id, points, key) in enumerate(entries)
    ]
    user_id = getattr(user, "id", None)
    return answered_once(tracker, user, lambda: _answer(write_groups(tracker, groups, user_id=user_id)))


@router.post("/metric/batch", status_code=201, tags=["metrics"], openapi_extra=_SCHEMA)
async def log_metric_groups(request: Request) -> FastJSON:
    """Several iterations' points in one transaction, all or nothing (see the module's docstring)."""
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Unprocessable(f"body is not valid JSON: {exc}", field="body") from None
    return await run_in_threadpool(_groups_once, request.app.state.tracker, request, body)
