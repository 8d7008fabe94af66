"""Ray Tune integration (ray[tune] >= 2.60): a Tune experiment is a driver iteration, each trial a child.

    tuner = tune.Tuner(train_fn, param_space=..., tune_config=tune.TuneConfig(metric="loss", mode="min"),
                       run_config=tune.RunConfig(callbacks=[DiaryCallback("Fraud detection", "Tune", uri="runs.db")]))

A DiaryLogger (or another integration) opened inside a trial nests under the trial's child by itself
(`diary_integrations.enclosing`); `trial_iteration_id()` gives that child's id to other code in the trial.
"""

from __future__ import annotations

from ._context import current_trial
from .callback import DiaryCallback

__all__ = ["DiaryCallback", "trial_iteration_id"]


def trial_iteration_id() -> int | None:
    """Inside a Tune trial of an experiment tracked by DiaryCallback: the trial's child iteration id (as
    `diary_integrations.optuna.trial_iteration_id(trial)` for an Optuna trial). None elsewhere."""
    published = current_trial()
    return None if not published else int(published["iteration_id"])
