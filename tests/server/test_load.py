"""Load: 8 client processes log metric batches to one server at the same time. Every point arrives
exactly once (no lost and no duplicated rows), on SQLite and on PostgreSQL. The throughput is printed
(run with -s to see it); speed itself is measured in benchmarks/, not asserted here."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from postgres_service import require_postgres
from server_harness import start_cli_server

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker, RemoteTracker

PROCESSES = 8
BATCHES = 25
BATCH_SIZE = 400  # points per request: 8 x 25 x 400 = 80 000 points


def _log(args: tuple[RemoteTracker, int, int]) -> tuple[int, int, float, float]:
    """One client process: its own child iteration, BATCHES requests of BATCH_SIZE points each."""
    tracker, experiment_id, rank = args  # the tracker arrives pickled and reconnects here
    with tracker.with_iteration(experiment_id, notes=f"rank {rank}", snapshot=False) as it:
        started = time.time()
        for batch in range(BATCHES):
            first = batch * BATCH_SIZE
            points = [("loss", rank * 1e6 + step, step) for step in range(first, first + BATCH_SIZE)]
            points += [("lr", 0.1, first)]  # a second key in the same request
            assert tracker.log_metric_points(it.id, points) == BATCH_SIZE + 1
        finished = time.time()
    return rank, it.id, started, finished


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_eight_processes_lose_and_duplicate_nothing(backend, tmp_path, request):
    if backend == "postgres":
        require_postgres()
        db_url = request.getfixturevalue("postgres_url")
    else:
        db_url = f"sqlite:///{tmp_path / 'load.db'}"
    server = start_cli_server(tmp_path, db_url)
    try:
        client = RemoteTracker(server.url)
        project_id, _ = client.create_project("load")
        experiment_id, _ = client.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "8 writers")
        with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            done = pool.map(_log, [(client, experiment_id, rank) for rank in range(PROCESSES)])
        ranks = {rank: iteration_id for rank, iteration_id, _, _ in done}
        # From the first process's first batch to the last process's last one (start-up excluded).
        elapsed = max(d[3] for d in done) - min(d[2] for d in done)
        total = PROCESSES * BATCHES * (BATCH_SIZE + 1)
        print(f"\n[{backend}] {total} points in {PROCESSES * BATCHES} requests from {PROCESSES} processes: "
              f"{elapsed:.2f} s, {total / elapsed:,.0f} points/s")

        for rank, iteration_id in ranks.items():
            assert client.get_iteration(iteration_id).status is IterationStatus.SUCCEEDED
            loss = client.get_metrics(iteration_id, key="loss")
            assert [m.step for m in loss] == list(range(BATCHES * BATCH_SIZE))  # each step once, in order
            assert all(m.value == rank * 1e6 + m.step for m in loss)  # and nobody else's points
            assert len(client.get_metrics(iteration_id, key="lr")) == BATCHES
        client.close()
    finally:
        server.stop()
    # The rows themselves, counted in the database without the server.
    local = LocalTracker(db_url)
    assert sum(len(local.get_metrics(i)) for i in ranks.values()) == total
    local.close()
