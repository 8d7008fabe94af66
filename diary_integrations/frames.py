"""Iterations as a DataFrame for a notebook: `to_frame`, `search_frame`, `sweep_frame`.

One row per iteration: `id`, `name`, `status`, `error`, `parent`, `created`, `duration` (seconds; NaN
while running), then `params.<key>` for each parameter (a number column when every value of it parses
as one, else text) and `metrics.<key>` for each metric's latest value. With `history=["loss"]` the
answer is instead a long frame of those series: `id`, `key`, `step`, `value`.

Rows come from batched reads (`get_parameter_values`, `get_latest_metrics`, `get_metric_series`), a
fixed number of calls however many iterations there are. pandas is the `[pandas]` extra (polars the `[polars]`
extra, for `backend="polars"`); neither is imported until a frame is asked for.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .cli.listing import searched
from .tracker.records import Iteration

BACKENDS = ("pandas", "polars")
FIXED_COLUMNS = ("id", "name", "status", "error", "parent", "created", "duration")


def _library(backend: str) -> Any:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    try:
        return importlib.import_module(backend)
    except ImportError:
        raise ImportError(f"frames need {backend}: pip install 'diary-integrations[{backend}]'") from None


def _tracker(tracker: Any) -> Any:
    if tracker is not None:
        return tracker
    from .connection import get_tracker

    return get_tracker()


def _column(values: list[str | None]) -> list[Any]:
    """A parameter's column: numbers when every present value parses as one (ints stay ints unless a
    value is missing), else the text as stored. Whole columns are converted at once, not value by value."""
    present = [v for v in values if v is not None]
    if not present:
        return values
    complete = len(present) == len(values)
    try:
        if complete:
            return [int(v) for v in present]
        [int(v) for v in present]  # noqa: B018 - only whether they all parse
        return [math.nan if v is None else float(v) for v in values]
    except ValueError:
        pass
    try:
        return [math.nan if v is None else float(v) for v in values]
    except ValueError:
        return values


def _wide(iterations: list[Iteration], tracker: Any) -> dict[str, list[Any]]:
    ids = [i.id for i in iterations]
    params = tracker.get_parameter_values(ids) if ids else {}
    latest = tracker.get_latest_metrics(ids) if ids else {}
    columns: dict[str, list[Any]] = {
        "id": ids,
        "name": [i.name for i in iterations],
        "status": [i.status.name for i in iterations],
        "error": [i.error_message for i in iterations],
        "parent": [i.parent_iteration_id for i in iterations],
        "created": [i.created_date for i in iterations],
        "duration": [math.nan if i.end_date is None else (i.end_date - i.created_date).total_seconds()
                     for i in iterations],
    }
    param_keys = sorted({k for i in ids for k in params.get(i, {})})
    for key in param_keys:
        columns[f"params.{key}"] = _column([params.get(i, {}).get(key) for i in ids])
    metric_keys = sorted({k for i in ids for k in latest.get(i, {})})
    for key in metric_keys:
        columns[f"metrics.{key}"] = [latest.get(i, {}).get(key, math.nan) for i in ids]
    return columns


def _long(iterations: list[Iteration], tracker: Any, keys: Sequence[str]) -> dict[str, list[Any]]:
    ids = [i.id for i in iterations]
    columns: dict[str, list[Any]] = {"id": [], "key": [], "step": [], "value": []}
    for key in keys:
        series = tracker.get_metric_series(ids, key) if ids else {}
        for iteration_id in ids:
            for step, value in series.get(iteration_id, []):
                columns["id"].append(iteration_id)
                columns["key"].append(key)
                columns["step"].append(step)
                columns["value"].append(value)
    return columns


def _frame(columns: dict[str, list[Any]], backend: str) -> Any:
    library = _library(backend)
    if backend == "pandas":
        frame = library.DataFrame(columns)
        if "created" in frame.columns:
            frame["created"] = library.to_datetime(frame["created"], utc=True)
        return frame
    # polars wants None, not NaN, for a missing float, and one type per column.
    cleaned = {
        name: [None if isinstance(v, float) and v != v else v for v in values] for name, values in columns.items()
    }
    return library.DataFrame(cleaned, strict=False)


def to_frame(
    iterations: Iterable[Iteration], *, history: Sequence[str] | None = None, backend: str = "pandas",
    tracker: Any = None,
) -> Any:
    """These iterations as a DataFrame: one row each (id, name, status, error, parent, created, duration,
    `params.*`, `metrics.*` latest values), or with `history=[keys]` the long frame of those series
    (id, key, step, value). `backend="polars"` for a polars frame. Reads in batches from `tracker` (default:
    the default tracker)."""
    _library(backend)  # a missing extra is said before anything is read
    found = list(iterations)
    tracker = _tracker(tracker)
    columns = _long(found, tracker, list(history)) if history else _wide(found, tracker)
    return _frame(columns, backend)


def search_frame(
    experiment_ids: int | Sequence[int],
    filter: str = "",  # noqa: A002 - the search's name for it
    order_by: Sequence[str] = (),
    *,
    max_results: int | None = None,
    history: Sequence[str] | None = None,
    backend: str = "pandas",
    tracker: Any = None,
) -> Any:
    """`search_iterations` as a frame (every page, or the first `max_results` rows); see `to_frame`."""
    _library(backend)
    tracker = _tracker(tracker)
    found = searched(tracker, experiment_ids if isinstance(experiment_ids, (list, tuple)) else [experiment_ids],
                     filter, order_by, max_results)
    return to_frame(found, history=history, backend=backend, tracker=tracker)


def sweep_frame(
    driver_id: int, *, history: Sequence[str] | None = None, backend: str = "pandas", tracker: Any = None
) -> Any:
    """A sweep's children (the direct children of its driver iteration, by id) as a frame; see `to_frame`."""
    _library(backend)
    tracker = _tracker(tracker)
    return to_frame(tracker.get_child_iterations(driver_id), history=history, backend=backend, tracker=tracker)
