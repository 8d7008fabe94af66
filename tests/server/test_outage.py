"""The database goes away under a running server (its own PostgreSQL cluster, stopped for a few seconds
and started again): four writers lose and duplicate nothing, the server answers 503 (never 500) with
Retry-After, clients retry, /health/ready says 503 then 200 while /health/live stays 200, and the server
recovers by itself."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from own_postgres import OwnPostgres
from server_harness import start_cli_server

from diary_integrations import ExperimentStatus, LocalTracker, RemoteTracker
from diary_integrations.client import retry
from diary_integrations.writer import MetricWriter

WRITERS = 4
OUTAGE_SECONDS = 4.0


def _wait_for(url: str, status: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(url, timeout=10)
        if answer.status_code == status:
            return
        assert time.monotonic() < deadline, f"{url} kept answering {answer.status_code}: {answer.text}"
        time.sleep(0.1)


def _write(url: str, experiment_id: int, rank: int, started: threading.Barrier, done: threading.Event,
           out: dict[int, Any]) -> None:
    """One writer: a MetricWriter over HTTP adding a point every few milliseconds until told to stop."""
    tracker = RemoteTracker(url)
    with tracker.with_iteration(experiment_id, notes=f"writer {rank}", snapshot=False) as it:
        writer = MetricWriter(tracker, batch_size=25, interval=0.05)
        step = 0
        while not done.is_set() or step < 200:
            writer.add(it.id, "loss", rank * 1e6 + step, step, time.time())
            step += 1
            if step == 50:
                started.wait(timeout=120)  # every run is open and writing before the database goes
            time.sleep(0.005)
        writer.close(timeout=120)
        out[rank] = (it.id, step, writer)
    tracker.close()


@pytest.mark.slow
def test_writers_ride_out_a_database_outage(tmp_path):
    cluster = OwnPostgres()
    try:
        cluster.start()
        server = start_cli_server(tmp_path, cluster.url, env={"DIARY_RETRY_AFTER_SECONDS": "1"})
        try:
            client = RemoteTracker(server.url, retries=12)
            project_id, _ = client.create_project("outage")
            experiment_id, _ = client.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "4 writers")
            direct_id = client.create_iteration(experiment_id, notes="direct").id
            retried_before = retry.retried[503]
            done, started = threading.Event(), threading.Barrier(WRITERS + 1)
            out: dict[int, tuple[int, int, MetricWriter]] = {}
            threads = [threading.Thread(target=_write, args=(server.url, experiment_id, rank, started, done, out))
                       for rank in range(WRITERS)]
            for thread in threads:
                thread.start()
            started.wait(timeout=120)
            time.sleep(0.5)

            cluster.stop()
            _wait_for(server.url + "/health/ready", 503)
            ready = httpx.get(server.url + "/health/ready", timeout=10)
            assert ready.json()["code"] == "DATABASE_UNAVAILABLE" and int(ready.headers["retry-after"]) >= 1
            assert httpx.get(server.url + "/health/live", timeout=10).status_code == 200
            away = httpx.post(f"{server.url}/metric/iteration/{direct_id}/batch", json={"points": [["x", 1.0, 0]]})
            assert away.status_code == 503, away.text
            assert away.json()["code"] == "DATABASE_UNAVAILABLE" and "retry-after" in away.headers
            # A direct keyed batch sent during the outage is retried until the database is back.
            direct = threading.Thread(target=lambda: out.setdefault(
                -1, client.log_metric_points(direct_id, [("d", float(s), s) for s in range(50)])))
            direct.start()
            time.sleep(OUTAGE_SECONDS)
            cluster.start()
            _wait_for(server.url + "/health/ready", 200)
            time.sleep(1.0)
            done.set()
            for thread in [*threads, direct]:
                thread.join(timeout=180)
                assert not thread.is_alive()
            assert out[-1] == 50
            assert retry.retried[503] > retried_before  # the clients saw 503s and retried them
            for rank in range(WRITERS):
                _, steps, writer = out[rank]
                assert (writer.written, writer.journaled, writer.dropped) == (steps, 0, 0), writer.errors
            client.close()
        finally:
            server.stop()
        log = server.log.read_text()
        assert "Traceback" not in log and "SERVER_ERROR" not in log and "unexpected error" not in log, log[-3000:]
        assert "database is unavailable" in log and "database is back" in log
        assert log.count("database is unavailable") <= 2, log[-3000:]  # one line per outage, not per request

        stored = LocalTracker(cluster.url)
        for rank in range(WRITERS):
            iteration_id, steps, _ = out[rank]
            loss = stored.get_metrics(iteration_id, key="loss")
            assert [m.step for m in loss] == list(range(steps))  # each once: 0 lost, 0 duplicated
            assert all(m.value == rank * 1e6 + m.step for m in loss)
        assert [m.step for m in stored.get_metrics(direct_id, key="d")] == list(range(50))
        stored.close()
    finally:
        cluster.remove()
