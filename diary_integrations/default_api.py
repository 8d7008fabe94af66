"""DearDiary's module-level functions (`create_project(...)`, `get_iteration(...)`, ...). Each is the Tracker
method of the same name, with its signature and docstring, acting on the default tracker — or, as
DearDiary's functions dispatch on a client passed first, on the tracker given as the first argument:
`create_parameter(client, iteration_id, "worker_rank", 3)`. Arguments may also come in DearDiary's
positional order where it differs from ours (deardiary_order.py)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from .connection import get_tracker
from .deardiary_order import describe, to_our_order
from .tracker.lifecycle import OpensIterationRuns
from .tracker.protocol import Tracker

ON_A_TRACKER = (
    "Called as `{name}(tracker, ...)` with a tracker from `connect()` first, it acts on that tracker\n"
    "instead of the default one (DearDiary's `{name}(client, ...)`)."
)


def _tracker_and_rest(args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """The tracker a call acts on (a tracker passed first, else the default one) and the other arguments.
    Every transport (local, HTTP, sidecar) shares `OpensIterationRuns`, so that is what marks a tracker."""
    if args and isinstance(args[0], OpensIterationRuns):
        return args[0], args[1:]
    return get_tracker(), args


def _on_default_tracker(method: Callable[..., Any]) -> Callable[..., Any]:
    name = method.__name__
    signature = inspect.signature(method)
    # What help() shows, and what a call is checked against: the method's signature without `self`.
    public = signature.replace(parameters=list(signature.parameters.values())[1:])
    leading = tuple(
        p.name for p in public.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        tracker, args = _tracker_and_rest(args)
        args, kwargs = to_our_order(name, args, kwargs, leading=leading)
        try:
            public.bind(*args, **kwargs)
        except TypeError as error:
            # Checked here so the message names this function, not the internal class that implements it
            # ("ProjectsMixin.create_project() got an unexpected keyword argument").
            raise TypeError(f"{name}() {error}") from None
        return getattr(tracker, name)(*args, **kwargs)

    del call.__wrapped__
    call.__signature__ = public  # type: ignore[attr-defined]
    parts = (inspect.getdoc(method), ON_A_TRACKER.format(name=name), describe(name, leading))
    call.__doc__ = "\n\n".join(part for part in parts if part)
    call.__module__ = "diary_integrations"
    return call


METHODS = sorted(
    name for name, value in vars(Tracker).items()
    if callable(value) and not name.startswith("_") and name != "close"
)

for _name in METHODS:
    globals()[_name] = _on_default_tracker(getattr(Tracker, _name))

__all__ = list(METHODS)
