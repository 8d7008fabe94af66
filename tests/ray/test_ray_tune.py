"""DiaryCallback on a real local Ray: the sweep tree of a Tune experiment, the truthful end of every trial
(raised, early-stopped by ASHA, completed, worker SIGKILLed), the best trial on the driver as Tune's
ResultGrid has it, a restore after the driver's SIGKILL, and a DiaryLogger nesting under its trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tune_scenario
from faults.restartable import Outage, assert_each_step_once, killable_server
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from diary_integrations import IterationStatus, LocalTracker, connect
from diary_integrations.client import journal
from diary_integrations.ray import DiaryCallback
from diary_integrations.reporting import TrackingWarning

# xdist_group: every test of tests/ray on one test worker, so a parallel run starts Ray once per module
# instead of once per worker that happens to get one of its tests (each Ray takes the machine's 2 CPUs).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]
HERE = Path(__file__).resolve().parent


def only_driver(tracker: LocalTracker) -> object:
    (driver,) = [it for it in tracker.get_iterations(1) if it.parent_iteration_id is None]
    return driver


def test_asha_sweep_tree(ray_cluster: str, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    callback = DiaryCallback("P", "Tune", uri=str(db))
    tuner = tune.Tuner(
        tune_scenario.asha_trainable,
        param_space={"x": tune.grid_search(list(range(12)))},
        tune_config=tune.TuneConfig(
            metric="loss", mode="min", reuse_actors=True,
            scheduler=ASHAScheduler(max_t=8, grace_period=1, reduction_factor=2),
        ),
        run_config=tune.RunConfig(name="asha", storage_path=str(tmp_path / "ray"), verbose=0, callbacks=[callback]),
    )
    results = tuner.fit()

    tracker = LocalTracker(db)
    driver = only_driver(tracker)
    assert driver.id == callback.driver_iteration_id and driver.status is IterationStatus.SUCCEEDED
    children = tracker.get_child_iterations(driver.id)
    assert len(children) == 12
    params = tracker.get_parameter_values([driver.id] + [c.id for c in children])
    by_x = {int(params[c.id]["x"]): c for c in children}
    assert sorted(by_x) == list(range(12))
    for x in (3, 7):
        assert by_x[x].status is IterationStatus.FAILED
        assert by_x[x].error_message == f"ValueError: diverged at x={x}"
        assert "asha_trainable" in by_x[x].traceback  # the trial's own traceback, from Tune's report
    tune_results = {r.config["x"]: r for r in results}
    killed = [x for x, c in by_x.items() if c.status is IterationStatus.KILLED]
    assert killed, "ASHA stopped no trial early"
    for x in killed:  # stopped before max_t, at the iteration the trial's last result has
        last = tune_results[x].metrics["training_iteration"]
        assert last < 8 and f"stopped by ASHAScheduler at iteration {last}" in by_x[x].notes
    succeeded = [x for x, c in by_x.items() if c.status is IterationStatus.SUCCEEDED]
    assert sorted(killed + succeeded + [3, 7]) == list(range(12)) and 0 in succeeded
    for x in succeeded:
        assert tune_results[x].metrics["training_iteration"] == 8
    # Every reported result is a point at its training_iteration, nested keys joined with "/".
    series = [(p.key, p.step, p.value) for p in tracker.get_metrics(by_x[0].id) if p.key == "loss"]
    assert sorted(series) == [("loss", i, 1.0 / i) for i in range(1, 9)]
    assert {p.key for p in tracker.get_metrics(by_x[0].id)} >= {"loss", "nested/acc", "time_this_iter_s"}
    assert params[by_x[0].id]["node_ip"]
    # The driver: the experiment's setup, and the best trial as Tune's ResultGrid has it.
    best = results.get_best_result()
    assert params[driver.id]["scheduler"] == "ASHAScheduler" and params[driver.id]["metric"] == "loss"
    assert params[driver.id]["space.x"] == repr(list(range(12)))
    assert params[driver.id]["best.x"] == str(best.config["x"])
    assert tracker.get_latest_metrics([driver.id])[driver.id]["best_loss"] == best.metrics["loss"]
    assert tracker.get_latest_metrics([driver.id])[driver.id]["n_error_trials"] == 2


def test_diary_logger_nests_and_a_killed_worker_fails(ray_cluster: str, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    callback = DiaryCallback("P", "Tune", uri=str(db))
    tuner = tune.Tuner(
        tune_scenario.logger_trainable,
        param_space={"x": tune.grid_search([0, 1]), "uri": str(db)},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(name="nest", storage_path=str(tmp_path / "ray"), verbose=0, callbacks=[callback]),
    )
    results = tuner.fit()
    tracker = LocalTracker(db)
    children = {c.name: c for c in tracker.get_child_iterations(callback.driver_iteration_id)}
    params = tracker.get_parameter_values([c.id for c in children.values()])
    by_x = {params[c.id]["x"]: c for c in children.values()}
    run_id = int(next(r for r in results if r.config["x"] == 0).metrics["run"])
    run = tracker.get_iteration(run_id)
    assert run.parent_iteration_id == by_x["0"].id  # the DiaryLogger's run is the trial's child
    assert run.status is IterationStatus.SUCCEEDED and by_x["0"].status is IterationStatus.SUCCEEDED
    assert [p.value for p in tracker.get_metrics(run_id) if p.key == "inner"] == [1.5]
    killed = by_x["1"]  # its worker was SIGKILLed: Tune's report of the actor's death is its status
    assert killed.status is IterationStatus.FAILED
    assert killed.error_message.startswith("ActorDiedError: The actor died unexpectedly")
    assert "worker process has died" in killed.traceback


def test_experiment_that_raises_fails_the_driver(ray_cluster: str, tmp_path: Path) -> None:
    class Breaks(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result["training_iteration"] == 3:
                raise RuntimeError("the experiment broke")

    db = tmp_path / "runs.db"
    callback = DiaryCallback("P", "Tune", uri=str(db))
    tuner = tune.Tuner(
        tune_scenario.asha_trainable,
        param_space={"x": 0},
        run_config=tune.RunConfig(name="broken", storage_path=str(tmp_path / "ray"), verbose=0,
                                  callbacks=[callback, Breaks()]),
    )
    with pytest.raises(Exception, match="the experiment broke"):
        tuner.fit()
    tracker = LocalTracker(db)
    driver = only_driver(tracker)
    assert driver.status is IterationStatus.FAILED and "RuntimeError: the experiment broke" in driver.error_message
    (child,) = tracker.get_child_iterations(driver.id)
    assert child.status is IterationStatus.FAILED and "the experiment broke" in child.error_message
    assert not [it for it in tracker.get_iterations(1) if it.status is IterationStatus.RUNNING]


def test_restore_after_driver_sigkill_continues_without_duplicates(ray_cluster: str, tmp_path: Path) -> None:
    db, storage = tmp_path / "runs.db", tmp_path / "ray"
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)}
    command = [sys.executable, str(HERE / "tune_scenario.py"), str(db), str(storage), ray_cluster, "fit"]
    driver_process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # killed once a trial ended and Tune saved its state
            if driver_process.poll() is not None:
                pytest.fail(f"the driver ended before it was killed: {driver_process.communicate()[1][-3000:]!r}")
            if db.exists() and list((storage / "exp").glob("experiment_state-*.json")):
                tracker = LocalTracker(db)
                ended = [it for it in tracker.get_iterations(1) if it.parent_iteration_id is not None
                         and it.status is IterationStatus.SUCCEEDED]
                running = tracker.get_iterations(1, status=IterationStatus.RUNNING)
                tracker.close()
                if ended and len(running) >= 2:
                    break
            time.sleep(0.3)
        else:
            pytest.fail("no trial ended in time")
        time.sleep(1.0)  # the experiment state now has the ended trial
        os.kill(driver_process.pid, signal.SIGKILL)
        driver_process.wait(30)
    finally:
        if driver_process.poll() is None:
            driver_process.kill()
            driver_process.wait()
    # Restored here, on the Ray the killed driver used; the callback comes back from Tune's own state.
    restored = tune.Tuner.restore(str(storage / "exp"), trainable=tune_scenario.slow_trainable, resume_unfinished=True)
    results = restored.fit()

    tracker = LocalTracker(db)
    driver = only_driver(tracker)
    assert driver.status is IterationStatus.SUCCEEDED and "Tuner.restore" in driver.notes
    children = tracker.get_child_iterations(driver.id)
    trial_ids = tracker.get_parameter_values([c.id for c in children])
    assert len(children) == 4 and len({trial_ids[c.id]["trial_id"] for c in children}) == 4
    assert all(c.status is IterationStatus.SUCCEEDED for c in children)
    assert any("again" in c.notes for c in children)  # a trial interrupted by the kill was continued
    for child in children:
        steps = [p.step for p in tracker.get_metrics(child.id) if p.key == "loss"]
        assert sorted(steps) == list(range(1, 6)), (child.name, steps)  # each step once
    assert str(tracker.get_parameter_values([driver.id])[driver.id]["best.x"]) == "0"
    assert results.get_best_result().config == {"x": 0}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"metric": "", "mode": "min"}, "metric"), ({"metric": "loss", "mode": "minimize"}, "mode"),
     ({"metric": "loss"}, "mode")],
)
def test_bad_metric_or_mode_is_refused_naming_the_field(kwargs, field, tmp_path: Path) -> None:
    from diary_integrations.tracker.errors import Unprocessable

    with pytest.raises(Unprocessable) as refused:
        DiaryCallback("P", "Tune", uri=str(tmp_path / "runs.db"), **kwargs)
    assert refused.value.field == field
    assert not (tmp_path / "runs.db").exists()  # nothing written


class Unsaved(tune.Callback):
    """A test's callback that holds a server process: Tune saves its callbacks with the experiment, not this."""

    def __reduce__(self):
        return tune.Callback, ()


