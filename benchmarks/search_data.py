"""The data the search benchmarks read: one driver with N children (5 parameters, 3 metrics of 2 steps
each, a few FAILED), written once into diary's schema and, the same rows, into MLflow's SQLite schema.

Written with executemany (the tracker's own `hotpath.insert_rows` for the points, which keeps the
latest-value table too; through the tracker for what is not bulk), since 100,000 children through one
call each would take longer than the benchmark; what is read is what the tracker itself writes
(tests/contract checks the tracker's reads against its writes)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam

from diary_integrations import ExperimentStatus, LocalTracker, NewIteration
from diary_integrations.tracker import hotpath
from diary_integrations.tracker import schema as t

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad")
METRICS = ("loss", "val_loss", "accuracy")
BATCH = 5_000


def params_of(n: int) -> dict[str, str]:
    return {
        "optimizer": OPTIMIZERS[n % 4],
        "lr": repr(10.0 ** -(1 + n % 5)),
        "layers": str(1 + n % 7),
        "dropout": repr(round((n * 37 % 50) / 100, 2)),
        "seed": str(n),
    }


def metrics_of(n: int, children: int) -> list[tuple[str, float, int]]:
    """Two steps of each metric; the latest is a shuffled value, so the best child is not the last."""
    score = (n * 7919 % children) / children
    return [(key, value, step) for key, base in zip(METRICS, (score, score + 0.1, 1 - score), strict=True)
            for step, value in ((0, base + 1.0), (1, base))]


def status_of(n: int) -> int:
    return 3 if n % 50 == 7 else 2  # FAILED, else SUCCEEDED


@dataclass
class DiarySweep:
    tracker: LocalTracker
    experiment_id: int
    driver_id: int
    children: int


def build_diary(url: str, children: int) -> DiarySweep:
    tracker = LocalTracker(url)
    project = tracker.create_project(f"search bench {children}").id
    experiment = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "sweep").id
    driver = tracker.create_iteration(experiment, name="driver", snapshot=False).id
    ids: list[int] = []
    for start in range(0, children, BATCH):
        batch = [NewIteration(parameters=params_of(n), name=f"trial {n}")
                 for n in range(start, min(children, start + BATCH))]
        ids += tracker.create_iterations(experiment, batch, parent_iteration_id=driver)
    now = time.time()
    with tracker.engine.begin() as conn:
        for start in range(0, children, BATCH):
            rows = [
                (i, k, v, s, now)
                for n, i in enumerate(ids[start : start + BATCH], start) for k, v, s in metrics_of(n, children)
            ]
            hotpath.insert_rows(conn, rows)  # the tracker's own bulk insert, latest values included
        ended = t.iterations.update().where(t.iterations.c.id == bindparam("_id")).values(
            status=bindparam("_status"), end_date=bindparam("_end"))
        end = datetime.now(timezone.utc).replace(tzinfo=None)
        conn.execute(ended, [{"_id": i, "_status": status_of(n), "_end": end} for n, i in enumerate(ids)])
    if tracker.engine.dialect.name == "postgresql":
        # The statistics autovacuum keeps on a live database (it is off on some test servers): without them
        # the planner takes a freshly loaded 100,000-row table for an empty one.
        with tracker.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    return DiarySweep(tracker, experiment, driver, children)


@dataclass
class MlflowSweep:
    client: Any
    experiment_id: str
    parent_run_id: str


def build_mlflow(directory: Path, children: int) -> MlflowSweep:
    """The same sweep in an MLflow SQLite store: runs with the parent tag, params, metrics and
    latest_metrics rows, as MLflow's SQL store keeps them."""
    from .peers import mlflow_client, mlflow_experiment

    client = mlflow_client(directory)
    experiment = mlflow_experiment(client, "search")
    parent = client.create_run(experiment).info.run_id
    stamp = int(time.time() * 1000)
    db = sqlite3.connect(directory / "mlflow.db")
    runs, params, metrics, latest, tags = [], [], [], [], []
    for n in range(children):
        run = uuid.uuid4().hex
        status = "FAILED" if status_of(n) == 3 else "FINISHED"
        runs.append((run, f"trial {n}", "UNKNOWN", "", "", "bench", status, stamp, stamp + 1, "", "active",
                     f"file:///tmp/{run}", int(experiment)))
        params += [(k, v, run) for k, v in params_of(n).items()]
        for key, value, step in metrics_of(n, children):
            metrics.append((key, value, stamp, run, step, 0))
            if step == 1:
                latest.append((key, value, stamp, step, 0, run))
        tags += [("mlflow.parentRunId", parent, run), ("mlflow.runName", f"trial {n}", run)]
    db.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time,"
        " end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        runs,
    )
    db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
    db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?,?,?,?,?,?)", metrics)
    db.executemany(
        "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?,?,?,?,?,?)", latest
    )
    db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
    db.commit()
    db.close()
    return MlflowSweep(client, experiment, parent)
