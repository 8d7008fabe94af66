"""/parameter/... and /metric/...: an iteration's parameters (text) and metric series.

`POST /metric/iteration/{id}/batch` is the hot path: it parses the body with orjson and hands the
points to the tracker's bulk insert without building a model object per point. The batched reads
(`/metric/latest`, `/parameter/values`, `/metric/series`) take their iteration ids in a JSON body, since
a thousand ids do not fit a URL.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from ...tracker import schema as t
from ...tracker.errors import Unprocessable
from ...tracker.postgres_points import Claim, insert_points, point_columns
from ...tracker.records import decode_float, encode_float
from ...tracker.statements import can_hold
from ...tracker.totals import count_metrics, count_parameters, count_series_points
from ..auth import scope_user
from ..bodies import RequestBody
from ..deps import Limit, Me, Offset, PathId, Tracker
from ..idempotency import answered_once, idempotent, replayed, request_key
from ..permissions import Action, authorize
from ..responses import MAX_INT64, MAX_METRIC_LIMIT, FastJSON, created, deleted, error, one, page, updated

router = APIRouter()
ParameterValue = StrictStr | StrictBool | StrictInt | float | None
# A metric's value over JSON: a finite number (a JSON number too large for a double, such as 1e400, is
# refused, not stored as infinity; `true` is not a number), or "NaN", "Infinity", "-Infinity".
Value = Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictInt | StrictStr
When = StrictStr | float | None
Step = Annotated[StrictInt, Field(ge=0, le=MAX_INT64)]


class ParameterCreate(RequestBody):
    key: StrictStr
    value: ParameterValue = Field(description="stored as text: 1e-3 becomes '0.001'")


class ParameterBatch(RequestBody):
    parameters: dict[str, ParameterValue]


class ParameterUpdate(RequestBody):
    key: StrictStr | None = None
    value: ParameterValue = None


class MetricCreate(RequestBody):
    key: StrictStr
    value: Value = Field(description='a number, or "NaN", "Infinity", "-Infinity"')
    step: Step | None = None
    recorded_at: When = None


class MetricUpdate(RequestBody):
    value: Value | None = None
    step: Step | None = None


IterationIds = list[Annotated[StrictInt, Field(ge=1, le=MAX_INT64)]]
# Batched reads of parameters and series take at most this many ids per request (the client chunks).
MAX_BATCH_IDS = 1000
# A series request asks for at most this many points in all (ids x max_points), unless it names one id.
MAX_SERIES_BUDGET = 1_000_000


class LatestQuery(RequestBody):
    iteration_ids: IterationIds = Field(max_length=10_000)


class ValuesQuery(RequestBody):
    iteration_ids: IterationIds = Field(max_length=MAX_BATCH_IDS)


class SeriesQuery(RequestBody):
    iteration_ids: IterationIds = Field(max_length=MAX_BATCH_IDS)
    key: StrictStr
    max_points: StrictInt | None = Field(
        None,
        description="at most this many points per series (min/max buckets); "
        f"len(iteration_ids) x max_points <= {MAX_SERIES_BUDGET} unless one id is asked for. Null: the whole "
        f"series, when they hold at most {MAX_SERIES_BUDGET} points together",
    )


def _readable(tracker: Any, me: Any, iteration_ids: list[int]) -> None:
    """Every id must be readable by a non-admin (an unknown one is a 404, as for single reads)."""
    if not me.is_admin:
        for iteration_id in iteration_ids:
            authorize(tracker, me, "iteration", iteration_id, Action.READ)


def decoded_number(value: Any) -> Any:
    # Only the three spellings of a non-finite float are decoded; any other text reaches the tracker,
    # which refuses it with the field's name.
    return decode_float(value) if value in ("NaN", "Infinity", "-Infinity") else value


def decoded_points(points: list[Any]) -> list[Any]:
    """`[key, value, step(, recorded_at)]` points with "NaN", "Infinity", "-Infinity" values decoded in place
    (no new list per point); anything malformed is left for the tracker to refuse by name."""
    for point in points:
        if type(point) is list and len(point) >= 2 and type(point[1]) is str:
            point[1] = decoded_number(point[1])
    return points


@router.get("/parameter/iteration/{iteration_id}", tags=["parameters"])
def list_parameters(
    iteration_id: PathId, tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0
) -> FastJSON:
    authorize(tracker, me, "iteration", iteration_id, Action.READ)
    return page(
        lambda n, o: tracker.get_parameters(iteration_id, limit=n, offset=o),
        lambda: count_parameters(tracker, iteration_id), limit, offset,
    )


@router.post("/parameter/iteration/{iteration_id}", status_code=201, tags=["parameters"])
@idempotent
def create_parameter(iteration_id: PathId, body: ParameterCreate, tracker: Tracker, me: Me) -> FastJSON:
    authorize(tracker, me, "iteration", iteration_id, Action.CREATE)
    return created("parameter", tracker.create_parameter(iteration_id, body.key, body.value).id)


@router.post("/parameter/iteration/{iteration_id}/batch", status_code=201, tags=["parameters"])
@idempotent
def log_parameters(iteration_id: PathId, body: ParameterBatch, tracker: Tracker, me: Me) -> FastJSON:
    """Several parameters, all or nothing; a key already set to the same text is skipped."""
    authorize(tracker, me, "iteration", iteration_id, Action.CREATE)
    return FastJSON({"count": tracker.log_parameters(iteration_id, body.parameters)}, status_code=201)


@router.post("/parameter/values", tags=["parameters"])
def parameter_values(body: ValuesQuery, tracker: Tracker, me: Me) -> FastJSON:
    """For each iteration (at most 1000 per request), its parameters as `{key: value}`; `{}` for none."""
    _readable(tracker, me, body.iteration_ids)
    values = tracker.get_parameter_values(body.iteration_ids)
    return FastJSON({str(i): keys for i, keys in values.items()})


@router.get("/parameter/{parameter_id}", tags=["parameters"])
def get_parameter(parameter_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "parameter", parameter_id, Action.READ)
    return one(tracker.get_parameter(parameter_id), "Parameter")


@router.patch("/parameter/{parameter_id}", tags=["parameters"])
def update_parameter(parameter_id: PathId, body: ParameterUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    authorize(tracker, me, "parameter", parameter_id, Action.UPDATE)
    extra: dict[str, Any] = {"value": body.value} if "value" in body.model_fields_set else {}
    tracker.update_parameter(parameter_id, key=body.key, **extra)
    return updated()


@router.delete("/parameter/{parameter_id}", tags=["parameters"])
def delete_parameter(parameter_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "parameter", parameter_id, Action.DELETE)
    return deleted() if tracker.delete_parameter(parameter_id) else error(404, "NOT_FOUND", "Parameter not found")


@router.get("/metric/iteration/{iteration_id}", tags=["metrics"])
def list_metrics(
    iteration_id: PathId, tracker: Tracker, me: Me, key: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Limit = None, offset: Offset = 0,
) -> FastJSON:
    """An iteration's points ordered by step then id (pages of up to 10 000)."""
    authorize(tracker, me, "iteration", iteration_id, Action.READ)
    return page(
        lambda n, o: tracker.get_metrics(iteration_id, key=key, limit=n, offset=o),
        lambda: count_metrics(tracker, iteration_id, key=key), limit, offset, max_limit=MAX_METRIC_LIMIT,
    )


