"""The fallback path: `tracked(search)` wraps a search's `fit` and builds the same tree after the fit,
from `cv_results_`, for scikit-learn versions without the callback API and for searches without
callback support; `tracked_cross_validate` gives `cross_validate` a driver and a child per fold.

Without hooks, a failed fold is known only by its score (`error_score`), and its exception only by
the FitFailedWarning text that scikit-learn emits in the main process, which is captured here."""

from __future__ import annotations

import math
import warnings
from inspect import signature
from typing import Any

from ..system_metrics import stop_quietly
from ..tracker.enums import IterationStatus
from ..tracker.errors import Unprocessable
from ..tracker.lifecycle import describe_failure
from ..tracker.records import NewIteration
from ._describe import estimator_parameters, parameters_name, search_parameters
from ._results import candidate_results, fit_failed_errors, search_summary
from ._writer import (
    Options,
    candidate_endings,
    candidate_name,
    end_quietly,
    ending,
    experiment_id,
    finish,
    finish_many,
    kept_rows,
    sample_system,
    start,
    start_many,
    warn_tracking,
)
from .callback import DiaryCallback

# Tests and users can turn the callback path off everywhere (e.g. to compare both paths).
USE_CALLBACKS = True


def callbacks_supported(search: Any) -> bool:
    """Whether this search emits the fold hooks of scikit-learn's callback API (>= 1.9, built-in searches)."""
    run_search = getattr(search, "_run_search", None)
    return (
        USE_CALLBACKS
        and callable(getattr(search, "set_callbacks", None))
        and run_search is not None
        and "callback_ctx" in signature(run_search).parameters
    )


class _Captured:
    """FitFailedWarning texts recorded around a fit; every warning is re-emitted afterwards."""

    def __enter__(self) -> _Captured:
        self._catch = warnings.catch_warnings(record=True)
        self.records = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._catch.__exit__(*exc)
        for w in self.records:  # the user's own filters decide what is shown
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)

    def errors(self) -> list[tuple[int, str, str]]:
        groups = []
        for w in self.records:
            if w.category.__name__ == "FitFailedWarning":
                groups += fit_failed_errors(str(w.message))
        return groups


def _fold_errors(groups: list[tuple[int, str, str]]) -> tuple[str, str]:
    """The (error_message, traceback) given to a failed fold when all that is known is the warning:
    exact when every failure had the same exception, else the first one, saying there were others."""
    if not groups:
        return "fit failed (its score is error_score); no FitFailedWarning text was seen", ""
    lines = list(dict.fromkeys(line for _, line, _ in groups))
    trace = "\n\n".join(f"{count} fits failed with:\n{body}" for count, _, body in groups)
    if len(lines) == 1:
        return lines[0], trace
    return f"{lines[0]} (or one of {len(lines) - 1} other errors of this search; see the traceback)", trace


def _report_unrecorded(tracker: Any, child: int, what: str, error: Exception) -> None:
    warn_tracking(f"could not record {what}", error)
    end_quietly(tracker, child, f"diary could not record {what}: {error}")


