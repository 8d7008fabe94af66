"""Helpers for the MLflow tests (the `mlflow_server` fixture is in conftest.py beside this).

(No `__init__.py` here: a package named `mlflow` under tests/ would shadow the real one.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diary_integrations import RemoteTracker


@dataclass
class MlflowServer:
    url: str
    database: Path
    diary: RemoteTracker


def series(diary: RemoteTracker, run_id: str, key: str) -> list[tuple[int, float]]:
    """The diary side of a metric: (step, value) of the iteration's points, in order."""
    return [(m.step, m.value) for m in diary.get_metrics(int(run_id), key=key)]
