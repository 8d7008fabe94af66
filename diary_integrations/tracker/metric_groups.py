"""Several iterations' metric points in one transaction: the multi-iteration batch.

A writer serving several runs (a sidecar, a process with several iterations) sends their points in one
request instead of one per iteration. Each group may carry the idempotency key it would have carried as a
request of its own (`POST /metric/iteration/{id}/batch`), with that request's purpose: the key is claimed
in the same transaction, so a group delivered here and later sent again alone (from a run's journal, which
stays one ordered file per run) is written once, and a group applied before is skipped, not doubled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import hotpath
from .errors import Unprocessable
from .idempotency import claim_or_replay, store_answer


@dataclass
class PointGroup:
    """One iteration's validated rows (`hotpath.metric_rows`), with the key and purpose it is applied once
    under, if any."""

    iteration_id: int
    rows: list[tuple[Any, ...]]
    key: str | None = None
    purpose: str | None = None


@dataclass(frozen=True)
class GroupResult:
    """How many points a group holds, and whether its key had been applied before (nothing written now)."""

    count: int
    replayed: bool


def group_rows(iteration_id: int, points: Any, where: str) -> list[tuple[Any, ...]]:
    """`hotpath.metric_rows`, an error naming the group (`where`) as well as the point."""
    try:
        return hotpath.metric_rows(iteration_id, points)
    except Unprocessable as exc:
        field = f"{where}.{exc.field}" if exc.field else where
        raise Unprocessable(f"{where}: {exc.message}", field=field) from None


def write_groups(tracker: Any, groups: Sequence[PointGroup], *, user_id: int | None = None,
                 answer_status: int = 201) -> list[GroupResult]:
    """Write every group in one transaction of `tracker` (a LocalTracker), all or nothing: a missing or
    ended iteration refuses the whole batch, naming it. Keyed groups claim their keys first; one applied
    before is counted from its stored answer and not written again. Iterations are checked in id order,
    so two batches touching the same iterations take their row locks in the same order."""
    ids = [g.iteration_id for g in groups]
    if len(set(ids)) != len(ids):
        raise Unprocessable("iterations: each iteration may appear once per batch", field="iterations")
    results: list[GroupResult | None] = [None] * len(groups)
    with tracker._write() as conn:
        fresh: list[int] = []
        for n in sorted(range(len(groups)), key=lambda i: ids[i]):
            group = groups[n]
            if group.key is not None:
                stored = claim_or_replay(conn, group.key, group.purpose or "", user_id)
                if stored is not None:
                    results[n] = GroupResult(_stored_count(stored[1]), True)
                    continue
            tracker._writable_iteration(conn, group.iteration_id)
            fresh.append(n)
        rows = [row for n in fresh for row in groups[n].rows]
        if rows:
            hotpath.insert_rows(conn, rows)
        for n in fresh:
            group = groups[n]
            if group.key is not None:
                # The very answer the group's own request would have stored (orjson's compact form).
                answer = json.dumps({"count": len(group.rows)}, separators=(",", ":"))
                store_answer(conn, group.key, answer_status, answer)
            results[n] = GroupResult(len(group.rows), False)
    return [r for r in results if r is not None]


def _stored_count(answer: str) -> int:
    try:
        return int(json.loads(answer)["count"])
    except (ValueError, KeyError, TypeError):
        return 0
