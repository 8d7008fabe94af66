"""How the boosting and Keras tests read a training's failed end."""

from __future__ import annotations

from typing import Any

from diary_integrations import IterationStatus, connect


def failed_at_once(cb: Any, uri: str, message: str) -> tuple[Any, Any]:
    """The run of `cb`'s newest training, FAILED with `message` already when the training raised (not at
    exit: the program goes on after it): the tracker at `uri` and the iteration."""
    assert cb.run.status is IterationStatus.FAILED
    tracker = connect(uri)
    it = tracker.get_iteration(cb.iteration_id)
    assert (it.status, it.error_message) == (IterationStatus.FAILED, message)
    return tracker, it
