"""`diary server --workers 2`: two uvicorn worker processes on one port serve a client correctly."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diary_integrations import AuthError, ExperimentStatus, IterationStatus, connect
from diary_integrations.client import RemoteTracker
from diary_integrations.tracker.local import DEFAULT_USERNAME

from .servers import ADMIN_PASSWORD, auth_env, start_server
from .waiting import wait_until


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(part) for part in text)
    return found


def python_children(pid: int) -> list[int]:
    """The worker processes (uvicorn's spawn start method also leaves a resource tracker, no worker)."""
    out = []
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"multiprocessing.resource_tracker" not in b" ".join(command):
            out.append(child)
    return out


def test_two_workers_serve_a_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_server(tmp_path, "workers", f"sqlite:///{tmp_path / 'workers.db'}", auth_env(), "--workers", "2")
    try:

        def two_workers() -> bool:
            assert server.process.poll() is None, server.tail()
            return len(python_children(server.process.pid)) == 2

        wait_until(two_workers, timeout=120, what="two worker processes")
        tracker = RemoteTracker(server.url, username=DEFAULT_USERNAME, password=ADMIN_PASSWORD)
        project_id, _ = tracker.create_project("Workers")
        experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "two workers")
        with tracker.with_iteration(experiment_id, name="served by two") as run:
            tracker.log_parameters(run.id, {"lr": 0.1})
            for step in range(50):
                tracker.log_metrics(run.id, {"loss": 1.0 / (step + 1)}, step=step)
        tracker.close()
        # Fresh connections (each may reach either worker) read the same state, with the same token rules.
        for _ in range(6):
            reader = RemoteTracker(server.url, username=DEFAULT_USERNAME, password=ADMIN_PASSWORD)
            got = reader.get_iteration(run.id)
            assert got is not None and got.status is IterationStatus.SUCCEEDED
            assert [m.step for m in reader.get_metrics(run.id, key="loss")] == list(range(50))
            assert {p.key: p.value for p in reader.get_parameters(run.id)} == {"lr": "0.1"}
            reader.close()
        _connect_reads_worker_credentials(server.url, run.id, monkeypatch)
        workers = python_children(server.process.pid)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
            timeout=60,
            what="the workers to end with their parent",
        )
    finally:
        server.stop()


def _connect_reads_worker_credentials(url: str, iteration_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker given only the environment: $DIARY_USERNAME/$DIARY_PASSWORD, or $DIARY_TOKEN; explicit
    arguments win over all three."""
    monkeypatch.setenv("DIARY_USERNAME", DEFAULT_USERNAME)
    monkeypatch.setenv("DIARY_PASSWORD", ADMIN_PASSWORD)
    with connect(url) as worker:
        assert worker.get_iteration(iteration_id) is not None
        token = worker.token
    assert token
    monkeypatch.delenv("DIARY_USERNAME")
    monkeypatch.delenv("DIARY_PASSWORD")
    monkeypatch.setenv("DIARY_TOKEN", token)
    with connect(url) as worker:
        assert worker.get_iteration(iteration_id) is not None
    monkeypatch.setenv("DIARY_TOKEN", "not-a-token")
    with pytest.raises(AuthError):
        connect(url).get_iteration(iteration_id)
    with connect(url, username=DEFAULT_USERNAME, password=ADMIN_PASSWORD) as worker:
        assert worker.token is None and worker.get_iteration(iteration_id) is not None


@pytest.mark.parametrize("value", ["0", "two", "65"])
def test_workers_must_be_a_small_whole_number(value: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--db", str(tmp_path / "x.db"), "--workers", value],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--workers must be a whole number from 1 to 64" in done.stderr
    assert not (tmp_path / "x.db").exists()
