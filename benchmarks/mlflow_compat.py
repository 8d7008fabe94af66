"""The same MLflow client script against `diary server` (its MLflow API) and against `mlflow server`,
both on SQLite: runs with parameters, metric batches and an ending, then searches and history reads.
Prints each phase's seconds on both and the ratio (diary / mlflow; under 1 means diary is faster).

    python -m benchmarks.mlflow_compat [--runs 20] [--batches 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from .server_process import diary_server, mlflow_server


def _timed(phase: Callable[[], object]) -> float:
    start = time.perf_counter()
    phase()
    return time.perf_counter() - start


def script(url: str, runs: int, batches: int) -> dict[str, float]:
    """The client script, phase by phase, as an MLflow user writes it."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(url)
    experiment = client.create_experiment(f"bench-{time.time_ns()}")
    run_ids: list[str] = []
    now = int(time.time() * 1000)

    def log() -> None:
        for n in range(runs):
            run = client.create_run(experiment, run_name=f"run-{n}")
            run_ids.append(run.info.run_id)
            params = [Param(f"p{k}", str(k * n)) for k in range(10)] + [Param("parity", str(n % 2))]
            client.log_batch(run.info.run_id, params=params)
            for b in range(batches):  # 1,000 points a batch: 5 keys x 200 steps
                metrics = [
                    Metric(f"m{k}", (s + k) / (n + 1), now + s, b * 200 + s) for k in range(5) for s in range(200)
                ]
                client.log_batch(run.info.run_id, metrics=metrics)
            client.set_terminated(run.info.run_id, "FINISHED")

    def search() -> None:
        for _ in range(20):
            found = client.search_runs(
                [experiment],
                filter_string="params.parity = '1' and metrics.m0 > 0",
                order_by=["metrics.m1 DESC"],
                max_results=1000,
            )
            assert len(found) == runs // 2

    def history() -> None:
        for run_id in run_ids:
            assert len(client.get_metric_history(run_id, "m0")) == 200 * batches

    return {"log": _timed(log), "search x20": _timed(search), "history": _timed(history)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    urls = {"diary": diary_server("diary-mlflow-api"), "mlflow": mlflow_server()}
    script(urls["diary"], 2, 1)  # warm both (imports, first queries)
    script(urls["mlflow"], 2, 1)
    results = {name: script(url, args.runs, args.batches) for name, url in urls.items()}
    points = args.runs * args.batches * 1000
    print(f"{args.runs} runs x {args.batches} batches of 1,000 points ({points:,} points), SQLite on both")
    print(f"{'phase':<12} {'diary s':>9} {'mlflow s':>9} {'ratio':>7}")
    for phase in results["diary"]:
        d, m = results["diary"][phase], results["mlflow"][phase]
        print(f"{phase:<12} {d:>9.2f} {m:>9.2f} {d / m:>7.2f}")


if __name__ == "__main__":
    main()
