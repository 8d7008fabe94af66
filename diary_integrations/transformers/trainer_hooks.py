"""Where a DiaryCallback learns how `train()` ended. The Trainer calls no callback when `train()` raises
(and calls `on_train_end` before it raises TrialPruned), so the callback wraps the `train` and
`hyperparameter_search` methods of the one Trainer instance it was given to: the wrapper sees the
exception in flight, or the clean return, and hands it to the callback before passing it on unchanged.

The callback finds its Trainer once, in `on_init_end` (the Trainer calls it from its own `__init__`),
by looking a few frames up the stack for that Trainer: callbacks are never handed the Trainer itself."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, Protocol

# How many frames above the callback's method the Trainer's own method can be: the callback's method,
# CallbackHandler.call_event, CallbackHandler.on_<event>, then the Trainer's method (a subclass's
# override or two on top of it is still found).
_FRAMES = 8
ATTACHED = "_diary_callbacks"  # on the Trainer: the DiaryCallbacks whose wrappers it carries


class EntryObserver(Protocol):
    def entering_train(self, trial: Any) -> None: ...

    def left_train(self, trial: Any, exc: BaseException | None) -> None: ...

    def entering_search(self, arguments: dict[str, Any], extra: dict[str, Any]) -> None: ...

    def left_search(self, exc: BaseException | None) -> None: ...


def calling_trainer() -> Any:
    """The `transformers.Trainer` whose method called the current callback event, or None."""
    from transformers import Trainer

    frame = sys._getframe(2)
    for _ in range(_FRAMES):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


def attach(trainer: Any, observer: EntryObserver) -> bool:
    """Wrap this Trainer instance's `train` and `hyperparameter_search` for `observer`, once per
    observer; False when it was attached already."""
    attached = trainer.__dict__.setdefault(ATTACHED, [])
    if any(known is observer for known in attached):
        return False
    attached.append(observer)
    trainer.train = _observed_train(trainer.train, observer)
    trainer.hyperparameter_search = _observed_search(trainer.hyperparameter_search, observer)
    return True


def _trial_argument(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # train(resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, ...)
    return kwargs["trial"] if "trial" in kwargs else (args[1] if len(args) > 1 else None)


def _observed_train(train: Callable[..., Any], observer: EntryObserver) -> Callable[..., Any]:
    @functools.wraps(train)
    def observed(*args: Any, **kwargs: Any) -> Any:
        trial = _trial_argument(args, kwargs)
        observer.entering_train(trial)
        try:
            result = train(*args, **kwargs)
        except BaseException as exc:
            observer.left_train(trial, exc)
            raise
        observer.left_train(trial, None)
        return result

    return observed


def _observed_search(search: Callable[..., Any], observer: EntryObserver) -> Callable[..., Any]:
    signature = inspect.signature(search)
    extra_name = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    @functools.wraps(search)
    def observed(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:  # the search itself says what is wrong with its arguments
            return search(*args, **kwargs)
        # The named arguments (backend, direction) to read, and the backend's own keyword arguments
        # (handed on to tune.run for "ray"), which the observer may add to.
        extra = bound.arguments.setdefault(extra_name, {}) if extra_name else {}
        observer.entering_search(dict(bound.arguments), extra)
        error: BaseException | None = None
        try:
            return search(*bound.args, **bound.kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            observer.left_search(error)

    return observed
