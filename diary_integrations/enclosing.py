"""The iteration a new run nests under when it starts inside a tuning trial that is already tracked.

An integration that opens a run (DiaryLogger, the Transformers callback, the boosting callbacks) and was
given no `parent_iteration_id` asks `enclosing_parent_iteration_id` whether it runs inside a trial that
has its own child iteration (a Ray Tune trial, ...). None means: a top-level run, as before."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def enclosing_parent_iteration_id(tracker: Any) -> int | None:
    """The id of the tracked trial this process runs in, or None outside any tracked trial."""
    del tracker
    return None


# -- scikit-learn searches (issue 28): the candidate whose fold this thread is fitting ------------------

_search_fold = threading.local()


def set_search_fold(parent: Callable[[], int | None] | None) -> None:
    """Set (at a fold's start) or clear (None, at its end) the candidate child a fit on this thread runs
    inside: `parent()` gives its id once the search's callback has created it (it waits a moment)."""
    _search_fold.parent = parent


def search_fold_parent() -> Callable[[], int | None] | None:
    """Asked on the training thread when a run starts: how to find the scikit-learn candidate this fit
    belongs to (called later, off the training thread), or None outside a tracked search's fold."""
    return getattr(_search_fold, "parent", None)
