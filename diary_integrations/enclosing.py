"""The iteration a new run nests under when it starts inside a tuning trial that is already tracked.

An integration that opens a run (DiaryLogger, the Transformers callback, the boosting callbacks) and was
given no `parent_iteration_id` asks `enclosing_parent_iteration_id` whether it runs inside a trial that
has its own child iteration (a Ray Tune trial, ...). None means: a top-level run, as before."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("diary_integrations")


def enclosing_parent_iteration_id(tracker: Any, *, experiment_id: int | None = None) -> int | None:
    """The id of the tracked trial this process runs in, or None outside any tracked trial. With
    `experiment_id`, only a trial of that experiment (a parent must be in its child's experiment)."""
    for find in (_ray_tune_trial,):
        found = find(tracker)
        if found is None:
            continue
        if experiment_id is not None and found.experiment_id != experiment_id:
            log.debug("diary: the enclosing trial %s is in another experiment; not nesting under it", found.id)
            return None
        return int(found.id)
    return None


def _ray_tune_trial(tracker: Any) -> Any | None:
    """The child iteration of the Ray Tune trial this process runs in (published by the driver's
    DiaryCallback), if `tracker` holds it: the same id in another database names something else, so the
    iteration must be there with the trial's name."""
    if "ray.tune" not in sys.modules:  # never import Ray for the question (a Tune trial has it imported)
        return None
    try:
        from .ray._context import current_trial

        published = current_trial()
    except Exception as exc:  # noqa: BLE001 - no answer from Ray: a top-level run, as without Ray
        log.debug("diary: could not ask Ray for the enclosing trial: %s", exc)
        return None
    if not published:
        return None
    found = tracker.get_iteration(int(published["iteration_id"]))
    if found is None or found.name != published.get("name"):
        return None
    return found


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
