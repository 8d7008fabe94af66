"""`DiaryCallback`: the plain callback form, for code that cannot wrap its study (a framework calls
`study.optimize` itself and takes only `callbacks=`).

Optuna calls a callback once a trial has ended, so each trial's child is created and ended at once then,
with its parameters, every reported value (one point per step) and its end state: the same tree as
`tracked_study`, without the live RUNNING children. `finish(study)` (or the interpreter's exit) writes
the best value and parameters and ends the driver.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from ..tracker.enums import IterationStatus
from ..tracker.keys import using_key
from ._driver import TRIAL_ATTR, Driver, Options, keyed, study_key, tracker_for, warn_tracking
from ._trials import STOPPED, pruned_note, value_keys


class DiaryCallback:
    """`study.optimize(objective, callbacks=[DiaryCallback(project=..., experiment=..., uri=...)])`."""

    def __init__(self, project: str, experiment: str, uri: str | None = None, *, system_metrics: bool = True,
                 system_metrics_interval: float = 10.0) -> None:
        self.options = Options(project, experiment, uri)
        from ..system_metrics import check_options

        check_options(system_metrics, system_metrics_interval)  # refused now, not at the first trial
        self._system = {"system_metrics": system_metrics, "system_metrics_interval": system_metrics_interval}
        self.driver_iteration_id: int | None = None
        self._drivers: dict[int, Driver] = {}  # id(study) -> its driver
        self._lock = threading.Lock()
        self._warned = False
        atexit.register(self._finish_all)

    def __call__(self, study: Any, frozen: Any) -> None:
        try:
            self._record(self._driver(study), frozen)
        except Exception as exc:
            with self._lock:
                quiet, self._warned = self._warned, True
            warn_tracking(f"could not record trial {frozen.number}", exc, quiet=quiet)

    def _driver(self, study: Any) -> Driver:
        with self._lock:
            driver = self._drivers.get(id(study))
            if driver is None:
                # System metrics from the first trial's end (the callback sees nothing earlier) to finish().
                driver = self._drivers[id(study)] = Driver(self.options, study, **self._system)
                driver.open()
                self.driver_iteration_id = driver.iteration_id
            return driver

    def _record(self, driver: Driver, frozen: Any) -> None:
        from optuna.trial import TrialState

        if TRIAL_ATTR in frozen.system_attrs:  # tracked already (a tracked_study, or a repeated callback)
            return
        tracker = tracker_for(self.options)
        points = [("intermediate_value", float(v), int(s)) for s, v in sorted(frozen.intermediate_values.items())]
        status, data = IterationStatus.KILLED, {"error_message": STOPPED}
        if frozen.state == TrialState.COMPLETE:
            status, data = IterationStatus.SUCCEEDED, {}
            points += [(k, float(v), 0) for k, v in zip(value_keys(driver.study), frozen.values or [], strict=False)]
        elif frozen.state == TrialState.PRUNED:
            status, data = IterationStatus.KILLED, {"notes": pruned_note(frozen.last_step)}
        elif frozen.state == TrialState.FAIL:
            status, data = (
                IterationStatus.FAILED,
                {"error_message": "the trial failed (Optuna gives its callbacks no exception; see its log)"},
            )
        # A finished trial takes no attributes: its key alone keeps a repeated call from adding a child.
        with using_key(keyed("trial", driver.iteration_id, study_key(driver.study), frozen._trial_id)):
            child = tracker.create_iteration(
                driver.experiment_id,
                parent_iteration_id=driver.iteration_id,
                name=f"trial {frozen.number}",
                notes=f"Optuna trial {frozen.number}",
                parameters={"trial_number": frozen.number, **frozen.params},
            ).id
        with using_key(keyed("trial-end", child)):
            tracker.end_iteration(child, status, points=points, **data)
        for name, distribution in frozen.distributions.items():
            driver.learn_space(name, distribution)

    def finish(self, study: Any, error: BaseException | None = None) -> None:
        """The best value and parameters onto the driver, and its end (unless another process still runs
        a trial of the study). Called at the interpreter's exit for the studies not finished by then."""
        with self._lock:
            driver = self._drivers.pop(id(study), None)
        if driver is None:
            return
        try:
            driver.close(error)
        except Exception as exc:
            warn_tracking("could not finish the study's driver", exc)

    def _finish_all(self) -> None:
        for driver in list(self._drivers.values()):
            self.finish(driver.study)
