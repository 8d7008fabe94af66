"""A reusable load generator for the tracking server: N processes x M threads, each thread its own
iteration sending B batches of K metric points through the real client (`RemoteTracker.log_metric_points`,
its retries, back-off and idempotency keys), beside the same rows written by raw psycopg (or sqlite3)
into the same table and index, and MLflow's server on the same database with its log-batch, in one run.

    python -m benchmarks.load_server --backend postgres --processes 8 --threads 16 --workers 2
    python -m benchmarks.load_server --backend postgres --processes 8 --threads 64 --variants diary
    python -m benchmarks.load_server --backend sqlite --processes 8 --threads 16

Reported per variant: points/s (first batch to last, start-up excluded), p50/p99 of accepted requests
(an HTTP answer other than 503; for the raw baseline, one batch's transaction), p99 of whole calls
(back-off included), the 503s the clients retried, and after the writers drained: points lost and
duplicated, counted in the database. A call that gives up (its retries spent) is sent again with the same
idempotency key until it is taken, as the writers' journal would; those resends are counted too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from .pg_schema import fresh_schema
from .server_process import _free_port as free_port
from .server_process import _wait_healthy as wait_healthy

# Driver connections per client process for the raw baseline (8 processes: 32, about what two server
# workers hold); one per thread would pass a shared PostgreSQL's connection limit at 128 clients.
RAW_CONNECTIONS = 4
POSTGRES = os.environ.get("DIARY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Server:
    """A server process on a free loopback port, its log in a file."""

    def __init__(self, command: list[str], health: str, log: Path, env: dict[str, str] | None = None) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL,
                                        stderr=log.open("w"), env={**os.environ, **(env or {})})
        # Minutes on a loaded machine: migrating a fresh database, then each worker importing the app.
        wait_healthy(self.url, self.process, health, timeout=600)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def diary_server(database: str, workers: int, log: Path, env: dict[str, str] | None = None) -> Server:
    """`diary server --workers N` on `database`."""
    return Server([sys.executable, "-m", "diary_integrations.cli", "server", "--host", "127.0.0.1",
                   "--db", database, "--workers", str(workers)], "/health", log, env)


def mlflow_server(database: str, workers: int, directory: Path) -> Server:
    """`mlflow server` on the same kind of database (its own tables)."""
    return Server([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--backend-store-uri", database,
                   "--default-artifact-root", f"file://{directory / 'artifacts'}", "--workers", str(workers),
                   # uvicorn replaces a worker that misses a 5 s ping: on a loaded machine, while importing.
                   "--uvicorn-opts", "--timeout-worker-healthcheck 120"],
                  "/health", directory / "mlflow.log", {"MLFLOW_ALLOW_FILE_STORE": "true"})


# -- the clients ----------------------------------------------------------------------------------------


def _points(rank: int, batch: int, size: int) -> list[tuple[str, float, int]]:
    first = batch * size
    return [("loss", rank * 1e6 + step, step) for step in range(first, first + size)]


def _diary_thread(tracker: Any, iteration_id: int, rank: int, batches: int, size: int, out: dict[str, Any]) -> None:
    from diary_integrations.tracker.errors import TransportError
    from diary_integrations.tracker.keys import new_key, using_key

    for batch in range(batches):
        points = _points(rank, batch, size)
        started = time.perf_counter()
        with using_key(new_key()):  # one key for the call and any resend of it
            while True:
                try:
                    tracker.log_metric_points(iteration_id, points)
                    break
                except TransportError:
                    out["resent"] += 1  # what a writer's journal would replay later
                    time.sleep(1.0)
        out["calls"].append(time.perf_counter() - started)


_INSERT = "INSERT INTO metric (iteration_id, key, value, step, recorded_at) VALUES "


def raw_connections(database: str, count: int) -> Any:
    """A queue of `count` driver connections (PostgreSQL has a connection limit shared with others)."""
    import queue

    pool: queue.Queue[Any] = queue.Queue()
    for _ in range(count):
        if database.startswith("sqlite"):
            import sqlite3

            conn = sqlite3.connect(database.split("///", 1)[1], timeout=60, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA synchronous=NORMAL")
        else:
            import psycopg

            conn = psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        pool.put(conn)
    return pool


def _raw_thread(pool: Any, iteration_id: int, rank: int, batches: int, size: int, out: dict[str, Any]) -> None:
    """The same rows into the same table, one transaction per batch (executemany), straight through the driver."""
    now = time.time()
    for batch in range(batches):
        rows = [(iteration_id, k, v, s, now) for k, v, s in _points(rank, batch, size)]
        started = time.perf_counter()
        conn = pool.get()
        sqlite = not hasattr(conn, "pgconn")
        cursor = conn.cursor()
        cursor.execute("BEGIN IMMEDIATE" if sqlite else "BEGIN")
        cursor.executemany(_INSERT + ("(?, ?, ?, ?, ?)" if sqlite else "(%s, %s, %s, %s, %s)"), rows)
        cursor.execute("COMMIT")
        pool.put(conn)
        out["accepted"].append(time.perf_counter() - started)
        out["calls"].append(out["accepted"][-1])


def _mlflow_thread(client: Any, run_id: str, rank: int, batches: int, size: int, out: dict[str, Any]) -> None:
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    for batch in range(batches):
        metrics = [Metric(k, v, stamp, s) for k, v, s in _points(rank, batch, size)]
        started = time.perf_counter()
        try:
            client.log_batch(run_id, metrics=metrics)
        except Exception:  # noqa: BLE001 - MLflow's client gave up (after its own retries): counted, not fatal
            out["failed"] += 1
            continue
        out["calls"].append(time.perf_counter() - started)
        out["accepted"].append(out["calls"][-1])


def _process(variant: str, target: str, targets: list[Any], first_rank: int, batches: int, size: int,
             barrier: Any, results: Any) -> None:
    """One client process: a thread per target (an iteration id or an MLflow run id)."""
    out: dict[str, Any] = {"calls": [], "accepted": [], "resent": 0, "retried_503": 0, "failed": 0}
    if variant == "diary":
        from diary_integrations import RemoteTracker
        from diary_integrations.client import retry

        tracker = RemoteTracker(target, replay_journal=False)

        def sent(request: httpx.Request) -> None:
            request.extensions["diary_sent"] = time.perf_counter()

        def answered(response: httpx.Response) -> None:
            if response.status_code != 503:
                out["accepted"].append(time.perf_counter() - response.request.extensions["diary_sent"])

        tracker._http().event_hooks = {"request": [sent], "response": [answered]}
        tracker.body_budget()
        work = [(_diary_thread, tracker)]
    elif variant == "raw":
        work = [(_raw_thread, raw_connections(target, min(len(targets), RAW_CONNECTIONS)))]
    else:
        from mlflow.tracking import MlflowClient

        work = [(_mlflow_thread, MlflowClient(tracking_uri=target))]
    function, first = work[0]
    threads = [threading.Thread(target=function, args=(first, t, first_rank + n, batches, size, out))
               for n, t in enumerate(targets)]
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if variant == "diary":
        out["retried_503"] = retry.retried[503]
    results.put((started, time.perf_counter(), out))


def run_clients(
    variant: str, target: str, targets: list[Any], processes: int, batches: int, size: int
) -> dict[str, Any]:
    """Start the processes, wait for them, and sum up what they measured."""
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    per = len(targets) // processes
    workers = [context.Process(target=_process, args=(variant, target, targets[n * per:(n + 1) * per], n * per,
                                                      batches, size, barrier, results)) for n in range(processes)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=300)
    answers = [results.get(timeout=1800) for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = max(a[1] for a in answers) - min(a[0] for a in answers)
    accepted = sorted(x for a in answers for x in a[2]["accepted"])
    calls = sorted(x for a in answers for x in a[2]["calls"])
    failed = sum(a[2]["failed"] for a in answers)  # batches a client gave up on (MLflow's)
    points = len(targets) * batches * size
    return {
        "variant": variant, "points": points, "seconds": elapsed, "points_per_s": (points - failed * size) / elapsed,
        "failed_batches": failed,
        "p50": statistics.median(accepted), "p99": accepted[int(len(accepted) * 0.99) - 1],
        "call_p99": calls[int(len(calls) * 0.99) - 1],
        "retried_503": sum(a[2]["retried_503"] for a in answers), "resent": sum(a[2]["resent"] for a in answers),
    }


# -- one run --------------------------------------------------------------------------------------------


def _count(database: str, ids: list[int]) -> tuple[int, int]:
    """(rows, distinct (iteration, key, step)) stored for these iterations."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    listed = ",".join(map(str, ids))  # integers from the database
    distinct = f"SELECT DISTINCT iteration_id, key, step FROM metric WHERE iteration_id IN ({listed})"
    with engine.connect() as conn:
        row = conn.execute(text(
            f"SELECT count(*), (SELECT count(*) FROM ({distinct}) d) FROM metric WHERE iteration_id IN ({listed})"
        )).one()
    engine.dispose()
    return int(row[0]), int(row[1])


