"""What every entity group of RemoteTracker shares: page sizes, the server's batch limits, and how ids,
dates, floats and enums become paths and JSON."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote

from ..tracker.records import (
    Metric,
    decode_float,
    encode_float,
)
from ..tracker.validation import (
    check_datetime,
    check_id,
    checked_points,
)

R = TypeVar("R")
_UNSET: Any = object()
PAGE_SIZE = 1000
METRIC_PAGE_SIZE = 10_000
# The server's limits on batched reads (server/routes/data.py): at most this many iteration ids per
# request, and for `/metric/series` at most this many points asked for (ids x max_points). Longer lists
# are sent in chunks.
MAX_BATCH_IDS = 1000
MAX_SERIES_BUDGET = 1_000_000
# A server refuses bodies over its DIARY_MAX_REQUEST_BYTES (at least 1 MiB, 32 MiB by default; /health
# says which). Batch writes larger than this are cut into parts that fit, so none is ever refused; a body
# of at most this size needs no look-up.
SMALL_BODY_BYTES = 1024 * 1024
_MAX_ID = 2**63 - 1


def _seg(value: Any) -> str:
    """A path segment, escaped so a name can never reach another route."""
    return quote(str(value), safe="")


def _id_path(template: str, value: Any, field: str) -> str | None:
    """`template` with the checked id in it, or None for an id past 2^63-1: no row can have one and the
    server refuses such a path as malformed, so reads answer "missing" without asking."""
    id_ = check_id(value, field)
    return None if id_ > _MAX_ID else template.format(id_)


def _batched_ids(iteration_ids: Sequence[int], size: int = MAX_BATCH_IDS) -> tuple[list[int], list[list[int]]]:
    """The checked ids, and the chunks of those the server can look up (ids past 2^63-1 name nothing)."""
    ids = [check_id(i, "iteration_ids") for i in iteration_ids]
    stored = list(dict.fromkeys(i for i in ids if i <= _MAX_ID))
    return ids, [stored[n : n + size] for n in range(0, len(stored), size)]


def _when(value: Any, field: str) -> Any:
    """A date for JSON: ISO text keeps microseconds exactly; epoch seconds stay numbers."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    return check_datetime(value, field).isoformat()


def _point_rows(points: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """Checked `(key, value, step[, recorded_at])` points as JSON rows; NaN and infinities travel as text."""
    rows: list[list[Any]] = []
    for key, value, step, when in checked_points(points):
        if value - value != 0.0:
            value = encode_float(value)
        rows.append([key, value, step] if when is None else [key, value, step, _when(when, "recorded_at")])
    return rows


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _metric(row: dict[str, Any]) -> Metric:
    """A metric row without the generic decoder: reading a long series back is all this, many times."""
    value = row["value"]
    return Metric(
        row["id"],
        row["iteration_id"],
        row["key"],
        value if type(value) is float else decode_float(value),
        row["step"],
        datetime.fromisoformat(row["recorded_at"]),
    )


_DECODERS: dict[type, Any] = {Metric: _metric}
