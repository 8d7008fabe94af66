"""DiaryCallback for `xgb.train`, `xgb.cv` and the scikit-learn estimators (`XGBClassifier(callbacks=...)`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from functools import partial
from typing import Any

import xgboost

from ..boosting import TrackedCallback, round_metrics
from ..callback_run import CallbackRun
from ..training_failure import Interposed, end_all_folds, end_failed, end_fold_failed

# The learner's configuration sections that are the booster's parameters (the rest is bookkeeping).
_SECTIONS = ("learner_train_param", "generic_param", "learner_model_param", "tree_train_param",
             "gbtree_train_param", "gblinear_train_param")


def booster_parameters(booster: xgboost.Booster) -> dict[str, Any]:
    """The parameters a booster trains with, from its own configuration (`save_config`): learning rate,
    depth, objective, evaluation metrics, ... by XGBoost's names."""
    config = json.loads(booster.save_config())
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _SECTIONS and isinstance(value, dict):
                    found.update({k: v for k, v in value.items() if not isinstance(v, (dict, list))})
                else:
                    walk(value)

    walk(config.get("learner", {}))
    metrics = config.get("learner", {}).get("metrics", [])
    if metrics:
        found["eval_metric"] = ",".join(m.get("name", "") for m in metrics)
    objective = config.get("learner", {}).get("objective", {}).get("name")
    if objective:
        found["objective"] = objective
    return found


def _fold_metrics(text: str) -> dict[str, float]:
    """`"[3]\\ttrain-logloss:0.41\\ttest-logloss:0.52"` (XGBoost's evaluation line) as a dict."""
    out = {}
    for field in text.split("\t")[1:]:
        name, _, value = field.rpartition(":")
        if name:
            out[name] = float(value)
    return out


class DiaryCallback(TrackedCallback, xgboost.callback.TrainingCallback):
    """Records each training it takes part in as one run (a cross-validation as a driver with a child per
    fold). Arguments as `CallbackRun`'s; `params` adds your own parameters to the booster's."""

    PER_TRAINING: dict[str, Any] = {"run": None, "_folds": [], "_logged": -1, "_evals": {}, "_interposed": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._folds: list[CallbackRun] = []
        self._logged = -1  # the last round recorded
        self._evals: Mapping[str, Any] = {}
        self._interposed: Interposed | None = None

    @property
    def fold_iteration_ids(self) -> list[int]:
        """The newest cross-validation's child per fold, in fold order."""
        return [fold.open() for fold in self._folds]

    def before_training(self, model: Any) -> Any:
        run = self._new_run()
        self._folds, self._logged, self._evals = [], -1, {}
        folds = getattr(model, "cvfolds", None)
        if folds is not None:  # xgb.cv: a _PackedBooster over one CVPack per fold
            self._folds = [run.child(f"fold {k}") for k in range(len(folds))]
        self._interpose(run, model, sys._getframe(1).f_locals.get("self"))
        try:
            if folds is not None:
                run.log_params({**booster_parameters(folds[0].bst), "nfold": len(folds)})
            else:
                run.log_params(booster_parameters(model))
        except Exception as error:  # noqa: BLE001
            self._guard.warn("recording the booster's parameters", error)
        return model

    def _interpose(self, run: CallbackRun, model: Any, container: Any) -> None:
        """Watch the calls `train`/`cv` make each round (the update, which runs a custom objective; the
        callback container's hooks, which run the metrics and the other callbacks), so an exception
        leaving the training ends the run FAILED with its text even when the program catches it."""
        interposed = self._interposed = Interposed()

        def failed(end: Any, exc: BaseException) -> None:
            interposed.restore()
            end(exc)

        try:
            if self._folds:  # each fold's own calls first: the fold that raised is the one FAILED
                for k, fold in enumerate(model.cvfolds):
                    for name in ("update", "eval"):
                        interposed.wrap(fold, name, partial(failed, partial(end_fold_failed, run, self._folds, k)))
                whole = partial(failed, partial(end_all_folds, run, self._folds))
            else:
                interposed.wrap(model, "update", partial(failed, partial(end_failed, run)))
                whole = partial(failed, partial(end_failed, run))
            if isinstance(container, xgboost.callback.CallbackContainer):
                for name in ("before_iteration", "after_iteration"):
                    interposed.wrap(container, name, whole)
        except Exception as error:  # noqa: BLE001 - without it, an exception ends the run at exit instead
            interposed.restore()
            self._guard.warn("watching the training for an exception", error)

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        self._evals = evals_log  # XGBoost's own history, kept up to date in place
        self._record(model, epoch)
        return False

    def _record(self, model: Any, epoch: int) -> None:
        if self.run is None or epoch <= self._logged:
            return
        self._logged = epoch
        try:
            self.run.log_metrics(round_metrics(self._evals), step=epoch)
            for fold, run in zip(getattr(model, "cvfolds", None) or (), self._folds, strict=False):
                # The fold's own evaluation, as XGBoost computes it for cv's mean (its prediction cache
                # makes this cheap); a custom metric passed to cv is not among them.
                run.log_metrics(_fold_metrics(fold.bst.eval_set(fold.watchlist, epoch)), step=epoch)
        except Exception as error:  # noqa: BLE001
            self._guard.warn(f"recording round {epoch}", error)

    def after_training(self, model: Any) -> Any:
        run = self.run
        if self._interposed is not None:
            self._interposed.restore()  # the booster returned carries no wrapper
        if run is None:
            return model
        try:
            # EarlyStopping placed before this callback stops the loop before this callback sees the
            # last round; XGBoost's history has it.
            rounds = max((len(v) for m in self._evals.values() for v in m.values()), default=0)
            if rounds - 1 > self._logged:
                self._record(model, rounds - 1)
            self._finish(run, model)
        finally:
            run.end()  # the folds' children first
        return model

    def _finish(self, run: CallbackRun, model: Any) -> None:
        try:
            booster = model.cvfolds[0].bst if getattr(model, "cvfolds", None) else model
            summary: dict[str, Any] = {"rounds": booster.num_boosted_rounds()}
            best = booster.attr("best_iteration")
            if best is not None:  # set by early stopping: the round it kept, and its score
                summary.update(best_iteration=int(best), best_score=float(booster.attr("best_score")))
            run.log_params(summary)
            if run.log_model and getattr(model, "cvfolds", None) is None:
                run.store_model(bytes(model.save_raw(raw_format="ubj")), file_name="model.ubj",
                                description="XGBoost booster (UBJSON)")
        except Exception as error:  # noqa: BLE001
            self._guard.warn("recording the end of training", error)
