"""Status enums, numbered as in DearDiary.jl so stored values and REST payloads agree."""

from __future__ import annotations

from enum import Enum, IntEnum


class ExperimentStatus(IntEnum):
    IN_PROGRESS = 1
    STOPPED = 2
    FINISHED = 3


class IterationStatus(IntEnum):
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    KILLED = 4

    @property
    def ended(self) -> bool:
        return self is not IterationStatus.RUNNING


class ModelStage(IntEnum):
    NO_STAGE = 1
    STAGING = 2
    PRODUCTION = 3
    ARCHIVED = 4


class Result(str, Enum):
    """What a write did; the HTTP status follows from it (201 / 200)."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"


class TagTarget(str, Enum):
    """The kinds of entity a tag can be attached to."""

    PROJECT = "project"
    EXPERIMENT = "experiment"
    ITERATION = "iteration"


class ArtifactBackend(str, Enum):
    INLINE = "inline"
    FILESYSTEM = "filesystem"
