"""Frozen records handed to users; plain data, no database handles.

Dates are timezone-aware UTC datetimes. `to_dict`/`from_dict` give the JSON form the REST API uses
(ISO 8601 dates, enums as integers, non-finite floats as the strings "NaN", "Infinity", "-Infinity").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple, TypeVar, get_type_hints

from .enums import ArtifactBackend, ExperimentStatus, IterationStatus, ModelStage, Result


class Created(NamedTuple):
    """What a create_* call returns: `project_id, _ = create_project(...)` reads as in DearDiary."""

    id: int
    result: Result


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    first_name: str
    last_name: str
    is_admin: bool
    created_date: datetime


@dataclass(frozen=True, slots=True)
class UserPermission:
    id: int
    user_id: int
    project_id: int
    create_permission: bool
    read_permission: bool
    update_permission: bool
    delete_permission: bool


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    description: str
    created_date: datetime


@dataclass(frozen=True, slots=True)
class Experiment:
    id: int
    project_id: int
    status: ExperimentStatus
    name: str
    description: str
    created_date: datetime
    end_date: datetime | None

    @property
    def status_id(self) -> int:
        """The status as DearDiary's integer (1 IN_PROGRESS, 2 STOPPED, 3 FINISHED)."""
        return int(self.status)


@dataclass(frozen=True, slots=True)
class Iteration:
    id: int
    experiment_id: int
    parent_iteration_id: int | None
    status: IterationStatus
    notes: str
    error_message: str
    traceback: str
    created_date: datetime
    end_date: datetime | None
    heartbeat_date: datetime
    name: str = ""  # a readable label: given, or made by an integration (`C=1.0 solver=lbfgs`, `rank 1`)

    @property
    def ended(self) -> bool:
        return self.status.ended or self.end_date is not None

    @property
    def status_id(self) -> int:
        """The status as DearDiary's integer (1 RUNNING, 2 SUCCEEDED, 3 FAILED, 4 KILLED)."""
        return int(self.status)

    @property
    def duration(self) -> float | None:
        """Seconds from creation to end, or None while running."""
        if self.end_date is None:
            return None
        return (self.end_date - self.created_date).total_seconds()


@dataclass(frozen=True, slots=True)
class NewIteration:
    """One iteration of a `create_iterations` batch (a sweep's children are created a batch at a time)."""

    notes: str = ""
    parameters: Mapping[str, Any] | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class IterationPage:
    """One page of a `search_iterations` answer: the iterations, and the token of the next page (None on
    the last). Iterating over it, or `len()`, is over its iterations."""

    iterations: list[Iteration]
    next_page_token: str | None = None

    def __iter__(self) -> Iterator[Iteration]:
        return iter(self.iterations)

    def __len__(self) -> int:
        return len(self.iterations)


@dataclass(frozen=True, slots=True)
class IterationEnding:
    """One iteration's end in an `end_iterations` batch: its final status and its last data, as the
    arguments of `end_iteration`."""

    iteration_id: int
    status: IterationStatus | int = IterationStatus.SUCCEEDED
    error_message: str = ""
    traceback: str = ""
    parameters: Mapping[str, Any] | None = None
    points: Sequence[Sequence[Any]] | None = None  # a sequence, not a generator: a retry reads it again
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class Environment:
    """What `capture_environment()` saw when a (top-level) iteration started."""

    iteration_id: int
    python_version: str
    platform: str
    hostname: str
    git_sha: str
    git_dirty: bool
    entrypoint: str
    packages: str  # "name==version" lines, sorted


@dataclass(frozen=True, slots=True)
class Parameter:
    id: int
    iteration_id: int
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Metric:
    id: int
    iteration_id: int
    key: str
    value: float
    step: int
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Tag:
    id: int
    value: str


@dataclass(frozen=True, slots=True)
class Resource:
    """Metadata of an artifact; the bytes come from `get_resource_data`."""

    id: int
    experiment_id: int
    name: str
    description: str
    backend: ArtifactBackend
    uri: str
    size_bytes: int
    content_hash: str
    created_date: datetime
    updated_date: datetime | None


@dataclass(frozen=True, slots=True)
class Model:
    """A registered model of a project; its versions come from `get_model_versions`."""

    id: int
    project_id: int
    name: str
    description: str
    created_date: datetime
    updated_date: datetime | None


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """Version `version` (1, 2, ... per model) of a model, made by `iteration_id`, its weights in
    `resource_id` (None when it has none)."""

    id: int
    model_id: int
    version: int
    iteration_id: int
    resource_id: int | None
    stage: ModelStage
    description: str
    created_date: datetime
    updated_date: datetime | None


@dataclass(frozen=True, slots=True)
class ModelAlias:
    """A name (`champion`) pointing at one version of a model."""

    model_id: int
    alias: str
    model_version_id: int
    version: int


R = TypeVar("R")

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_float(value: float) -> float | str:
    """JSON has no NaN or infinity; they travel as strings so a diverged loss survives the trip."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def decode_float(value: Any) -> float:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    return float(value)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return encode_float(value)
    return value


def to_dict(record: Any) -> dict[str, Any]:
    """The JSON-ready form of a record."""
    return {f.name: _encode(getattr(record, f.name)) for f in dataclasses.fields(record)}


_HINTS: dict[type, dict[str, Any]] = {}


def from_dict(cls: type[R], data: dict[str, Any]) -> R:
    """Rebuild a record from `to_dict` output (unknown keys are ignored, for forward compatibility)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        raw = data.get(f.name)
        hint = hints[f.name]
        if raw is None:
            # A field a server older than the record does not send takes its default (`name`).
            absent = f.name not in data and f.default is not dataclasses.MISSING
            values[f.name] = f.default if absent else None
        elif hint in (datetime, datetime | None):
            values[f.name] = datetime.fromisoformat(raw)
        elif hint is float:
            values[f.name] = decode_float(raw)
        elif isinstance(hint, type) and issubclass(hint, Enum):
            values[f.name] = hint(raw)
        else:
            values[f.name] = raw
    return cls(**values)
