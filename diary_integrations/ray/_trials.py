"""Each Tune trial's child iteration, written from the driver process as Tune reports on the trial:
created RUNNING (its config as parameters) when the trial starts, each result's metrics as points at its
`training_iteration`, and its end as Tune saw it: completed -> SUCCEEDED; ERROR -> FAILED with the
trial's exception text and its traceback from Tune's error report (also for a worker that was SIGKILLed:
Tune reports the actor's death); stopped by the scheduler -> KILLED, "stopped by ASHAScheduler at
iteration N"; stopped unfinished by the experiment's end or interruption -> KILLED.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from ..lightning import resume
from ..tracker.enums import IterationStatus
from ..tracker.errors import Conflict, TransportError, Unprocessable
from ..tracker.keys import using_key
from ..tracker.lifecycle import Heartbeat, describe_failure, one_line
from . import _context
from ._experiment import TRIAL_ID_PARAMETER, Driver, flat, keyed
from ._outage import Deliveries, Unborn

log = logging.getLogger("diary_integrations.ray")

# What Tune adds to every result (ray.tune.result.AUTO_RESULT_KEYS and the bookkeeping beside them):
# not the trainable's metrics. `time_this_iter_s` is kept: how long each reported iteration took.
BOOKKEEPING = frozenset({
    "training_iteration", "time_total_s", "episodes_total", "timesteps_total", "node_ip", "hostname", "pid",
    "timestamp", "date", "time_since_restore", "timesteps_since_restore", "iterations_since_restore",
    "checkpoint_dir_name", "done", "should_checkpoint", "trial_id", "experiment_tag", "experiment_id",
})


@dataclass(frozen=True)
class TrialInfo:
    """What the recording needs of a Tune trial, taken on Tune's thread when a hook is called (Tune goes
    on changing the trial while the writes happen on the callback's own thread)."""

    trial_id: str
    label: str  # Tune's trial name, e.g. "train_fn_614bf_00003"
    config: dict[str, Any]
    experiment_name: str
    last_result: dict[str, Any]
    status: str

    @classmethod
    def of(cls, trial: Any) -> TrialInfo:
        return cls(trial.trial_id, str(trial)[:200], dict(trial.config), trial.storage.experiment_dir_name,
                   dict(trial.last_result or {}), str(trial.status))


