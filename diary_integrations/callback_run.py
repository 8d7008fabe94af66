"""CallbackRun: one tracked run for a callback-style integration (XGBoost, LightGBM, Keras, Transformers),
over the same machinery DiaryLogger uses, without any framework.

    run = CallbackRun("Fraud", "xgboost", uri="sqlite:///runs.db")
    run.start()                                  # opens the iteration off the training thread
    run.log_params({"booster": {"max_depth": 3}})   # "booster/max_depth", written once
    run.log_metrics({"validation_0-logloss": 0.41}, step=0)   # buffered, a background thread writes
    run.end()                                    # flush, then SUCCEEDED (or FAILED / KILLED with end(exc))

The iteration is found-or-created in `project`/`experiment` by name; its parent is `parent_iteration_id`,
else the tracked trial this process runs in (`enclosing.py`), else none. On a database the tracker runs
in a sidecar process (`sidecar=False`: in this one); on a server it is the HTTP client, whose journal
keeps what an outage holds back. Metric points go through `writer.MetricWriter`; parameters through
`params.write_parameters_once`; the end through the shared exit hooks (`exit_hooks.py`), so a process
that dies of an uncaught exception ends the run FAILED with it, and a SIGTERM (turned into an exit while
the run is open, when nobody else handles SIGTERM) or Ctrl-C ends it KILLED. `child(name)` opens a child
iteration sharing the tracker and the writer (a cross-validation fold).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import exit_hooks, losses, system_metrics
from .params import flatten_hyperparameters, to_float, write_parameters_once
from .reporting import announce, warn_tracking
from .resolve import check_name_or_id, uri_argument
from .tracker.enums import IterationStatus
from .tracker.errors import Unprocessable
from .tracker.lifecycle import Heartbeat, describe_failure, sigterm_as_exit, sigterm_held, sigterm_restored
from .tracker.validation import check_key, check_step

__all__ = ["UNENDED_AT_EXIT", "CallbackRun"]

log = logging.getLogger("diary_integrations")

OPEN_TIMEOUT = 300.0  # how long the end of a run waits for a run still being opened
CLOSE_TIMEOUT = 120.0  # how long the end of a run waits for buffered metrics to be written
# The error text of a run whose training never reached its end callback while the process exited cleanly:
# the framework raised, and the program caught the exception and went on.
UNENDED_AT_EXIT = "training stopped before its end (the program handled the exception and exited)"


def _check_flag(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise Unprocessable(f"{field} must be true or false, got {value!r}", field=field)


def _check_text(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise Unprocessable(f"{field} must be a string, got {type(value).__name__}", field=field)


def _system_metrics_options(enabled: Any, interval: Any) -> None:
    system_metrics.check_options(enabled, interval)


def _start_sampler(tracker: Any, iteration_id: int, interval: float) -> Any:
    """The run's system metrics (issue 29), from a thread of their own; None where they cannot be read
    (no psutil): a run is never refused or broken for them."""
    try:
        return system_metrics.start(tracker, iteration_id, interval=interval)
    except Exception as error:  # noqa: BLE001 - system metrics are a bonus, the run goes on without them
        log.debug("diary: system metrics not recorded: %s", error)
        return None


class CallbackRun:
    """One iteration written by a framework's callbacks: open once, parameters once, metric points buffered
    and written off the training thread, models stored as resources (registered on success with
    `register_as`), and an end that tells the truth whichever of `end`, a `finally` or interpreter exit
    reaches it first. Every argument is checked here: a bad one is an `Unprocessable` naming it."""

    def __init__(
        self,
        project: str | int,
        experiment: str | int,
        uri: str | os.PathLike[str] | None = None,
        *,
        tracker: Any = None,
        parent_iteration_id: int | None = None,
        name: str = "",
        notes: str = "",
        sidecar: bool = True,
        log_model: bool = False,
        register_as: str | None = None,
        flush_interval: float = 1.0,
        batch_size: int = 1000,
        max_pending_batches: int = 16,
        write_retries: int = 5,
        system_metrics: bool = True,
        system_metrics_interval: float = 10.0,
    ) -> None:
        check_name_or_id(project, "project")
        check_name_or_id(experiment, "experiment")
        if parent_iteration_id is not None:
            check_name_or_id(parent_iteration_id, "parent_iteration_id", names=False)
        for field, value in (("name", name), ("notes", notes)):
            _check_text(field, value)
        for field, value in (("sidecar", sidecar), ("log_model", log_model)):
            _check_flag(field, value)
        if register_as is not None and not (log_model and isinstance(register_as, str) and register_as.strip()):
            raise Unprocessable("register_as needs log_model=True and a non-empty model name", field="register_as")
        for field, value in (("batch_size", batch_size), ("max_pending_batches", max_pending_batches)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise Unprocessable(f"{field} must be a positive integer, got {value!r}", field=field)
        if not (isinstance(write_retries, int) and not isinstance(write_retries, bool) and write_retries >= 0):
            raise Unprocessable(f"write_retries must be a non-negative integer, got {write_retries!r}",
                                field="write_retries")
        if not (isinstance(flush_interval, (int, float)) and not isinstance(flush_interval, bool)
                and flush_interval > 0):
            raise Unprocessable(f"flush_interval must be a positive number of seconds, got {flush_interval!r}",
                                field="flush_interval")
        _system_metrics_options(system_metrics, system_metrics_interval)
        self._system_metrics = system_metrics
        self._system_metrics_interval = float(system_metrics_interval)
        self._sampler: Any = None
        self._uri = uri_argument(uri)
        if tracker is None:  # a bad URI is refused here, not inside the training loop
            from .connection import check_uri, resolve_uri

            check_uri(resolve_uri(self._uri))
        self._project, self._experiment = project, experiment
        self._parent_iteration_id = parent_iteration_id
        self._name, self._notes, self._sidecar = name, notes, sidecar
        self.log_model, self.register_as = log_model, register_as
        self._writer_options = {"batch_size": batch_size, "max_batches": max_pending_batches,
                                "interval": float(flush_interval), "retries": write_retries}
        self._tracker = tracker
        self._own_tracker = False
        self._root: CallbackRun = self  # children share the root's tracker and writer
        self._children: list[CallbackRun] = []
        self._lock = threading.RLock()
        # Connecting (a sidecar process starting: seconds on a loaded machine) and making the writer
        # happen under locks of their own: the training thread's logging never waits behind them.
        self._connect_lock = threading.Lock()
        self._writer_lock = threading.Lock()
        self._end_lock = threading.Lock()
        self.iteration_id: int | None = None
        """The run's iteration once opened (`open()` waits for it)."""
        self.experiment_id: int | None = None
        self.status: IterationStatus | None = None
        """How this process ended the run (None while it runs, or when the end could not be decided)."""
        self._writer: Any = None
        self._opener: threading.Thread | None = None
        self._open_failure: BaseException | None = None
        self._early: list[tuple[str, float, int, float]] = []  # points logged while the run was opening
        self._early_params: dict[str, Any] = {}
        self._written_params: set[str] = set()
        self._known_keys: set[str] = set()
        self._models: list[tuple[bytes | str | os.PathLike[str], str, str]] = []
        self._journaled_params = 0
        self._ended = False
        self._sigterm_entered = False
        self._search_fold: Callable[[], int | None] | None = None
        self.finished_cleanly: Callable[[], bool] | None = None
        """Asked at interpreter exit when the program exits cleanly and the run was never ended: True when
        the training is known to have completed (LightGBM, which has no end callback, sets it)."""
        self.end_raised: Callable[[Any, int, BaseException], Any] | None = None
        """Called as `end_raised(tracker, iteration_id, exc)` instead of the plain end when the run ends
        with an exception: a run shared by several ranks ends as `distributed.conclude_shared` says (the
        failing rank's own error, never a peer's secondary "connection closed")."""

    def __repr__(self) -> str:
        return f"CallbackRun({self._project!r}, {self._experiment!r}, iteration_id={self.iteration_id})"

    # -- the tracker and the writer (the root's, shared by its children) ------------------------------

    @property
    def tracker(self) -> Any:
        """The tracker this run writes through, connected on first use."""
        root = self._root
        if root._tracker is None:
            with root._connect_lock:
                if root._tracker is None:
                    from .connection import connect

                    root._tracker = connect(root._uri, sidecar=root._sidecar)
                    root._own_tracker = True
        return root._tracker

    def _metric_writer(self) -> Any:
        root = self._root
        if root._writer is None:
            with root._writer_lock:
                if root._writer is None:
                    from .writer import MetricWriter

                    writer = MetricWriter(self.tracker, **root._writer_options)
                    writer._start()  # what is buffered reaches the tracker every flush_interval
                    root._writer = writer
        return root._writer

    @property
    def written(self) -> int:
        """How many metric points of this run (and its children) the tracker has stored so far."""
        return 0 if self._root._writer is None else self._root._writer.written

    @property
    def journaled(self) -> int:
        """How many metric points wait in the local journal because the server could not be reached."""
        return 0 if self._root._writer is None else self._root._writer.journaled

    @property
    def dropped(self) -> int:
        """How many metric points could not be written (reported when the run ends)."""
        return 0 if self._root._writer is None else self._root._writer.dropped

    # -- opening ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin opening the run on a background thread (the training thread does not wait for the
        sidecar, the experiment lookup or the first writes); idempotent. What is logged meanwhile is
        kept and written once the iteration exists."""
        if self._opener is not None:
            return  # started: every later log call comes here first, without a lock
        with self._lock:
            if self._opener is not None or self._ended:
                return
            from .enclosing import search_fold_parent

            # A fit inside a tracked scikit-learn search's fold nests under that candidate's child: asked
            # here, on the training thread, answered on the opening thread.
            self._search_fold = search_fold_parent() if self._root is self else None
            # Published only once started: `start`'s lock-free check lets another thread (a fold's opener
            # asking for its parent) go on to join the opener the moment it is set.
            opener = threading.Thread(target=self._open_in_background, name="diary-open-run", daemon=True)
            if self._root is self:
                # From now until the end, exit ends this run truthfully; SIGTERM unwinds as KILLED.
                exit_hooks.hold(self, self._end_at_exit, lambda: self._writer)
                if threading.current_thread() is threading.main_thread():
                    sigterm_as_exit()
                    self._sigterm_entered = True
            opener.start()
            self._opener = opener

    def open(self) -> int:
        """Open the run (or wait for the opening `start` began) and return its iteration id; idempotent.
        A failure to open is raised here."""
        self.start()
        assert self._opener is not None
        self._opener.join(OPEN_TIMEOUT)
        if self._open_failure is not None:
            raise self._open_failure
        if self.iteration_id is None:
            raise TimeoutError(f"the run could not be opened within {OPEN_TIMEOUT:g} s")
        return self.iteration_id

    def child(self, name: str, *, notes: str = "") -> CallbackRun:
        """A child iteration of this run (a cross-validation fold), opened in the background now, sharing
        this run's tracker and writer. Ending this run ends a child still running with the same status."""
        _check_text("name", name)
        _check_text("notes", notes)
        kid = CallbackRun.__new__(CallbackRun)
        kid.__dict__.update(self.__dict__)
        kid._root, kid._parent = self._root, self
        kid._name, kid._notes = name, notes
        kid._lock, kid._end_lock = threading.RLock(), threading.Lock()
        kid._children = []
        kid.iteration_id = kid.status = kid._opener = kid._open_failure = None
        kid._early, kid._early_params, kid._written_params, kid._known_keys = [], {}, set(), set()
        kid._models, kid._journaled_params, kid._ended, kid._sigterm_entered = [], 0, False, False
        kid._writer = None
        kid._sampler = None  # the root's sampler reads the whole process: a fold needs none of its own
        kid.finished_cleanly = None
        kid.end_raised = None
        with self._lock:
            self._children.append(kid)
        kid.start()
        return kid

    def _open_in_background(self) -> None:
        try:
            self._open_iteration()
        except BaseException as error:  # noqa: BLE001 - raised by open(), warned about by end()
            self._open_failure = error

    def _open_iteration(self) -> None:
        tracker = self.tracker
        parent = getattr(self, "_parent", None)
        if parent is not None:
            parent_id: int | None = parent.open()
            self.experiment_id = parent.experiment_id
        else:
            from .enclosing import enclosing_parent_iteration_id
            from .resolve import experiment_for

            self.experiment_id = experiment_for(tracker, self._project, self._experiment)
            parent_id = self._parent_iteration_id
            if parent_id is None and self._search_fold is not None:
                parent_id = self._search_fold()
            if parent_id is None:
                parent_id = enclosing_parent_iteration_id(tracker)
        iteration_id, _ = tracker.create_iteration(
            self.experiment_id,
            parent_iteration_id=parent_id,
            notes=self._notes,
            **({"name": self._name} if self._name else {}),
            **({"snapshot": False} if parent is not None else {}),
        )
        Heartbeat.of(tracker).add(iteration_id)
        if parent is None:
            announce(tracker, f"run #{iteration_id}")
            if self._system_metrics:
                self._sampler = _start_sampler(tracker, iteration_id, self._system_metrics_interval)
        with self._lock:
            params, self._early_params = self._early_params, {}
        if params:
            self._write_params(iteration_id, params)
        # Under the lock the training thread takes while the run is opening: no point is kept after this.
        with self._lock:
            early, self._early = self._early, []
            if early:
                self._metric_writer().extend([(iteration_id, *point) for point in early])
            self.iteration_id = iteration_id

    # -- logging ------------------------------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters, flattened to "a/b" keys; each key is written once (a later value for a written key
        is kept out, with a warning and a notes line)."""
        if not isinstance(params, Mapping):
            raise Unprocessable(f"params must be a mapping, got {type(params).__name__}", field="params")
        flat = {k: v for k, v in flatten_hyperparameters(params).items() if k not in self._written_params}
        if not flat:
            return
        self.start()
        with self._lock:
            if self.iteration_id is None:
                self._early_params.update(flat)
                self._written_params.update(flat)
                return
        self._write_params(self.iteration_id, flat)

    def _write_params(self, iteration_id: int, flat: dict[str, Any]) -> None:
        self._written_params.update(flat)
        self._journaled_params += write_parameters_once(
            self.tracker, iteration_id, flat, advice="use a new run for a new configuration")

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """One step of metrics, checked now (a bad key or value raises) and buffered: no I/O here."""
        if type(step) is not int or step < 0:
            step = check_step(step)
        now = time.time()
        known = self._known_keys
        values = []
        for key, value in metrics.items():
            if key not in known:
                check_key(key, "metrics key")
                known.add(key)
            values.append((key, value if type(value) is float else to_float(key, value), step, now))
        if not values:
            return
        iteration_id = self.iteration_id
        if iteration_id is None:
            self.start()
            with self._lock:
                iteration_id = self.iteration_id
                if iteration_id is None:
                    self._early.extend(values)
                    return
        self._metric_writer().extend([(iteration_id, *point) for point in values])

    def store_model(self, data: bytes | str | os.PathLike[str], *, file_name: str, description: str = "") -> None:
        """Keep a model (its bytes, or a file) for the end of the run: then it becomes a resource
        `iteration-<id>/<file_name>` of the experiment, and with `register_as` a SUCCEEDED run registers
        it as the next version of that model."""
        _check_text("file_name", file_name)
        if not file_name.strip():
            raise Unprocessable("file_name must not be empty", field="file_name")
        if not isinstance(data, (bytes, str, os.PathLike)):
            raise Unprocessable(f"data must be bytes or a path, got {type(data).__name__}", field="data")
        self._models.append((data, file_name, description))

    # -- the end --------------------------------------------------------------------------------------

    def end(self, exc: BaseException | None = None) -> None:
        """Flush, then end the run with the truth: SUCCEEDED without `exc`, else FAILED with its one-line
        text and traceback (KILLED for Ctrl-C, SIGTERM, SystemExit). Idempotent (the first end wins) and
        never raises: what could not be recorded is one TrackingWarning."""
        if exc is None:
            self._finish(IterationStatus.SUCCEEDED, "", "", None)
        else:
            self._finish(*describe_failure(exc), exc)

    def end_with(self, status: IterationStatus, message: str = "", traceback: str = "") -> None:
        """End the run with a status of the integration's choosing ("pruned", "stopped by ASHA", a NaN
        loss): like `end`, idempotent and never raising."""
        if not isinstance(status, IterationStatus) or status is IterationStatus.RUNNING:
            raise Unprocessable(f"status must be an ended IterationStatus, got {status!r}", field="status")
        self._finish(status, message, traceback, None)

    def _end_at_exit(self, exc: BaseException | None) -> None:
        if exc is None and self.finished_cleanly is not None and self.finished_cleanly():
            self.end()
        elif exc is None:
            self._finish(IterationStatus.FAILED, UNENDED_AT_EXIT, "", None)
        else:
            self.end(exc)

    @property
    def ended(self) -> bool:
        """True once an end was decided for this run (by any caller)."""
        return self._ended

    def _finish(self, status: IterationStatus, message: str, trace: str, exc: BaseException | None) -> None:
        # Held for the whole end: a second caller (interpreter exit while a watcher thread ends the run)
        # waits for the first one's writes, then finds the run ended.
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
            try:
                with sigterm_held():
                    self._conclude(status, message, trace, exc)
            finally:
                if self._root is self:
                    exit_hooks.release(self)
                    if self._sigterm_entered:
                        self._sigterm_entered = False
                        sigterm_restored()

    def _conclude(self, status: IterationStatus, message: str, trace: str, exc: BaseException | None) -> None:
        for kid in list(self._children):  # a fold still running ends as the cross-validation did
            kid._finish(status, message, trace, exc)
        opener = self._opener
        if opener is None:
            return  # never started: nothing was written
        opener.join(OPEN_TIMEOUT)
        iteration_id = self.iteration_id
        if iteration_id is None:
            with self._lock:
                self._early.clear()
            warn_tracking("the run could not be opened; what was logged is lost", self._open_failure, logger=log)
            return
        root, pending, failure = self._root, 0, None
        # The machine's last reading (the peaks) before the run's end, and no reading after it.
        system_metrics.stop_quietly(self._sampler)
        writer = root._writer
        if writer is not None:
            wait = writer.default_timeout()
            done = writer.close(timeout=CLOSE_TIMEOUT if wait is None else wait) if root is self else \
                writer.flush(timeout=CLOSE_TIMEOUT if wait is None else wait)
            if not done:
                pending = writer.backlog()
        try:
            self._store_models(iteration_id, status)
            from .distributed import end_quietly

            Heartbeat.of(self.tracker).discard(iteration_id)
            if exc is not None and self.end_raised is not None:
                self.end_raised(self.tracker, iteration_id, exc)
            else:
                end_quietly(self.tracker, iteration_id, status, message, trace)
            self.status = status
        except Exception as error:  # noqa: BLE001 - tracking must never break (or replace) the program's end
            failure = error
            if getattr(error, "journal", None) is not None:
                self.status = status  # kept in the journal: `diary sync` delivers it
        if root is self:
            Heartbeat.of(self.tracker).join_idle()
            # Asked before the tracker closes: a closed sidecar asked for a method starts a new process.
            delivered = failure is None and self._remote_end_delivered()
            if self._own_tracker:
                close = getattr(self._tracker, "close", None)
                from .sidecar import SidecarTracker

                if isinstance(self._tracker, SidecarTracker) and close is not None:
                    close()  # every call was answered, so applied
            # An end the server took was sent after the run's journal, which the client replays first:
            # points the writer journaled in an outage were delivered then, not left behind (`delivered`).
            losses.report(iteration_id, None if delivered else writer, failure, pending, dropped=self.dropped,
                          journaled_params=self._journaled_params, waited=CLOSE_TIMEOUT, stacklevel=6,
                          last_error=writer.errors[-1] if writer is not None and writer.errors else None)
        elif failure is not None:
            losses.report(iteration_id, None, failure, 0, dropped=0, waited=CLOSE_TIMEOUT, stacklevel=6)

    def _remote_end_delivered(self) -> bool:
        """True when every iteration of this run was ended through a server client (journal first)."""
        return callable(getattr(self.tracker, "replay", None)) and all(
            kid.status is not None for kid in self._children)

    def _store_models(self, iteration_id: int, status: IterationStatus) -> None:
        """The kept models as resources; a SUCCEEDED run registers them with `register_as`. A model that
        cannot be stored is a warning: the run's end comes next and must still be written."""
        from .registry import register_model_file

        for data, file_name, description in self._models:
            resource_name = f"iteration-{iteration_id}/{file_name}"
            text = description or f"model of iteration {iteration_id}"
            try:
                if self.register_as is not None and status is IterationStatus.SUCCEEDED:
                    register_model_file(self.tracker, iteration_id, data, self.register_as,
                                        resource_name=resource_name, description=text)
                else:
                    self.tracker.create_resource(self.experiment_id, resource_name, data, description=text)
            except Exception as error:  # noqa: BLE001
                warn_tracking(f"iteration {iteration_id}: the model {file_name} could not be stored", error,
                              logger=log)
        self._models.clear()
