"""RUNNING means a live process: real processes killed without a word, embedded and behind a server.

Embedded (SQLite), a reader on the same host sees the dead process and records KILLED at once; a
tracking server reaps an expired lease by itself; a reused pid fools neither; a reaped run that beats
again is told so once and stops beating; the heartbeat thread ends with the last iteration it beats.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from server_harness import LiveServer, start_cli_server
from sqlalchemy import update

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker
from diary_integrations.client import RemoteTracker
from diary_integrations.tracker import liveness, schema
from diary_integrations.tracker.database import write_transaction
from diary_integrations.tracker.lifecycle import Heartbeat

pytestmark = pytest.mark.skipif(not liveness.supported(), reason="process liveness needs Linux /proc")

SHORT_LEASE = 3.0

# A driver with a child inside it, both in with_iteration; prints "driver child" and waits to be killed.
NESTED = textwrap.dedent(
    """
    import sys, time
    from diary_integrations import connect
    tracker = connect(sys.argv[1])
    with tracker.with_iteration(int(sys.argv[2])) as driver:
        with tracker.with_iteration(int(sys.argv[2]), parent_iteration_id=driver.id) as child:
            tracker.create_metric(child.id, "loss", 0.5)
            print(driver.id, child.id, flush=True)
            time.sleep(float(sys.argv[3]))
    print("done", flush=True)
    """
)

# One with_iteration that sleeps, then reports which diary threads are left.
SLEEPER = textwrap.dedent(
    """
    import sys, threading, time
    from diary_integrations import connect
    tracker = connect(sys.argv[1])
    with tracker.with_iteration(int(sys.argv[2])) as it:
        print(it.id, flush=True)
        sys.stdin.readline()  # the test reaps the run, then lets it go on
        time.sleep(float(sys.argv[3]))
        print("threads", [t.name for t in threading.enumerate() if t.name == "diary-heartbeat"], flush=True)
    print("done", flush=True)
    """
)


def _spawn(script: str, *args: object, lease: float | None = None, stdin: bool = False) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("DIARY_HEARTBEAT_LEASE", None)
    if lease is not None:
        env["DIARY_HEARTBEAT_LEASE"] = str(lease)
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin else None, text=True, env=env,
    )


def _ids(proc: subprocess.Popen[str]) -> list[int]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.split() and all(p.isdigit() for p in line.split()), (
        f"child did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
    )
    return [int(p) for p in line.split()]


def _kill(proc: subprocess.Popen[str]) -> float:
    """SIGKILL, reap the zombie; the moment it died."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return time.monotonic()


def _wait_for(read, done, timeout: float) -> tuple[object, float]:  # type: ignore[no-untyped-def]
    """Poll `read()` until `done(value)`; (value, seconds waited). Fails after `timeout`."""
    start = time.monotonic()
    while True:
        value = read()
        if done(value):
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"still {value!r} after {timeout}s")
        time.sleep(0.05)


def _experiment(tracker) -> int:  # type: ignore[no-untyped-def]
    project_id, _ = tracker.create_project("Liveness")
    return tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "Killed runs")[0]


@pytest.fixture
def embedded(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'live.db'}"
    tracker = LocalTracker(url)
    yield tracker, url, _experiment(tracker)
    tracker.close()


@pytest.fixture
def short_lease_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = start_cli_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}",
                              env={"DIARY_HEARTBEAT_LEASE": str(SHORT_LEASE)})
    tracker = RemoteTracker(server.url)
    yield server, tracker, _experiment(tracker)
    tracker.close()
    server.stop()


# -- (d) embedded: a SIGKILLed process reads KILLED at once, with no reap --------------------------------


