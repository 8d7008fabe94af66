"""`tracked_study`: the same study, whose `optimize` is tracked (same arguments, same results)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._driver import TRIAL_ATTR, Driver, Options, warn_tracking
from ._trials import Recorder


def tracked_study(study: Any, *, project: str, experiment: str, uri: str | None = None,
                  system_metrics: bool = True, system_metrics_interval: float = 10.0) -> Any:
    """Track every `optimize` call of `study` (an `optuna.Study`) in `project`/`experiment` (found or
    created by name) of the tracker at `uri` (default: `DIARY_TRACKING_URI`, else ./diary.db).

    The study is its driver iteration, found (or created, exactly once) by every process that works on the
    study through a shared RDB storage; each trial is a child of it. Returns the same study object, with
    `optimize` tracked and `driver_iteration_id` set. While `optimize` runs, this process's CPU, memory and
    GPUs are recorded on the driver as `system/...` metrics every `system_metrics_interval` seconds
    (`system_metrics=False`: not)."""
    import optuna

    if not isinstance(study, optuna.Study):
        raise TypeError(f"tracked_study takes an optuna.Study, got {type(study).__name__}")
    options = Options(project, experiment, uri)
    if getattr(study, "_diary_options", None) is not None:
        if study._diary_options != options:
            raise ValueError(f"this study is already tracked in {study._diary_options}; a study has one driver")
        return study  # tracked already: wrapping optimize twice would record every trial twice
    driver = Driver(options, study, system_metrics=system_metrics, system_metrics_interval=system_metrics_interval)
    recorder = Recorder(driver)
    untracked = study.optimize

    @functools.wraps(untracked)
    def optimize(func: Callable[[Any], Any], *args: Any, **kwargs: Any) -> None:
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if len(args) >= 5:  # callbacks given by position (n_trials, timeout, n_jobs, catch, callbacks, ...)
            args = list(args)
            callbacks = list(args[4] or []) + callbacks
            args[4] = None
        recorder.guard("could not open the study's driver", driver.open)
        error: BaseException | None = None
        try:
            # Our callback comes first: a user's callback that stops the study still sees the trial recorded.
            return untracked(recorder.wrap(func), *args, callbacks=[_ended(recorder), *callbacks], **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            recorder.sweep()
            recorder.guard("could not finish the study's driver", lambda: driver.close(error))

    study.optimize = optimize
    study.driver_iteration_id = driver.iteration_id
    study._diary_options = options
    return study


def _ended(recorder: Recorder) -> Callable[[Any, Any], None]:
    def record(study: Any, frozen: Any) -> None:
        recorder.guard(f"could not end trial {frozen.number}", lambda: recorder.end_finished(frozen))

    return record


def trial_iteration_id(trial: Any) -> int | None:
    """The child iteration of a running (or finished) trial, e.g. as a Lightning fit's parent:
    `DiaryLogger(..., parent_iteration_id=trial_iteration_id(trial))`. None when it is not tracked."""
    frozen = getattr(trial, "_cached_frozen_trial", None)
    if frozen is not None and TRIAL_ATTR in frozen.system_attrs:
        return int(frozen.system_attrs[TRIAL_ATTR])
    try:
        if hasattr(trial, "storage"):
            attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
        else:
            attrs = trial.system_attrs
    except Exception as exc:  # the storage is gone: the caller's fit goes on untracked under the trial
        warn_tracking("could not read the trial's iteration", exc)
        return None
    value = attrs.get(TRIAL_ATTR)
    return None if value is None else int(value)