@router.post("/metric/iteration/{iteration_id}", status_code=201, tags=["metrics"])
@idempotent
def create_metric(iteration_id: PathId, body: MetricCreate, tracker: Tracker, me: Me) -> FastJSON:
    authorize(tracker, me, "iteration", iteration_id, Action.CREATE)
    new = tracker.create_metric(
        iteration_id, body.key, decoded_number(body.value), step=body.step, recorded_at=body.recorded_at
    )
    return created("metric", new.id)


_BATCH_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "description": "Either `metrics` (several keys at one step, as DearDiary) or `points` (the bulk path).",
            "type": "object",
            "properties": {
                "metrics": {"type": "array", "items": {
                    "type": "object", "required": ["key", "value"],
                    "properties": {"key": {"type": "string"}, "value": {"type": ["number", "string"]}},
                }},
                "step": {"type": ["integer", "null"], "minimum": 0},
                "recorded_at": {"type": ["string", "number", "null"]},
                "points": {"type": "array", "items": {
                    "type": "array", "minItems": 3, "maxItems": 4,
                    "description": "[key, value, step] or [key, value, step, recorded_at]",
                }},
            },
        }}},
    }
}


def batch_once(state: Any, scope: dict[str, Any], iteration_id: int, body: Any) -> Any:
    """A parsed `POST /metric/iteration/{id}/batch` body written (once per key), as a response. Runs on a
    worker thread (it may look the caller up); the route and the fast path (fast_batch.py) share it."""
    tracker = state.tracker
    user = scope_user(state, scope)
    if _one_statement(tracker, body):
        return _points_in_one_statement(tracker, user, iteration_id, body["points"])
    return answered_once(
        tracker, user, lambda: FastJSON({"count": _batch(tracker, user, iteration_id, body)}, status_code=201)
    )