def test_sigkill_embedded_reads_killed_without_a_reap(embedded):
    tracker, url, experiment_id = embedded
    proc = _spawn(NESTED, url, experiment_id, 120)
    driver, child = _ids(proc)
    dead_at = _kill(proc)

    children, waited = _wait_for(
        lambda: tracker.get_child_iterations(driver), lambda kids: kids[0].status is IterationStatus.KILLED, 5.0
    )
    print(f"embedded: KILLED seen {waited * 1000:.1f} ms after the SIGKILL (reader side)")
    killed = children[0]
    assert killed.id == child and killed.error_message == f"process {proc.pid} exited without ending the run"
    assert killed.end_date is not None and killed.end_date >= killed.created_date

    # Another process, `diary tree`, sees both dead (and records the driver's end).
    tree = subprocess.run([sys.executable, "-m", "diary_integrations.cli", "tree", str(experiment_id),
                           "--uri", url], capture_output=True, text=True, timeout=60, check=True)
    assert "RUNNING" not in tree.stdout and tree.stdout.count("KILLED") == 2, tree.stdout
    assert f"process {proc.pid} exited without ending the run" in tree.stdout
    stored = tracker.get_iteration(driver)
    assert stored.status is IterationStatus.KILLED and stored.end_date is not None
    assert time.monotonic() - dead_at < 30


def test_a_live_embedded_run_is_never_killed_by_readers(embedded):
    tracker, url, experiment_id = embedded
    proc = _spawn(NESTED, url, experiment_id, 1.5)
    driver, child = _ids(proc)
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert tracker.get_iteration(child).status is IterationStatus.RUNNING
            assert {i.status for i in tracker.get_iterations(experiment_id)} == {IterationStatus.RUNNING}
            assert tracker.get_iterations(experiment_id, status=IterationStatus.KILLED) == []
            time.sleep(0.05)
    finally:
        assert proc.wait(timeout=60) == 0
    assert {i.status for i in tracker.get_iterations(experiment_id)} == {IterationStatus.SUCCEEDED}


def test_a_killed_listing_and_a_running_listing_tell_the_truth(embedded):
    tracker, url, experiment_id = embedded
    proc = _spawn(NESTED, url, experiment_id, 120)
    driver, child = _ids(proc)
    _kill(proc)
    assert tracker.get_iterations(experiment_id, status=IterationStatus.RUNNING) == []
    assert [i.id for i in tracker.get_iterations(experiment_id, status=IterationStatus.KILLED)] == [driver, child]


# -- PID reuse --------------------------------------------------------------------------------------------


def _record(tracker: LocalTracker, iteration_id: int, pid: int, start: float, host: str | None = None) -> None:
    with write_transaction(tracker.engine) as conn:
        conn.execute(
            update(schema.iteration_processes)
            .where(schema.iteration_processes.c.iteration_id == iteration_id)
            .values(pid=pid, process_start=start, host=host or liveness.this_host())
        )


def test_a_reused_pid_does_not_keep_a_dead_run_running(embedded):
    tracker, _url, experiment_id = embedded
    stranger = subprocess.Popen(["sleep", "60"])  # a live process now holding "the run's" pid
    try:
        started = liveness._stat(stranger.pid)[1]  # type: ignore[index]
        reused, _ = tracker.create_iteration(experiment_id)
        _record(tracker, reused, stranger.pid, started - 3600)  # the run's process started an hour earlier
        honest, _ = tracker.create_iteration(experiment_id)
        _record(tracker, honest, stranger.pid, started)  # really that process: alive
        elsewhere, _ = tracker.create_iteration(experiment_id)
        _record(tracker, elsewhere, 999_999_999, 0.0, host="another-host")  # not ours to judge

        killed = tracker.get_iteration(reused)
        assert killed.status is IterationStatus.KILLED
        assert killed.error_message == f"process {stranger.pid} exited without ending the run"
        assert tracker.get_iteration(honest).status is IterationStatus.RUNNING
        assert tracker.get_iteration(elsewhere).status is IterationStatus.RUNNING
        own, _ = tracker.create_iteration(experiment_id)  # this very process
        assert tracker.get_iteration(own).status is IterationStatus.RUNNING
    finally:
        stranger.kill()
        stranger.wait()
    # Now it is gone for real: seen within the second a live answer is cached for.
    _, waited = _wait_for(lambda: tracker.get_iteration(honest).status, lambda s: s is IterationStatus.KILLED, 3.0)
    assert waited <= liveness.ALIVE_CACHE_SECONDS + 0.5


# -- (e) a tracking server reaps an expired lease by itself -----------------------------------------------


