"""Hyperparameters and metric values as the tracker stores them, and the checks on DiaryLogger's input."""

from __future__ import annotations

import dataclasses
import enum
import numbers
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from ..tracker.errors import Unprocessable
from ..tracker.validation import MAX_PARAMETER_VALUE, check_metric_value
from ._compat import _convert_params, _sanitize_params

_PLAIN = (bool, int, float, str)


def check_name_or_id(value: Any, field: str, *, names: bool = True) -> None:
    if names and isinstance(value, str):
        if not value.strip():
            raise Unprocessable(f"{field} must not be empty", field=field)
        return
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return
    rule = "a name or a positive integer id" if names else "a positive integer id"
    raise Unprocessable(f"{field} must be {rule}, got {value!r}", field=field)


def to_float(key: str, value: Any) -> float:
    """A metric value as a float: numbers, and one-element tensors or numpy scalars (via `.item()`)."""
    if type(value) is int:
        return float(value)
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            value = item()
        except (ValueError, RuntimeError):
            raise Unprocessable(
                f"metrics[{key!r}] must be a single number, got a {type(value).__name__} of several values",
                field=f"metrics[{key!r}]",
            ) from None
    return check_metric_value(value, f"metrics[{key!r}]")


def hyperparameters(params: Mapping[str, Any] | Namespace | None) -> dict[str, Any]:
    """What `log_hyperparams` stores: Lightning's own conversion (a Namespace becomes a dict), flattened
    with "/", then Lightning's sanitising (anything not bool, int, float or str becomes its text), as
    the base Logger's built-ins do."""
    if params is not None and not isinstance(params, (Mapping, Namespace)):
        raise Unprocessable(
            f"params must be a dict or an argparse.Namespace, got {type(params).__name__}", field="params"
        )
    flat = flatten_hyperparameters(_convert_params(params))  # type: ignore[arg-type]
    return _sanitize_params(flat)


def flatten_hyperparameters(params: Mapping[str, Any] | Namespace | None, sep: str = "/") -> dict[str, Any]:
    """Nested dicts, Namespaces, dataclasses and lists of dicts as one flat dict with "/"-joined keys.
    Leaves stay numbers, strings, bools or None; numpy scalars become their Python value, and anything
    else (a complex number, an array) its text; callables are named, never called."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Namespace):
            value = vars(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            if not value and prefix:
                flat[prefix] = "{}"
            for key, inner in value.items():
                walk(f"{prefix}{sep}{key}" if prefix else str(key), inner)
            return
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (Mapping, Namespace)) for v in value):
            for n, inner in enumerate(value):
                walk(f"{prefix}{sep}{n}", inner)
            return
        flat[prefix] = parameter_value(value)

    if params is None:
        return flat
    if not isinstance(params, (Mapping, Namespace)):
        raise Unprocessable(
            f"params must be a dict or an argparse.Namespace, got {type(params).__name__}", field="params"
        )
    walk("", params)
    return flat


def parameter_value(value: Any) -> Any:
    """One leaf as the tracker can store it: None, bool, int, float or text."""
    if value is None or isinstance(value, _PLAIN):
        return value
    if isinstance(value, enum.Enum):
        return parameter_value(value.value)
    size = getattr(value, "size", None)
    if hasattr(value, "item") and (size == 1 or size == () or callable(size) and value.numel() == 1):
        try:
            item = value.item()  # a numpy scalar or one-element tensor
        except (ValueError, RuntimeError):
            item = None
        # A complex (or other non-real) value has no number to store: its text, as Lightning does.
        if item is not None and isinstance(item, _PLAIN):
            return item
    if isinstance(value, numbers.Number) and not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}".lstrip(".")
    text = str(value)
    # The text of an object describes it; past the parameter limit it is cut, and says so.
    if len(text) > MAX_PARAMETER_VALUE:
        text = text[: MAX_PARAMETER_VALUE - 20] + " ... (truncated)"
    return text
