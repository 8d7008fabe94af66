"""Optuna studies tracked for real: an RDB storage (a SQLite file) shared by the test process (n_jobs=2)
and two more processes continuing the study at once, on a SQLite tracker and on a live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import study_scenario as scenario  # beside this file (pytest puts tests/optuna on sys.path)

from diary_integrations import IterationStatus, connect
from diary_integrations.optuna import DiaryCallback, tracked_study, trial_iteration_id
from diary_integrations.optuna._driver import DRIVER_ATTR
from diary_integrations.tracker.errors import Unprocessable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

STATES = {
    optuna.trial.TrialState.COMPLETE: IterationStatus.SUCCEEDED,
    optuna.trial.TrialState.FAIL: IterationStatus.FAILED,
    optuna.trial.TrialState.PRUNED: IterationStatus.KILLED,
}


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    yield
    optuna.logging.set_verbosity(optuna.logging.INFO)


def continue_elsewhere(uri: str, storage_url: str, n_trials: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(HERE / "study_scenario.py"), uri, storage_url, str(n_trials)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_tree(tracker, study: optuna.Study, driver_id: int, *, live: bool = True) -> list:
    """The tree a study left: one driver; one child per trial, with its parameters, reports, values and
    end state as Optuna recorded them; the best parameters on the driver."""
    driver = tracker.get_iteration(driver_id)
    assert driver.parent_iteration_id is None and driver.status is IterationStatus.SUCCEEDED
    assert [it.id for it in tracker.get_iterations(driver.experiment_id) if it.parent_iteration_id is None] == [
        driver_id
    ], "one driver for the study"
    children = tracker.get_child_iterations(driver_id)
    trials = study.trials
    by_name = {c.name: c for c in children}
    assert len(children) == len(trials) == len(by_name), "exactly one child per trial"
    values = tracker.get_parameter_values([c.id for c in children])
    for trial in trials:
        child = by_name[f"trial {trial.number}"]
        if live:
            assert trial.system_attrs["diary:iteration_id"] == child.id
        assert child.status is STATES[trial.state], (trial.number, trial.state, child.status)
        assert values[child.id] == {"trial_number": str(trial.number), **{k: str(v) for k, v in trial.params.items()}}
        series = {m.step: m.value for m in tracker.get_metrics(child.id) if m.key == "intermediate_value"}
        assert series == trial.intermediate_values
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert tracker.get_latest_metrics([child.id])[child.id]["value"] == pytest.approx(trial.value)
        elif trial.state == optuna.trial.TrialState.PRUNED:
            assert child.notes == f"pruned at step {trial.last_step}"
        elif live:
            assert child.error_message == f"ValueError: trial {trial.number} failed on purpose"
            assert "raise ValueError" in child.traceback
    params = tracker.get_parameter_values([driver_id])[driver_id]
    assert {k[5:]: v for k, v in params.items() if k.startswith("best.")} == {
        k: str(v) for k, v in study.best_params.items()
    }
    assert params["sampler"] == "RandomSampler" and params["pruner"] == "MedianPruner"
    assert params["directions"] == "minimize" and set(k for k in params if k.startswith("space.")) == {
        "space.x",
        "space.kind",
    }
    assert tracker.get_latest_metrics([driver_id])[driver_id]["best_value"] == pytest.approx(study.best_value)
    return children


def test_study_shared_by_three_processes(uri: str, tmp_path: Path) -> None:
    """20 trials here (n_jobs=2), then 2 processes continue the same study at once (5 trials each, n_jobs=2):
    30 trials, 3 of which fail, some pruned by the MedianPruner; one driver, one child per trial."""
    storage_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = scenario.run(uri, storage_url, 20)
    driver_id = study.driver_iteration_id
    tracker = connect(uri)
    assert tracker.get_iteration(driver_id).status is IterationStatus.SUCCEEDED
    others = [continue_elsewhere(uri, storage_url, 5) for _ in range(2)]
    for proc in others:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert out.strip() == f"driver {driver_id}", "every process found the same driver"
    study = optuna.load_study(study_name=scenario.STUDY, storage=scenario.storage(storage_url))
    assert len(study.trials) == 30
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 3
    assert states.count(optuna.trial.TrialState.PRUNED) >= 1, "the MedianPruner pruned no trial"
    children = check_tree(tracker, study, driver_id)
    assert not [c for c in children if c.status is IterationStatus.RUNNING]
    tracker.close()


def test_children_are_running_while_their_trial_runs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    tracker = connect(uri)
    seen: list[tuple[str, dict]] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        child = tracker.get_iteration(trial_iteration_id(trial))
        seen.append((child.status.name, tracker.get_parameter_values([child.id])[child.id]))
        trial.report(x, 0)
        return x

    study = tracked_study(optuna.create_study(), project="p", experiment="e", uri=uri)
    study.optimize(objective, n_trials=2)
    assert [s for s, _ in seen] == ["RUNNING", "RUNNING"]
    assert [p["x"] for _, p in seen] == [str(t.params["x"]) for t in study.trials], "drawn, then recorded at once"
    assert study.best_value == min(t.value for t in study.trials)  # the results are Optuna's own
    assert tracked_study(study, project="p", experiment="e", uri=uri) is study  # not wrapped twice
    study.optimize(objective, n_trials=1)
    assert len(tracker.get_child_iterations(study.driver_iteration_id)) == 3
    with pytest.raises(ValueError, match="already tracked"):
        tracked_study(study, project="p", experiment="other", uri=uri)


def test_a_racer_that_missed_the_study_attribute_gets_the_same_driver(tmp_path: Path) -> None:
    """The driver's creation is keyed on the study: a process that found no id in the study's attributes
    (it looked before the first process wrote it) is given the driver the first one created."""
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    first = tracked_study(optuna.create_study(study_name="s", storage=storage), project="p", experiment="e", uri=uri)
    experiment = connect(uri).get_iteration(first.driver_iteration_id).experiment_id
    storage.set_study_system_attr(first._study_id, DRIVER_ATTR.format(experiment=experiment), "forgotten")
    second = tracked_study(optuna.load_study(study_name="s", storage=storage), project="p", experiment="e", uri=uri)
    assert second.driver_iteration_id == first.driver_iteration_id
    assert len(connect(uri).get_iterations(experiment)) == 1


def test_callback_form_records_each_trial_at_its_end(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    study = optuna.create_study(
        study_name=scenario.STUDY,
        sampler=optuna.samplers.RandomSampler(seed=1),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    callback = DiaryCallback(project="p", experiment="e", uri=uri)
    study.optimize(scenario.objective, n_trials=14, callbacks=[callback], catch=(ValueError,))
    callback.finish(study)
    tracker = connect(uri)
    children = check_tree(tracker, study, callback.driver_iteration_id, live=False)
    failed = [c for c in children if c.status is IterationStatus.FAILED]
    assert [c.name for c in failed] == ["trial 4", "trial 12"]


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with pytest.raises(Unprocessable, match="project must be a non-empty name"):
        tracked_study(optuna.create_study(), project=" ", experiment="e", uri=f"sqlite:///{db}")
    with pytest.raises(Unprocessable, match="uri"):
        tracked_study(optuna.create_study(), project="p", experiment="e", uri="ftp://nowhere")
    with pytest.raises(TypeError, match="optuna.Study"):
        tracked_study("study", project="p", experiment="e", uri=f"sqlite:///{db}")
    assert not db.exists()


def test_an_objective_error_that_stops_the_study_leaves_nothing_running(tmp_path: Path) -> None:
    """Without `catch`, Optuna re-raises the objective's error from optimize: the trial's child is FAILED
    with it, the driver FAILED with it too, and nothing stays RUNNING; a later optimize reopens the driver."""
    uri = f"sqlite:///{tmp_path / 'runs.db'}"

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 1:
            raise RuntimeError("the data went away")
        return x

    study = tracked_study(optuna.create_study(), project="p", experiment="e", uri=uri)
    with pytest.raises(RuntimeError, match="the data went away"):
        study.optimize(objective, n_trials=5)
    tracker = connect(uri)
    driver = tracker.get_iteration(study.driver_iteration_id)
    assert driver.status is IterationStatus.FAILED and driver.error_message == "RuntimeError: the data went away"
    kids = tracker.get_child_iterations(driver.id)
    assert [(k.name, k.status) for k in kids] == [
        ("trial 0", IterationStatus.SUCCEEDED),
        ("trial 1", IterationStatus.FAILED),
    ]
    assert kids[1].error_message == "RuntimeError: the data went away"
    study.optimize(objective, n_trials=2)  # continued: trials 2 and 3
    driver = tracker.get_iteration(study.driver_iteration_id)
    assert driver.status is IterationStatus.SUCCEEDED and driver.error_message == ""
    assert len(tracker.get_child_iterations(driver.id)) == 4
    assert not tracker.get_iterations(driver.experiment_id, status=IterationStatus.RUNNING)
