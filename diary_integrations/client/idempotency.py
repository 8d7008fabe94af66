"""Idempotency plumbing: a write as it was sent (the key its retries and replays carry), and how a large
batch is cut into parts that each carry a key of their own."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ..tracker.enums import Result
from ..tracker.keys import current_key, new_key
from ..tracker.records import Created


@dataclasses.dataclass(frozen=True)
class PendingWrite:
    """A write as it was sent: replaying it with the same idempotency key applies it at most once."""

    method: str
    path: str
    params: dict[str, Any] | None
    body: Any
    idempotency_key: str


def decode_answer(answer: Any) -> Any:
    """A write's JSON answer as the client method that sent it returns it: `{"<entity>_id": n}` is
    `Created(n, CREATED)`, `{"iteration_ids": [...]}` a list of ids (`create_iterations`), `{"count": n}`
    the count (`log_parameters`, `log_metric_points`, `end_iterations`), `{"message": "UPDATED"}` a
    `Result` (`end_iteration`, `reopen_iteration`, updates). Any other answer is returned as it came."""
    if not isinstance(answer, dict) or len(answer) != 1:
        return answer
    (key, value), = answer.items()
    if key == "iteration_ids" and isinstance(value, list):
        return [int(i) for i in value]
    if key == "count" and isinstance(value, int):
        return value
    if key == "message" and value in Result.__members__:
        return Result(value)
    if key.endswith("_id") and isinstance(value, int):
        return Created(value, Result.CREATED)
    return answer


def write_key() -> str:
    """The key a JSON write carries: the one `using_key` gives, else a new one."""
    return current_key() or new_key()


def part_key(given: str, number: int) -> str:
    """The key of part `number` of a batch sent under `given`, so a replay repeats every part once."""
    return f"{given[:90]}.{number}"


def cut_into_parts(items: list[Any], budget: int) -> list[list[Any]]:
    """Consecutive items in parts whose JSON stays within `budget` bytes (an item larger than that goes
    alone)."""
    parts: list[list[Any]] = [[]]
    size = 0
    for item in items:
        n = len(orjson.dumps(item)) + 1
        if parts[-1] and size + n > budget:
            parts.append([])
            size = 0
        parts[-1].append(item)
        size += n
    return parts
