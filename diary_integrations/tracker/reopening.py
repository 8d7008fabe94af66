"""The note an iteration gets each time it is reopened (a requeued or resumed run continues it)."""

from __future__ import annotations

from datetime import datetime

from .enums import IterationStatus
from .validation import MAX_TEXT


def reopened_notes(notes: str, when: datetime, was: IterationStatus, error_message: str, reason: str) -> str:
    """`notes` with one line appended: when, from which status (and the error it ended with), and why.
    The error of the earlier attempt is kept here, since reopening clears the iteration's error fields.
    Past the notes' limit the oldest text goes, never the newest line."""
    error = f": {error_message}" if error_message else ""
    line = f"reopened {when.isoformat(timespec='seconds')} (was {was.name}{error}): {reason}"
    text = f"{notes}\n{line}" if notes else line
    return text[-MAX_TEXT:]
