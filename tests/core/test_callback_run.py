"""CallbackRun (callback_run.py), the run every callback integration writes through: the truthful end in
real processes (a clean end, an uncaught exception, SIGTERM, an exception the program swallowed), every
point stored exactly once, children sharing the writer, models and the registry, and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from diary_integrations import IterationStatus, connect
from diary_integrations.callback_run import UNENDED_AT_EXIT, CallbackRun
from diary_integrations.tracker.errors import Unprocessable

SCRIPT = textwrap.dedent("""
    import sys, time
    from diary_integrations.callback_run import CallbackRun

    # The sidecar (a database's default) only where the test is about it: each one costs a process start.
    run = CallbackRun("P", "callbacks", uri=sys.argv[1], flush_interval=0.2, sidecar=sys.argv[2] == "raise")
    run.start()
    run.log_params({"booster": {"max_depth": 3, "eta": 0.3}, "objective": "binary:logistic"})
    how = sys.argv[2]
    print("ITERATION", run.open(), flush=True)
    step = 0
    while True:
        run.log_metrics({"train-logloss": 1.0 / (step + 1), "valid-logloss": 2.0 / (step + 1)}, step=step)
        print("STEP", step, flush=True)
        if how == "raise" and step == 9:
            raise ValueError("custom objective blew up at round 10")
        if how == "swallow" and step == 4:
            try:
                raise RuntimeError("a training error the program handled")
            except RuntimeError:
                break
        if how == "end" and step == 9:
            run.end()
            break
        step += 1
        if how == "wait":
            time.sleep(0.01)
