"""JSON responses (orjson), the error envelope `{"code", "message"}` and paginated lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from ..tracker.records import Metric, encode_float, to_dict

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_METRIC_LIMIT = 10_000
MAX_INT64 = 2**63 - 1


class FastJSON(JSONResponse):
    """orjson serialises about ten times faster than the standard library, which matters for metric pages.
    Floats are already encoded by `records.encode_float`, so orjson never meets a NaN."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, code: str, message: str, *, field: str | None = None) -> FastJSON:
    """The envelope `{"code", "message"}`, with `field` when a rule names the field it guards."""
    body = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return FastJSON(body, status_code=status)


def created(name: str, new_id: int) -> FastJSON:
    """DearDiary's create answer: 201 `{"<entity>_id": id}`."""
    return FastJSON({f"{name}_id": new_id}, status_code=201)


def updated() -> dict[str, str]:
    return {"message": "UPDATED"}


def deleted() -> dict[str, str]:
    return {"message": "OK"}


def page(
    fetch: Callable[[int, int], Sequence[Any]],
    count: Callable[[], int],
    limit: int | None,
    offset: int,
    *,
    max_limit: int = MAX_LIMIT,
) -> FastJSON:
    """One page `{"data", "total", "limit", "offset"}`; a limit above the cap is lowered to it."""
    limit = DEFAULT_LIMIT if limit is None else min(limit, max_limit)
    rows = fetch(limit, offset)
    encode = _ENCODERS.get(type(rows[0]), to_dict) if rows else to_dict
    return FastJSON({"data": [encode(r) for r in rows], "total": count(), "limit": limit, "offset": offset})


def _metric(m: Metric) -> dict[str, Any]:
    """A metric point without the generic encoder (pages hold up to 10 000 of them); orjson writes the
    datetime itself, in the same ISO 8601 form as `isoformat()`."""
    value = m.value
    return {
        "id": m.id, "iteration_id": m.iteration_id, "key": m.key,
        "value": value if value - value == 0.0 else encode_float(value), "step": m.step, "recorded_at": m.recorded_at,
    }


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {Metric: _metric}


def one(record: Any, what: str) -> Any:
    """The record as JSON, or 404 when it does not exist."""
    if record is None:
        return error(404, "NOT_FOUND", f"{what} not found")
    return FastJSON(to_dict(record))
