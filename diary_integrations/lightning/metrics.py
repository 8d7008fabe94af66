"""A run's metrics on the training thread: each call's values checked and numbered by step, then handed
to the background MetricWriter as points (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..tracker.validation import check_key
from .params import to_float

if TYPE_CHECKING:
    from .state import LoggerState


def checked_values(lg: LoggerState, metrics: Mapping[str, Any]) -> dict[str, float]:
    """Keys and values checked now (a bad one raises in `log_metrics`), for points kept until the run exists."""
    known = lg._known_keys
    out = {}
    for key, value in metrics.items():
        if key not in known:
            check_key(key, "metrics key")
            known.add(key)
        out[key] = value if type(value) is float else to_float(key, value)
    return out


def buffer_points(
    lg: LoggerState, targets: tuple[int, ...], metrics: Mapping[str, Any], step: int | None, now: float
) -> None:
    """One pass over one call's metrics: check each value, number it, queue a point per target."""
    if lg._ended_ok:
        lg._reopen()
    known, next_step, last = lg._known_keys, lg._next_step, lg._stored_last
    points = []
    for key, value in metrics.items():
        if type(value) is not float:
            value = to_float(key, value)
        if key not in known:
            check_key(key, "metrics key")
            known.add(key)
        at = next_step.get(key, 0) if step is None else step
        if at >= next_step.get(key, 0):
            next_step[key] = at + 1
        elif key == "epoch" and at == next_step[key] - 1:
            continue  # Lightning repeats `epoch` with every call at a step (train, then val): keep one
        for target in targets:
            if not last or at > last.get((target, key), -1):  # a resumed run's stored steps stay as they are
                points.append((target, key, value, at, now))
    writer = lg._writer or metric_writer(lg)
    writer.extend(points)
    if lg._flush_next_log:
        lg._flush_next_log = False
        writer.flush(30.0)
    if not lg._writing:
        # Start the background writer at the first points, so what is buffered reaches the tracker
        # every `flush_interval` (a peer's failure can block this rank in a collective).
        lg._writing = True
        writer._start()


def metric_writer(lg: LoggerState) -> Any:
    """The logger's MetricWriter, made on first use with the logger's batching options."""
    if lg._writer is None:
        from ..writer import MetricWriter

        lg._writer = MetricWriter(
            lg.tracker,
            batch_size=lg._batch_size,
            max_batches=lg._max_pending_batches,
            interval=lg._flush_interval,
            retries=lg._write_retries,
        )
    return lg._writer
