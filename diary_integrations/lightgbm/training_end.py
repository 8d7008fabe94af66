"""When a LightGBM training is over. LightGBM calls its callbacks after each round and has no end
callback: a training ends at its last round, or earlier when early stopping raises its exception after
this callback has recorded the round. That training is over once LightGBM has stored its result on the
booster (`best_score` replaced after the loop; `best_iteration` set on a cross-validation that stopped
early) and its `train`/`cv` call has returned; a small watcher thread sees both."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

POLL = 0.1  # seconds between two looks at the training thread


def completed(model: Any, initial_best_score: Any) -> bool:
    """True once LightGBM stored a finished training's result on `model` (a Booster or a CVBooster)."""
    if hasattr(model, "boosters"):  # lgb.cv: only early stopping leaves a mark (best_iteration >= 1)
        return getattr(model, "best_iteration", -1) > 0
    return getattr(model, "best_score", initial_best_score) is not initial_best_score


def on_stack(thread_id: int, frame: FrameType) -> bool:
    """Whether `frame` is still running in the thread `thread_id`."""
    current = sys._current_frames().get(thread_id)
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False


class Watcher:
    """Calls `done()` once the training in `frame` (LightGBM's train/cv, on the calling thread) has
    returned after storing its result; stops by itself when `stop()` says the run ended otherwise."""

    def __init__(self, frame: FrameType, finished: Callable[[], bool], done: Callable[[], None],
                 stop: Callable[[], bool]) -> None:
        self._frame: FrameType | None = frame
        self._thread_id = threading.get_ident()
        self._finished, self._done, self._stop = finished, done, stop
        threading.Thread(target=self._run, name="diary-lightgbm-end", daemon=True).start()

    def _run(self) -> None:
        while not self._stop():
            time.sleep(POLL)
            frame = self._frame
            if frame is None or on_stack(self._thread_id, frame):
                continue
            self._frame = None  # the training's frame (and its data sets) may go now
            if self._finished():
                self._done()
            # Left without a result: it raised. The exit hooks (with the exception's text) or the
            # callback's next training decide that end.
            return