def _one_statement(tracker: Any, body: Any) -> bool:
    """Whether a batch goes the one-statement way: points (not empty) for a served PostgreSQL database."""
    engine = getattr(tracker, "engine", None)
    return (engine is not None and engine.dialect.name == "postgresql" and isinstance(body, dict)
            and isinstance(body.get("points"), list) and len(body["points"]) > 0)


def _points_in_one_statement(tracker: Any, user: Any, iteration_id: int, points: list[Any]) -> Any:
    """The bulk path on PostgreSQL: key, check and points in one round trip (tracker/postgres_points.py)."""
    authorize(tracker, user, "iteration", iteration_id, Action.CREATE)
    if not can_hold(t.iterations.c.id, iteration_id):
        raise Unprocessable(f"iteration_id: iteration {iteration_id} does not exist", field="iteration_id")
    columns = point_columns(decoded_points(points))
    answer = orjson.dumps({"count": columns.count})
    keyed = request_key()
    claim = None if keyed is None else Claim(keyed[0], keyed[1], getattr(user, "id", None), 201, answer.decode())
    stored = insert_points(tracker.engine, iteration_id, columns, claim)
    if stored is not None:
        return replayed(*stored)
    tracker.touch_heartbeat(iteration_id)
    return Response(answer, 201, media_type="application/json")


def _batch(tracker: Any, user: Any, iteration_id: int, body: Any) -> int:
    authorize(tracker, user, "iteration", iteration_id, Action.CREATE)
    if not isinstance(body, dict):
        raise Unprocessable("body must be an object with `metrics` or `points`", field="body")
    if "points" in body:
        points = body["points"]
        if not isinstance(points, list):
            raise Unprocessable("points must be a list of [key, value, step(, recorded_at)]", field="points")
        return tracker.log_metric_points(iteration_id, decoded_points(points))
    metrics = body.get("metrics")
    if isinstance(metrics, list):
        values = {}
        for n, item in enumerate(metrics):
            if not isinstance(item, dict) or not isinstance(item.get("key"), str) or "value" not in item:
                raise Unprocessable(f"metrics[{n}] must be an object with a string key and a value", field="metrics")
            values[item["key"]] = decoded_number(item["value"])
    elif isinstance(metrics, dict):
        values = {k: decoded_number(v) for k, v in metrics.items()}
    else:
        raise Unprocessable("body must have `metrics` (a list of {key, value}) or `points`", field="metrics")
    return tracker.log_metrics(iteration_id, values, step=body.get("step"), recorded_at=body.get("recorded_at"))


