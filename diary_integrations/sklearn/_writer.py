"""The tracker calls both scikit-learn paths share: where the driver goes (project and experiment
by name), how options are checked, and how one finished child is written."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..connection import connect, resolve_uri
from ..reporting import (
    TrackingWarning,  # noqa: F401 - re-exported by the package
    announce,
)
from ..reporting import warn_tracking as _warn_tracking
from ..resolve import check_destination, experiment_for
from ..tracker.enums import IterationStatus
from ..tracker.errors import Conflict, NotFound, Unprocessable
from ..tracker.lifecycle import Heartbeat
from ..tracker.records import IterationEnding, NewIteration
from ..tracker.validation import MAX_BATCH, check_name

log = logging.getLogger("diary_integrations.sklearn")

CHILDREN = ("candidate", "fold")
MAX_TRACEBACK = 100_000


def warn_tracking(what: str, error: BaseException, *, stacklevel: int = 3, quiet: bool = False) -> None:
    """Report a tracking error without raising: a tracker problem must never change a fit's results."""
    _warn_tracking(what, error, logger=log, stacklevel=stacklevel, quiet=quiet)


@dataclass(frozen=True)
class Options:
    """The checked options both paths take."""

    project: str
    experiment: str
    uri: str | None = None
    parent_iteration_id: int | None = None
    children: str = "candidate"
    max_children: int | None = None
    register_as: str | None = None  # a model name: the refitted best_estimator_ is registered under it
    system_metrics: bool = True  # the fit's process tree (loky workers too) sampled onto the driver
    system_metrics_interval: float = 10.0

    def __post_init__(self) -> None:
        check_destination(self.project, self.experiment, self.uri)  # refused now, not at fit
        from ..system_metrics import check_options

        check_options(self.system_metrics, self.system_metrics_interval)
        if self.parent_iteration_id is not None and (
            isinstance(self.parent_iteration_id, bool)
            or not isinstance(self.parent_iteration_id, int)
            or self.parent_iteration_id <= 0
        ):
            raise Unprocessable(
                f"parent_iteration_id must be a positive integer or None, got {self.parent_iteration_id!r}",
                field="parent_iteration_id",
            )
        if self.children not in CHILDREN:
            raise Unprocessable(f"children must be one of {list(CHILDREN)}, got {self.children!r}", field="children")
        if self.max_children is not None and (
            isinstance(self.max_children, bool) or not isinstance(self.max_children, int) or self.max_children < 0
        ):
            raise Unprocessable(
                f"max_children must be None or a non-negative integer, got {self.max_children!r}",
                field="max_children",
            )
        if self.register_as is not None:
            check_name(self.register_as, "register_as")

    def connect(self) -> Any:
        """The tracker for `uri`, one per process and URI: searches that share a database share its engine
        (and its heartbeat thread) instead of reconnecting and re-checking migrations at every fit."""
        target = resolve_uri(None if self.uri is None else os.fspath(self.uri))
        key = (os.getpid(), target)  # a forked process must not reuse its parent's connections
        with _trackers_lock:
            tracker = _trackers.get(key)
            if tracker is None:
                tracker = _trackers[key] = connect(target)
            return tracker


_trackers: dict[tuple[int, str], Any] = {}
_trackers_lock = threading.Lock()


def experiment_id(tracker: Any, options: Options) -> int:
    """The experiment the driver goes into, found by project and experiment name or created."""
    return experiment_for(tracker, options.project, options.experiment)


def sample_system(tracker: Any, driver: int, options: Options) -> Any:
    """The driver's system metrics sampler (None when off); a failure to start it only warns."""
    if not options.system_metrics:
        return None
    try:
        from .. import system_metrics

        return system_metrics.start(tracker, driver, interval=options.system_metrics_interval)
    except Exception as exc:
        warn_tracking("could not start recording system metrics", exc)
        return None


def start(tracker: Any, experiment: int, *, parent: int | None, notes: str, snapshot: bool | None = None) -> int:
    """A RUNNING iteration kept alive by the tracker's heartbeat thread until it is ended."""
    iteration_id = tracker.create_iteration(experiment, parent_iteration_id=parent, notes=notes, snapshot=snapshot).id
    Heartbeat.of(tracker).add(iteration_id)
    announce(tracker, f"{notes or 'search'} #{iteration_id}")
    return iteration_id


def start_many(tracker: Any, experiment: int, *, parent: int, children: Sequence[NewIteration]) -> list[int]:
    """RUNNING children, created a batch (one transaction) at a time and kept alive by the heartbeat."""
    ids: list[int] = []
    for n in range(0, len(children), MAX_BATCH):
        ids += tracker.create_iterations(experiment, list(children[n : n + MAX_BATCH]), parent_iteration_id=parent)
    if ids:
        Heartbeat.of(tracker).add(*ids)
    return ids


def ending(
    iteration_id: int,
    status: IterationStatus,
    *,
    parameters: dict[str, Any] | None = None,
    points: Sequence[tuple[str, float, int]] = (),
    error_message: str = "",
    traceback: str = "",
    notes: str | None = None,
) -> IterationEnding:
    """An iteration's end with its last data; messages are cut to what the tracker stores."""
    return IterationEnding(iteration_id, status, error_message[:2000], traceback[:MAX_TRACEBACK],
                           parameters or None, list(points) or None, notes)


def finish(tracker: Any, iteration_id: int, status: IterationStatus, **data: Any) -> None:
    """End a RUNNING iteration with its last data (the `ending` arguments), in one transaction."""
    Heartbeat.of(tracker).discard(iteration_id)
    _end_one(tracker, ending(iteration_id, status, **data))


