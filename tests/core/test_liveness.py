"""A process that dies inside with_iteration: SIGKILL reads KILLED on its host (elsewhere: after a reap);
SIGTERM ends KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import update

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker
from diary_integrations.tracker import schema
from diary_integrations.tracker.database import write_transaction

CHILD = textwrap.dedent(
    """
    import sys, time
    from diary_integrations import LocalTracker
    tracker = LocalTracker(sys.argv[1])
    with tracker.with_iteration(int(sys.argv[2])) as it:
        print(it.id, flush=True)
        time.sleep(120)
    """
)


def _start(url: str, experiment_id: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(experiment_id)], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()  # the iteration exists once the child prints its id
    assert line.strip().isdigit(), f"child did not start: {line!r}"
    return proc, int(line)


@pytest.fixture
def setup(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    tracker = LocalTracker(url)
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    yield tracker, url, experiment_id
    tracker.close()


def test_sigkill_on_this_host_reads_killed_at_once(setup):
    tracker, url, experiment_id = setup
    proc, iteration_id = _start(url, experiment_id)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed = tracker.get_iteration(iteration_id)  # the reader sees the process gone: no reap needed
    assert killed.status is IterationStatus.KILLED
    assert killed.error_message == f"process {proc.pid} exited without ending the run"
    assert killed.end_date == killed.heartbeat_date  # the last sign of life


def test_sigkill_on_another_host_then_reap_marks_killed(setup):
    tracker, url, experiment_id = setup
    proc, iteration_id = _start(url, experiment_id)
    with write_transaction(tracker.engine) as conn:  # as if the run were on another machine
        conn.execute(update(schema.iteration_processes).values(host="elsewhere"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert tracker.get_iteration(iteration_id).status is IterationStatus.RUNNING  # nobody here can tell
    time.sleep(1.2)
    assert tracker.reap(older_than=1.0) == [iteration_id]
    killed = tracker.get_iteration(iteration_id)
    assert killed.status is IterationStatus.KILLED and "heartbeat lost" in killed.error_message


def test_reap_spares_a_live_process(setup):
    tracker, url, experiment_id = setup
    proc, iteration_id = _start(url, experiment_id)
    try:
        assert tracker.reap(older_than=60) == []
        assert tracker.get_iteration(iteration_id).status is IterationStatus.RUNNING
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_sigterm_ends_killed(setup):
    tracker, url, experiment_id = setup
    proc, iteration_id = _start(url, experiment_id)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    it = tracker.get_iteration(iteration_id)
    assert it.status is IterationStatus.KILLED and it.error_message == "Terminated: received SIGTERM"


def test_cli_reap(setup):
    tracker, url, experiment_id = setup
    stale, _ = tracker.create_iteration(experiment_id)
    done = subprocess.run(
        [sys.executable, "-m", "diary_integrations.cli", "reap", "--older-than", "0s", "--uri", url, "--force"],
        capture_output=True, text=True, check=True,
    )
    assert f"marked 1 iteration(s) KILLED: {stale}" in done.stdout
    assert tracker.get_iteration(stale).status is IterationStatus.KILLED


def test_cli_reap_refuses_an_age_that_would_kill_live_runs(setup):
    tracker, url, experiment_id = setup
    running, _ = tracker.create_iteration(experiment_id)
    done = subprocess.run(
        [sys.executable, "-m", "diary_integrations.cli", "reap", "--older-than", "5s", "--uri", url],
        capture_output=True, text=True,
    )
    assert done.returncode == 1 and "would kill live runs" in done.stderr and "Traceback" not in done.stderr
    assert tracker.get_iteration(running).status is IterationStatus.RUNNING
