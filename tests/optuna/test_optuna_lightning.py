"""A Lightning fit inside an Optuna objective: `DiaryLogger(parent_iteration_id=trial_iteration_id(trial))`
makes the fit a child of its trial's iteration (a grandchild of the study's driver)."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

pytest.importorskip("torch", reason="needs the [lightning] extra")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lightning"))

from diary_models import TinyModel, loader, trainer  # noqa: E402

from diary_integrations import IterationStatus, connect  # noqa: E402
from diary_integrations.lightning import DiaryLogger  # noqa: E402
from diary_integrations.optuna import tracked_study, trial_iteration_id  # noqa: E402


def test_a_fit_in_an_objective_is_its_trials_child(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 0.01, 0.1, log=True)
        logger = DiaryLogger("p", "e", uri, parent_iteration_id=trial_iteration_id(trial))
        fit = trainer(logger, max_epochs=1)
        fit.fit(TinyModel(lr=lr), loader(), loader(seed=1))
        return float(fit.callback_metrics["val_loss"])

    study = tracked_study(optuna.create_study(), project="p", experiment="e", uri=uri)
    study.optimize(objective, n_trials=2)
    tracker = connect(uri)
    trials = tracker.get_child_iterations(study.driver_iteration_id)
    assert [t.status for t in trials] == [IterationStatus.SUCCEEDED] * 2
    for trial, child in zip(study.trials, trials, strict=True):
        (fit,) = tracker.get_child_iterations(child.id)
        assert fit.status is IterationStatus.SUCCEEDED
        assert tracker.get_parameter_values([fit.id])[fit.id]["lr"] == str(trial.params["lr"])
        assert tracker.get_latest_metrics([fit.id])[fit.id]["val_loss"] == pytest.approx(trial.value)