def fit_through_outage(server, tmp_path: Path, trials: int, outages: Callable[[DiaryCallback], tune.Callback],
                       trainable: Any = tune_scenario.steady_trainable):
    """`trials` steady trials (2 at a time) tracked through `server`, with the test's outage callback."""
    callback = DiaryCallback("P", "Tune", uri=server.url)
    results = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(name="outage", storage_path=str(tmp_path / "ray"), verbose=0,
                                  callbacks=[callback, outages(callback)]),
    ).fit()
    return callback, results


def assert_every_trial_whole(server, callback: DiaryCallback, results, trials: int) -> None:
    """A SUCCEEDED driver with a SUCCEEDED child per trial holding each of its 12 results once."""
    tracker = connect(server.url)
    driver = tracker.get_iteration(callback.driver_iteration_id)
    assert driver.status is IterationStatus.SUCCEEDED
    children = tracker.get_child_iterations(driver.id)
    assert len(children) == trials, [c.name for c in children]
    for child in children:
        assert child.status is IterationStatus.SUCCEEDED, child
        assert_each_step_once(tracker, child.id, "loss", range(1, 13))
    assert tracker.get_parameter_values([driver.id])[driver.id]["best.x"] == "0"
    assert results.get_best_result().config == {"x": 0}


def test_through_a_server_killed_and_restarted_mid_experiment(ray_cluster: str, tmp_path: Path) -> None:
    def outages(callback: DiaryCallback) -> tune.Callback:
        # Before the kill, everything handed to the callback's writing thread so far is written: the
        # driver and both trials' children exist (for trials that start or end while the server is away,
        # see the test below).
        outage = Outage(server, kill=3, restart=8, before_kill=lambda: callback._writes.queue.join())
        reached: dict[str, int] = {}

        class Outages(Unsaved):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                reached[trial.trial_id] = result["training_iteration"]
                if len(reached) == 2:  # both trials started (and reported): by the slower one's progress
                    outage.at(min(reached.values()))

        return Outages()

    with killable_server(tmp_path) as server:
        callback, results = fit_through_outage(server, tmp_path, 2, outages)
        assert server.starts == 2  # the outage happened: killed, and started again mid-experiment
        assert_every_trial_whole(server, callback, results, 2)


