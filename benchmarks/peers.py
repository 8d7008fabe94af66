"""The peer a user would pick instead: MLflow's tracking client on its SQLite backend, set up once per
run directory (its schema migration is slow and is not part of any timing)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path


def quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the file store is the peer the notes measured
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


def mlflow_client(directory: Path):  # type: ignore[no-untyped-def]
    """An MlflowClient on `directory/mlflow.db`, with artifacts under the same directory."""
    quiet_mlflow()
    from mlflow.tracking import MlflowClient

    directory.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=f"sqlite:///{directory / 'mlflow.db'}")


def mlflow_experiment(client, name: str) -> str:  # type: ignore[no-untyped-def]
    return client.create_experiment(name, artifact_location=f"file://{Path.cwd()}/mlruns-{name}-{time.time_ns()}")
