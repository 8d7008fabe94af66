"""What the boosting callbacks (xgboost/, lightgbm/) and Keras share above CallbackRun: their arguments,
checked once and kept (a callback is deep-copied by scikit-learn's `clone` and reused for several
trainings, so it holds settings, not a live run), a new run per training, and the end of a training
that never reached its end callback (the framework raised and the program handled it)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from .callback_run import UNENDED_AT_EXIT, CallbackRun
from .tracker.enums import IterationStatus
from .tracker.errors import Unprocessable

log = logging.getLogger("diary_integrations")


class RunSettings:
    """A callback's CallbackRun arguments, checked when the callback is made (a bad one is an
    `Unprocessable` naming it there, not inside `fit`); each training gets a fresh run from them."""

    def __init__(self, project: str | int, experiment: str | int, uri: str | os.PathLike[str] | None,
                 params: Mapping[str, Any] | None, **options: Any) -> None:
        if params is not None and not isinstance(params, Mapping):
            raise Unprocessable(f"params must be a mapping, got {type(params).__name__}", field="params")
        self.arguments = {"project": project, "experiment": experiment, "uri": uri, **options}
        self.params = dict(params or {})
        CallbackRun(**self.arguments)  # checks every argument; opens nothing

    def new_run(self) -> CallbackRun:
        """A run for one training, opening in the background, with the user's own `params` logged."""
        run = CallbackRun(**self.arguments)
        run.start()
        if self.params:
            run.log_params(self.params)
        return run


def end_abandoned(run: CallbackRun | None) -> None:
    """A previous training of the same callback that never reached its end: it raised and the program
    went on (a search's `error_score`, a `try`). FAILED, since it did not finish; a run that ended is
    left as it is."""
    if run is not None:
        run.end_with(IterationStatus.FAILED, UNENDED_AT_EXIT)


def round_metrics(evals: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The newest value of every evaluation in an XGBoost-style log `{data: {metric: [values]}}` under
    the name the library prints (`validation_0-logloss`); a cross-validation's (mean, std) pair
    becomes `<name>-mean` and `<name>-std`, the columns `cv` returns."""
    out: dict[str, float] = {}
    for data, metrics in evals.items():
        for metric, values in metrics.items():
            if not values:
                continue
            last = values[-1]
            if isinstance(last, tuple):
                out[f"{data}-{metric}-mean"], out[f"{data}-{metric}-std"] = float(last[0]), float(last[1])
            else:
                out[f"{data}-{metric}"] = float(last)
    return out


class TrackedCallback:
    """The part every framework's DiaryCallback shares (a mixin, first among its bases): the arguments
    (as `CallbackRun`'s; `params` adds your own parameters), `run` (the newest training's), and what a
    deep copy keeps (settings, not a live run: scikit-learn's `clone` deep-copies estimators' callbacks)."""

    def __init__(
        self,
        project: str | int,
        experiment: str | int,
        uri: str | os.PathLike[str] | None = None,
        *,
        parent_iteration_id: int | None = None,
        name: str = "",
        notes: str = "",
        params: Mapping[str, Any] | None = None,
        log_model: bool = False,
        register_as: str | None = None,
        sidecar: bool = True,
        tracker: Any = None,
        flush_interval: float = 1.0,
        system_metrics: bool = True,
        system_metrics_interval: float = 10.0,
    ) -> None:
        super().__init__()
        self._settings = RunSettings(project, experiment, uri, params, parent_iteration_id=parent_iteration_id,
                                     name=name, notes=notes, log_model=log_model, register_as=register_as,
                                     sidecar=sidecar, tracker=tracker, flush_interval=flush_interval,
                                     system_metrics=system_metrics, system_metrics_interval=system_metrics_interval)
        self.run: CallbackRun | None = None
        self._guard = Guarded()

    PER_TRAINING: dict[str, Any] = {"run": None}  # what a copy starts without (a subclass adds its own)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update({k: (v.copy() if isinstance(v, (list, dict)) else v) for k, v in self.PER_TRAINING.items()})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def iteration_id(self) -> int | None:
        """The iteration of the newest training (the driver of a cross-validation); waits for it to open."""
        return None if self.run is None else self.run.open()

    def _new_run(self) -> CallbackRun:
        """A training begins: the previous one, if it never ended, is FAILED; a fresh run starts."""
        end_abandoned(self.run)
        self.run = self._settings.new_run()
        return self.run


class Guarded:
    """Tracking never breaks training: a callback body that fails (a tracker refusing a value) is
    reported once as a warning and the training goes on."""

    def __init__(self) -> None:
        self.warned = False

    def warn(self, what: str, error: BaseException) -> None:
        """One warning per callback for a failure in `what`; later ones go to the log."""
        from .reporting import warn_tracking

        warn_tracking(f"{what} failed; training goes on", error, logger=log, quiet=self.warned)
        self.warned = True
