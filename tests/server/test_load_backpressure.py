"""256 clients against a server that takes 8 requests at a time: the rest are answered 503 with
Retry-After, the clients back off with jitter and send again (with the same idempotency key, also after
their retries ran out, as a writer's journal would), and after they drain every point is stored exactly
once, with no 500 in the server's log. Speed is benchmarks/load_server.py's business, never asserted."""

from __future__ import annotations

import threading
import time

import pytest
from postgres_service import require_postgres
from server_harness import start_cli_server
from sqlalchemy import select

from diary_integrations import ExperimentStatus, LocalTracker, RemoteTracker
from diary_integrations.client import retry
from diary_integrations.tracker import schema
from diary_integrations.tracker.errors import TransportError
from diary_integrations.tracker.keys import new_key, using_key
from diary_integrations.tracker.protocol import NewIteration

CLIENTS = 256
PER_CONNECTION_POOL = 64  # a RemoteTracker keeps at most 64 connections: one per 64 client threads
BATCHES = 1
POINTS = 40


def _client(tracker: RemoteTracker, iteration_id: int, rank: int, resent: list[int]) -> None:
    for batch in range(BATCHES):
        points = [("loss", rank * 1e6 + step, step) for step in range(batch * POINTS, (batch + 1) * POINTS)]
        with using_key(new_key()):  # one key for the call and every resend of it
            while True:
                try:
                    assert tracker.log_metric_points(iteration_id, points) == POINTS
                    break
                except TransportError:
                    resent.append(rank)
                    time.sleep(0.5)


@pytest.mark.slow
def test_256_clients_beyond_capacity_lose_nothing(tmp_path, request):
    require_postgres()
    db_url = request.getfixturevalue("postgres_url")
    server = start_cli_server(tmp_path, db_url, env={"DIARY_MAX_IN_FLIGHT": "8"})
    try:
        setup = RemoteTracker(server.url)
        project_id, _ = setup.create_project("load")
        experiment_id, _ = setup.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "256 clients")
        ids = setup.create_iterations(experiment_id, [NewIteration(notes=f"client {n}") for n in range(CLIENTS)])
        trackers = [RemoteTracker(server.url, replay_journal=False) for _ in range(CLIENTS // PER_CONNECTION_POOL)]
        busy_before, resent = retry.retried[503], []
        threads = [threading.Thread(target=_client, args=(trackers[n // PER_CONNECTION_POOL], ids[n], n, resent))
                   for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive()
        assert retry.retried[503] > busy_before  # the server pushed back, and the clients came again
        for tracker in [setup, *trackers]:
            tracker.close()
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log and "SERVER_ERROR" not in log, log[-3000:]
    stored = LocalTracker(db_url)
    m = schema.metrics
    with stored.engine.connect() as conn:
        rows = conn.execute(select(m.c.iteration_id, m.c.step, m.c.value).order_by(m.c.iteration_id, m.c.step)).all()
    stored.close()
    rank_of = {iteration_id: rank for rank, iteration_id in enumerate(ids)}
    expected = [(i, step, rank_of[i] * 1e6 + step) for i in sorted(ids) for step in range(BATCHES * POINTS)]
    assert [(i, step, value) for i, step, value in rows] == expected  # 0 lost, 0 duplicated
