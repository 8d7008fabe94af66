"""How the dashboard writes times, durations and statuses (DearDiary's dashboard conventions)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from ..cli.tree import GLYPHS, format_duration
from ..tracker.enums import IterationStatus
from ..tracker.records import Iteration


def relative_time(when: datetime, now: datetime | None = None) -> str:
    """`just now`, `5m ago`, `3h ago`, `2d ago`, then `Mar 5` (this year) or `Nov 1, 2025`."""
    now = now or datetime.now(timezone.utc)
    seconds = (now - when).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)}d ago"
    day = f"{when:%b} {when.day}"
    return day if when.year == now.year else f"{day}, {when.year}"


def absolute_time(when: datetime | None) -> str:
    """UTC, to the second: the dashboard does not guess the reader's time zone."""
    return "—" if when is None else f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def duration(iteration: Iteration, now: datetime | None = None) -> str:
    """`1m 30s`, or `running 2m 5s` for an iteration that has not ended."""
    if iteration.end_date is not None:
        return format_duration(max((iteration.end_date - iteration.created_date).total_seconds(), 0.0))
    now = now or datetime.now(timezone.utc)
    return "running " + format_duration(max((now - iteration.created_date).total_seconds(), 0.0))


def glyph(status: IterationStatus) -> str:
    """▶ ✓ ✗ ⊘, as `diary tree` prints them."""
    return GLYPHS.get(status, "?")


def status_class(status: IterationStatus) -> str:
    return status.name.lower()


def status_words(counts: Mapping[IterationStatus, int]) -> str:
    """`5 succeeded, 1 failed`: counts by status as words (in the statuses' order, zeros left out), for
    the reader and for a screen reader, which would read ✓ and ✗ as "check mark" or not at all."""
    return ", ".join(f"{counts[s]} {s.name.lower()}" for s in IterationStatus if counts.get(s))


def runs(count: int) -> str:
    """`1 run`, `6 runs`."""
    return f"{count} run{'' if count == 1 else 's'}"