class _TrackedFit:
    """What `tracked()` puts in place of the search's `fit`; it pickles with the search (no live state)."""

    def __init__(self, search: Any, options: Options, callback: DiaryCallback | None) -> None:
        self.search = search
        self.options = options
        self.callback = callback
        self.driver_iteration_id: int | None = None

    def __call__(self, X: Any, y: Any = None, **params: Any) -> Any:
        search, fit = self.search, type(self.search).fit
        if self.callback is not None:
            try:
                return fit(search, X, y, **params)
            finally:
                self.driver_iteration_id = self.callback.driver_iteration_id
        try:
            tracker = self.options.connect()
            experiment = experiment_id(tracker, self.options)
            driver = start(tracker, experiment, parent=self.options.parent_iteration_id,
                           notes=f"{type(search).__name__}.fit")
            self.driver_iteration_id = driver
        except Exception as exc:
            warn_tracking(f"could not start tracking {type(search).__name__}.fit", exc)
            return fit(search, X, y, **params)
        try:
            tracker.log_parameters(driver, search_parameters(search))
        except Exception as exc:
            warn_tracking("could not record the search's settings", exc)
        sampler = sample_system(tracker, driver, self.options)
        try:
            with _Captured() as captured:
                fit(search, X, y, **params)
        except BaseException as exc:
            stop_quietly(sampler)
            _end_failed(tracker, driver, exc, "fit")
            raise
        stop_quietly(sampler)
        try:
            self._write_children(tracker, experiment, driver, captured.errors())
        except Exception as exc:
            warn_tracking("could not record the search's candidates", exc)
        try:
            finish(tracker, driver, IterationStatus.SUCCEEDED)
        except Exception as exc:
            warn_tracking("could not end the driver iteration", exc)
        return search

    def _write_children(self, tracker: Any, experiment: int, driver: int, groups: list[tuple[int, str, str]]) -> None:
        search = self.search
        results = candidate_results(search)
        n_splits = int(search.n_splits_)
        keep = kept_rows(results, self.options.max_children)
        failed = 0
        error = _fold_errors(groups)
        kept = []
        for rec in results:
            errors = {f: error for f in rec.fold_scores if rec.score_looks_failed(f, search.error_score)}
            failed += bool(errors)
            if rec.row in keep:
                kept.append((rec, errors))
        children = start_many(tracker, experiment, parent=driver, children=[
            NewIteration(candidate_name(rec.halving_iter, rec.index_in_iter), None,
                         parameters_name(rec.parameters, candidate_name(rec.halving_iter, rec.index_in_iter)))
            for rec, _ in kept])
        endings, rows = [], {}
        for child, (rec, errors) in zip(children, kept, strict=True):
            rows[child] = rec.row
            try:
                endings += candidate_endings(tracker, experiment, child, rec, errors, n_splits,
                                             fold_children=self.options.children == "fold")
            except Exception as exc:
                warn_tracking(f"could not record candidate {rec.row}", exc)
                end_quietly(tracker, child, f"diary could not record this candidate: {exc}")
        finish_many(tracker, endings, on_error=lambda child, exc: _report_unrecorded(
            tracker, child, f"candidate {rows.get(child, child)}", exc))
        params, metrics = search_summary(search)
        metrics["n_failed_candidates"] = float(failed)
        tracker.log_parameters(driver, params)
        tracker.log_metrics(driver, metrics, step=0)


def tracked(
    search: Any,
    *,
    project: str,
    experiment: str,
    uri: str | None = None,
    parent_iteration_id: int | None = None,
    children: str = "candidate",
    max_children: int | None = None,
    use_callbacks: bool | None = None,
    system_metrics: bool = True,
    system_metrics_interval: float = 10.0,
) -> Any:
    """Track every `fit` of `search` (returned, ready to use): through a DiaryCallback when the search
    supports callbacks (live children), else after the fit from `cv_results_`. The last fit's driver id
    is `search.fit.driver_iteration_id`. `use_callbacks=False` forces the after-the-fit path.
    `system_metrics=False` turns off the driver's `system/...` metrics (CPU, memory, GPUs of the fit's
    processes, every `system_metrics_interval` seconds)."""
    options = Options(project, experiment, uri, parent_iteration_id, children, max_children,
                      system_metrics=system_metrics, system_metrics_interval=system_metrics_interval)
    if not hasattr(search, "cv_results_") and not hasattr(search, "_run_search"):
        raise Unprocessable(
            f"search must be a scikit-learn search (GridSearchCV, RandomizedSearchCV, ...), "
            f"got {type(search).__name__}; use tracked_cross_validate for cross-validation",
            field="search",
        )
    supported = callbacks_supported(search)
    if use_callbacks and not supported:
        raise Unprocessable(
            f"use_callbacks: {type(search).__name__} has no callback support here (scikit-learn >= 1.9 and "
            "a built-in search are needed)",
            field="use_callbacks",
        )
    previous = search.__dict__.get("fit")  # tracked() twice: the new options replace the old ones
    callbacks = [c for c in getattr(search, "_skl_callbacks", [])
                 if not (isinstance(previous, _TrackedFit) and c is previous.callback)]
    callback = None
    if supported if use_callbacks is None else use_callbacks:
        callback = DiaryCallback(project, experiment, uri, parent_iteration_id, children, max_children,
                                 system_metrics=system_metrics, system_metrics_interval=system_metrics_interval)
        callbacks.append(callback)
    if supported:
        search.set_callbacks(*callbacks)  # the user's own callbacks stay
    search.fit = _TrackedFit(search, options, callback)
    return search


class TrackedCVResults(dict):
    """`cross_validate`'s dict, with the driver iteration's id as `driver_iteration_id`."""

    driver_iteration_id: int | None = None


