"""`Trainer.hyperparameter_search(backend="optuna")`: the study is a driver iteration and each trial a
child of it, written by the Optuna integration's own Driver and Recorder (diary_integrations/optuna/),
so the tree, the trial parameters, the objective, "pruned at step N", the failed trials' texts and the
best trial on the driver are exactly what `tracked_study` records. Each trial's `train()` is then a
run of its own under the trial's child (the TrainingArguments, the model config and the series).

Transformers creates the study and calls `study.optimize` itself, so the Optuna callbacks that end a
trial's child are not there: a trial that raised out of `train()` is ended by the train wrapper with
its exception (`end_raised`: pruned -> KILLED, else FAILED with its text); one that completed is ended
as Optuna stored it (with the objective) when the next trial starts, or when the search returns."""

from __future__ import annotations

import threading
from typing import Any

from ..optuna._driver import Driver, Options
from ..optuna._trials import Recorder


def is_optuna_trial(trial: Any) -> bool:
    """True for an `optuna.Trial` (Transformers' optuna backend on the main process); False for a Ray
    trial's dict, a FixedTrial handed to other ranks, or None."""
    return trial is not None and hasattr(trial, "study") and hasattr(trial, "_trial_id")


class OptunaSearch:
    """One hyperparameter search's driver and trials, in this process."""

    def __init__(self, options: Options, study: Any) -> None:
        self.driver = Driver(options, study)
        self.recorder = Recorder(self.driver)
        self.running: set[int] = set()  # trial ids whose train() runs now (n_jobs > 1 runs several)
        self.lock = threading.Lock()
        self.recorder.guard("could not open the search's driver", self.driver.open)

    @property
    def driver_iteration_id(self) -> int:
        return self.driver.iteration_id

    def start_trial(self, trial: Any) -> int | None:
        """The trial's child (RUNNING), its drawn parameters and reported objective recorded from now on;
        None when it could not be created (a warning said why; the trial runs untracked)."""
        self.end_stored_trials()
        child = self.recorder.guard(f"could not start trial {trial.number}", lambda: self.recorder.start(trial))
        if child is not None:
            self.recorder.instrument(trial, child)
            with self.lock:
                self.running.add(trial._trial_id)
        return child

    def train_raised(self, trial: Any, exc: BaseException) -> None:
        """The trial's train() raised: its child ends as the Optuna integration ends a raising objective."""
        with self.lock:
            self.running.discard(trial._trial_id)
        self.recorder.guard(
            f"could not end trial {trial.number}", lambda: self.recorder.end_raised(trial._trial_id, exc)
        )

    def train_returned(self, trial: Any) -> None:
        """The trial's train() returned; Optuna records its value once the objective returns."""
        with self.lock:
            self.running.discard(trial._trial_id)

    def end_stored_trials(self) -> None:
        """End the children of trials Optuna has finished storing (their objective returned or raised)."""
        from optuna.trial import TrialState

        with self.recorder.lock:
            open_trials = list(self.recorder.open)
        with self.lock:
            waiting = [t for t in open_trials if t not in self.running]
        storage = self.driver.study._storage
        for trial_id in waiting:
            frozen = storage.get_trial(trial_id)
            if frozen.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
                self.recorder.guard(
                    f"could not end trial {frozen.number}", lambda frozen=frozen: self.recorder.end_finished(frozen)
                )

    def close(self, error: BaseException | None) -> None:
        """The search returned (or raised): every trial child ended as Optuna stored it, then the driver
        with the best trial's value and parameters, and the search's own status."""
        self.end_stored_trials()
        self.recorder.sweep()
        self.recorder.guard("could not finish the search's driver", lambda: self.driver.close(error))