def metric_points(result: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """A result's step (`training_iteration`) and its numeric metrics, nested keys joined with "/"."""
    step = int(result.get("training_iteration") or 0)
    values: dict[str, float] = {}
    for key, value in flat({k: v for k, v in result.items() if k not in BOOKKEEPING and k != "config"}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            values[key[:250]] = float(value)
    return step, values


def describe_error(exc: BaseException) -> tuple[IterationStatus, str, str]:
    """`describe_failure`, and for a Tune error that carries a formatted traceback as its text (a callback
    or searcher that raised), the line naming the original exception as the message."""
    status, message, trace = describe_failure(exc)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        message = f"{type(exc).__name__}: {lines[-1]}"[:2000]
    return status, message, trace


def error_of(trial: Any) -> tuple[str, str]:
    """The (message, traceback) of Tune's report of a trial's error: the exception the trainable raised
    (a RayTaskError's cause) or the actor's death, with the remote traceback Tune stored."""
    error = None
    pickled = getattr(trial, "pickled_error_file", None)  # written on this process before Tune calls us
    try:
        if pickled and os.path.exists(pickled):
            import cloudpickle

            with open(pickled, "rb") as handle:
                error = cloudpickle.load(handle)
        else:
            error = trial.get_pickled_error()
    except Exception:  # noqa: BLE001 - an error that does not unpickle here: the text file still tells
        error = None
    text = ""
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    if error is not None:
        cause = getattr(error, "cause", None)
        message = one_line(cause if isinstance(cause, BaseException) else error)
        return message, (str(error) or text)[-20000:]
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("Failure #")]
    return (lines[-1][:2000] if lines else "the trial failed (Tune kept no error report)"), text[-20000:]


INNER_GRACE = 5.0  # how long a run inside a stopped trial may take to write its own end
HAND_OVER_POINTS = 500
HAND_OVER_SECONDS = 1.0  # as MetricWriter's interval: a running trial's points show within about 2 s


class Trials:
    """The children of one driver, by Tune trial id."""

    def __init__(self, tracker: Any, writer: Any, driver: Driver, stopped: dict[str, int]) -> None:
        self.tracker = tracker
        self.writer = writer
        self.driver = driver
        self.known = driver.children() if driver.resumed else {}  # trial id -> Iteration (restored)
        self.open: dict[str, int] = {}  # trial id -> child id, while RUNNING
        self.last_step: dict[tuple[int, str], int] = {}  # (child, key) -> highest step stored
        self.noded: set[int] = set()
        self.reopened: set[int] = set()  # children of a restored experiment, run again
        self.node: dict[int, dict[str, Any]] = {}  # child -> its node, written with its end
        # A trial's points wait here until they are a second old (or many), then go to the writer; a
        # short trial's points are written with its end, in the same transaction: one write per trial.
        self.pending: dict[int, list[tuple[str, float, int, float]]] = {}
        self.pending_since: dict[int, float] = {}
        self.handed: set[int] = set()  # children with points given to the writer since their last flush
        self.stopped = stopped  # trial id -> iteration at which the scheduler stopped it (noted on Tune's thread)
        # Trials whose child the server was away to create: retried (same key) until it answers, their
        # results and end kept here meanwhile, in order (docs/decisions.md, "Issue 30", outages).
        self.unborn: dict[str, Unborn] = {}
        self.deliveries = Deliveries(tracker)  # ends kept in the local journal, sent when the server answers

    def start(self, trial: TrialInfo) -> int | None:
        """The trial's child, RUNNING: created once per trial (key: driver and trial id), reopened when a
        restored experiment runs the trial again; a retried trial (Tune's `max_failures`) keeps its child.
        None while the server is away: the creation is retried by `tick` (same key) until it answers."""
        child = self.open.get(trial.trial_id)
        if child is not None:
            _context.publish(trial.experiment_name, trial.trial_id, child, f"trial {trial.label}")
            return child
        found = self.known.pop(trial.trial_id, None)
        if found is None:
            waiting = self.unborn.get(trial.trial_id)
            try:
                child = self._create(trial)
            except TransportError as exc:
                # The server is away: the child is created later with the same key (one row however
                # often it is sent); the trial's results and end wait for it here, in order.
                if waiting is None:
                    self.unborn[trial.trial_id] = Unborn(trial, tried=time.monotonic())
                else:
                    waiting.tried = time.monotonic()
                log.info("diary: trial %s is recorded once the server answers (%s)", trial.label, exc)
                return None
            if waiting is not None:  # a retried trial (max_failures) whose child is only now created
                del self.unborn[trial.trial_id]
                self._born(waiting, child)
                return child
        else:
            child = found.id
            stored = resume.stored_last_steps(self.tracker, child)  # read before the reopen, as resume does
            # Also a RUNNING one (its driver was SIGKILLed): this process takes it over, so liveness follows it.
            resume.reopen(self.tracker, found, f"Tune runs trial {trial.label} again")
            self.last_step.update(((child, key), step) for key, step in stored.items())
            self.reopened.add(child)
        self.open[trial.trial_id] = child
        Heartbeat.of(self.tracker).add(child)
        _context.publish(trial.experiment_name, trial.trial_id, child, f"trial {trial.label}")
        return child

    def _create(self, trial: TrialInfo) -> int:
        with using_key(keyed("trial", self.driver.iteration_id, trial.trial_id)):
            return self.tracker.create_iteration(
                self.driver.experiment_id,
                parent_iteration_id=self.driver.iteration_id,
                name=f"trial {trial.label}",
                notes=f"Ray Tune trial {trial.label}",
                parameters={TRIAL_ID_PARAMETER: trial.trial_id, **flat(trial.config)},
            ).id

    def _born(self, waiting: Unborn, child: int) -> None:
        """A trial's child created at last: its kept results go to it in order, then its kept end."""
        trial = waiting.trial
        self.open[trial.trial_id] = child
        Heartbeat.of(self.tracker).add(child)
        if waiting.end is None:  # still running: a run inside it may still be waiting for its id
            _context.publish(trial.experiment_name, trial.trial_id, child, f"trial {trial.label}")
        for result, at in waiting.results:
            self.result(trial, result, at=at)
        if waiting.end is not None:
            status, data = waiting.end
            self._end_id(trial.trial_id, status, **data)

    def bear(self, *, every: float = 1.0) -> None:
        """Try again to create the children the server was away for (each at most once per `every`
        seconds; the first that still cannot be sent ends the round: the server is still away)."""
        for trial_id, waiting in list(self.unborn.items()):
            if time.monotonic() - waiting.tried < every:
                continue
            try:
                child = self._create(waiting.trial)
            except TransportError:
                waiting.tried = time.monotonic()
                return
            del self.unborn[trial_id]
            self._born(waiting, child)

    def result(self, trial: TrialInfo, result: dict[str, Any], *, at: float | None = None) -> None:
        """One reported result: its metrics as points (a step already stored is not written again), and
        on the first one the node the trial runs on. `at`: when Tune reported it (a kept result)."""
        child = self.open.get(trial.trial_id)
        if child is None:
            waiting = self.unborn.get(trial.trial_id)
            if waiting is not None and waiting.end is None:  # kept until its child exists
                waiting.results.append((dict(result), time.time()))
            return
        if child not in self.noded and result.get("node_ip"):
            self.noded.add(child)
            node = {k: result.get(k) for k in ("node_ip", "hostname") if result.get(k)}
            if child in self.reopened:  # it may have a node from its earlier run: written apart, kept if so
                try:
                    self.tracker.log_parameters(child, node)
                except Conflict:
                    pass
            else:
                self.node[child] = node
        step, values = metric_points(result)
        now = time.time() if at is None else at
        pending = self.pending.setdefault(child, [])
        for key, value in values.items():
            if self.last_step.get((child, key), -1) >= step:
                continue
            self.last_step[(child, key)] = step
            pending.append((key, value, step, now))
        self.pending_since.setdefault(child, now)
        if len(pending) >= HAND_OVER_POINTS or now - self.pending_since[child] >= HAND_OVER_SECONDS:
            self._hand_over(child)

    def tick(self) -> None:
        """Points waiting longer than HAND_OVER_SECONDS go to the writer (a trial that reports rarely);
        children the server was away for are created, ends it was away for sent from the journal."""
        self.bear()
        self.deliveries.send()
        now = time.time()
        for child, since in list(self.pending_since.items()):
            if now - since >= HAND_OVER_SECONDS:
                self._hand_over(child)

    def _hand_over(self, child: int) -> None:
        points = self.pending.pop(child, [])
        self.pending_since.pop(child, None)
        if points:
            self.writer.extend([(child, key, value, step, at) for key, value, step, at in points])
            self.handed.add(child)

    def complete(self, trial: TrialInfo) -> None:
        """Tune stopped the trial without an error: it completed, or the scheduler or the experiment's end
        stopped it early."""
        last = trial.last_result
        iteration = int(last.get("training_iteration") or 0)
        by = self.stopped.pop(trial.trial_id, None)
        child = self.open.get(trial.trial_id)
        if by is not None and (self.budget is None or by < self.budget):
            note = f"stopped by {self.scheduler} at iteration {by}"
            self._end(trial, IterationStatus.KILLED, notes=note)
        elif last.get("done"):  # it returned, met its stop criteria, or used the scheduler's whole budget
            note = f"stopped by {self.scheduler} at iteration {by} (its whole budget)"
            self._end(trial, IterationStatus.SUCCEEDED)
        else:
            note = f"stopped unfinished at iteration {iteration}: the Tune experiment stopped"
            self._end(trial, IterationStatus.KILLED, error_message=note)
        if child is not None and (by is not None or not last.get("done")):
            self._stop_runs_inside(child, note)

    def _stop_runs_inside(self, child: int, note: str) -> None:
        """Runs opened inside a trial Tune stopped (a DiaryLogger, a Transformers train()) that are still
        RUNNING after INNER_GRACE seconds end KILLED with the trial's note: Tune ends a stopped trial's
        actor without waiting for the trial's thread, so such a run's own end may never be written (the
        first end wins: one the run wrote itself meanwhile stands)."""
        deadline = time.monotonic() + INNER_GRACE
        while True:
            running = [it for it in self.tracker.get_child_iterations(child) if it.status is IterationStatus.RUNNING]
            if not running or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        for inner in running:
            try:
                self.tracker.end_iteration(inner.id, IterationStatus.KILLED, error_message=note)
            except (Conflict, Unprocessable):
                pass  # it ended itself meanwhile: that end stands

    scheduler = "the scheduler"  # set by the callback: the experiment's scheduler, as Ray names it
    budget: int | None = None  # the scheduler's max_t: stopped there, a trial has run its full budget

    def error(self, trial: TrialInfo, message: str, trace: str) -> None:
        self._end(trial, IterationStatus.FAILED, error_message=message, traceback=trace)

    def abandon(self, error: BaseException | None) -> None:
        """The experiment ended with trials still open (it raised, or was interrupted and will be
        restored): each is KILLED, or FAILED with the experiment's error, to be reopened by a restore."""
        if error is not None:
            status, message, _ = describe_error(error)
            message = f"the Tune experiment ended with {message}"
        else:
            status, message = IterationStatus.KILLED, "the Tune experiment stopped before this trial finished"
        for trial_id in [*self.open, *(t for t, w in self.unborn.items() if w.end is None)]:
            self._end_id(trial_id, status, error_message=message[:2000])

    def settle_restored(self, trials: list[Any]) -> None:
        """A restored experiment's children whose trials Tune did not run again: each ends as Tune's state
        has its trial (the end written before the driver was killed may have been lost; a reaper then
        said KILLED), or KILLED when Tune no longer has the trial (its state was not saved in time)."""
        by_id = {t.trial_id: t for t in trials}
        for trial_id, child in list(self.known.items()):
            if child.status not in resume.RESUMABLE:
                continue  # ended as Tune said, before the kill
            trial = by_id.get(trial_id)
            if trial is not None and str(trial.status) in ("TERMINATED", "ERROR"):
                info = TrialInfo.of(trial)
                resume.reopen(self.tracker, child, "its trial ended before Tuner.restore; the end is written now")
                self.open[trial_id] = child.id
                if info.status == "ERROR":
                    self.error(info, *error_of(trial))
                else:
                    self.complete(info)
            elif child.status is IterationStatus.RUNNING:
                self.open[trial_id] = child.id
                lost = "the Tune experiment was restored without this trial (its state was not saved)"
                self._end_id(trial_id, IterationStatus.KILLED, error_message=lost)
        self.known.clear()

    def _end(self, trial: TrialInfo, status: IterationStatus, **data: Any) -> None:
        self._end_id(trial.trial_id, status, **data)
        _context.withdraw(trial.experiment_name, trial.trial_id)

    def _end_id(self, trial_id: str, status: IterationStatus, **data: Any) -> None:
        child = self.open.pop(trial_id, None)
        if child is None:
            waiting = self.unborn.get(trial_id)
            if waiting is not None and waiting.end is None:  # written with its child, once that exists
                waiting.end = (status, data)
            return
        points = self.pending.pop(child, [])
        self.pending_since.pop(child, None)
        if child in self.handed:
            self.handed.discard(child)
            self.writer.flush()  # its earlier points are stored before its end
        node = self.node.pop(child, None)
        Heartbeat.of(self.tracker).discard(child)
        try:
            self.tracker.end_iteration(child, status, points=points or None, parameters=node or None, **data)
        except (Conflict, Unprocessable):
            pass  # ended already (reaped while the driver stalled): that end stands
        except TransportError as exc:
            if getattr(exc, "journal", None) is None:
                raise
            self.deliveries.add(child, exc.journal)  # type: ignore[attr-defined] - sent when the server answers