@router.post("/metric/iteration/{iteration_id}/batch", status_code=201, tags=["metrics"], openapi_extra=_BATCH_SCHEMA)
async def log_metrics(iteration_id: PathId, request: Request) -> FastJSON:
    """Many points in one transaction, all or nothing: 201 `{"count": n}`."""
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Unprocessable(f"body is not valid JSON: {exc}", field="body") from None
    return await run_in_threadpool(batch_once, request.app.state, request.scope, iteration_id, body)


@router.post("/metric/latest", tags=["metrics"])
def latest_metrics(body: LatestQuery, tracker: Tracker, me: Me) -> FastJSON:
    """For each iteration, each key's value at its highest step."""
    _readable(tracker, me, body.iteration_ids)
    latest = tracker.get_latest_metrics(body.iteration_ids)
    return FastJSON({str(i): {k: encode_float(v) for k, v in keys.items()} for i, keys in latest.items()})


@router.post("/metric/series", tags=["metrics"])
def metric_series(body: SeriesQuery, tracker: Tracker, me: Me) -> FastJSON:
    """For each iteration (at most 1000 per request), one key's `[step, value]` points ordered by step,
    downsampled to at most `max_points` (non-finite values as "NaN", "Infinity", "-Infinity")."""
    ids = body.iteration_ids
    if body.max_points is None:
        return _whole_series(tracker, me, ids, body.key)
    # Checked here, not only in the tracker, so the budget rule below never meets a bad number.
    if body.max_points < 2:
        raise Unprocessable(f"max_points must be an integer of at least 2, got {body.max_points}", field="max_points")
    if len(ids) > 1 and len(ids) * body.max_points > MAX_SERIES_BUDGET:
        raise Unprocessable(
            f"max_points: {len(ids)} iterations x {body.max_points} points exceeds {MAX_SERIES_BUDGET} "
            "per request; ask for fewer iterations at a time",
            field="max_points",
        )
    _readable(tracker, me, ids)
    return _series_json(tracker.get_metric_series(ids, body.key, max_points=body.max_points))


def _whole_series(tracker: Any, me: Any, ids: list[int], key: str) -> FastJSON:
    """Every point of these series (a frame's history), refused when they hold more than the budget
    together: the answer stays bounded, and the client asks again with fewer ids."""
    _readable(tracker, me, ids)
    points = count_series_points(tracker, ids, key)
    if points > MAX_SERIES_BUDGET:
        raise Unprocessable(
            f"max_points: these {len(ids)} series hold {points} points, over {MAX_SERIES_BUDGET} per request; ask "
            "for fewer iterations at a time or give max_points",
            field="max_points",
        )
    return _series_json(tracker.get_metric_series(ids, key))


def _series_json(series: dict[int, list[tuple[int, float]]]) -> FastJSON:
    return FastJSON({
        str(i): [[step, value if value - value == 0.0 else encode_float(value)] for step, value in points]
        for i, points in series.items()
    })


@router.get("/metric/{metric_id}", tags=["metrics"])
def get_metric(metric_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "metric", metric_id, Action.READ)
    return one(tracker.get_metric(metric_id), "Metric")


@router.patch("/metric/{metric_id}", tags=["metrics"])
def update_metric(metric_id: PathId, body: MetricUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    authorize(tracker, me, "metric", metric_id, Action.UPDATE)
    tracker.update_metric(metric_id, value=None if body.value is None else decoded_number(body.value), step=body.step)
    return updated()


@router.delete("/metric/{metric_id}", tags=["metrics"])
def delete_metric(metric_id: PathId, tracker: Tracker, me: Me) -> Any:
    authorize(tracker, me, "metric", metric_id, Action.DELETE)
    return deleted() if tracker.delete_metric(metric_id) else error(404, "NOT_FOUND", "Metric not found")
