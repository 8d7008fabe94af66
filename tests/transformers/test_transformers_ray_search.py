"""`Trainer.hyperparameter_search(backend="ray")` with DiaryCallback, on a local Ray (2 CPUs): the Ray Tune
integration records the search (one driver, a child per trial with its config and its truthful end,
the best trial on the driver), and each trial's train(), run in a Ray worker, is a run under its child."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_ray import local_ray as ray_on_this_machine

from diary_integrations import IterationStatus, connect

pytest.importorskip("ray.tune", reason="the ray backend needs the [ray] extra")
tiny_bert = pytest.importorskip("tiny_bert")
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402

from diary_integrations.transformers import DiaryCallback  # noqa: E402

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
FAILING = (2, 5)  # these trials' compute_metrics raise at their first evaluation
# Set in the fresh process that runs the search (see the test below).
IN_FRESH_PROCESS = "DIARY_TEST_RAY_SEARCH_FRESH_PROCESS"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """Ray on this machine; its workers unpickle the Trainer, so tiny_bert.py must be importable there."""
    with ray_on_this_machine(HERE):
        yield


def test_six_trials_two_failing_some_stopped_by_asha_give_one_driver_six_truthful_children(request):
    """Run in a fresh pytest process: once any Trainer has trained in a process, a new Trainer's
    accelerate `Accelerator` holds a weakref and Ray cannot pickle that Trainer for its trials (seen with
    no callback at all: transformers' limitation, not ours), so the test worker's earlier Transformers
    tests would decide this one."""
    if os.environ.get(IN_FRESH_PROCESS) == "1":
        request.getfixturevalue("search_in_this_process")
        return
    here = f"{Path(__file__).resolve()}::{request.node.name}"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", here],
                          env={**os.environ, IN_FRESH_PROCESS: "1"}, capture_output=True, text=True, timeout=900,
                          cwd=HERE.parent.parent)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout, done.stdout[-3000:]


@pytest.fixture
def search_in_this_process(local_ray, sqlite_uri, tmp_path) -> None:
    """The search and what the tracker holds of it (run as a fixture of the fresh process's test)."""
    running: dict[str, int | None] = {}

    def model_init(trial):
        running["x"] = None if trial is None else trial["x"]
        return tiny_bert.model()

    def metrics(prediction):
        if running["x"] in FAILING:
            raise RuntimeError(f"trial x={running['x']}: the metric blew up")
        return tiny_bert.accuracy(prediction)

    def objective(found):  # a larger x is worse: ASHA stops some of the later trials early
        return float(running["x"]) + found["eval_loss"] / 100

    callback = DiaryCallback("Transformers", "ray search", uri=sqlite_uri)
    args = tiny_bert.arguments(tmp_path / "out", max_steps=15, eval_steps=5, logging_steps=5, do_eval=True)
    trainer = tiny_bert.trainer(args, [callback], model_init=model_init, compute_metrics=metrics)
    best = trainer.hyperparameter_search(
        hp_space=lambda _: {"x": tune.grid_search(list(range(6)))}, compute_objective=objective, n_trials=1,
        direction="minimize", backend="ray", resources_per_trial={"cpu": 1}, raise_on_failed_trial=False,
        # max_t above the 3 reports a trial makes: a trial that is not stopped early returns by itself.
        scheduler=ASHAScheduler(metric="objective", mode="min", max_t=10, grace_period=1, reduction_factor=2),
        storage_path=str(tmp_path / "ray"), name="search", verbose=0,
    )

    tracker = connect(sqlite_uri)
    driver = tracker.get_iteration(callback.driver_iteration_id)
    everything = tracker.get_iterations(driver.experiment_id)
    assert not [it for it in everything if it.status is IterationStatus.RUNNING]
    assert [it.id for it in everything if it.parent_iteration_id is None] == [driver.id]
    assert driver.status is IterationStatus.SUCCEEDED
    children = tracker.get_child_iterations(driver.id)
    params = tracker.get_parameter_values([driver.id] + [c.id for c in children])
    by_x = {int(params[c.id]["x"]): c for c in children}
    assert sorted(by_x) == list(range(6))
    killed = []
    for x, child in by_x.items():
        runs = tracker.get_child_iterations(child.id)  # the trial's train(), in its Ray worker
        objectives = {p.step: p.value for p in tracker.get_metrics(child.id) if p.key == "objective"}
        (run,) = runs
        if child.status is IterationStatus.KILLED:
            # Tune ends a stopped trial's actor without waiting for its train(): the run ends KILLED
            # (by itself, or by the driver with the trial's note).
            killed.append(x)
            last = max(objectives)
            assert last < 3 and f"stopped by ASHAScheduler at iteration {last}" in child.notes
            assert run.status is IterationStatus.KILLED, run
            continue
        assert {p.key: p.value for p in tracker.get_parameters(run.id)}["args/max_steps"] == "15"
        if x in FAILING:
            assert child.status is IterationStatus.FAILED
            assert child.error_message == f"RuntimeError: trial x={x}: the metric blew up"
            assert run.status is IterationStatus.FAILED and run.error_message == child.error_message
            continue
        assert child.status is IterationStatus.SUCCEEDED and run.status is IterationStatus.SUCCEEDED, (x, run)
        assert sorted(objectives) == [1, 2, 3]
        run_eval = {p.step: p.value for p in tracker.get_metrics(run.id) if p.key == "eval/loss"}
        assert objectives[3] == pytest.approx(x + run_eval[15] / 100)
    assert killed, "ASHA stopped no trial early"
    # The best trial on the driver, as the search returned it.
    assert params[driver.id]["best_trial_id"] == best.run_id
    assert params[driver.id]["best.x"] == str(best.hyperparameters["x"]) == "0"
    assert tracker.get_latest_metrics([driver.id])[driver.id]["best_objective"] == pytest.approx(best.objective)
