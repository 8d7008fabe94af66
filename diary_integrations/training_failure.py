"""Seeing the exception a training dies of on its way out, whether or not the program catches it.

XGBoost, LightGBM and Keras call no callback when their training loop raises, and a program that catches
the exception (a `try`, a search's `error_score`) leaves no trace of it at exit. So the boosting and Keras
callbacks interpose on the few calls their loop makes every round (the booster's update, the callback
container's hooks, Keras' train step): an exception passing through one of them is handed to the run
before it leaves the training, and the run ends FAILED with its text (KILLED for an interrupt). The
wrappers are instance attributes for one training, removed when it ends; one extra Python call per round.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from .callback_run import CallbackRun
from .tracker.enums import IterationStatus
from .tracker.lifecycle import describe_failure

log = logging.getLogger("diary_integrations")

OnError = Callable[[BaseException], None]


def failing(on_error: OnError) -> OnError:
    """`on_error` that never raises (the training's own exception is the one that must propagate)."""

    def call(exc: BaseException) -> None:
        try:
            on_error(exc)
        except Exception as error:  # noqa: BLE001
            log.warning("diary: could not record the training's failure (%s): %s", exc, error)

    return call


def watching(original: Callable[..., Any], on_error: OnError,
             passing: tuple[type[BaseException], ...] = ()) -> Callable[..., Any]:
    """`original`, except that an exception raised through it (other than the `passing` ones, a library's
    own signals such as LightGBM's early stop) is given to `on_error` first, then goes on unchanged."""
    guarded = failing(on_error)

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except passing:
            raise
        except BaseException as exc:
            guarded(exc)
            raise

    return call


class WatchedIterator:
    """An iterator whose failures (not its end) are given to `on_error` on their way out: a data pipeline
    (a generator, a dataset's loader) raising in the middle of a training."""

    def __init__(self, iterable: Any, on_error: OnError) -> None:
        self._next = watching(iter(iterable).__next__, on_error, passing=(StopIteration,))

    def __iter__(self) -> WatchedIterator:
        return self

    def __next__(self) -> Any:
        return self._next()


class Interposed:
    """Per-training wrappers over calls a training loop makes (`wrap`), undone by `restore`: an exception
    raised through one is given to `on_error` first, then goes on unchanged."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, bool, Any]] = []

    def wrap(self, owner: Any, name: str, on_error: OnError) -> None:
        """Wrap `owner.name` (a bound method or an instance attribute holding a callable) for this training."""
        self._replace(owner, name, lambda original: watching(original, on_error))

    def wrap_iterable(self, owner: Any, name: str, on_error: OnError) -> None:
        """Wrap `owner.name`, a call that returns an iterable, so that iterating what it returns is watched
        (the exception comes from the iteration, after the call has returned)."""
        def make(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def call(*args: Any, **kwargs: Any) -> WatchedIterator:
                return WatchedIterator(original(*args, **kwargs), on_error)

            return watching(call, on_error)

        self._replace(owner, name, make)

    def _replace(self, owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        own = vars(owner)
        had, previous = name in own, own.get(name)
        original = getattr(owner, name)
        if original is None:
            return
        setattr(owner, name, make(original))
        self._undo.append((owner, name, had, previous))

    def restore(self) -> None:
        """Put back what `wrap` replaced (idempotent): a returned booster or model carries no wrapper."""
        undo, self._undo = self._undo, []
        for owner, name, had, previous in reversed(undo):
            if had:
                setattr(owner, name, previous)
            else:
                vars(owner).pop(name, None)


def end_failed(run: CallbackRun, exc: BaseException) -> None:
    """The training raised `exc` out of its loop: the run (and a fold still running) ends with it."""
    run.end(exc)


def end_fold_failed(run: CallbackRun, folds: list[CallbackRun], index: int, exc: BaseException) -> None:
    """Fold `index` of a cross-validation raised `exc`, which ends the whole cross-validation: that fold is
    FAILED with the exception's text, the folds it took down KILLED ("stopped: fold k failed") and the
    driver FAILED naming the fold. An interrupt ends everything KILLED, as it is."""
    status, message, trace = describe_failure(exc)
    if status is not IterationStatus.FAILED:
        run.end(exc)
        return
    folds[index].end(exc)
    for k, fold in enumerate(folds):
        if k != index:
            fold.end_with(IterationStatus.KILLED, f"stopped: fold {index} failed")
    run.end_with(IterationStatus.FAILED, f"fold {index} failed: {message}", trace)


def end_all_folds(run: CallbackRun, folds: list[CallbackRun], exc: BaseException) -> None:
    """The cross-validation itself raised `exc` (a callback, a metric over every fold): the driver ends
    with it, and the folds, which did not fail, as stopped by it."""
    status, message, trace = describe_failure(exc)
    if status is IterationStatus.FAILED:
        for fold in folds:
            fold.end_with(IterationStatus.KILLED, f"stopped: the cross-validation failed: {message}")
    run.end(exc)
