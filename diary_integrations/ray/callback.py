"""`DiaryCallback`: a Ray Tune callback that records a Tune experiment as a driver iteration with a child
per trial. Tune runs callbacks on the driver process (the one calling `Tuner.fit`), so every write
happens there, through one tracker (a sidecar process on a database, as DiaryLogger's) and one
`MetricWriter` for the results' points; a trial worker that dies gets its status from Tune's own report.

Tracking never changes the experiment: Tune ends an experiment whose callback raises, so every hook is
guarded, and a failure is one TrackingWarning (the rest only in the DEBUG log).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from ..client import journal
from ..connection import connect
from ..reporting import announce, warn_tracking
from ..resolve import check_destination
from ..system_metrics import check_options
from ..tracker.errors import Unprocessable
from ..writer import MetricWriter
from . import _context, _controller, _samplers
from ._experiment import Driver, flat
from ._trials import TrialInfo, Trials, error_of

log = logging.getLogger("diary_integrations.ray")


def describe_space(space: dict[str, Any]) -> dict[str, str]:
    """The search space as driver parameters `space.<key>`: `Float(0.0001, 0.1) LogUniform`, a grid's values."""
    described: dict[str, str] = {}
    for key, value in flat(space).items():
        domain = getattr(value, "domain_str", None)
        if domain is not None:
            sampler = type(getattr(value, "sampler", None)).__name__.lstrip("_")
            text = f"{type(value).__name__}{domain}" + (f" {sampler}" if sampler != "NoneType" else "")
        else:
            text = repr(value)
        described[f"space.{key.removesuffix('/grid_search')}"] = text[:2000]
    return described


class _Experiment:
    """What one experiment's writes share: the tracker, the writer, the driver and its trials. Made and
    used on the callback's own thread."""

    def __init__(self, callback: DiaryCallback, setup: _controller.Setup, spec: dict[str, Any],
                 stopped: dict[str, int]) -> None:
        controller = setup.controller
        self.tracker = connect(callback._uri, sidecar=callback._sidecar)
        announce(self.tracker, "Ray Tune experiment")
        self.writer = MetricWriter(self.tracker)
        scheduler = _controller.scheduler_of(controller)
        self.metric, self.mode = _controller.metric_and_mode(setup)
        if self.metric is None:  # Tune was told none (tune.run without metric): the callback's, if given
            self.metric, self.mode = callback._metric, callback._mode
        parameters: dict[str, Any] = {
            "scheduler": _controller.scheduler_name(scheduler) if scheduler is not None else "",
            "searcher": _controller.searcher_name(controller),
            **({"metric": self.metric} if self.metric else {}),
            **({"mode": self.mode} if self.mode else {}),
            **{k: spec[k] for k in ("num_samples", "total_num_samples", "time_budget_s") if spec.get(k) is not None},
            **describe_space(_controller.search_space(setup)),
        }
        path = _controller.experiment_path(controller, fallback=str(spec.get("name") or "experiment"))
        restored = bool(getattr(controller, "resumed", False))
        self.driver = Driver(self.tracker, callback._project, callback._experiment, path, parameters,
                             restored=restored)
        self.trials = Trials(self.tracker, self.writer, self.driver, stopped)
        self.samplers = _samplers.TrialSamplers(self.tracker, callback._system_metrics_interval)
        if scheduler is not None:
            self.trials.scheduler = _controller.scheduler_name(scheduler)
            self.trials.budget = _controller.scheduler_budget(scheduler)

    def close(self, trials: list[Any], error: BaseException | None) -> None:
        """The experiment's last writes, waiting at most $DIARY_FLUSH_TIMEOUT (over HTTP) for a server that
        is away: children it was away to create, ends kept in the journal, the writer's points, the
        driver's end. What is still not delivered then stays in the local journal, said in one warning."""
        deadline = time.monotonic() + journal.flush_timeout()
        try:
            self.samplers.stop_all()
            self.trials.settle_restored(trials)
            while self.trials.unborn and time.monotonic() < deadline:
                self.trials.bear(every=0.0)
                if self.trials.unborn:
                    time.sleep(0.5)
            self.trials.abandon(error)
            bounded = self.writer.default_timeout() is not None  # over HTTP; a database's writer is not waited out
            self.writer.close(timeout=max(1.0, deadline - time.monotonic()) if bounded else None)
            self.trials.deliveries.wait(deadline)
            try:
                self.driver.end(trials, self.metric, self.mode, error)
            finally:  # also when the driver's end failed: what waits in the journal is still said
                if self.driver.journaled is not None:
                    self.trials.deliveries.add(self.driver.iteration_id, self.driver.journaled)
                    self.trials.deliveries.wait(deadline)
                self._report_left()
        finally:
            self.tracker.close()

    def _report_left(self) -> None:
        """One warning for what the server did not take by the experiment's end: journaled writes (sent
        once, later, by `diary sync` or the next process connecting to it) and trials never recorded."""
        parts = []
        for path in self.writer.journals:  # the writer's points it could not deliver in its own close
            iteration_id = journal.iteration_of(path)
            if iteration_id is not None and journal.has_pending(self.tracker.url, iteration_id):
                self.trials.deliveries.files.setdefault(iteration_id, path)
        waiting = self.trials.deliveries.describe()
        if waiting:
            parts.append(f"{len(waiting)} journal(s) kept in {journal.server_dir(self.tracker.url)} wait for "
                         f"`{journal.SYNC_COMMAND}` or the next process that connects to it, which sends them "
                         f"once: {'; '.join(waiting)}")
        lost = [w.trial.label for w in self.trials.unborn.values()]
        if lost:
            parts.append(f"trial(s) {', '.join(lost)} could not be recorded (their children were never created, "
                         "their results are not kept)")
        if parts:
            url = getattr(self.tracker, "url", "the tracking server")
            warn_tracking(f"{url} did not answer within {journal.flush_timeout():g} s of the Tune experiment's "
                          f"end: {' and '.join(parts)}", logger=log)


