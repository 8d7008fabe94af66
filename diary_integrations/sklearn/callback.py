"""DiaryCallback: a regular callback of scikit-learn's experimental `sklearn.callback` API (>= 1.9)
that turns each `fit` of a search into a driver iteration with one child per candidate.

Events, by hook (see docs/decisions.md, "scikit-learn"):
- `setup` (main process): the driver starts RUNNING with the search's settings as parameters.
- a fold's begin (main process, or a loky worker that forwards it): the fold's start time is kept; a
  candidate's first fold asks for its child, which the recorder thread creates RUNNING with the other
  children asked for meanwhile (one call per batch, about BATCH_SECONDS apart at most).
- a fold's end: its end time and, when the fit raised, the fit's own traceback are kept.
- the root task's end (`cv_results_` is set): every child gets its parameters, fold scores and summaries,
  and ends SUCCEEDED or FAILED, all in one call; the driver gets the best parameters and the search's
  summary metrics.
- `teardown` (always runs): the driver ends SUCCEEDED, or FAILED / KILLED with the fit's exception,
  and no child is left RUNNING.
Every hook swallows its own errors (one TrackingWarning per fit, the traceback only in the DEBUG log):
tracking never changes a search's results.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
import traceback as traceback_module
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..enclosing import set_search_fold
from ..system_metrics import stop_quietly
from ..tracker.enums import IterationStatus
from ..tracker.lifecycle import Heartbeat, describe_failure, is_kill
from ..tracker.records import IterationEnding, NewIteration
from . import _transport
from ._describe import candidate_parameters, parameters_name, search_parameters
from ._direct import WRITER, Route, child_key, create_child, forced, shared_tracker, this_host
from ._results import candidate_results, exception_line, search_summary
from ._writer import (
    Options,
    candidate_endings,
    candidate_name,
    end_quietly,
    ending,
    experiment_id,
    failure,
    finish,
    finish_many,
    kept_rows,
    sample_system,
    start,
    start_many,
    warn_tracking,
)

LEAF = "candidate-split-evaluation"
REFIT = "refit-with-best-params"
HALVING_ITERATION = "halving-iteration"
IDLE_SECONDS = 1.0  # stop waiting for worker events once none has arrived for this long
BATCH_SECONDS = 0.25  # children asked for within this long are created in one call
LOST = "fit failed (its score is error_score); its exception did not reach the tracker"


@dataclass(slots=True)
class _Fold:
    start: float | None = None
    end: float | None = None
    error: str | None = None  # the fit's traceback when it raised


@dataclass
class _Run:
    """The main process's state for one `fit`; never pickled."""

    tracker: Any
    experiment_id: int
    driver_id: int
    search: Any
    live: bool  # children are created as folds start (False with max_children: the best are picked at the end)
    grid: Any = None  # GridSearchCV's ParameterGrid: a candidate's parameters are known when it starts
    root: Any = None  # the fit's root uuid
    direct: bool = False  # workers may write children themselves (a server or PostgreSQL): keyed children
    sink: _transport.EventSink | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)
    children: dict[tuple[int, int], int] = field(default_factory=dict)  # (halving iter, candidate) -> id
    requested: set[tuple[int, int]] = field(default_factory=set)  # children asked for (maybe still queued)
    folds: dict[tuple[int, int], dict[int, _Fold]] = field(default_factory=dict)
    finalized: set[tuple[int, int]] = field(default_factory=set)
    with_parameters: set[tuple[int, int]] = field(default_factory=set)  # children whose parameters are written
    begins: int = 0
    ends: int = 0
    closed: bool = False  # late events are ignored once the children are being finalised
    waiting: bool = False  # wait_for_events is waiting on `cond`
    fit_finished: bool = False
    # Children are created by this thread, a batch at a time, so a database write never holds up the
    # search, and a fast search pays for one transaction per batch rather than one per candidate.
    recorder: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="diary-sklearn-record")
    )
    recorder_error: BaseException | None = None
    sampler: Any = None  # the driver's system metrics (stopped before the driver ends)
    create_children: Any = None  # called on the recorder thread with the keys of children to create
    pending: list[tuple[int, int]] = field(default_factory=list)  # children asked for, not yet created
    flush_queued: bool = False
    last_batch: float = -math.inf
    hurry: threading.Event = field(default_factory=threading.Event)  # the fit is over: stop batching

    def request_child(self, key: tuple[int, int]) -> None:
        """Ask for a candidate's child (called with `cond` held, at the candidate's first fold start)."""
        self.requested.add(key)
        self.pending.append(key)
        if not self.flush_queued:
            self.recorder.submit(self._flush)
            self.flush_queued = True  # set once queued: a refused submit leaves the next request to try

    def _flush(self) -> None:
        """Create the pending children in one call, at most one batch per BATCH_SECONDS: a child is RUNNING
        about that long (plus the previous batch's write) after its first fold started, or at once when
        candidates come slowly."""
        wait = self.last_batch + BATCH_SECONDS - time.monotonic()
        if wait > 0:
            self.hurry.wait(wait)
        with self.cond:
            keys, self.pending, self.flush_queued = self.pending, [], False
        self.last_batch = time.monotonic()
        try:
            self.create_children(keys)
        except Exception as exc:  # surfaced as a TrackingWarning by the next hook that can warn
            if self.recorder_error is None:
                self.recorder_error = exc

    def drain(self) -> None:
        """Create every child asked for so far, without waiting for the batch interval."""
        self.hurry.set()
        self.recorder.submit(lambda: None).result()

    def wait_for_events(self, expected: int | None) -> None:
        """Wait for the workers' fold-end events still in flight: until `expected` ends (or, without
        it, one end per begin) arrived, or no event came for IDLE_SECONDS (a worker died or is stuck)."""
        with self.cond:
            seen, since = self.begins + self.ends, time.monotonic()
            self.waiting = True
            try:
                while self.ends < (self.begins if expected is None else expected):
                    self.cond.wait(0.05)
                    if self.begins + self.ends != seen:
                        seen, since = self.begins + self.ends, time.monotonic()
                    elif time.monotonic() - since > IDLE_SECONDS:
                        return
            finally:
                self.waiting = False


