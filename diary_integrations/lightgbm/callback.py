"""DiaryCallback: LightGBM's callable-callback protocol (`cb(env)` after each round, ordered by `order`)."""

from __future__ import annotations

import sys
from functools import partial
from types import FrameType
from typing import Any

from lightgbm.callback import EarlyStopException

from ..boosting import TrackedCallback
from ..callback_run import CallbackRun
from ..training_failure import end_all_folds, end_failed, end_fold_failed, watching
from .observed import unobserved, unwatch, watch
from .training_end import Watcher, completed

# LightGBM runs after-iteration callbacks by `order`: log_evaluation 10, record_evaluation 20,
# early_stopping 30. Before early stopping, so the round it stops at is recorded too.
ORDER = 25
_PLAIN = (bool, int, float, str)
# The sorted callback lists `lgb.train` and `lgb.cv` loop over each round (locals of theirs).
_CALLBACK_LISTS = ("callbacks_before_iter", "callbacks_after_iter")


def round_metrics(results: Any) -> dict[str, float]:
    """LightGBM's evaluation list as metrics: `valid_0-auc` for a training; for cv the names `cv`
    returns (`valid auc-mean`, `valid auc-stdv`)."""
    out: dict[str, float] = {}
    for item in results or ():
        if len(item) == 5:  # cv: (data, metric, mean, higher is better, std)
            data, metric, mean, _, std = item
            out[f"{data} {metric}-mean"], out[f"{data} {metric}-stdv"] = float(mean), float(std)
        else:
            data, metric, value, _ = item[:4]
            out[f"{data}-{metric}"] = float(value)
    return out


def _eval_valid(booster: Any) -> Any:
    return unobserved("eval_valid")(booster)


class DiaryCallback(TrackedCallback):
    """Records each LightGBM training it takes part in as one run (a cross-validation as a driver with a
    child per fold). Arguments as `CallbackRun`'s; `params` adds your own parameters to LightGBM's."""

    order = ORDER
    before_iteration = False
    PER_TRAINING: dict[str, Any] = {"run": None, "_folds": [], "_model": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._folds: list[CallbackRun] = []
        self._model: Any = None

    @property
    def fold_iteration_ids(self) -> list[int]:
        """The newest cross-validation's child per fold, in fold order."""
        return [fold.open() for fold in self._folds]

    def __call__(self, env: Any) -> None:
        if self.run is None or env.model is not self._model or env.iteration == env.begin_iteration:
            self._begin(env, sys._getframe(1))
        run = self.run
        assert run is not None
        try:
            run.log_metrics(round_metrics(env.evaluation_result_list), step=env.iteration)
            for booster, fold in zip(getattr(env.model, "boosters", ()), self._folds, strict=False):
                # The fold's own evaluation, which cv averages: computed from the scores LightGBM keeps
                # up to date, so cheap (and not the training's: a failure here is ours, not the fold's).
                fold.log_metrics({f"{r[0]}-{r[1]}": float(r[2]) for r in _eval_valid(booster)}, step=env.iteration)
        except Exception as error:  # noqa: BLE001 - tracking never breaks training
            self._guard.warn(f"recording round {env.iteration}", error)
        if env.iteration == env.end_iteration - 1:
            # The last round: LightGBM's result is this round's evaluation (no early stopping after it).
            self._end(env.model, last=env.evaluation_result_list)

    def _begin(self, env: Any, training_frame: Any) -> None:
        self._unwatch()
        run = self._new_run()
        model = self._model = env.model
        initial = getattr(model, "best_score", None)
        run.finished_cleanly = lambda: completed(model, initial)
        boosters = getattr(model, "boosters", None)
        self._folds = [run.child(f"fold {k}") for k in range(len(boosters))] if boosters is not None else []
        self._watch(run, model, training_frame)
        try:
            run.log_params({k: v for k, v in env.params.items() if isinstance(v, _PLAIN) or v is None})
        except Exception as error:  # noqa: BLE001
            self._guard.warn("recording the parameters", error)
        Watcher(training_frame, finished=lambda: completed(model, initial),
                done=lambda: self._end(model), stop=lambda: run.ended)

    def _watch(self, run: CallbackRun, model: Any, training_frame: FrameType) -> None:
        """An exception a booster raises from here on (a custom objective or metric) or another callback
        raises ends the run FAILED with its text as it leaves the training, even when the program catches
        it; in `cv`, the fold whose booster raised is the one FAILED, and another callback's exception
        fails the driver, the folds stopped by it."""
        def failed(end: Any, exc: BaseException) -> None:
            self._unwatch()
            end(exc)

        boosters = getattr(model, "boosters", None)
        if boosters is None:
            watch(model, partial(failed, partial(end_failed, run)))
            whole = partial(failed, partial(end_failed, run))
        else:
            for k, booster in enumerate(boosters):
                watch(booster, partial(failed, partial(end_fold_failed, run, self._folds, k)))
            whole = partial(failed, partial(end_all_folds, run, self._folds))
        try:
            self._watch_other_callbacks(training_frame, whole)
        except Exception as error:  # noqa: BLE001 - without it, such an exception ends the run at exit instead
            self._guard.warn("watching the other callbacks for an exception", error)

    def _watch_other_callbacks(self, training_frame: FrameType, on_error: Any) -> None:
        """Replace the other callbacks in this training's own lists (the loop's locals, gone with it: the
        program's callbacks are left as they are) by watched ones; early stopping's exception is no failure."""
        for name in _CALLBACK_LISTS:
            callbacks = training_frame.f_locals.get(name)
            if not isinstance(callbacks, list):
                continue
            for i, other in enumerate(callbacks):
                if other is not self:
                    callbacks[i] = watching(other, on_error, passing=(EarlyStopException,))

    def _unwatch(self) -> None:
        model = self._model
        for booster in getattr(model, "boosters", None) or ([model] if model is not None else []):
            unwatch(booster)

    def _end(self, model: Any, last: Any = None) -> None:
        """The training is over: rounds, best iteration and score, the model, then SUCCEEDED."""
        run = self.run
        if run is None or run.ended or model is not self._model:
            return
        self._unwatch()
        try:
            first = model.boosters[0] if hasattr(model, "boosters") else model
            summary: dict[str, Any] = {"rounds": int(first.current_iteration())}
            best = int(getattr(model, "best_iteration", 0) or 0)
            if best > 0:  # set by early stopping (1-based, as LightGBM counts it)
                summary["best_iteration"] = best
            if last is not None:
                summary.update({f"best_score/{k}": v for k, v in round_metrics(last).items()})
            else:
                for data, metrics in (getattr(model, "best_score", None) or {}).items():
                    summary.update({f"best_score/{data}-{metric}": float(v) for metric, v in metrics.items()})
            run.log_params(summary)
            if run.log_model and not hasattr(model, "boosters"):
                run.store_model(model.model_to_string().encode(), file_name="model.txt",
                                description="LightGBM booster (text format)")
        except Exception as error:  # noqa: BLE001
            self._guard.warn("recording the end of training", error)
        finally:
            run.end()