def _database(backend: str, directory: Path) -> tuple[str, Any]:
    """A fresh database (a PostgreSQL schema, or a SQLite file) and how to drop it."""
    if backend == "sqlite":
        return f"sqlite:///{directory / 'load.db'}", lambda: None
    return fresh_schema(POSTGRES, "load")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from diary_integrations import ExperimentStatus, RemoteTracker
    from diary_integrations.tracker.protocol import NewIteration

    directory = Path(tempfile.mkdtemp(prefix="diary-load-"))
    database, drop = _database(args.backend, directory)
    clients = args.processes * args.threads
    results = []
    # A long lease: the iterations wait for their turn without a heartbeat, and must not be reaped meanwhile.
    env = {"DIARY_HEARTBEAT_LEASE": "36000"}
    if args.max_in_flight is not None:
        env["DIARY_MAX_IN_FLIGHT"] = str(args.max_in_flight)
    try:
        server = diary_server(database, args.workers, directory / "server.log", env)
    except RuntimeError:
        drop()  # the schema made for this run goes too
        raise
    try:
        setup = RemoteTracker(server.url, replay_journal=False)
        project_id, _ = setup.create_project("load")
        experiment_id, _ = setup.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "load")
        for round_, variant in args.plan:
            if variant == "mlflow":
                try:
                    results.append({**_mlflow(args, database, directory, clients), "round": round_})
                except RuntimeError as exc:  # MLflow's server did not come up: report the others
                    print(f"mlflow: {exc}", file=sys.stderr)
                continue
            ids = setup.create_iterations(experiment_id, [NewIteration(notes=f"{variant} {n}") for n in range(clients)])
            target = server.url if variant == "diary" else database
            result = run_clients(variant, target, ids, args.processes, args.batches, args.batch)
            stored, distinct = _count(database, ids)
            result.update(lost=result["points"] - distinct, duplicated=stored - distinct, round=round_)
            results.append(result)
        setup.close()
    finally:
        server.stop()
        log = server.log.read_text()
        server_errors = log.count("SERVER_ERROR") + log.count("Traceback")
        drop()
    for result in results:
        result["server_500s"] = server_errors if result["variant"] == "diary" else None
    return results


