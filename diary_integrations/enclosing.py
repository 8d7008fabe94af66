"""The iteration a new run nests under when it starts inside a tuning trial that is already tracked.

An integration that opens a run (DiaryLogger, the Transformers callback, the boosting callbacks) and was
given no `parent_iteration_id` asks `enclosing_parent_iteration_id` whether it runs inside a trial that
has its own child iteration (a Ray Tune trial, ...). None means: a top-level run, as before."""

from __future__ import annotations

from typing import Any


def enclosing_parent_iteration_id(tracker: Any) -> int | None:
    """The id of the tracked trial this process runs in, or None outside any tracked trial."""
    del tracker
    return None
