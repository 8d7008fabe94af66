"""Exactly-once writes against a real `diary server` that is SIGKILLed under its clients.

A write the client retries carries an idempotency key, recorded in the database with the write, so a
server killed after its commit but before its answer answers the retry with the first result instead
of writing again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from diary_integrations import ExperimentStatus, IterationStatus, LocalTracker, connect
from diary_integrations.resolve import experiment_for
from diary_integrations.server.idempotency import REPLAYED_HEADER
from diary_integrations.tracker import schema as t
from diary_integrations.tracker.idempotency import prune, using_key
from diary_integrations.tracker.records import NewIteration

from .lossy_proxy import LossyProxy
from .restartable import RestartableServer

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = RestartableServer(tmp_path, f"sqlite:///{tmp_path / 'server.db'}")
    server.start()
    yield server
    server.stop()


def _iteration(url: str) -> int:
    tracker = connect(url)
    iteration_id = tracker.create_iteration(experiment_for(tracker, "Faults", "exactly once")).id
    tracker.close()
    return iteration_id


def _rows(db: Path) -> int:
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(t.metrics)).scalar_one()
    engine.dispose()
    return count


def test_a_repeated_key_is_answered_with_the_first_answer_and_written_once(server: RestartableServer, tmp_path: Path):
    iteration_id = _iteration(server.url)
    path = f"{server.url}/metric/iteration/{iteration_id}/batch"
    body = {"points": [["loss", 0.5, 0], ["loss", 0.25, 1]]}
    headers = {"Idempotency-Key": "drill-0001-first"}
    first = httpx.post(path, json=body, headers=headers)
    assert first.status_code == 201 and first.json() == {"count": 2}
    assert REPLAYED_HEADER.lower() not in first.headers

    server.kill()  # the key is in the database: it outlives the process
    server.start()
    again = httpx.post(path, json=body, headers=headers)
    assert again.status_code == 201 and again.json() == {"count": 2}
    assert again.headers[REPLAYED_HEADER] == "true"
    assert _rows(tmp_path / "server.db") == 2

    other = httpx.post(f"{server.url}/metric/iteration/{iteration_id}", json={"key": "x", "value": 1.0},
                       headers=headers)
    assert other.status_code == 422 and "already used for another request" in other.json()["message"]
    bad = httpx.post(path, json=body, headers={"Idempotency-Key": "no spaces allowed"})
    assert bad.status_code == 422 and bad.json()["field"] == "Idempotency-Key"
    assert _rows(tmp_path / "server.db") == 2


def test_a_refused_write_records_no_key_so_its_retry_is_judged_again(server: RestartableServer):
    iteration_id = _iteration(server.url)
    url = f"{server.url}/parameter/iteration/{iteration_id}"
    headers = {"Idempotency-Key": "drill-0002-refused"}
    assert httpx.post(url, json={"key": "lr", "value": [1]}, headers=headers).status_code == 422
    assert httpx.post(url, json={"key": "lr", "value": 0.1}, headers=headers).status_code == 201
    replay = httpx.post(url, json={"key": "lr", "value": 0.1}, headers=headers)
    assert replay.status_code == 201 and replay.headers[REPLAYED_HEADER] == "true"


def test_racing_repeats_of_one_key_write_once_on_postgres(tmp_path: Path, postgres_url: str):
    server = RestartableServer(tmp_path, postgres_url)
    server.start()
    try:
        iteration_id = _iteration(server.url)
        path = f"{server.url}/metric/iteration/{iteration_id}/batch"
        body = {"points": [["loss", float(n), n] for n in range(500)]}
        answers: list[int] = []

        def send() -> None:
            response = httpx.post(path, json=body, headers={"Idempotency-Key": "drill-0003-race"}, timeout=60)
            answers.append(response.json()["count"])

        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [500] * 6
        assert len(connect(server.url).get_metrics(iteration_id)) == 500
    finally:
        server.stop()


def test_answers_lost_on_the_way_never_write_twice(server: RestartableServer):
    """Every 4th answer is cut after the server did the work: the client's retries (and its end, and
    its batch create) are each applied once, and the counts it reports are the server's."""
    iteration_id = _iteration(server.url)
    with LossyProxy(server.port, every=4) as proxy:
        tracker = connect(proxy.url)
        written = sum(tracker.log_metric_points(iteration_id, [("loss", 1.0 / (n + 1), n)]) for n in range(40))
        experiment_id = tracker.get_iteration(iteration_id).experiment_id
        children = tracker.create_iterations(experiment_id, [NewIteration() for _ in range(3)],
                                             parent_iteration_id=iteration_id)
        tracker.end_iteration(iteration_id, IterationStatus.SUCCEEDED)
        tracker.close()
    assert proxy.lost >= 10
    direct = connect(server.url)
    assert written == 40
    assert [m.step for m in direct.get_metrics(iteration_id, key="loss")] == list(range(40))
    assert [c.id for c in direct.get_child_iterations(iteration_id)] == children
    assert direct.get_iteration(iteration_id).status is IterationStatus.SUCCEEDED


def test_local_tracker_applies_a_key_once(tmp_path: Path):
    tracker = LocalTracker(tmp_path / "local.db")
    project_id, _ = tracker.create_project("Faults")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "local")
    with using_key("local-create-1"):
        first = tracker.create_iteration(experiment_id)
    with using_key("local-create-1"):
        again = tracker.create_iteration(experiment_id)
    assert again == first and len(tracker.get_iterations(experiment_id)) == 1
    with using_key("local-points-1"):
        assert tracker.log_metric_points(first.id, [("loss", 1.0, 0)]) == 1
    with using_key("local-points-1"):
        assert tracker.log_metric_points(first.id, [("loss", 1.0, 0)]) == 1
    assert len(tracker.get_metrics(first.id)) == 1
    assert prune(tracker.engine, older_than=__import__("datetime").timedelta(0)) == 2
    tracker.close()


def test_eight_clients_through_three_sigkills_store_every_point_once(server: RestartableServer, tmp_path: Path):
    """(a) of the faults issue: 8 processes log batches while the server is SIGKILLed and restarted 3
    times; every point is stored exactly once and each writer's `written` is exact."""
    clients, points, batch = 8, 12_000, 400
    ids = [_iteration(server.url) for _ in range(clients)]
    procs = [
        subprocess.Popen([sys.executable, str(HERE / "metric_client.py"), server.url, str(i), str(points),
                          str(batch), "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in ids
    ]
    for _ in range(3):
        time.sleep(1.5)
        server.kill()
        time.sleep(0.3)
        server.start()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        reports.append({**json.loads(out.strip().splitlines()[-1]), "stderr": err[-2000:]})

    tracker = connect(server.url)
    for iteration_id, report in zip(ids, reports, strict=True):
        steps = [m.step for m in tracker.get_metrics(iteration_id, key="loss")]
        assert report["dropped"] == 0, report["errors"]
        lost, doubled = points - len(set(steps)), len(steps) - len(set(steps))
        assert sorted(steps) == list(range(points)), f"lost {lost}, doubled {doubled}"
        assert (report["written"], report["journaled"]) == (points, 0), report
    tracker.close()