def test_server_reaps_a_sigkilled_client_and_spares_a_live_one(short_lease_server):
    server, tracker, experiment_id = short_lease_server
    live = _spawn(NESTED, server.url, experiment_id, 2.5 * SHORT_LEASE, lease=SHORT_LEASE)
    doomed = _spawn(NESTED, server.url, experiment_id, 120, lease=SHORT_LEASE)
    live_ids, doomed_ids = _ids(live), _ids(doomed)
    dead_at = _kill(doomed)
    died = datetime.now(timezone.utc)

    killed, waited = _wait_for(
        lambda: tracker.get_iteration(doomed_ids[1]), lambda it: it.status is IterationStatus.KILLED,
        SHORT_LEASE + 5,
    )
    print(f"server: KILLED {waited:.2f} s after the SIGKILL (lease {SHORT_LEASE:g} s)")
    assert killed.error_message.startswith("heartbeat lost"), killed.error_message
    # It ended at its last sign of life (its last beat or metric), before the kill, not at the reaping.
    assert killed.end_date is not None and killed.heartbeat_date <= killed.end_date <= died
    assert tracker.get_iteration(doomed_ids[0]).status is IterationStatus.KILLED

    # The live client outlives the lease twice over on its heartbeats and ends as it should.
    assert live.wait(timeout=60) == 0, live.stderr.read()  # type: ignore[union-attr]
    assert "heartbeat" not in live.stderr.read()  # type: ignore[union-attr]
    for iteration_id in live_ids:
        ended = tracker.get_iteration(iteration_id)
        assert ended.status is IterationStatus.SUCCEEDED, ended
        assert (ended.end_date - ended.created_date).total_seconds() > 2 * SHORT_LEASE
    assert time.monotonic() - dead_at < 60


def test_server_reap_route_refuses_an_age_under_the_lease(short_lease_server):
    server, tracker, experiment_id = short_lease_server
    for body in ({"older_than": 0}, {"older_than": SHORT_LEASE - 0.5}):
        refused = httpx.post(server.url + "/iteration/reap", json=body, timeout=30)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "older_than" and "would kill live runs" in refused.json()["message"]
    assert httpx.post(server.url + "/iteration/reap", json={"older_than": SHORT_LEASE}, timeout=30).status_code == 200
    running, _ = tracker.create_iteration(experiment_id)
    forced = httpx.post(server.url + "/iteration/reap", json={"older_than": 0, "force": True}, timeout=30)
    assert forced.status_code == 200 and forced.json() == {"iteration_ids": [running]}


# -- a late heartbeat from a reaped run -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "server"])
def test_a_reaped_run_is_told_once_and_stops_beating(kind, embedded, tmp_path):
    tracker, url, experiment_id = embedded
    server: LiveServer | None = None
    if kind == "server":  # the default lease: only the test's forced reap ends the run
        server = start_cli_server(tmp_path, url)
        url = server.url
        tracker = RemoteTracker(url)
    try:
        proc = _spawn(SLEEPER, url, experiment_id, 1.5, lease=0.3, stdin=True)  # beats every 0.1 s
        (iteration_id,) = _ids(proc)
        assert tracker.reap(0, force=True) == [iteration_id]
        reaped = tracker.get_iteration(iteration_id)
        out, err = proc.communicate("go\n", timeout=60)
        assert proc.returncode == 0, err
        assert err.count("was marked KILLED while this process still ran it") == 1, err
        assert f"iteration {iteration_id} was marked KILLED" in err
        assert "threads []" in out, out  # nothing left to beat for: the thread is gone
        final = tracker.get_iteration(iteration_id)
        assert final.status is IterationStatus.KILLED and final.heartbeat_date == reaped.heartbeat_date
    finally:
        if server is not None:
            tracker.close()
            server.stop()


# -- item 5: the heartbeat thread ends with the last iteration it beats -----------------------------------


def _beaters() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "diary-heartbeat"]


