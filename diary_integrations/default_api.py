"""DearDiary's module-level functions (`create_project(...)`, `get_iteration(...)`, ...), acting on the
default tracker. Each is the Tracker method of the same name, with its signature and docstring."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from .connection import get_tracker
from .tracker.protocol import Tracker


def _on_default_tracker(method: Callable[..., Any]) -> Callable[..., Any]:
    name = method.__name__

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(get_tracker(), name)(*args, **kwargs)

    del call.__wrapped__
    signature = inspect.signature(method)
    # What help() shows is the method's signature without `self`.
    call.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
    return call


METHODS = sorted(
    name for name, value in vars(Tracker).items()
    if callable(value) and not name.startswith("_") and name != "close"
)

for _name in METHODS:
    globals()[_name] = _on_default_tracker(getattr(Tracker, _name))

__all__ = list(METHODS)
