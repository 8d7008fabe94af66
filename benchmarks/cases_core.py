"""Core tracker cases: batched ingest, single calls, a sweep of children, and reading a big sweep back."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from diary_integrations import ExperimentStatus, LocalTracker

from .harness import Case, Comparison
from .peers import mlflow_client, mlflow_experiment


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="diary-bench-"))


def _our_iteration(url: str | None = None) -> tuple[LocalTracker, int, int]:
    tracker = LocalTracker(url or _tmp() / "diary.db")
    project_id, _ = tracker.create_project("bench")
    experiment_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "bench")
    iteration_id, _ = tracker.create_iteration(experiment_id, snapshot=False)
    return tracker, experiment_id, iteration_id


def ingest_batched(quick: bool) -> Case:
    ours_points = 20_000 if quick else 1_000_000
    peer_points = 2_000 if quick else 50_000
    batch = 10_000

    def diary() -> float:
        tracker, _, iteration_id = _our_iteration()
        points = [("loss", 1.0 / (s + 1), s) for s in range(ours_points)]
        start = time.perf_counter()
        for n in range(0, ours_points, batch):
            tracker.log_metric_points(iteration_id, points[n : n + batch])
        elapsed = time.perf_counter() - start
        tracker.close()
        return ours_points / elapsed

    def mlflow() -> float:
        from mlflow.entities import Metric

        client = mlflow_client(_tmp())
        run = client.create_run(mlflow_experiment(client, "ingest"))
        stamp = int(time.time() * 1000)
        metrics = [Metric("loss", 1.0 / (s + 1), stamp, s) for s in range(peer_points)]
        start = time.perf_counter()
        for n in range(0, peer_points, 1000):  # MLflow caps a log_batch at 1000 metrics
            client.log_batch(run.info.run_id, metrics=metrics[n : n + 1000])
        return peer_points / (time.perf_counter() - start)

    return Case(
        name="Ingest: metric points into one iteration, batched",
        description=(
            f"`log_metric_points` in batches of {batch:,} ({ours_points:,} points) against MLflow "
            f"`log_batch` in batches of 1,000 (its maximum) on its SQLite backend ({peer_points:,} points; "
            "throughput is flat in the count, and a million MLflow points would take minutes per run)."
        ),
        unit="points/s",
        variants={"diary (SQLite)": diary, "MLflow (SQLite)": mlflow},
        comparisons=[Comparison("diary vs MLflow throughput", "diary (SQLite)", "MLflow (SQLite)", 20, "higher")],
        repeats=3,
    )


def single_calls(quick: bool) -> Case:
    ours_calls = 500 if quick else 10_000
    peer_calls = 100 if quick else 1_500

    def diary() -> float:
        tracker, _, iteration_id = _our_iteration()
        start = time.perf_counter()
        for step in range(ours_calls):
            tracker.create_metric(iteration_id, "loss", 1.0 / (step + 1), step=step)
        elapsed = time.perf_counter() - start
        tracker.close()
        return ours_calls / elapsed

    def mlflow() -> float:
        client = mlflow_client(_tmp())
        run = client.create_run(mlflow_experiment(client, "single"))
        start = time.perf_counter()
        for step in range(peer_calls):
            client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
        return peer_calls / (time.perf_counter() - start)

    return Case(
        name="Ingest: single create_metric calls",
        description=(
            f"{ours_calls:,} `create_metric` calls (one transaction each) against MLflow `log_metric` "
            f"({peer_calls:,} calls), both on SQLite."
        ),
        unit="calls/s",
        variants={"diary (SQLite)": diary, "MLflow (SQLite)": mlflow},
        comparisons=[Comparison("diary vs MLflow calls per second", "diary (SQLite)", "MLflow (SQLite)", 10, "higher")],
        repeats=3,
    )


PARAMS = {"max_depth": 6, "min_samples_leaf": 2, "criterion": "gini", "lr": 0.001, "seed": 7}


def sweep(quick: bool) -> Case:
    children = 20 if quick else 1_000

    def diary() -> float:
        tracker, experiment_id, driver = _our_iteration()
        start = time.perf_counter()
        for n in range(children):
            child, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)
            tracker.log_parameters(child, {**PARAMS, "trial": n})
            tracker.log_metrics(child, {"accuracy": 0.9, "f1": 0.8, "loss": 0.1}, step=0)
            tracker.end_iteration(child)
        elapsed = time.perf_counter() - start
        tracker.close()
        return children / elapsed

    def mlflow() -> float:
        from mlflow.entities import Metric, Param, RunTag

        client = mlflow_client(_tmp())
        experiment = mlflow_experiment(client, "sweep")
        parent = client.create_run(experiment)
        stamp = int(time.time() * 1000)
        start = time.perf_counter()
        for n in range(children):
            run = client.create_run(experiment, tags={"mlflow.parentRunId": parent.info.run_id})
            client.log_batch(
                run.info.run_id,
                metrics=[Metric(k, v, stamp, 0) for k, v in {"accuracy": 0.9, "f1": 0.8, "loss": 0.1}.items()],
                params=[Param(k, str(v)) for k, v in {**PARAMS, "trial": n}.items()],
                tags=[RunTag("kind", "trial")],
            )
            client.set_terminated(run.info.run_id)
        return children / (time.perf_counter() - start)

    return Case(
        name="Sweep: children with 5 parameters and 3 metrics each",
        description=(
            f"{children:,} child iterations under one driver, each created, given 6 parameters and 3 metrics, "
            "and ended; against MLflow nested runs (create_run with a parent tag, one log_batch, set_terminated)."
        ),
        unit="children/s",
        variants={"diary (SQLite)": diary, "MLflow (SQLite)": mlflow},
        comparisons=[
            Comparison("diary vs MLflow children per second", "diary (SQLite)", "MLflow (SQLite)", 10, "higher")
        ],
        repeats=3,
    )


def read_children(quick: bool) -> Case:
    children = 200 if quick else 10_000
    state: dict[str, object] = {}

    def setup_diary() -> tuple[LocalTracker, int]:
        if "diary" not in state:
            tracker, experiment_id, driver = _our_iteration()
            for n in range(children):
                child, _ = tracker.create_iteration(experiment_id, parent_iteration_id=driver)
                tracker.log_metrics(child, {"accuracy": (n * 7919 % children) / children}, step=0)
            state["diary"] = (tracker, driver)
        return state["diary"]  # type: ignore[return-value]

    def setup_mlflow():  # type: ignore[no-untyped-def]
        if "mlflow" not in state:
            from mlflow.entities import Metric

            client = mlflow_client(_tmp())
            experiment = mlflow_experiment(client, "read")
            parent = client.create_run(experiment)
            stamp = int(time.time() * 1000)
            for n in range(children):
                run = client.create_run(experiment, tags={"mlflow.parentRunId": parent.info.run_id})
                score = (n * 7919 % children) / children  # a shuffled order, so the best is not the last
                client.log_batch(run.info.run_id, metrics=[Metric("accuracy", score, stamp, 0)])
            state["mlflow"] = (client, experiment, parent.info.run_id)
        return state["mlflow"]

    def diary() -> float:
        tracker, driver = setup_diary()
        start = time.perf_counter()
        kids = tracker.get_child_iterations(driver)
        best = tracker.get_best_child_iteration(driver, "accuracy", status=None)
        elapsed = time.perf_counter() - start
        assert len(kids) == children and best is not None
        return elapsed

    def mlflow() -> float:
        client, experiment, parent = setup_mlflow()
        start = time.perf_counter()
        kids = client.search_runs(
            [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'", max_results=50_000
        )
        best = client.search_runs(
            [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'",
            order_by=["metrics.accuracy DESC"], max_results=1,
        )
        elapsed = time.perf_counter() - start
        assert len(kids) == children and best
        return elapsed

    return Case(
        name="Read: the children of a big driver, and the best child by a metric",
        description=(
            f"A driver with {children:,} children, each with an `accuracy`: list the children "
            "(`get_child_iterations`) and pick the best (`get_best_child_iteration`); against MLflow "
            "`search_runs` with a parent-run filter (all children, then the best by `order_by`)."
        ),
        unit="s",
        variants={"diary (SQLite)": diary, "MLflow (SQLite)": mlflow},
        comparisons=[Comparison("MLflow time / diary time", "MLflow (SQLite)", "diary (SQLite)", 10, "higher")],
        repeats=5,
    )


CASES = [ingest_batched, single_calls, sweep, read_children]
