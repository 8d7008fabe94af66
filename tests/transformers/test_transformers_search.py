"""`Trainer.hyperparameter_search(backend="optuna")` with DiaryCallback: one driver for the search, one
child per trial with its parameters and its truthful end, each trial's train() a run under its child."""

from __future__ import annotations

import pytest

from diary_integrations import IterationStatus, connect

optuna = pytest.importorskip("optuna")
tiny_bert = pytest.importorskip("tiny_bert")
from diary_integrations.transformers import DiaryCallback  # noqa: E402

pytestmark = pytest.mark.slow

FAILING = (1, 4)  # these trials' compute_metrics raise at their first evaluation
PRUNED = 5  # this one is pruned at its first report


class PruneOne(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number == PRUNED


def test_six_trials_two_failing_one_pruned_give_one_driver_six_truthful_children(uri, tmp_path):
    running = {}

    def model_init(trial):
        running["trial"] = None if trial is None else trial.number
        return tiny_bert.model()

    def metrics(prediction):
        if running["trial"] in FAILING:
            raise RuntimeError(f"trial {running['trial']}: the metric blew up")
        return tiny_bert.accuracy(prediction)

    def space(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
                "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [4, 16])}

    callback = DiaryCallback("Transformers", "search", uri=uri)
    args = tiny_bert.arguments(tmp_path / "out", max_steps=10)  # one evaluation, at step 10
    trainer = tiny_bert.trainer(args, [callback], model_init=model_init, compute_metrics=metrics)
    best = trainer.hyperparameter_search(
        hp_space=space, n_trials=6, direction="maximize", backend="optuna",
        pruner=PruneOne(), catch=(RuntimeError,), sampler=optuna.samplers.RandomSampler(seed=1),
    )
    tracker = connect(uri)
    everything = tracker.get_iterations(tracker.get_iteration(callback.driver_iteration_id).experiment_id)
    assert not [it for it in everything if it.status is IterationStatus.RUNNING]
    (driver,) = [it for it in everything if it.parent_iteration_id is None]
    assert driver.id == callback.driver_iteration_id and driver.status is IterationStatus.SUCCEEDED
    children = sorted(tracker.get_child_iterations(driver.id), key=lambda c: c.id)
    assert [c.name for c in children] == [f"trial {n}" for n in range(6)]
    for number, child in enumerate(children):
        params = {p.key: p.value for p in tracker.get_parameters(child.id)}
        assert params["trial_number"] == str(number) and "learning_rate" in params
        (run,) = tracker.get_child_iterations(child.id)  # the trial's train()
        run_params = {p.key: p.value for p in tracker.get_parameters(run.id)}
        assert float(run_params["args/learning_rate"]) == pytest.approx(float(params["learning_rate"]))
        assert run_params["args/per_device_train_batch_size"] == params["per_device_train_batch_size"]
        assert run.status is child.status
        if number in FAILING:
            assert child.status is IterationStatus.FAILED
            assert child.error_message == f"RuntimeError: trial {number}: the metric blew up"
            assert run.error_message == child.error_message and "in metrics" in run.traceback
        elif number == PRUNED:
            assert child.status is IterationStatus.KILLED and child.notes == "pruned at step 10"
        else:
            assert child.status is IterationStatus.SUCCEEDED
            value = tracker.get_latest_metrics([child.id])[child.id]["value"]
            run_eval = {p.step: p.value for p in tracker.get_metrics(run.id) if p.key == "eval/accuracy"}
            assert value == pytest.approx(run_eval[10])  # the objective: the sum of the metrics, accuracy
    # The best trial on the driver, as the Optuna integration writes it, equal to what the search returned.
    driver_params = {p.key: p.value for p in tracker.get_parameters(driver.id)}
    assert driver_params["best_trial"] == best.run_id
    assert float(driver_params["best.learning_rate"]) == pytest.approx(best.hyperparameters["learning_rate"])
    assert tracker.get_latest_metrics([driver.id])[driver.id]["best_value"] == pytest.approx(best.objective)
