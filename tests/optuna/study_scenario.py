"""The study the Optuna tests run, in the test process or as `python study_scenario.py URI STORAGE N_TRIALS`
from another process continuing (or sharing) the same study on the same RDB storage."""

from __future__ import annotations

import sys

import optuna

from diary_integrations.optuna import tracked_study

STUDY = "quadratic"
FAILING = {4, 12, 25}  # trial numbers whose objective raises (3 of the 30)
STEPS = 3


def storage(url: str) -> optuna.storages.RDBStorage:
    # A generous busy timeout: two processes and two threads each write the one SQLite file.
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    value = (x - 2.0) ** 2 + (0.5 if kind == "b" else 0.0)
    if trial.number in FAILING:
        raise ValueError(f"trial {trial.number} failed on purpose")
    for step in range(STEPS):
        trial.report(value * (STEPS - step), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def run(uri: str, storage_url: str, n_trials: int, n_jobs: int = 2) -> optuna.Study:
    study = optuna.create_study(
        study_name=STUDY,
        storage=storage(storage_url),
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=None),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    study = tracked_study(study, project="Optuna tests", experiment="quadratic", uri=uri)
    study.optimize(objective, n_trials=n_trials, n_jobs=n_jobs, catch=(ValueError,))
    return study


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done = run(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    print(f"driver {done.driver_iteration_id}")
