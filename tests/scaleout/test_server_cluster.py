"""Three `diary server` processes over one PostgreSQL, eight client processes spread over them.

Nothing any process must share lives in its memory: points are neither lost nor doubled (a retried key
sent to two servers at once is applied once), the reaper runs one round at a time across the servers
(its `reaper_run` rows never overlap, and every dead run is reaped exactly once), failed logins on one
server count on the others, and a token revoked on one server is refused by all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from diary_integrations import ExperimentStatus, IterationStatus
from diary_integrations.client import RemoteTracker
from diary_integrations.server.cluster import REAPER_LOCK
from diary_integrations.tracker import schema as t
from diary_integrations.tracker.local import DEFAULT_USERNAME

from .cluster_client import BATCH_POINTS, SINGLE_POINTS
from .servers import ADMIN_PASSWORD, auth_env, start_server
from .waiting import wait_until

HERE = Path(__file__).parent
SERVERS, CLIENTS, DOOMED = 3, 8, 4
LEASE = 12.0  # the reaper looks every 4 s; live clients beat every 4 s (and a stall of 12 s is reaped)
MAX_FAILURES = 3
RACED_KEYS = 30


@pytest.fixture
def cluster(postgres_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = auth_env(DIARY_HEARTBEAT_LEASE=LEASE, DIARY_LOGIN_MAX_FAILURES_PER_USER=MAX_FAILURES)
    servers = []
    try:
        with ThreadPoolExecutor(SERVERS) as pool:  # started together: migrations and start-up race too
            futures = [pool.submit(start_server, tmp_path, f"server{i}", postgres_url, env) for i in range(SERVERS)]
            for future in futures:
                servers.append(future.result())
        yield servers
    finally:
        for server in servers:
            server.stop()


def client_env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIARY_")}
    return {
        **clean,
        "DIARY_USERNAME": DEFAULT_USERNAME,
        "DIARY_PASSWORD": ADMIN_PASSWORD,
        "DIARY_HEARTBEAT_LEASE": str(LEASE),
        "DIARY_SPOOL_DIR": os.environ["DIARY_SPOOL_DIR"],
    }


def login(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(url + "/auth", json={"username": username, "password": password}, timeout=60)


@pytest.mark.slow
def test_three_servers_share_one_database(cluster, postgres_url: str, tmp_path: Path) -> None:
    urls = [server.url for server in cluster]
    admin = RemoteTracker(urls[0], username=DEFAULT_USERNAME, password=ADMIN_PASSWORD)
    project_id, _ = admin.create_project("Scale-out")
    experiment_id, _ = admin.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "cluster")

    # A client with runs open, SIGKILLed: the reaper must end them, once, whichever server it runs in.
    doomed = subprocess.Popen(
        [sys.executable, str(HERE / "doomed_client.py"), str(experiment_id), str(DOOMED), urls[1]],
        stdout=subprocess.PIPE,
        text=True,
        env=client_env(),
    )
    try:
        line = doomed.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("RUNNING "), line
        doomed_ids = [int(part) for part in line.split()[1:]]
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()

    clients = [
        subprocess.Popen(
            [sys.executable, str(HERE / "cluster_client.py"), str(i), str(experiment_id), *urls],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=client_env(),
        )
        for i in range(CLIENTS)
    ]
    _login_throttle_is_shared(urls)
    _revocation_reaches_every_server(urls, admin)
    raced_iteration = _raced_keys_apply_once(urls, admin, experiment_id)
    outputs = [client.communicate(timeout=300) for client in clients]
    for client, (_, err) in zip(clients, outputs, strict=True):
        assert client.returncode == 0, err
    client_ids = sorted(int(out.split()[1]) for out, _ in outputs)

    # Nothing lost, nothing doubled: every client's points exactly once.
    for iteration_id in client_ids:
        run = admin.get_iteration(iteration_id)
        assert run is not None and run.status is IterationStatus.SUCCEEDED, run
        metrics = admin.get_metrics(iteration_id, limit=10_000)
        assert sorted(m.step for m in metrics if m.key == "loss") == list(range(SINGLE_POINTS))
        assert sorted(m.step for m in metrics if m.key == "acc") == list(range(BATCH_POINTS))
        assert len(metrics) == SINGLE_POINTS + BATCH_POINTS
    assert len(admin.get_metrics(raced_iteration, limit=10_000)) == RACED_KEYS

    engine = create_engine(postgres_url)
    # While someone else holds the reaper's lock, no server starts a round.
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": REAPER_LOCK})
        held_from = time.time()
        time.sleep(LEASE * 2 / 3)  # two of the reaper's periods
        held_until = time.time()
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": REAPER_LOCK})
        conn.commit()

    # The dead client's runs: KILLED by a reaper, each exactly once.
    wait_until(
        lambda: all(admin.get_iteration(i).status is IterationStatus.KILLED for i in doomed_ids),
        timeout=120,
        what="the reaper to end the SIGKILLed client's runs",
    )
    for iteration_id in doomed_ids:
        assert admin.get_iteration(iteration_id).error_message.startswith("heartbeat lost")

    # One reaper round at a time: rounds by several servers, none overlapping another, and the rounds
    # together ended exactly the dead runs (two rounds at once would both count them).
    try:

        def rounds():  # type: ignore[no-untyped-def]
            with engine.connect() as conn:
                r = t.reaper_runs
                return conn.execute(
                    select(r.c.server, r.c.started_at, r.c.finished_at, r.c.reaped).order_by(r.c.started_at)
                ).all()

        wait_until(
            lambda: len({row.server for row in rounds()}) >= 2 and len(rounds()) >= 6,
            timeout=120,
            what="reaper rounds from at least two servers",
        )
        runs = rounds()
        for before, after in zip(runs, runs[1:], strict=False):
            assert after.started_at >= before.finished_at, (before, after)
        assert not [row for row in runs if held_from <= row.started_at <= held_until], (held_from, held_until, runs)
        assert sum(row.reaped for row in runs) == DOOMED
        with engine.connect() as conn:
            killed = conn.execute(
                select(func.count())
                .select_from(t.iterations)
                .where(t.iterations.c.status == int(IterationStatus.KILLED))
            ).scalar()
        assert killed == DOOMED
    finally:
        engine.dispose()
        admin.close()
    for server in cluster:
        assert server.process.poll() is None, server.tail()


def _login_throttle_is_shared(urls: list[str]) -> None:
    """MAX_FAILURES failed logins spread over the servers: the next login, right password or not, is
    refused by any server."""
    admin = RemoteTracker(urls[0], username=DEFAULT_USERNAME, password=ADMIN_PASSWORD)
    admin.create_user("eve", "eve's right password")
    admin.close()
    for i in range(MAX_FAILURES):
        assert login(urls[i % len(urls)], "eve", "a wrong guess").status_code == 401
    for url in urls:
        refused = login(url, "eve", "eve's right password")
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) > 0


def _revocation_reaches_every_server(urls: list[str], admin: RemoteTracker) -> None:
    """A token ended with logout-all on one server is refused by every other one at once."""
    admin.create_user("bob", "bob's password")
    token = login(urls[0], "bob", "bob's password").json()["access_token"]
    bearer = {"authorization": f"Bearer {token}"}
    for url in urls:
        assert httpx.get(url + "/auth/me", headers=bearer, timeout=60).status_code == 200
    assert httpx.post(urls[1] + "/auth/logout-all", headers=bearer, timeout=60).status_code == 200
    for url in urls:
        refused = httpx.get(url + "/auth/me", headers=bearer, timeout=60)
        assert refused.status_code == 401 and refused.json()["code"] == "TOKEN_REVOKED", refused.text


def _raced_keys_apply_once(urls: list[str], admin: RemoteTracker, experiment_id: int) -> int:
    """Each of RACED_KEYS writes sent with one key to two servers at the same moment: one applies it,
    the other answers the stored reply (having waited for the first one's commit)."""
    iteration_id, _ = admin.create_iteration(experiment_id, name="raced keys")
    token = login(urls[0], DEFAULT_USERNAME, ADMIN_PASSWORD).json()["access_token"]
    replays = 0
    with httpx.Client(timeout=60) as http, ThreadPoolExecutor(2) as pool:
        for step in range(RACED_KEYS):
            key = f"raced-{uuid.uuid4().hex}"
            both = threading.Barrier(2)

            def send(url: str, key: str = key, step: int = step, both: threading.Barrier = both) -> httpx.Response:
                both.wait()
                return http.post(
                    f"{url}/metric/iteration/{iteration_id}/batch",
                    json={"points": [["raced", float(step), step]]},
                    headers={"authorization": f"Bearer {token}", "idempotency-key": key},
                )

            answers = list(pool.map(send, [urls[step % len(urls)], urls[(step + 1) % len(urls)]]))
            assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
            assert answers[0].json() == answers[1].json()
            flags = [a.headers.get("idempotent-replayed") == "true" for a in answers]
            assert sorted(flags) == [False, True], flags
            replays += 1
    admin.end_iteration(iteration_id, IterationStatus.SUCCEEDED)
    assert replays == RACED_KEYS
    return iteration_id
