"""The exception a LightGBM booster raises during a tracked training, seen on its way out.

`lgb.train`/`lgb.cv` call the booster's `update` (which runs a custom objective) and `eval_train` /
`eval_valid` (custom metrics) every round; `cv` calls them on each fold's booster. Unlike XGBoost's, a
LightGBM booster is handed back to the program with no end callback before it (early stopping ends the
loop by an exception), so a per-instance wrapper could still be on it when scikit-learn pickles the
fitted estimator. These three methods are therefore wrapped once on the class: for a booster a callback
`watch`es, an exception passing through is handed to it first; every other booster pays one Python call.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any

import lightgbm

from ..training_failure import OnError, failing

METHODS = ("update", "eval_train", "eval_valid")

_watched: weakref.WeakKeyDictionary[Any, OnError] = weakref.WeakKeyDictionary()
_install_lock = threading.Lock()


def _observing(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            on_error = _watched.get(self)
            if on_error is not None:
                on_error(exc)
            raise

    method.__diary_original__ = original  # type: ignore[attr-defined]
    return method


def install() -> None:
    """Wrap the booster's round methods on the class, once per process."""
    with _install_lock:
        for name in METHODS:
            current = getattr(lightgbm.Booster, name)
            if not hasattr(current, "__diary_original__"):
                setattr(lightgbm.Booster, name, _observing(current))


def watch(booster: Any, on_error: OnError) -> None:
    """Until `unwatch`, an exception raised through `booster`'s round methods goes to `on_error` first
    (which must not raise; it is guarded anyway)."""
    install()
    _watched[booster] = failing(on_error)


def unwatch(booster: Any) -> None:
    """The training of `booster` is over: its exceptions are its own again."""
    _watched.pop(booster, None)


def unobserved(name: str) -> Callable[..., Any]:
    """The booster's own method `name`, for the callback's own calls (a failure there is not training's)."""
    method = getattr(lightgbm.Booster, name)
    return getattr(method, "__diary_original__", method)
