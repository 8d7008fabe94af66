"""Turning scikit-learn objects into tracker parameters: scalars stay scalars, everything else
becomes short, readable text (the core refuses lists, dicts and objects)."""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from typing import Any

MAX_VALUE = 2000  # a parameter holds up to 8000 characters; a grid value beyond 2000 is unreadable anyway

# The search's own settings that are not logged one by one (they get their own, richer entries).
_SEPARATE = {"estimator", "param_grid", "param_distributions"}


def scalar(value: Any) -> Any:
    """A value the tracker stores as is (str, bool, int, float, None), or its text."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalars
        value = value.item()
    if isinstance(value, (bool, numbers.Integral, numbers.Real)):
        return value
    return text(value)


def text(value: Any) -> str:
    """One line of text for any object: estimators, lists, scipy distributions, callables."""
    dist = getattr(value, "dist", None)
    if dist is not None and hasattr(value, "args") and hasattr(value, "kwds"):  # a frozen scipy distribution
        args = [repr(a) for a in value.args] + [f"{k}={v!r}" for k, v in value.kwds.items()]
        out = f"{getattr(dist, 'name', type(dist).__name__)}({', '.join(args)})"
    elif callable(value) and hasattr(value, "__qualname__"):
        out = f"{getattr(value, '__module__', '')}.{value.__qualname__}".lstrip(".")
    elif isinstance(value, (list, tuple)):
        inner = ", ".join(text(v) if not isinstance(v, str) else repr(v) for v in value)
        out = f"[{inner}]" if isinstance(value, list) else f"({inner})"
    else:
        out = repr(value)
    out = re.sub(r"\s+", " ", out).strip()
    return out if len(out) <= MAX_VALUE else out[: MAX_VALUE - 1] + "…"


def candidate_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """A candidate's hyperparameters as tracker parameters."""
    return {str(k): scalar(v) for k, v in params.items()}


def parameters_name(params: Mapping[str, Any], fallback: str = "") -> str:
    """A candidate's readable iteration name, from its parameters in key order: `C=1.0 solver=lbfgs`
    (at most 250 characters; `fallback` when there are none)."""
    name = " ".join(f"{k}={v}" for k, v in sorted(candidate_parameters(params).items()))
    return (name[:249] + "…" if len(name) > 250 else name) or fallback


def _space(prefix: str, space: Any) -> dict[str, Any]:
    """`grid.max_depth = "[2, 4, None]"`, or `grid[1].C` for a list of grids."""
    if isinstance(space, Mapping):
        return {f"{prefix}.{k}": text(v) for k, v in space.items()}
    if isinstance(space, (list, tuple)):
        out: dict[str, Any] = {}
        for n, sub in enumerate(space):
            out.update(_space(f"{prefix}[{n}]", sub))
        return out
    return {prefix: text(space)}


def search_parameters(search: Any) -> dict[str, Any]:
    """What the driver iteration records about a search: its class, estimator, space and settings."""
    out: dict[str, Any] = {"search": type(search).__name__, "estimator": text(search.estimator)}
    if hasattr(search, "param_grid"):
        out.update(_space("grid", search.param_grid))
    if hasattr(search, "param_distributions"):
        out.update(_space("distributions", search.param_distributions))
    for key, value in sorted(search.get_params(deep=False).items()):
        if key not in _SEPARATE:
            out[key] = scalar(value)
    return out


def estimator_parameters(estimator: Any, **settings: Any) -> dict[str, Any]:
    """What the driver of a `cross_validate` run records: the estimator and the call's settings."""
    out: dict[str, Any] = {"estimator": text(estimator), "estimator_class": type(estimator).__name__}
    out.update({k: scalar(v) for k, v in settings.items()})
    return out
