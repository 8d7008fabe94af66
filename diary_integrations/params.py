"""Parameters and metric values as the tracker stores them, shared by every integration: nested
configurations flattened to "a/b" keys, leaves turned into storable values, metric values into floats,
and a run's parameters written once (journaled in an outage, a later change kept out and noted)."""

from __future__ import annotations

import dataclasses
import enum
import logging
import numbers
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from .reporting import warn_tracking
from .tracker.errors import Conflict, TransportError, Unprocessable
from .tracker.validation import MAX_PARAMETER_VALUE, check_metric_value, format_parameter_value

log = logging.getLogger("diary_integrations")

_PLAIN = (bool, int, float, str)

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


def write_parameters_once(tracker: Any, iteration_id: int, flat: dict[str, Any], *, advice: str = "") -> int:
    """Write an iteration's parameters; returns how many wait in the local journal (a server away).
    Parameters already stored keep their first value: a changed one is left out, with a warning and a
    notes line (`advice` says what to do instead), so a parameter never means two things."""
    try:
        tracker.log_parameters(iteration_id, flat)
        return 0
    except TransportError as error:
        if getattr(error, "journal", None) is None:
            raise
        # The server went away mid-run: the batch waits in the run's journal, which the writer's probe or
        # the run's end sends first once it answers. The end reports it if it is still there.
        log.info("diary: iteration %s: %d hyperparameters kept in the local journal %s",
                 iteration_id, len(flat), error.journal)  # type: ignore[attr-defined]
        return len(flat)
    except Conflict:
        stored = {p.key: p.value for p in tracker.get_parameters(iteration_id)}
    fresh = {k: v for k, v in flat.items() if k not in stored}
    # Compared as stored text (bools are `true`/`false`, lists JSON): an unchanged value is not a change.
    changed = {k: v for k, v in flat.items() if k in stored and stored[k] != format_parameter_value(v, k)}
    if fresh:
        tracker.log_parameters(iteration_id, fresh)
    if changed:
        text = ", ".join(f"{k}: {stored[k]} -> {format_parameter_value(v, k)}" for k, v in sorted(changed.items()))
        record = tracker.get_iteration(iteration_id)
        line = f"a later fit changed hyperparameters, which keep their first values: {text}"
        tracker.update_iteration(iteration_id, notes=f"{record.notes}\n{line}" if record.notes else line)
        warn_tracking(f"iteration {iteration_id}: {line}" + (f" ({advice})" if advice else ""), logger=log)
    return 0
