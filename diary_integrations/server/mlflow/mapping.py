"""How MLflow's entities map onto diary's (docs/design.md, "MLflow's tracking API"), as pure functions.

An MLflow experiment is an experiment of the project `DIARY_MLFLOW_PROJECT` (default "mlflow"); a run is
an iteration, its run id the iteration id as a string; `mlflow.runName` is the iteration's name and
`mlflow.parentRunId` its parent; MLflow's statuses are diary's (FINISHED is SUCCEEDED; SCHEDULED, a run
not started yet, is stored as RUNNING); MLflow's millisecond timestamps are kept as they were sent.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

from ...tracker.enums import IterationStatus
from ...tracker.search_grammar import decode_page_token, encode_page_token
from .errors import invalid

DEFAULT_PROJECT = "mlflow"
# MLflow's experiment "0" ("Default") is the experiment of this name in the MLflow project.
DEFAULT_EXPERIMENT = "Default"
RUN_NAME = "mlflow.runName"
PARENT_RUN = "mlflow.parentRunId"
NOTE = "mlflow.note.content"
ERROR = "diary.error"
ACTIVE, DELETED = "active", "deleted"

TO_DIARY = {
    "RUNNING": IterationStatus.RUNNING,
    "SCHEDULED": IterationStatus.RUNNING,
    "FINISHED": IterationStatus.SUCCEEDED,
    "FAILED": IterationStatus.FAILED,
    "KILLED": IterationStatus.KILLED,
}
TO_MLFLOW = {
    IterationStatus.RUNNING: "RUNNING",
    IterationStatus.SUCCEEDED: "FINISHED",
    IterationStatus.FAILED: "FAILED",
    IterationStatus.KILLED: "KILLED",
}


def project_name() -> str:
    return os.environ.get("DIARY_MLFLOW_PROJECT") or DEFAULT_PROJECT


def ms(when: datetime | None) -> int | None:
    return None if when is None else round(when.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, timezone.utc)


def status_of(text: Any, field: str = "status") -> IterationStatus:
    if isinstance(text, int) and not isinstance(text, bool):  # the proto enum's number
        text = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}.get(text, text)
    status = TO_DIARY.get(text) if isinstance(text, str) else None
    if status is None:
        raise invalid(f"Invalid value {json.dumps(text)} for parameter '{field}' supplied: "
            f"use one of {sorted(TO_DIARY)}")
    return status


def entity_id(text: Any, what: str) -> int | None:
    """The diary id an MLflow id names, or None when it can name nothing stored (so: not found)."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        value = text
    elif isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 19:
        value = int(text)
    else:
        return None
    return value if 0 < value < 2**31 else None


# One token format for every search (tracker/search_grammar.py); a bad token is an Unprocessable, which
# the MLflow error mapping answers INVALID_PARAMETER_VALUE.
encode_token = encode_page_token
decode_token = decode_page_token


def number_text(value: float) -> Any:
    """A metric value as MLflow's JSON has it: a number, or "NaN" / "Infinity" / "-Infinity"."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def artifact_root(experiment_id: int) -> str:
    return f"mlflow-artifacts:/{experiment_id}"


def run_artifact_uri(experiment_id: int, run_id: int, location: str | None = None) -> str:
    """Where a run's artifacts go: under its experiment's requested `location`, else the server's proxy."""
    if location:
        return f"{location.rstrip('/')}/{run_id}/artifacts"
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


def artifact_location(text: str) -> str:
    """A requested artifact location as MLflow's server keeps it: a URI as given, a bare path made
    absolute (against the server's working directory, as MLflow's `resolve_uri_if_local`)."""
    if "://" in text or (":" in text.split("/", 1)[0] and len(text.split(":", 1)[0]) > 1):
        return text
    return os.path.abspath(text)