IDLE_SECONDS = 1.0


class _InOrder:
    """One daemon thread that runs the recording's writes in the order Tune's hooks came: Tune calls its
    callbacks on its only event loop thread, so a hook that waited on the database would hold up every
    trial. `drain` waits until everything handed in has been written."""

    def __init__(self, failed: Callable[[str, Exception], None], idle: Callable[[], Any]) -> None:
        self.queue: queue.Queue[tuple[str, Callable[[], Any]] | None] = queue.Queue()
        self.failed = failed
        self.idle = idle  # called about once a second
        self.thread = threading.Thread(target=self._run, name="diary-ray-tune", daemon=True)
        self.thread.start()

    def submit(self, what: str, call: Callable[[], Any]) -> None:
        self.queue.put((what, call))

    def _run(self) -> None:
        last_idle = time.monotonic()
        while True:
            try:
                item: tuple[str, Callable[[], Any]] | None = self.queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                item = ("", lambda: None)
            else:
                if item is None:
                    self.queue.task_done()
                    return
            if time.monotonic() - last_idle >= IDLE_SECONDS:  # also while busy: waiting points go out
                last_idle = time.monotonic()
                self._call("could not write a trial's points", self.idle)
            self._call(*item)
            if item[0]:
                self.queue.task_done()

    def _call(self, what: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:
            self.failed(what, exc)

    def drain(self) -> None:
        self.queue.put(None)
        self.thread.join()


class DiaryCallback(Callback):
    """`tune.Tuner(trainable, run_config=tune.RunConfig(callbacks=[DiaryCallback("Fraud", "Tune")]))`.

    The experiment becomes a driver iteration in `project`/`experiment` (names, found or created) of the
    tracker at `uri` (default: `DIARY_TRACKING_URI`, else ./deardiary.db), with the search space,
    scheduler, searcher, metric and mode as parameters; each trial a child created when it starts (its
    config as parameters), each reported result its metrics at `training_iteration`; a trial that raised
    ends FAILED with its exception, one the scheduler stopped KILLED ("stopped by ASHAScheduler at
    iteration 4"), a completed one SUCCEEDED. The driver ends with the best trial's metric and config
    (`results.get_best_result()`), FAILED if the experiment raised. `Tuner.restore` continues the same
    driver and children. `sidecar=False` keeps a database's tracker in the driver process. `metric` and
    `mode` choose the best trial when Tune itself was told no metric (`tune.run` without one, as
    Transformers' ray backend calls it, which ranks trials by "objective" afterwards).
    `system_metrics=True` (the default) records each trial's process (its CPU, memory, GPUs; see
    diary_integrations.system_metrics) into its child every `system_metrics_interval` seconds, for trials
    on the driver's node (`_samplers`).
    """

    def __init__(self, project: str, experiment: str, uri: str | None = None, *, sidecar: bool = True,
                 metric: str | None = None, mode: str | None = None, system_metrics: bool = True,
                 system_metrics_interval: float = 10.0) -> None:
        check_options(system_metrics, system_metrics_interval)
        self._uri = check_destination(project, experiment, uri)  # refused now, not when Tune starts
        if metric is not None and not (isinstance(metric, str) and metric.strip()):
            raise Unprocessable(f"metric must be a non-empty string, got {metric!r}", field="metric")
        if mode is not None and mode not in ("min", "max"):
            raise Unprocessable(f"mode must be 'min' or 'max', got {mode!r}", field="mode")
        if (metric is None) != (mode is None):
            raise Unprocessable("metric and mode are given together or not at all", field="mode")
        self._project, self._experiment, self._sidecar = project, experiment, sidecar
        self._metric, self._mode = metric, mode
        self._system_metrics, self._system_metrics_interval = system_metrics, float(system_metrics_interval)
        self._reset()

    def _reset(self) -> None:
        self._run: _Experiment | None = None
        self._writes: _InOrder | None = None
        self._scheduler: Any = None
        self._raised_before: BaseException | None = None
        self._warned = False
        self.driver_iteration_id: int | None = getattr(self, "driver_iteration_id", None)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the Tuner (for Tuner.restore): the settings only, no connection.
        return {"_uri": self._uri, "_project": self._project, "_experiment": self._experiment,
                "_sidecar": self._sidecar, "_metric": self._metric, "_mode": self._mode,
                "_system_metrics": self._system_metrics, "_system_metrics_interval": self._system_metrics_interval}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Defaults for settings pickled before they existed (metric/mode, system metrics).
        self.__dict__.update({"_metric": None, "_mode": None, "_system_metrics": True,
                              "_system_metrics_interval": 10.0, **state})
        self._reset()

    def _failed(self, what: str, exc: Exception) -> None:
        quiet, self._warned = self._warned, True
        warn_tracking(what, exc, logger=log, quiet=quiet)

    def _submit(self, what: str, call: Callable[[_Experiment], Any]) -> None:
        """Hand a write to the callback's thread; it is skipped when the driver could not be opened."""
        if self._writes is not None:
            self._writes.submit(what, lambda: None if self._run is None else call(self._run))

    # -- Tune's hooks (all on Tune's event loop thread, in the driver process) --------------------------

    def setup(self, **info: Any) -> None:
        """Tune starts (or restores) the experiment: its driver is found or created on the callback's
        thread; what Tune keeps only on its stack (scheduler, search space, metric) is read now."""
        try:
            setup = _controller.find_setup()
            self._raised_before = sys.exc_info()[1]  # tell an exception of the experiment from one around it
            self._scheduler = _controller.scheduler_of(setup.controller)
            stopped: dict[str, int] = {}
            _controller.record_stops(self._scheduler, stopped.__setitem__)
            self._writes = _InOrder(self._failed, lambda: None if self._run is None else self._run.trials.tick())
        except Exception as exc:
            self._failed("could not set up the Tune experiment's tracking", exc)
            return

        def open_run() -> None:
            self._run = _Experiment(self, setup, info, stopped)
            self.driver_iteration_id = self._run.driver.iteration_id

        self._writes.submit("could not open the Tune experiment's driver", open_run)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self._writes is None:
            return
        try:
            snapshot = TrialInfo.of(trial)
            # Before the trial's first line runs: a DiaryLogger in it waits for its child's id.
            _context.announce_pending(snapshot.experiment_name, snapshot.trial_id)
        except Exception as exc:
            self._failed(f"could not start trial {trial}", exc)
            return
        where = None
        if self._system_metrics:
            try:
                where = _samplers.locate(trial)  # asked now: answered before the trial's first `train`
            except Exception as exc:
                self._failed(f"could not locate trial {trial} for its system metrics", exc)

        def start() -> None:
            try:
                if self._run is None:
                    raise RuntimeError("the experiment's driver could not be opened")
                child = self._run.trials.start(snapshot)
            except BaseException:
                _context.withdraw(snapshot.experiment_name, snapshot.trial_id)  # nobody waits for it in vain
                raise
            if child is None:
                return  # the server is away: the child is created (and the trial recorded) when it answers
            if where is not None:
                try:
                    self._run.samplers.start(snapshot.trial_id, child, where)
                except Exception as exc:  # the trial is tracked; only its system metrics are missing
                    self._failed(f"could not sample trial {trial}'s system metrics", exc)

        self._writes.submit(f"could not start trial {trial}", start)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        self._hook(f"could not record a result of trial {trial}", trial,
                   lambda snapshot, values=dict(result): lambda run: run.trials.result(snapshot, values))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._hook(f"could not end trial {trial}", trial,
                   lambda snapshot: lambda run: (run.samplers.stop(snapshot.trial_id), run.trials.complete(snapshot)))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._hook(f"could not end trial {trial}", trial,
                   lambda snapshot: lambda run: (run.samplers.stop(snapshot.trial_id),
                                                 run.trials.error(snapshot, *error_of(trial))))

    def _hook(self, what: str, trial: Any, write: Callable[[TrialInfo], Callable[[_Experiment], Any]]) -> None:
        """Copy what the write needs of the trial now (on Tune's thread) and hand the write over; nothing
        raised here reaches Tune, which would end the experiment."""
        if self._writes is None:
            return
        try:
            self._submit(what, write(TrialInfo.of(trial)))
        except Exception as exc:
            self._failed(what, exc)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """The best trial onto the driver, and its end (also when the experiment raised: Tune calls this
        from its cleanup while the exception is being handled). Waits for every write handed in."""
        writes, self._writes = self._writes, None
        if writes is None:
            return
        error = sys.exc_info()[1]
        error = None if error is self._raised_before else error
        writes.submit("could not end the Tune experiment's driver",
                      lambda: None if self._run is None else self._run.close(list(trials), error))
        writes.drain()
        self._run = None
        try:
            _controller.record_stops(self._scheduler, None)
        except Exception as exc:
            self._failed("could not give the scheduler its own on_trial_result back", exc)