def _path(context: Any) -> tuple[tuple[str, int], ...]:
    parts = []
    while context is not None:
        parts.append((context.task_name, context.task_id))
        context = context.parent
    return tuple(reversed(parts))


def _handled_fit_error() -> str | None:
    """The traceback of a fold whose fit raised and was turned into `error_score`: scikit-learn keeps it
    only in `_fit_and_score`'s `result["fit_error"]`, which is where the fold-end hook is called from."""
    frame = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            return None
        if frame.f_code.co_name == "_fit_and_score":
            result = frame.f_locals.get("result")
            return result.get("fit_error") if isinstance(result, dict) else None
        frame = frame.f_back
    return None


def _is_search(estimator: Any) -> bool:
    from sklearn.model_selection._search import BaseSearchCV

    return isinstance(estimator, BaseSearchCV)


class DiaryCallback:
    """Track each `fit` of a scikit-learn search: one driver iteration and one child per candidate
    (`children="fold"` adds a grandchild per fold), in `project`/`experiment` (found or created by name).
    With `register_as`, a fit that ends well stores the refitted `best_estimator_` (skops when installed,
    else pickle) and registers it as the next version of that model, made by the driver iteration."""

    def __init__(
        self,
        project: str,
        experiment: str,
        uri: str | None = None,
        parent_iteration_id: int | None = None,
        children: str = "candidate",
        max_children: int | None = None,
        register_as: str | None = None,
        *,
        system_metrics: bool = True,
        system_metrics_interval: float = 10.0,
    ) -> None:
        self.options = Options(project, experiment, uri, parent_iteration_id, children, max_children, register_as,
                               system_metrics, system_metrics_interval)
        self.driver_iteration_id: int | None = None
        self._routes: dict[Any, Route] = {}  # run key -> where its fold events go (pickled to workers)
        self.__setstate__(self.__getstate__())

    # -- pickling: worker copies carry only the options and where to send events -------------------

    def __getstate__(self) -> dict[str, Any]:
        lock = getattr(self, "_lock", None)
        if lock is None:
            routes = dict(self._routes)
        else:
            with lock:
                routes = dict(self._routes)
        return {"options": self.options, "driver_iteration_id": self.driver_iteration_id, "routes": routes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.options = state["options"]
        self.driver_iteration_id = state["driver_iteration_id"]
        self._routes = state["routes"]
        self._runs: dict[Any, _Run] = {}
        self._warned: set[Any] = set()  # fits (root uuids) that already warned once
        self._lock = threading.Lock()
        self._targets: dict[int, tuple[Any, Any]] = {}  # id(parent task) -> (parent task, run or route)
        self._grids: dict[int, Any] = {}  # id(worker's search copy) -> (it, its ParameterGrid or None)

    def __repr__(self) -> str:
        o = self.options
        return f"DiaryCallback(project={o.project!r}, experiment={o.experiment!r}, children={o.children!r})"

    # -- the four hooks -------------------------------------------------------------------------

    def setup(self, estimator: Any, context: Any) -> None:
        try:
            self._setup(estimator, context)
        except Exception as exc:
            self._warn(context, f"could not start tracking {type(estimator).__name__}.fit", exc)

    def on_fit_task_begin(self, estimator: Any, context: Any) -> None:
        if context.task_name == REFIT:  # a booster or Keras fit refitting the best nests under the driver
            run = self._runs.get((context.root_uuid, _path(context)[:-1]))
            set_search_fold(None if run is None else partial(lambda driver: driver, run.driver_id))
            return
        if context.task_name != LEAF:
            return
        try:
            self._fold_event("begin", estimator, context, None)
        except Exception as exc:
            self._warn(context, "could not record a fold's start", exc)

    def on_fit_task_end(self, estimator: Any, context: Any) -> bool:
        if context.task_name == REFIT:
            set_search_fold(None)
        try:
            if context.task_name == LEAF:
                exc = sys.exc_info()[1]  # set when the fold raises out of the search (error_score="raise")
                if exc is not None and is_kill(exc):  # interrupted, not failed: the child ends KILLED
                    self._fold_event("killed", estimator, context, None)
                elif exc is not None:
                    error = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
                    self._fold_event("end", estimator, context, error)
                else:
                    self._fold_event("end", estimator, context, _handled_fit_error())
            else:
                run = self._runs.get((context.root_uuid, _path(context)))
                if run is not None:
                    self._complete(run, estimator, context)
        except Exception as exc:
            self._warn(context, "could not record a task's end", exc)
        return False

    def teardown(self, estimator: Any, context: Any) -> None:
        key = (context.root_uuid, _path(context))
        with self._lock:
            run = self._runs.pop(key, None)
            self._routes.pop(key, None)  # the fitted search, pickled later, carries no live address
            self._targets = {k: v for k, v in self._targets.items() if v[1] is not run}
        if run is None:
            self._warned.discard(context.root_uuid)
            return
        try:
            self._close(run, sys.exc_info()[1], context)
        except Exception as exc:
            self._warn(context, "could not finish tracking the fit", exc)
        finally:
            self._warned.discard(context.root_uuid)
            if run.sink is not None:
                run.sink.close()

    def _warn(self, context: Any, what: str, error: BaseException) -> None:
        """One TrackingWarning per fit: once the tracker fails (say, the server is gone) every later
        hook would fail the same way, and a warning per candidate would bury the fit's own output."""
        root = getattr(context, "root_uuid", None)
        with self._lock:
            first = root not in self._warned
            self._warned.add(root)
        warn_tracking(what, error, stacklevel=4, quiet=not first)

    # -- main process -------------------------------------------------------------------------------

    def _setup(self, estimator: Any, context: Any) -> None:
        if not _is_search(estimator):
            warn_tracking(
                "DiaryCallback tracks searches", TypeError(f"{type(estimator).__name__} is not a search; not tracked")
            )
            return
        tracker = self.options.connect()
        experiment = experiment_id(tracker, self.options)
        driver = start(tracker, experiment, parent=self.options.parent_iteration_id,
                       notes=f"{type(estimator).__name__}.fit")
        self.driver_iteration_id = driver
        run = _Run(tracker, experiment, driver, estimator, live=self.options.max_children is None,
                   root=context.root_uuid, direct=shared_tracker(str(getattr(tracker, "url", ""))))
        run.create_children = lambda keys: self._start_children(run, keys)
        run.sampler = sample_system(tracker, driver, self.options)
        from sklearn.model_selection import GridSearchCV, ParameterGrid

        if isinstance(estimator, GridSearchCV):
            run.grid = ParameterGrid(estimator.param_grid)
        key = (context.root_uuid, _path(context))
        with self._lock:
            self._runs[key] = run
        tracker.log_parameters(driver, search_parameters(estimator))
        run.sink = _transport.EventSink(lambda event: self._on_sink_event(run, event))
        with self._lock:
            self._routes[key] = Route(run.sink.address, run.sink.authkey, this_host(), context.root_uuid,
                                      experiment, driver, run.direct)

    def _on_sink_event(self, run: _Run, event: tuple[Any, ...]) -> int | None:
        """An event from a worker; a question ("ask", "child", it, cand) is answered with the candidate's
        child (a booster fit in the worker's fold nests under it)."""
        if event[0] == _transport.ASK:
            _, what, it, cand = event
            return _candidate_child(run, (it, cand)) if what == "child" else None
        self._on_event(run, event)
        return None

    def _on_event(self, run: _Run, event: tuple[Any, ...]) -> None:
        """Record one fold event (from this process's hooks or, via the event sink, a worker's); a
        candidate's first fold start asks for its child."""
        kind, it, cand, fold, when, error = event
        with run.cond:
            if run.closed:
                return
            rec = run.folds.setdefault((it, cand), {}).setdefault(fold, _Fold())
            if kind == "begin":
                rec.start = when
                run.begins += 1
                if run.live and (it, cand) not in run.requested:
                    run.request_child((it, cand))
            else:
                if kind == "end":
                    rec.end, rec.error = when, error
                run.ends += 1
            if run.waiting:  # only the end of a fit waits for events; the hot path skips the notify
                run.cond.notify_all()

    def _start_children(self, run: _Run, keys: list[tuple[int, int]]) -> None:
        """Create candidates' children in one call; GridSearchCV's candidates get their parameters now.
        When workers may write children themselves (`run.direct`), each is created under its candidate's
        key instead, so whoever comes first creates it and the others get the same one."""
        specs = [_child_spec(run.grid, it, cand) for it, cand in keys]
        if run.direct:
            ids = [create_child(run.tracker, run.experiment_id, run.driver_id,
                                child_key(run.root, run.driver_id, it, cand), spec)
                   for (it, cand), spec in zip(keys, specs, strict=True)]
            Heartbeat.of(run.tracker).add(*ids)
        else:
            ids = start_many(run.tracker, run.experiment_id, parent=run.driver_id, children=specs)
        for key, spec, child in zip(keys, specs, ids, strict=True):
            run.children[key] = child
            if spec.parameters is not None:
                run.with_parameters.add(key)

    def _complete(self, run: _Run, search: Any, context: Any) -> None:
        """The root task ended: `cv_results_` is final, so every child is written and ended now."""
        run.fit_finished = True
        results = candidate_results(search)
        n_splits = int(search.n_splits_)
        run.wait_for_events(len(results) * n_splits)
        with run.cond:
            run.closed = True
        run.drain()  # closed first: no child can be asked for after this
        self._raise_recorder_error(run, context)
        keep = kept_rows(results, self.options.max_children)
        if run.direct:  # workers may have created children the main process never heard of: find them now
            unknown = [k for k in ((r.halving_iter, r.index_in_iter) for r in results if r.row in keep)
                       if k not in run.children]
            if unknown:
                try:
                    self._start_children(run, unknown)
                except Exception as exc:
                    self._warn(context, f"could not create {len(unknown)} child iterations", exc)
        failed = 0
        kept = []
        for rec in results:
            key = (rec.halving_iter, rec.index_in_iter)
            folds = run.folds.get(key, {})
            errors = {f: (exception_line(r.error), r.error) for f, r in folds.items() if r.error}
            for fold in rec.fold_scores:  # a fold whose end event never reached us: judge by its score
                if (fold not in folds or folds[fold].end is None) and rec.score_looks_failed(fold, search.error_score):
                    errors[fold] = self._written_error(run, key) or (LOST, "")
            failed += bool(errors)
            if rec.row in keep:
                kept.append((key, rec, errors, folds))
        missing = [key for key, *_ in kept if key not in run.children]
        if missing:  # max_children (children are picked now), or creation failed during the search
            try:
                self._start_children(run, missing)
            except Exception as exc:
                self._warn(context, f"could not create {len(missing)} child iterations", exc)
        endings: list[IterationEnding] = []
        keys: dict[int, tuple[int, int]] = {}  # candidate child -> key
        rows: dict[int, int] = {}  # candidate child or fold grandchild -> the candidate's row
        for key, rec, errors, folds in kept:
            child = run.children.get(key)
            if child is None:
                continue
            try:
                mine = candidate_endings(run.tracker, run.experiment_id, child, rec, errors, n_splits,
                                         fold_children=self.options.children == "fold", times=_times(folds),
                                         parameters_written=key in run.with_parameters)
            except Exception as exc:
                self._warn(context, f"could not record candidate {rec.row}", exc)
                continue
            endings += mine
            keys[child] = key
            rows.update((e.iteration_id, rec.row) for e in mine)
        refused = finish_many(run.tracker, endings, on_error=lambda child, exc: self._warn(
            context, f"could not record candidate {rows.get(child, child)}", exc))
        for grandchild in refused - set(keys):  # a fold's grandchild: nothing else would end it
            end_quietly(run.tracker, grandchild, "diary could not record this fold")
        run.finalized.update(key for child, key in keys.items() if child not in refused)
        params, metrics = search_summary(search)
        metrics["n_failed_candidates"] = float(failed)
        run.tracker.log_parameters(run.driver_id, params)
        run.tracker.log_metrics(run.driver_id, metrics, step=0)

    def _written_error(self, run: _Run, key: tuple[int, int]) -> tuple[str, str] | None:
        """The exception a worker that wrote to the tracker itself left on the candidate's child."""
        child = run.children.get(key)
        if not run.direct or child is None:
            return None
        found = run.tracker.get_iteration(child)
        return (found.error_message, found.traceback) if found is not None and found.error_message else None

    def _close(self, run: _Run, exc: BaseException | None, context: Any) -> None:
        """End the driver truthfully and leave no child RUNNING, whether or not the fit finished."""
        if run.fit_finished:
            status, message, trace = IterationStatus.SUCCEEDED, "", ""
        elif exc is not None:
            status, message, trace = describe_failure(exc)
        else:
            status, message, trace = IterationStatus.FAILED, "fit stopped before its end", ""
        if not run.closed:
            run.wait_for_events(None)
            with run.cond:
                run.closed = True
        run.hurry.set()
        run.recorder.shutdown(wait=True)  # the children asked for so far are created
        self._raise_recorder_error(run, context)
        n_splits = int(getattr(run.search, "n_splits_", 0) or 0)
        if not run.live:  # children were to be picked at the end: keep the candidates that failed
            room = (self.options.max_children or 0) - len(run.children)
            failed = [k for k, f in run.folds.items() if k not in run.children and any(r.error for r in f.values())]
            if room > 0 and failed:
                try:
                    self._start_children(run, failed[:room])
                except Exception as error:  # the driver must still end below
                    self._warn(context, "could not create the failed candidates' children", error)
        try:
            leftovers = {child: key for key, child in run.children.items() if key not in run.finalized}
            endings = []
            for child, key in leftovers.items():
                try:
                    endings.append(self._leftover_ending(run, key, child, message, n_splits))
                except Exception as error:
                    self._warn(context, f"could not describe child iteration {child}", error)
                    end_quietly(run.tracker, child, f"diary could not record this candidate: {error}")
            refused = finish_many(run.tracker, endings, on_error=lambda child, error: self._warn(
                context, f"could not end child iteration {child}", error))
            run.finalized.update(key for child, key in leftovers.items() if child not in refused)
            if run.fit_finished and self.options.register_as is not None:
                self._register(run, context)
        finally:  # whatever happened to the children, the driver ends with the fit's truth
            stop_quietly(run.sampler)  # its last points are written before the end
            finish(run.tracker, run.driver_id, status, error_message=message, traceback=trace)

    def _register(self, run: _Run, context: Any) -> None:
        """The refitted best_estimator_ stored and registered as a version made by the driver."""
        best = getattr(run.search, "best_estimator_", None)
        if best is None:  # refit=False: there is no single estimator to register
            warn_tracking("could not register a model", ValueError("the search has no best_estimator_ (refit=False)"))
            return
        try:
            from ..registry import register_estimator

            register_estimator(run.tracker, run.driver_id, best, self.options.register_as)
        except Exception as exc:
            self._warn(context, f"could not register the best estimator as {self.options.register_as!r}", exc)

    def _raise_recorder_error(self, run: _Run, context: Any) -> None:
        if run.recorder_error is not None:
            error, run.recorder_error = run.recorder_error, None
            self._warn(context, "could not create child iterations during the search", error)

    def _leftover_ending(
        self, run: _Run, key: tuple[int, int], child: int, message: str, n_splits: int
    ) -> IterationEnding:
        """How a child the search's results never reached ends: its own fold records decide its status."""
        folds = run.folds.get(key, {})
        errors = {f: (exception_line(r.error), r.error) for f, r in folds.items() if r.error}
        times = _times(folds)
        points = [("fold_time", t, f) for f, t in sorted(times.items())]
        name = candidate_name(*key)
        notes = None
        if errors:
            child_status = IterationStatus.FAILED
            child_message, trace, notes = failure(name, errors, n_splits)
        elif n_splits and len(times) == n_splits:
            child_status, child_message, trace = IterationStatus.SUCCEEDED, "", ""
            notes = f"{name}: all {n_splits} folds ran; no scores, the search stopped: {message}"
        else:
            child_status = IterationStatus.KILLED
            child_message, trace = f"the search stopped before this candidate finished: {message}", ""
        return ending(child, child_status, points=points, error_message=child_message, traceback=trace, notes=notes)

    # -- any process ------------------------------------------------------------------------------

    def _fold_event(self, kind: str, estimator: Any, context: Any, error: str | None) -> None:
        parent = context.parent
        it = parent.task_id if parent is not None and parent.task_name == HALVING_ITERATION else 0
        cand, fold = divmod(context.task_id, estimator.n_splits_)
        event = (kind, it, cand, fold, time.time(), error)
        # Every fold of a search (or halving iteration) shares its parent task: where its events go is
        # looked up once per parent. The entry holds the parent, so its id cannot be reused meanwhile.
        found = self._targets.get(id(parent))
        if found is None or found[0] is not parent:
            found = self._targets[id(parent)] = (parent, self._target(context))
        target = found[1]
        if isinstance(target, _Run):  # the process (and instance) that runs the search
            self._on_event(target, event)
            # A booster or Keras fit inside this fold nests its run under the candidate's child.
            set_search_fold(partial(_candidate_child, target, (it, cand)) if kind == "begin" else None)
        elif target is not None:  # a worker's copy: ship the event to the main process
            self._ship(target, estimator, event)
            # A booster or Keras fit in this worker's fold asks the main process for the candidate's child.
            set_search_fold(partial(_ask_child, target, (it, cand)) if kind == "begin" else None)

    def _ship(self, route: Route, search: Any, event: tuple[Any, ...]) -> None:
        """Send a fold event to the main process over its socket; a worker that cannot (another host, or
        DIARY_SKLEARN_DIRECT=1) writes it to the tracker itself when that is one every host reaches. On the
        main process's host a failed send is not retried through the tracker: the sink is gone because the
        search is over, and a late write would land on children already ended."""
        if not (route.direct and (forced() or route.host != this_host())):
            _transport.send(route.address, route.authkey, event)
            return
        _, it, cand = event[:3]
        WRITER.event(self.options.connect(), route, _child_spec(self._grid(search, it), it, cand), event)

    def _grid(self, search: Any, it: int) -> Any:
        """GridSearchCV's ParameterGrid in a worker (as the main process's `run.grid`), once per copy."""
        found = self._grids.get(id(search))
        if found is None or found[0] is not search:
            from sklearn.model_selection import GridSearchCV, ParameterGrid

            grid = ParameterGrid(search.param_grid) if isinstance(search, GridSearchCV) else None
            found = self._grids[id(search)] = (search, grid)
        return found[1]

    def _target(self, context: Any) -> _Run | tuple[Any, bytes] | None:
        """The run (in the main process) or the event sink's address (in a worker) of a fold's search."""
        path = _path(context)
        for depth in range(len(path) - 1, 0, -1):
            key = (context.root_uuid, path[:depth])
            target = self._runs.get(key) or self._routes.get(key)
            if target is not None:
                return target
        return None


def _candidate_child(run: _Run, key: tuple[int, int], timeout: float = 60.0) -> int | None:
    """The candidate's child once the recorder thread has created it (None if it never is: with
    `max_children` children are picked at the end)."""
    if not run.live:
        return None
    deadline = time.monotonic() + timeout
    with run.cond:
        while key not in run.children and not run.closed and time.monotonic() < deadline:
            run.cond.wait(0.05)
        return run.children.get(key)


def _ask_child(route: Route, key: tuple[int, int]) -> int | None:
    """In a worker: the candidate's child, from the main process (or, for a worker that writes its folds
    itself, from what it wrote); None when it cannot be had (the fit's run is then a top-level one)."""
    if route.direct and (forced() or route.host != this_host()):
        with WRITER.lock:
            return WRITER.children.get((route.root, *key))
    try:
        return _transport.ask(route.address, route.authkey, ("child", *key))
    except (EOFError, OSError) as exc:
        logging.getLogger("diary_integrations.sklearn").debug("diary: could not ask for the candidate's child: %s",
                                                               exc)
        return None


def _child_spec(grid: Any, it: int, cand: int) -> NewIteration:
    """A candidate's child as it is created (the same in the main process and in a worker)."""
    parameters = None
    if grid is not None and it == 0 and cand < len(grid):
        parameters = candidate_parameters(grid[cand])
    name = parameters_name(parameters or {}, fallback=candidate_name(it, cand))
    return NewIteration(candidate_name(it, cand), parameters, name)


def _times(folds: dict[int, _Fold]) -> dict[int, float]:
    return {f: r.end - r.start for f, r in folds.items() if r.start is not None and r.end is not None}
