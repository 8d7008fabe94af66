"""Each trial's child iteration: created RUNNING when the trial starts (in the one process that runs it),
its parameters written as they are drawn, each `trial.report` a metric point, and its end as Optuna
decided it: COMPLETE -> SUCCEEDED with the objective value(s), FAIL -> FAILED with the exception's text,
PRUNED -> KILLED with the note "pruned at step N".

Tracking never changes a trial: every tracker call is guarded, and a failure is one TrackingWarning per
study (the rest only in the DEBUG log).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any

from ..tracker.enums import IterationStatus
from ..tracker.keys import using_key
from ..tracker.lifecycle import Heartbeat, describe_failure
from ._driver import TRIAL_ATTR, Driver, keyed, study_key, tracker_for, warn_tracking

SUGGESTERS = ("suggest_float", "suggest_int", "suggest_categorical")
STOPPED = "the optimize call stopped before Optuna recorded this trial's end"


def value_keys(study: Any) -> list[str]:
    """The metric names of a study's objective value(s): `value`, or `value_0`, ... (or its metric_names)."""
    names = getattr(study, "metric_names", None)
    if names:
        return [str(n) for n in names]
    n = len(study.directions)
    return ["value"] if n == 1 else [f"value_{i}" for i in range(n)]


def pruned_note(step: int | None) -> str:
    return "pruned before any report" if step is None else f"pruned at step {step}"


class Recorder:
    """This process's trials of one study."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.study = driver.study
        self.tracker = tracker_for(driver.options)
        self.lock = threading.Lock()
        self.open: dict[int, int] = {}  # Optuna trial id -> child iteration id, until it is ended
        self.returned: dict[int, Any] = {}  # trial id -> what the objective returned
        self.warned = False

    def guard(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            with self.lock:
                quiet, self.warned = self.warned, True
            warn_tracking(what, exc, quiet=quiet)
            return None

    # -- the wrapped objective ----------------------------------------------------------------------

    def wrap(self, func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(func)
        def objective(trial: Any) -> Any:
            child = self.guard(f"could not start trial {trial.number}", lambda: self.start(trial))
            if child is None:
                return func(trial)
            self.instrument(trial, child)
            try:
                result = func(trial)
            except BaseException as exc:
                self.guard(
                    f"could not end trial {trial.number}", lambda error=exc: self.end_raised(trial._trial_id, error)
                )
                raise
            with self.lock:
                self.returned[trial._trial_id] = result
            return result

        return objective

    def start(self, trial: Any) -> int:
        """The trial's child, RUNNING. Its creation carries a key made of the driver and the trial's id in
        the storage, so a retried or repeated start never makes a second child."""
        with using_key(keyed("trial", self.driver.iteration_id, study_key(self.study), trial._trial_id)):
            child = self.tracker.create_iteration(
                self.driver.experiment_id,
                parent_iteration_id=self.driver.iteration_id,
                name=f"trial {trial.number}",
                notes=f"Optuna trial {trial.number}",
                parameters={"trial_number": trial.number},
            ).id
        Heartbeat.of(self.tracker).add(child)
        with self.lock:
            self.open[trial._trial_id] = child
        self.study._storage.set_trial_system_attr(trial._trial_id, TRIAL_ATTR, child)
        return child

    def instrument(self, trial: Any, child: int) -> None:
        """Record on this trial (the instance only) each parameter drawn and each value reported."""
        for name in SUGGESTERS:
            original = getattr(trial, name, None)
            if original is not None:
                setattr(trial, name, self._suggester(trial, child, original))
        report = trial.report

        def tracked_report(value: float, step: int) -> None:
            seen = step in trial._cached_frozen_trial.intermediate_values  # Optuna ignores a repeated step
            report(value, step)
            if not seen:
                self.guard(
                    f"could not record trial {trial.number}'s report",
                    lambda: self.tracker.log_metrics(child, {"intermediate_value": float(value)}, step=step),
                )

        trial.report = tracked_report

    def _suggester(self, trial: Any, child: int, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def suggest(name: str, *args: Any, **kwargs: Any) -> Any:
            value = original(name, *args, **kwargs)
            self.guard(
                f"could not record trial {trial.number}'s parameter {name}",
                lambda: self._drawn(trial, child, name, value),
            )
            return value

        return suggest

    def _drawn(self, trial: Any, child: int, name: str, value: Any) -> None:
        self.tracker.log_parameters(child, {name: value})  # a repeated draw (same value) is skipped
        distribution = trial._cached_frozen_trial.distributions.get(name)
        if distribution is not None:
            self.driver.learn_space(name, distribution)

    # -- ends ---------------------------------------------------------------------------------------

    def _take(self, trial_id: int) -> int | None:
        with self.lock:
            self.returned.pop(trial_id, None)
            return self.open.pop(trial_id, None)

    def _end(self, child: int, status: IterationStatus, **data: Any) -> None:
        Heartbeat.of(self.tracker).discard(child)
        self.tracker.end_iteration(child, status, **data)

    def end_raised(self, trial_id: int, exc: BaseException) -> None:
        """The objective raised: pruned (KILLED, at the last step reported) or failed (FAILED; KILLED for
        an interruption). Optuna gives the trial the same end whatever `catch` says."""
        import optuna

        child = self._take(trial_id)
        if child is None:
            return
        if isinstance(exc, optuna.TrialPruned):
            step = self.study._storage.get_trial(trial_id).last_step
            self._end(child, IterationStatus.KILLED, notes=pruned_note(step))
            return
        status, message, trace = describe_failure(exc)
        self._end(child, status, error_message=message, traceback=trace)

    def end_finished(self, frozen: Any) -> None:
        """Optuna has told the trial's end (a callback gets it): the child ends the same way."""
        from optuna.trial import TrialState

        with self.lock:
            returned = self.returned.get(frozen._trial_id)
        child = self._take(frozen._trial_id)
        if child is None:
            return
        if frozen.state == TrialState.COMPLETE:
            values = frozen.values or []
            points = [
                (k, float(v), 0)
                for k, v in zip(value_keys(self.study), values, strict=False)
                if v is not None and not math.isnan(v)
            ]
            self._end(child, IterationStatus.SUCCEEDED, points=points)
        elif frozen.state == TrialState.PRUNED:
            self._end(child, IterationStatus.KILLED, notes=pruned_note(frozen.last_step))
        elif frozen.state == TrialState.FAIL:
            message = f"Optuna refused the objective's return value {returned!r}"[:2000]
            self._end(child, IterationStatus.FAILED, error_message=message)
        else:  # still RUNNING or WAITING in the storage: this process gave it up
            self._end(child, IterationStatus.KILLED, error_message=STOPPED)

    def sweep(self) -> None:
        """The optimize call is over: end every trial it started that no callback saw end (Optuna raised
        between the objective and the callbacks, or the call was interrupted), as the storage says."""
        with self.lock:
            left = list(self.open)
        for trial_id in left:
            frozen = self.study._storage.get_trial(trial_id)
            self.guard(f"could not end trial {frozen.number}", lambda frozen=frozen: self.end_finished(frozen))