def tracked_cross_validate(
    estimator: Any,
    X: Any,
    y: Any = None,
    *,
    project: str,
    experiment: str,
    uri: str | None = None,
    parent_iteration_id: int | None = None,
    system_metrics: bool = True,
    system_metrics_interval: float = 10.0,
    **kwargs: Any,
) -> TrackedCVResults:
    """`sklearn.model_selection.cross_validate(estimator, X, y, **kwargs)` tracked as a driver (the
    estimator and settings; mean/std of each score) with a child per fold (its scores and times)."""
    from sklearn.model_selection import cross_validate

    options = Options(project, experiment, uri, parent_iteration_id, system_metrics=system_metrics,
                      system_metrics_interval=system_metrics_interval)
    settings = {k: v for k, v in kwargs.items() if k in {"cv", "scoring", "n_jobs", "error_score",
                                                         "return_train_score"}}
    out = TrackedCVResults()
    try:
        tracker = options.connect()
        exp = experiment_id(tracker, options)
        driver = start(tracker, exp, parent=parent_iteration_id, notes="cross_validate")
        out.driver_iteration_id = driver
    except Exception as exc:
        warn_tracking("could not start tracking cross_validate", exc)
        out.update(cross_validate(estimator, X, y, **kwargs))
        return out
    try:
        tracker.log_parameters(driver, estimator_parameters(estimator, **settings))
    except Exception as exc:
        warn_tracking("could not record cross_validate's settings", exc)
    sampler = sample_system(tracker, driver, options)
    try:
        with _Captured() as captured:
            out.update(cross_validate(estimator, X, y, **kwargs))
    except BaseException as exc:
        stop_quietly(sampler)
        _end_failed(tracker, driver, exc, "cross_validate")
        raise
    stop_quietly(sampler)
    try:
        _write_folds(tracker, exp, driver, out, captured.errors(), kwargs.get("error_score", math.nan))
    except Exception as exc:
        warn_tracking("could not record the folds", exc)
        try:
            finish(tracker, driver, IterationStatus.SUCCEEDED)
        except Exception as error:
            warn_tracking("could not end the driver iteration", error)
    return out


def _write_folds(tracker: Any, experiment: int, driver: int, out: dict, groups: list, error_score: Any) -> None:
    score_keys = [k for k in out if k.startswith(("test_", "train_"))]
    n_folds = len(out["fit_time"])
    error = _fold_errors(groups)
    failed = 0
    outcomes = []  # each fold's values and whether it failed, all worked out before any child exists
    for fold in range(n_folds):
        values = {k: float(out[k][fold]) for k in (*score_keys, "fit_time", "score_time")}
        tests = [v for k, v in values.items() if k.startswith("test_")]
        if isinstance(error_score, (int, float)) and math.isnan(error_score):
            broken = bool(tests) and all(math.isnan(v) for v in tests)
        else:
            broken = bool(tests) and all(v == error_score for v in tests)
        failed += broken
        outcomes.append((values, broken))
    children = start_many(tracker, experiment, parent=driver,
                          children=[NewIteration(f"fold {fold}", {"fold": fold}, f"fold {fold}")
                                    for fold in range(n_folds)])
    endings = [
        ending(child, IterationStatus.FAILED if broken else IterationStatus.SUCCEEDED,
               points=[(k, v, 0) for k, v in values.items()],
               error_message=error[0] if broken else "", traceback=error[1] if broken else "")
        for child, (values, broken) in zip(children, outcomes, strict=True)
    ]
    finish_many(tracker, endings, on_error=lambda child, exc: _report_unrecorded(
        tracker, child, f"fold {children.index(child)}", exc))
    import numpy as np

    summary = {f"{stat}_{k}": float(getattr(np, stat)(out[k])) for k in score_keys for stat in ("mean", "std")}
    summary["n_failed_folds"] = float(failed)
    tracker.log_parameters(driver, {"n_splits": n_folds})
    finish(tracker, driver, IterationStatus.SUCCEEDED, points=[(k, v, 0) for k, v in summary.items()])


def _end_failed(tracker: Any, driver: int, exc: BaseException, what: str) -> None:
    """End the driver with the exception that stopped `what` (FAILED, or KILLED when interrupted); a
    tracker error here only warns, so the caller re-raises the user's own exception."""
    status, message, trace = describe_failure(exc)
    try:
        finish(tracker, driver, status, error_message=message, traceback=trace)
    except Exception as error:
        warn_tracking(f"could not record the failed {what}", error)