""")


def run_script(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], str, int]:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {k: v for k, v in os.environ.items() if k not in {"DIARY_DRIVER_ITERATION_ID", "LOCAL_RANK", "RANK"}}
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, uri, how], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("ITERATION"), first + process.stderr.read()  # type: ignore[union-attr]
    return process, uri, int(first.split()[1])


def steps_printed(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("STEP")]


def assert_series_once(uri: str, iteration_id: int, last_step: int) -> None:
    """Every step from 0 to at least `last_step`, each once, for both keys: nothing lost or doubled."""
    tracker = connect(uri)
    for key in ("train-logloss", "valid-logloss"):
        steps = [m.step for m in tracker.get_metrics(iteration_id, key=key)]
        assert steps == list(range(len(steps))) and len(steps) >= last_step + 1, (key, steps[-5:], last_step)


@pytest.mark.slow
@pytest.mark.parametrize("how, status, message", [  # a clean end: the in-process tests below
    ("raise", IterationStatus.FAILED, "ValueError: custom objective blew up at round 10"),
    ("swallow", IterationStatus.FAILED, UNENDED_AT_EXIT),
])
def test_the_end_in_a_real_process(tmp_path, how, status, message):
    process, uri, iteration_id = run_script(tmp_path, how)
    # Read on through the same text stream that read the first line: its buffer may already hold the
    # STEP lines a fast child printed (communicate() reads the pipe underneath and would never see them).
    out, err = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    process.wait(timeout=120)
    assert process.returncode == (1 if how == "raise" else 0), err
    it = connect(uri).get_iteration(iteration_id)
    assert it.status is status and it.error_message == message and it.end_date is not None
    if how == "raise":
        assert "Traceback (most recent call last)" in it.traceback and "round 10" in err  # Python's report too
    printed = steps_printed(out)
    assert_series_once(uri, iteration_id, printed[-1])
    assert len(connect(uri).get_metrics(iteration_id, key="train-logloss")) == len(printed)
    params = {p.key: p.value for p in connect(uri).get_parameters(iteration_id)}
    assert params == {"booster/max_depth": "3", "booster/eta": "0.3", "objective": "binary:logistic"}


@pytest.mark.slow
def test_sigterm_ends_the_run_killed_with_every_point_once(tmp_path):
    process, uri, iteration_id = run_script(tmp_path, "wait")
    assert process.stdout is not None
    while True:  # mid-run: some points written, some buffered
        line = process.stdout.readline()
        if line.startswith("STEP") and int(line.split()[1]) >= 30:
            break
    process.send_signal(signal.SIGTERM)
    out, err = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    process.wait(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    it = connect(uri).get_iteration(iteration_id)
    assert it.status is IterationStatus.KILLED, it
    assert it.error_message == "Terminated: received SIGTERM"
    assert_series_once(uri, iteration_id, max(steps_printed(out), default=30))


def test_children_share_the_writer_and_end_with_the_driver(sqlite_url):
    driver = CallbackRun("P", "cv", uri=sqlite_url, name="cv", sidecar=False)
    driver.start()
    folds = [driver.child(f"fold {n}") for n in range(3)]
    for step in range(20):
        driver.log_metrics({"test-auc-mean": 0.5 + step / 100}, step=step)
        for n, fold in enumerate(folds):
            fold.log_metrics({"test-auc": 0.5 + step / 100 + n / 1000}, step=step)
    folds[0].end()
    driver.end(ValueError("fold 2 raised"))
    tracker = connect(sqlite_url)
    assert [tracker.get_iteration(f.iteration_id).status for f in folds] == [
        IterationStatus.SUCCEEDED, IterationStatus.FAILED, IterationStatus.FAILED]
    assert tracker.get_iteration(folds[2].iteration_id).error_message == "ValueError: fold 2 raised"
    assert {tracker.get_iteration(f.iteration_id).parent_iteration_id for f in folds} == {driver.iteration_id}
    assert [tracker.get_iteration(f.iteration_id).name for f in folds] == ["fold 0", "fold 1", "fold 2"]
    for fold in folds:
        assert [m.step for m in tracker.get_metrics(fold.iteration_id, key="test-auc")] == list(range(20))
    assert len(tracker.get_metrics(driver.iteration_id, key="test-auc-mean")) == 20
    assert driver.written == 80 and driver.dropped == 0
    driver.end()  # a second end changes nothing
    assert tracker.get_iteration(driver.iteration_id).status is IterationStatus.FAILED


def test_model_is_registered_only_after_a_success(sqlite_url):
    ok = CallbackRun("P", "models", uri=sqlite_url, log_model=True, register_as="churn-gbm", sidecar=False)
    ok.store_model(b"model bytes", file_name="model.ubj")
    ok.log_metrics({"loss": 0.5}, step=0)
    ok.end()
    failed = CallbackRun("P", "models", uri=sqlite_url, log_model=True, register_as="churn-gbm", sidecar=False)
    failed.log_metrics({"loss": 0.5}, step=0)
    failed.store_model(b"other bytes", file_name="model.ubj")
    failed.end(RuntimeError("no"))
    tracker = connect(sqlite_url)
    names = sorted(r.name for r in tracker.get_resources(ok.experiment_id))
    assert names == [f"iteration-{ok.iteration_id}/model.ubj", f"iteration-{failed.iteration_id}/model.ubj"]
    [model] = [m for m in tracker.get_models(tracker.get_experiment(ok.experiment_id).project_id)]
    versions = tracker.get_model_versions(model.id)
    assert [v.iteration_id for v in versions] == [ok.iteration_id]


def test_end_with_a_chosen_status_and_a_run_never_started(sqlite_url):
    run = CallbackRun("P", "E", uri=sqlite_url, sidecar=False)
    run.log_metrics({"loss": 1.0}, step=0)
    run.end_with(IterationStatus.KILLED, "stopped by ASHA at round 3")
    run.end()
    it = connect(sqlite_url).get_iteration(run.iteration_id)
    assert it.status is IterationStatus.KILLED and it.error_message == "stopped by ASHA at round 3"
    idle = CallbackRun("P", "E", uri=sqlite_url, sidecar=False)
    idle.end()  # nothing was logged: nothing is created
    assert idle.iteration_id is None and len(connect(sqlite_url).get_iterations(run.experiment_id)) == 1


@pytest.mark.parametrize("kwargs, field", [
    ({"project": ""}, "project"),
    ({"experiment": 0}, "experiment"),
    ({"uri": 3}, "uri"),
    ({"uri": "ftp://x"}, "uri"),
    ({"parent_iteration_id": -1}, "parent_iteration_id"),
    ({"register_as": "m"}, "register_as"),
    ({"sidecar": "yes"}, "sidecar"),
    ({"batch_size": 0}, "batch_size"),
    ({"flush_interval": 0}, "flush_interval"),
    ({"name": 5}, "name"),
    ({"system_metrics": "on"}, "system_metrics"),
    ({"system_metrics_interval": 0}, "system_metrics_interval"),
])
def test_bad_arguments_are_refused_by_name(tmp_path, kwargs, field):
    arguments = {"project": "P", "experiment": "E", "uri": f"sqlite:///{tmp_path / 'x.db'}", **kwargs}
    with pytest.raises(Unprocessable) as caught:
        CallbackRun(arguments.pop("project"), arguments.pop("experiment"), **arguments)
    assert caught.value.field == field
    assert not (tmp_path / "x.db").exists()


def test_bad_metrics_raise_on_the_training_thread_and_write_nothing(sqlite_url):
    run = CallbackRun("P", "E", uri=sqlite_url, sidecar=False)
    with pytest.raises(Unprocessable):
        run.log_metrics({"loss": "high"}, step=0)
    with pytest.raises(Unprocessable):
        run.log_metrics({"loss": 1.0}, step=-1)
    with pytest.raises(Unprocessable):
        run.log_params(["not", "a", "mapping"])  # type: ignore[arg-type]
    run.end()
    assert run.iteration_id is None  # nothing was opened, nothing written


@pytest.mark.system_metrics
def test_every_callback_run_records_what_the_machine_did_unless_told_not_to(sqlite_url):
    """Issue 29 for the callback integrations (XGBoost, LightGBM, Keras, Transformers): one sampler per
    run, on the root only (a cv fold shares its process), stopped before the end, nothing after it."""
    import time

    run = CallbackRun("P", "E", uri=sqlite_url, sidecar=False, system_metrics_interval=0.2)
    fold = run.child("fold 0")
    run.log_metrics({"loss": 1.0}, step=0)
    run.open()
    time.sleep(1.5)
    run.end()
    tracker = connect(sqlite_url)
    latest = tracker.get_latest_metrics([run.iteration_id, fold.open()])
    assert latest[run.iteration_id]["system/proc.rss_mib.max"] > 0
    assert not [k for k in latest.get(fold.iteration_id, {}) if k.startswith("system/")]
    ended = tracker.get_iteration(run.iteration_id).end_date.timestamp() * 1000
    assert all(m.step <= ended + 1 for m in tracker.get_metrics(run.iteration_id, key="system/proc.rss_mib"))
    quiet = CallbackRun("P", "E", uri=sqlite_url, sidecar=False, system_metrics=False)
    quiet.log_metrics({"loss": 1.0}, step=0)
    quiet.open()
    time.sleep(1.2)
    quiet.end()
    assert set(tracker.get_latest_metrics([quiet.iteration_id])[quiet.iteration_id]) == {"loss"}


@pytest.mark.system_metrics
def test_the_operators_switch_turns_system_metrics_off_for_the_process(sqlite_url, monkeypatch):
    import time

    monkeypatch.setenv("DIARY_SYSTEM_METRICS", "off")
    run = CallbackRun("P", "E", uri=sqlite_url, sidecar=False, system_metrics_interval=0.2)
    run.log_metrics({"loss": 1.0}, step=0)
    run.open()
    time.sleep(1.0)
    run.end()
    assert set(connect(sqlite_url).get_latest_metrics([run.iteration_id])[run.iteration_id]) == {"loss"}


def test_the_end_lets_its_sidecar_go_and_starts_no_other(sqlite_url):
    """The end used to ask the closed sidecar tracker a question, which started a second sidecar process
    that the end then waited for (seconds on a loaded machine, for nothing)."""
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    run = CallbackRun("P", "sidecar-end", uri=sqlite_url, sidecar=True, system_metrics=False)
    run.log_metrics({"loss": 1.0}, step=0)
    run.open()
    sidecars = [p for p in psutil.Process().children() if p.pid not in before]
    assert len(sidecars) == 1
    run.end()
    assert run.status is IterationStatus.SUCCEEDED
    assert run.tracker._holder["process"] is None  # let go, and none started again
    assert [p for p in psutil.Process().children() if p.pid not in before and p.pid != sidecars[0].pid
            and p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert [m.value for m in connect(sqlite_url).get_metrics(run.iteration_id, key="loss")] == [1.0]
