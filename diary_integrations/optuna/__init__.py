"""Optuna integration (Optuna >= 4): a study is a driver iteration, each trial a child of it.

    study = tracked_study(optuna.create_study(), project="Fraud detection", experiment="Optuna", uri="runs.db")
    study.optimize(objective, n_trials=30, n_jobs=2); study.driver_iteration_id

or, for code that cannot wrap the study, `study.optimize(objective, callbacks=[DiaryCallback(...)])`.
"""

from __future__ import annotations

from .callback import DiaryCallback
from .study import tracked_study, trial_iteration_id

__all__ = ["DiaryCallback", "tracked_study", "trial_iteration_id"]
