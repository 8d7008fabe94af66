"""Idempotency plumbing: a write as it was sent (the key its retries and replays carry), and how a large
batch is cut into parts that each carry a key of their own."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ..tracker.keys import current_key, new_key


@dataclasses.dataclass(frozen=True)
class PendingWrite:
    """A write as it was sent: replaying it with the same idempotency key applies it at most once."""

    method: str
    path: str
    params: dict[str, Any] | None
    body: Any
    idempotency_key: str


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