def test_heartbeat_thread_ends_within_a_second_of_the_last_iteration(embedded):
    tracker, _url, experiment_id = embedded
    assert _beaters() == []
    with tracker.with_iteration(experiment_id) as outer:
        with tracker.with_iteration(experiment_id, parent_iteration_id=outer.id):
            assert len(_beaters()) == 1
        time.sleep(0.2)
        assert len(_beaters()) == 1  # the outer iteration still needs it
    ended = time.monotonic()
    _, waited = _wait_for(_beaters, lambda threads: threads == [], 1.0)
    assert time.monotonic() - ended < 1.0
    print(f"heartbeat thread gone {waited * 1000:.0f} ms after the last end")
    # The integrations' own add/discard (sklearn, Lightning) behave the same, and a new add starts it again.
    beat = Heartbeat.of(tracker)
    iteration_id, _ = tracker.create_iteration(experiment_id)
    beat.add(iteration_id)
    assert len(_beaters()) == 1
    beat.discard(iteration_id)
    _wait_for(_beaters, lambda threads: threads == [], 1.0)


def test_a_beat_adopts_an_orphaned_run_but_never_a_live_owners(embedded):
    tracker, _url, experiment_id = embedded
    gone = subprocess.Popen(["true"])
    gone.wait()
    owner = subprocess.Popen(["sleep", "60"])
    try:
        handed_on, _ = tracker.create_iteration(experiment_id)
        _record(tracker, handed_on, gone.pid, 1.0)  # its creator has exited
        spawned_by, _ = tracker.create_iteration(experiment_id)
        owner_start = liveness._stat(owner.pid)[1]  # type: ignore[index]
        _record(tracker, spawned_by, owner.pid, owner_start)  # its creator lives on
        tracker.heartbeat(handed_on, spawned_by)
        with tracker.engine.connect() as conn:
            owners = dict(conn.execute(
                schema.iteration_processes.select().with_only_columns(
                    schema.iteration_processes.c.iteration_id, schema.iteration_processes.c.pid)
            ).all())
        assert owners == {handed_on: os.getpid(), spawned_by: owner.pid}
        assert tracker.get_iteration(handed_on).status is IterationStatus.RUNNING  # lives by this process now
        assert tracker.get_iteration(spawned_by).status is IterationStatus.RUNNING
    finally:
        owner.kill()
        owner.wait()


SWEEP = textwrap.dedent(
    """
    import sys, time
    from diary_integrations import NewIteration, connect
    tracker = connect(sys.argv[1])
    driver, _ = tracker.create_iteration(int(sys.argv[2]))
    children = tracker.create_iterations(int(sys.argv[2]), [NewIteration(f"c{n}", {"n": n}) for n in range(150)],
                                         parent_iteration_id=driver)
    print(driver, len(children), flush=True)
    time.sleep(120)
    """
)


def test_a_killed_sweeps_children_all_read_killed(embedded):
    """A page of many RUNNING children (found by their parent, not by a list of ids) settles at once."""
    tracker, url, experiment_id = embedded
    proc = _spawn(SWEEP, url, experiment_id)
    driver, count = _ids(proc)
    mine, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)  # this live process's own
    _kill(proc)
    children = tracker.get_child_iterations(driver, limit=20)
    assert len(children) == 20 and {c.status for c in children} == {IterationStatus.KILLED}
    every = tracker.get_child_iterations(driver)
    assert len(every) == count + 1
    assert [c.id for c in every if c.status is IterationStatus.RUNNING] == [mine]
    assert {c.error_message for c in every if c.id != mine} == {f"process {proc.pid} exited without ending the run"}


def _worker_creates(url: str, experiment_id: int) -> None:
    LocalTracker(url).create_iteration(experiment_id, notes="left for the launcher to end")


def test_a_multiprocessing_workers_run_lives_by_its_launcher(embedded):
    """mp.spawn / ddp_spawn: the launcher ends what a worker left, with the worker's real outcome, so a
    reader must not pre-empt it with KILLED the moment the worker exits."""
    import multiprocessing

    tracker, url, experiment_id = embedded
    worker = multiprocessing.get_context("spawn").Process(target=_worker_creates, args=(url, experiment_id))
    worker.start()
    worker.join(timeout=60)
    assert worker.exitcode == 0
    (left,) = tracker.get_iterations(experiment_id)
    assert left.status is IterationStatus.RUNNING  # its launcher (this process) lives and will end it
    tracker.end_iteration(left.id, IterationStatus.FAILED, error_message="ValueError: the worker's own error")
    assert tracker.get_iteration(left.id).error_message == "ValueError: the worker's own error"
