"""Server case: 8 client processes logging metric batches to one tracking server at once, ours against
an MLflow tracking server on the same kind of database (SQLite); throughput, and nothing lost."""

from __future__ import annotations

import multiprocessing as mp
import time

from .harness import Case, Comparison
from .server_process import diary_server, mlflow_server, peak_rss_mb

CLIENTS = 8
QUICK_CLIENTS = 2  # the smoke run: each client process imports its client library, seconds of CPU each
BATCH = 1000  # MLflow's log_batch maximum


def _diary_client(url: str, experiment_id: int, batches: int, barrier, out) -> None:  # type: ignore[no-untyped-def]
    from diary_integrations import connect

    tracker = connect(url)
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    barrier.wait()
    for b in range(batches):
        tracker.log_metric_points(iteration_id, [("loss", 1.0 / (s + 1), b * BATCH + s) for s in range(BATCH)])
    out.put((iteration_id, time.perf_counter()))


def _mlflow_client(url: str, experiment_id: str, batches: int, barrier, out) -> None:  # type: ignore[no-untyped-def]
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run(experiment_id).info.run_id
    stamp = int(time.time() * 1000)
    barrier.wait()
    for b in range(batches):
        client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1), stamp, b * BATCH + s) for s in range(BATCH)])
    out.put((run_id, time.perf_counter()))


def _race(clients: int, target, url: str, experiment, batches: int) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    """Start `clients` processes, release them together, and time until the last one is done."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(clients + 1), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, experiment, batches, barrier, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    results = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    return max(done for _, done in results) - start, [ident for ident, _ in results]


def concurrent_clients(quick: bool) -> Case:
    ours_batches = 3 if quick else 100
    clients = QUICK_CLIENTS if quick else CLIENTS
    peer_batches = 1 if quick else 10
    notes: list[str] = []

    def diary() -> float:
        from diary_integrations import ExperimentStatus, connect

        url = diary_server("diary-load")
        tracker = connect(url)
        # The server lives for the whole run, and names are unique: one project, an experiment per repeat.
        project = tracker.get_project_by_name("load")
        project_id = project.id if project else tracker.create_project("load").id
        experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS,
                                                     f"load {time.time_ns()}")
        elapsed, iterations = _race(clients, _diary_client, url, experiment_id, ours_batches)
        stored = sum(len(tracker.get_metrics(i, key="loss")) for i in iterations)
        expected = clients * ours_batches * BATCH
        notes.append(f"diary: {stored:,} of {expected:,} points stored after the run "
                     f"({'none lost or duplicated' if stored == expected else 'MISMATCH'}); "
                     f"server peak RSS {peak_rss_mb('diary-load') or 0:.0f} MiB")
        return expected / elapsed

    def mlflow() -> float:
        from mlflow.tracking import MlflowClient

        url = mlflow_server("mlflow-load")
        client = MlflowClient(tracking_uri=url)
        experiment_id = client.create_experiment(f"load-{time.time_ns()}")
        elapsed, runs = _race(clients, _mlflow_client, url, experiment_id, peer_batches)
        stored = sum(len(client.get_metric_history(r, "loss")) for r in runs)
        expected = clients * peer_batches * BATCH
        notes.append(f"MLflow: {stored:,} of {expected:,} points stored; server peak RSS "
                     f"{peak_rss_mb('mlflow-load') or 0:.0f} MiB")
        return expected / elapsed

    return Case(
        name="Server: 8 client processes logging metric batches at once",
        description=(
            f"{clients} processes, released together, each logging batches of {BATCH:,} points into its own "
            f"iteration ({ours_batches} batches each) on one `diary server` (uvicorn, one worker, SQLite); "
            f"against an MLflow tracking server (one worker, SQLite backend; {peer_batches} batches each). "
            "Throughput is all points over the wall time until the last client is done."
        ),
        unit="points/s",
        variants={"diary server (SQLite)": diary, "MLflow server (SQLite)": mlflow},
        comparisons=[Comparison("diary vs MLflow server throughput", "diary server (SQLite)",
                                "MLflow server (SQLite)", 5, "higher")],
        repeats=2 if quick else 3,
        notes=notes,
    )


CASES = [concurrent_clients]
