"""Ray Tune integration (ray[tune] >= 2.40): a Tune experiment is a driver iteration, each trial a child.

    tuner = tune.Tuner(train_fn, param_space=..., tune_config=tune.TuneConfig(metric="loss", mode="min"),
                       run_config=tune.RunConfig(callbacks=[DiaryCallback("Fraud detection", "Tune", uri="runs.db")]))

A DiaryLogger (or another integration) opened inside a trial nests under the trial's child by itself
(`diary_integrations.enclosing`).
"""

from __future__ import annotations

from .callback import DiaryCallback

__all__ = ["DiaryCallback"]