def _end_one(tracker: Any, e: IterationEnding) -> None:
    tracker.end_iteration(e.iteration_id, e.status, error_message=e.error_message, traceback=e.traceback,
                          parameters=e.parameters, points=e.points, notes=e.notes)


def finish_many(
    tracker: Any, endings: Sequence[IterationEnding], *, on_error: Callable[[int, Exception], None] | None
) -> set[int]:
    """End iterations with their last data, a batch (one transaction) at a time. When a batch is refused
    for its data, each of its endings is tried on its own, so one bad ending keeps no sibling RUNNING;
    `on_error` hears of each that still failed. When the tracker itself fails (say, the server is gone),
    `on_error` hears once, for the first ending, and nothing more is tried. Without `on_error`, the first
    failure raises. Returns the ids that were not ended."""
    if not endings:
        return set()
    Heartbeat.of(tracker).discard(*(e.iteration_id for e in endings))
    failed: set[int] = set()
    for n in range(0, len(endings), MAX_BATCH):
        batch = list(endings[n : n + MAX_BATCH])
        try:
            tracker.end_iterations(batch)
            continue
        except (Unprocessable, Conflict, NotFound):  # refused for its data: try each alone to keep the good ones
            pass
        except Exception as exc:
            if on_error is None:
                raise
            failed.update(e.iteration_id for e in endings[n:])
            on_error(batch[0].iteration_id, exc)
            return failed
        for e in batch:
            try:
                _end_one(tracker, e)
            except Exception as exc:
                if on_error is None:
                    raise
                failed.add(e.iteration_id)
                on_error(e.iteration_id, exc)
    return failed


def end_quietly(tracker: Any, iteration_id: int, message: str) -> None:
    """Leave no iteration RUNNING after a tracking error (it may already have ended, or the tracker be gone)."""
    Heartbeat.of(tracker).discard(iteration_id)
    try:
        tracker.end_iteration(iteration_id, IterationStatus.FAILED, error_message=message[:2000])
    except Exception:
        pass


def fold_list(folds: Sequence[int]) -> str:
    return ", ".join(str(f) for f in sorted(folds))


def candidate_name(halving_iter: int, candidate: int) -> str:
    return f"candidate {candidate}" if halving_iter == 0 else f"iteration {halving_iter}, candidate {candidate}"


def failure(name: str, errors: dict[int, tuple[str, str]], n_splits: int) -> tuple[str, str, str]:
    """(error_message, traceback, notes) of a candidate with failed folds: the first failure's exception;
    the notes say which folds failed. `errors` maps a fold to its (exception line, traceback)."""
    message = errors[min(errors)][0]
    if len(errors) >= n_splits:
        notes = f"{name}: all {n_splits} folds failed"
    else:
        notes = f"{name}: folds {fold_list(errors)} of {n_splits} failed; the others succeeded"
    traces: dict[str, list[int]] = {}
    for fold, (_, trace) in sorted(errors.items()):
        traces.setdefault(trace, []).append(fold)
    trace = "\n\n".join(f"folds {fold_list(folds)}:\n{text}" for text, folds in traces.items())
    return message, trace, notes


def candidate_endings(
    tracker: Any,
    experiment: int,
    child: int,
    rec: Any,
    errors: dict[int, tuple[str, str]],
    n_splits: int,
    *,
    fold_children: bool = False,
    times: dict[int, float] | None = None,
    parameters_written: bool = False,
) -> list[IterationEnding]:
    """How a candidate's RUNNING child ends: its parameters and scores, FAILED (with the fit's exception)
    when any of its folds failed, else SUCCEEDED. With `fold_children`, a grandchild per fold is created
    now and its ending comes first."""
    times = times or {}
    endings = []
    if fold_children:
        folds = sorted(set(rec.fold_scores) | set(errors))
        grandchildren = start_many(tracker, experiment, parent=child,
                                   children=[NewIteration(f"fold {f}", {"fold": f}, f"fold {f}") for f in folds])
        for fold, grandchild in zip(folds, grandchildren, strict=True):
            points = [(k, v, 0) for k, v in rec.fold_scores.get(fold, {}).items()]
            if fold in times:
                points.append(("fold_time", times[fold], 0))
            message, trace = errors.get(fold, ("", ""))
            endings.append(ending(grandchild, IterationStatus.FAILED if fold in errors else IterationStatus.SUCCEEDED,
                                  points=points, error_message=message, traceback=trace))
    status, message, trace, notes = IterationStatus.SUCCEEDED, "", "", None
    if errors:
        status = IterationStatus.FAILED
        message, trace, notes = failure(candidate_name(rec.halving_iter, rec.index_in_iter), errors, n_splits)
    # The same parameters written again would be skipped by the tracker; not sending them saves work.
    parameters = dict(rec.extra_parameters) if parameters_written else {**rec.parameters, **rec.extra_parameters}
    endings.append(ending(child, status, parameters=parameters, points=rec.points(times),
                          error_message=message, traceback=trace, notes=notes))
    return endings


def kept_rows(results: Sequence[Any], max_children: int | None) -> set[int]:
    """The rows that get a child: all of them, or the `max_children` best ranked (ties by row)."""
    if max_children is None:
        return {r.row for r in results}
    best = sorted(results, key=lambda r: (r.rank != r.rank, r.rank, r.row))  # NaN ranks last
    return {r.row for r in best[:max_children]}