def test_trials_that_start_or_end_while_the_server_is_away_are_recorded(ray_cluster: str, tmp_path: Path) -> None:
    def outages(callback: DiaryCallback) -> tune.Callback:
        started: list[str] = []

        class Outages(Unsaved):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                if len(started) == 2 and server.process.poll() is None and server.starts == 1:
                    callback._writes.queue.join()  # both running trials' children exist
                    server.kill()

            def on_trial_start(self, iteration, trials, trial, **info):
                started.append(trial.trial_id)
                if len(started) == 3:  # ours was told first: its write gives up while we wait, then back
                    callback._writes.queue.join()
                    server.start(timeout=300)

        return Outages()

    with killable_server(tmp_path) as server:
        callback, results = fit_through_outage(server, tmp_path, 3, outages)
        assert server.starts == 2  # the outage happened: killed with two trials running, back after the third began
        assert_every_trial_whole(server, callback, results, 3)


def test_what_the_server_is_still_away_for_at_the_end_is_sent_once_by_the_next_process(
        ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIARY_FLUSH_TIMEOUT", "3")  # how long the experiment's end waits for the server

    gate = tmp_path / "server-killed"  # each trial holds after its third report until then (neither ends first)

    def outages(callback: DiaryCallback) -> tune.Callback:
        reached: dict[str, int] = {}

        class Outages(Unsaved):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                reached[trial.trial_id] = result["training_iteration"]
                if len(reached) == 2 and min(reached.values()) >= 3 and server.process.poll() is None:
                    callback._writes.queue.join()  # both children exist; the rest is written while away
                    server.kill()
                    gate.touch()

        return Outages()

    with killable_server(tmp_path) as server:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            callback, results = fit_through_outage(
                server, tmp_path, 2, outages, tune.with_parameters(tune_scenario.gated_trainable, gate=str(gate)))
        assert server.process.poll() is not None  # still away when Tuner.fit() returned
        said = [str(w.message) for w in seen if issubclass(w.category, TrackingWarning)]
        # One truthful word: kept in the journal, for `diary sync` or the next process; no "another process".
        assert len(said) == 1 and "diary sync" in said[0] and "next process" in said[0], said
        kept = journal.journal_files(server.url)
        assert len(kept) == 3, kept  # the driver's end and each trial's points and end
        server.start(timeout=300)
        sync = [sys.executable, "-m", "diary_integrations.cli", "sync", "--uri", server.url]
        done = subprocess.run(sync, capture_output=True, text=True, timeout=300, env=os.environ.copy())
        assert done.returncode == 0, done.stdout + done.stderr
        assert not journal.journal_files(server.url) and not journal.rejected_files(server.url)
        assert_every_trial_whole(server, callback, results, 2)  # each step once, every end as Tune had it
        again = subprocess.run(sync, capture_output=True, text=True, timeout=300, env=os.environ.copy())
        assert "nothing to send" in again.stdout, again.stdout  # sent once, never twice
        assert_every_trial_whole(server, callback, results, 2)
