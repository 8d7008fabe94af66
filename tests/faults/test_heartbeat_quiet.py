"""A heartbeat that cannot reach its server says so once, and a closed tracker's heartbeat stops: no
"diary: heartbeat failed: ... Connection refused" line escapes after the tracker is closed (issue 25,
item 8: one leaked into the test suite's output from a heartbeat that outlived its server)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from diary_integrations import ExperimentStatus, LocalTracker
from diary_integrations.tracker.lifecycle import Heartbeat

from .journal_server import free_port

ROOT = Path(__file__).resolve().parents[2]

# A real process with logging left unconfigured, as a user's script: a warning goes to its stderr.
# Its tracker points at a loopback port nothing listens on, so every beat is refused.
SCRIPT = textwrap.dedent("""
    import sys, threading, time
    from diary_integrations.client import RemoteTracker
    from diary_integrations.tracker.lifecycle import Heartbeat

    tracker = RemoteTracker(sys.argv[1], retries=0, replay_journal=False)
    Heartbeat.of(tracker, interval=0.05).add(7, 8)
    time.sleep(1.0)  # about twenty refused beats
    tracker.close()
    print("--- closed", file=sys.stderr, flush=True)
    time.sleep(1.0)  # twenty more intervals: nothing is said now
    beating = [t for t in threading.enumerate() if t.name == "diary-heartbeat"]
    print(f"--- threads {len(beating)}", file=sys.stderr, flush=True)
""")


def test_a_refused_heartbeat_is_said_once_and_a_closed_tracker_beats_no_more():
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run([sys.executable, "-c", SCRIPT, url], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    before, _, after = done.stderr.partition("--- closed")
    assert before.count("diary: heartbeat failed") == 1, done.stderr  # once, however many beats fail
    assert "Connection refused" in before or "refused" in before.lower(), done.stderr
    assert "heartbeat" not in after, done.stderr  # the closed tracker's thread is gone, and silent
    assert "--- threads 0" in after, done.stderr


def _beaters() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "diary-heartbeat"]


def _gone(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _beaters() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _beaters()


def test_closing_a_tracker_ends_its_heartbeat_and_a_later_run_beats_again(tmp_path):
    tracker = LocalTracker(tmp_path / "runs.db")
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    iteration_id, _ = tracker.create_iteration(experiment_id)
    beat = Heartbeat.of(tracker, interval=0.05)
    beat.add(iteration_id)
    assert len(_beaters()) == 1
    tracker.close()
    assert _gone()
    # Used again (a closed tracker reconnects on its next call), a new run is beaten for as before.
    other, _ = tracker.create_iteration(experiment_id)
    beat.add(other)
    first = tracker.get_iteration(other).heartbeat_date
    deadline = time.monotonic() + 10
    while tracker.get_iteration(other).heartbeat_date == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tracker.get_iteration(other).heartbeat_date > first
    beat.discard(iteration_id, other)
    tracker.close()
    assert _gone()



# A process that exits with a run still open while its server goes away (as a test worker whose session
# server is stopped at the end of the session): the exit hook below runs after the heartbeat's own (atexit
# runs the last registered first), stops the server and waits twenty beats. The heartbeat stopped first.
EXIT_SCRIPT = textwrap.dedent("""
    import atexit, os, signal, sys, time
    from diary_integrations import ExperimentStatus
    from diary_integrations.client import RemoteTracker
    from diary_integrations.tracker.lifecycle import Heartbeat

    def server_gone_at_exit():
        os.kill(int(sys.argv[2]), signal.SIGKILL)
        print("--- server killed", file=sys.stderr, flush=True)
        time.sleep(1.0)

    atexit.register(server_gone_at_exit)
    tracker = RemoteTracker(sys.argv[1], retries=0, replay_journal=False)
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "E")
    iteration_id, _ = tracker.create_iteration(experiment_id)
    Heartbeat.of(tracker, interval=0.05).add(iteration_id)
    time.sleep(0.5)  # beats that work
    print("--- exiting", file=sys.stderr, flush=True)
""")


def test_no_heartbeat_outlives_the_process_main_work(tmp_path):
    from .journal_server import start_server

    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}", free_port())
    try:
        done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, server.url, str(server.process.pid)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "--- server killed" in done.stderr, done.stderr
    assert "heartbeat" not in done.stderr, done.stderr
