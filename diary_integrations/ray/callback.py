"""`DiaryCallback`: a Ray Tune callback that records a Tune experiment as a driver iteration with a child
per trial. Tune runs callbacks on the driver process (the one calling `Tuner.fit`), so every write
happens there, through one tracker (a sidecar process on a database, as DiaryLogger's) and one
`MetricWriter` for the results' points; a trial worker that dies gets its status from Tune's own report.

Tracking never changes the experiment: Tune ends an experiment whose callback raises, so every hook is
guarded, and a failure is one TrackingWarning (the rest only in the DEBUG log).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from ..connection import connect
from ..reporting import announce, warn_tracking
from ..resolve import check_destination
from ..writer import MetricWriter
from . import _context, _controller
from ._experiment import Driver, flat
from ._trials import Trials, trial_label

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
    """What one experiment's hooks share: the tracker, the writer, the driver and its trials."""

    def __init__(self, callback: DiaryCallback, setup: _controller.Setup, spec: dict[str, Any]) -> None:
        controller = setup.controller
        self.tracker = connect(callback._uri, sidecar=callback._sidecar)
        announce(self.tracker, "Ray Tune experiment")
        self.writer = MetricWriter(self.tracker)
        self.scheduler = _controller.scheduler_of(controller)
        self.metric, self.mode = _controller.metric_and_mode(setup)
        self.raised_before = sys.exc_info()[1]  # tell an exception of the experiment from one around it
        parameters: dict[str, Any] = {
            "scheduler": _controller.scheduler_name(self.scheduler) if self.scheduler is not None else "",
            "searcher": _controller.searcher_name(controller),
            **({"metric": self.metric} if self.metric else {}),
            **({"mode": self.mode} if self.mode else {}),
            **{k: spec[k] for k in ("num_samples", "total_num_samples", "time_budget_s") if spec.get(k) is not None},
            **describe_space(_controller.search_space(setup)),
        }
        path = _controller.experiment_path(controller, fallback=str(spec.get("name") or "experiment"))
        self.driver = Driver(self.tracker, callback._project, callback._experiment, path, parameters)
        self.trials = Trials(self.tracker, self.writer, self.driver)
        if self.scheduler is not None:
            self.trials.scheduler = _controller.scheduler_name(self.scheduler)
            self.trials.budget = _controller.scheduler_budget(self.scheduler)
        _controller.record_stops(self.scheduler, self.trials.stopped.__setitem__)

    def close(self, trials: list[Any]) -> None:
        error = sys.exc_info()[1]
        if error is self.raised_before:
            error = None
        try:
            self.trials.abandon(error)
            self.writer.close()
            self.driver.end(trials, self.metric, self.mode, error)
        finally:
            _controller.record_stops(self.scheduler, None)
            self.tracker.close()


class DiaryCallback(Callback):
    """`tune.Tuner(trainable, run_config=tune.RunConfig(callbacks=[DiaryCallback("Fraud", "Tune")]))`.

    The experiment becomes a driver iteration in `project`/`experiment` (names, found or created) of the
    tracker at `uri` (default: `DIARY_TRACKING_URI`, else ./deardiary.db), with the search space,
    scheduler, searcher, metric and mode as parameters; each trial a child created when it starts (its
    config as parameters), each reported result its metrics at `training_iteration`; a trial that raised
    ends FAILED with its exception, one the scheduler stopped KILLED ("stopped by ASHAScheduler at
    iteration 4"), a completed one SUCCEEDED. The driver ends with the best trial's metric and config
    (`results.get_best_result()`), FAILED if the experiment raised. `Tuner.restore` continues the same
    driver and children. `sidecar=False` keeps a database's tracker in the driver process.
    """

    def __init__(self, project: str, experiment: str, uri: str | None = None, *, sidecar: bool = True) -> None:
        self._uri = check_destination(project, experiment, uri)  # refused now, not when Tune starts
        self._project, self._experiment, self._sidecar = project, experiment, sidecar
        self._run: _Experiment | None = None
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the Tuner (for Tuner.restore): the settings only, no connection.
        return {"_uri": self._uri, "_project": self._project, "_experiment": self._experiment,
                "_sidecar": self._sidecar, "_run": None, "_warned": False}

    @property
    def driver_iteration_id(self) -> int | None:
        """The driver iteration of the experiment being (or last) run, once Tune has set the callback up."""
        return self._last_driver

    _last_driver: int | None = None

    def _guard(self, what: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:
            quiet, self._warned = self._warned, True
            warn_tracking(what, exc, logger=log, quiet=quiet)

    # -- Tune's hooks (all on the driver process) ------------------------------------------------------

    def setup(self, **info: Any) -> None:
        """Tune starts (or restores) the experiment: find or create its driver."""
        setup = _controller.find_setup()

        def open_run() -> None:
            self._run = _Experiment(self, setup, info)
            self._last_driver = self._run.driver.iteration_id

        self._guard("could not open the Tune experiment's driver", open_run)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run = self._run
        if run is None:
            return

        def start() -> None:
            child = run.trials.start(trial)
            _context.publish(trial.storage.experiment_dir_name, trial.trial_id, child, f"trial {trial_label(trial)}")

        self._guard(f"could not start trial {trial}", start)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        if self._run is not None:
            self._guard(f"could not record a result of trial {trial}", lambda: self._run.trials.result(trial, result))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self._run is not None:
            self._guard(f"could not end trial {trial}", lambda: self._ended(trial, self._run.trials.complete))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self._run is not None:
            self._guard(f"could not end trial {trial}", lambda: self._ended(trial, self._run.trials.error))

    def _ended(self, trial: Any, end: Callable[[Any], None]) -> None:
        end(trial)
        _context.withdraw(trial.storage.experiment_dir_name, trial.trial_id)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """The best trial onto the driver, and its end (also when the experiment raised: Tune calls this
        from its cleanup while the exception is being handled)."""
        run, self._run = self._run, None
        if run is not None:
            self._guard("could not end the Tune experiment's driver", lambda: run.close(trials))