def _mlflow(args: argparse.Namespace, database: str, directory: Path, clients: int) -> dict[str, Any]:
    """MLflow's server on its own schema of the same PostgreSQL (or its own SQLite file)."""
    from mlflow.tracking import MlflowClient

    if args.backend == "sqlite":
        store, drop = f"sqlite:///{directory / 'mlflow.db'}", lambda: None
    else:
        own, drop = _database(args.backend, directory)
        store = own
    server = mlflow_server(store, args.workers, directory)
    try:
        client = MlflowClient(tracking_uri=server.url)
        experiment = client.create_experiment(f"load-{uuid.uuid4().hex[:6]}")
        runs = [client.create_run(experiment).info.run_id for _ in range(clients)]
        result = run_clients("mlflow", server.url, runs, args.processes, args.batches, args.batch)
        result.update(lost=result["failed_batches"] * args.batch or None, duplicated=None)
        return result
    finally:
        server.stop()
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=16, help="client threads per process")
    parser.add_argument("--batches", type=int, default=20, help="batches per client")
    parser.add_argument("--batch", type=int, default=100, help="points per batch")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--variants", default="diary,raw,mlflow", help="comma-separated: diary, raw, mlflow")
    parser.add_argument("--max-in-flight", type=int, default=None, help="the server's DIARY_MAX_IN_FLIGHT")
    parser.add_argument("--json", action="store_true", help="one JSON object per variant instead of a table")
    parser.add_argument("--rounds", type=int, default=1, help="the variants this many times, interleaved")
    args = parser.parse_args()
    variants = args.variants.split(",")
    # Interleaved rounds; MLflow's server (minutes to start and load) only in the first.
    args.plan = [(n, v) for n in range(args.rounds) for v in variants if v != "mlflow" or n == 0]
    results = run(args)
    if args.json:
        for result in results:
            print(json.dumps(result))
        return
    print(f"{args.processes * args.threads} clients ({args.processes} x {args.threads}), {args.batches} batches of "
          f"{args.batch} points, {args.backend}, --workers {args.workers} (a shared, loaded machine)")
    print(f"{'variant':8} {'points/s':>10} {'x raw':>6} {'p50 ms':>7} {'p99 ms':>7} {'call p99':>9} {'503s':>6} "
          f"{'resent':>6} {'lost':>5} {'dup':>4} {'500s':>5}")
    raws = {r["round"]: r["points_per_s"] for r in results if r["variant"] == "raw"}
    ratios: dict[str, list[float]] = {}
    for r in results:
        raw = raws.get(r["round"]) or next(iter(raws.values()), None)  # the raw baseline of the same round
        if raw:
            ratios.setdefault(r["variant"], []).append(r["points_per_s"] / raw)
        ratio = f"{r['points_per_s'] / raw:.2f}" if raw else "-"
        print(f"{r['variant']:8} {r['points_per_s']:10,.0f} {ratio:>6} {r['p50'] * 1e3:7.0f} {r['p99'] * 1e3:7.0f} "
              f"{r['call_p99'] * 1e3:9.0f} {r['retried_503']:6} {r['resent']:6} {r['lost']!s:>5} "
              f"{r['duplicated']!s:>4} {r['server_500s']!s:>5}")
    if args.rounds > 1:
        for variant, values in ratios.items():
            print(f"{variant}: median {statistics.median(values):.2f}x raw over {len(values)} rounds")


if __name__ == "__main__":
    main()
