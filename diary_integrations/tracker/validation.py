"""Input rules. Each check names the field and the rule it broke, and runs before anything is written."""

from __future__ import annotations

import json
import math
import numbers
import operator
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from .errors import DiaryError, Unprocessable

MAX_NAME = 250
MAX_KEY = 250
MAX_PARAMETER_VALUE = 8000
MAX_TEXT = 65_536
MAX_REOPEN_REASON = 2000  # one line of notes per reopening
MAX_USERNAME = 150
MAX_PASSWORD = 1024
# Iterations created or ended by one batch call (one request over HTTP).
MAX_BATCH = 10_000
MAX_STEP = 2**63 - 1  # steps are 64-bit integers in both databases

E = TypeVar("E", bound=Enum)


def check_id(value: Any, field: str) -> int:
    """Ids are positive integers; bools and numeric strings are refused rather than guessed at."""
    if isinstance(value, (bool, str, bytes, float)):
        raise Unprocessable(f"{field} must be a positive integer, got {value!r}", field=field)
    try:
        number = operator.index(value)
    except TypeError:
        raise Unprocessable(f"{field} must be a positive integer, got {value!r}", field=field) from None
    if number <= 0:
        raise Unprocessable(f"{field} must be a positive integer, got {number}", field=field)
    return number


def check_optional_id(value: Any, field: str) -> int | None:
    return None if value is None else check_id(value, field)


def check_text(value: Any, field: str, *, max_length: int = MAX_TEXT, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise Unprocessable(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not allow_empty and not value.strip():
        raise Unprocessable(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise Unprocessable(
            f"{field} must be at most {max_length} characters, got {len(value)}", field=field
        )
    if "\x00" in value:
        raise Unprocessable(f"{field} must not contain NUL characters", field=field)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise Unprocessable(
                f"{field} must be valid Unicode text: a lone surrogate {value[exc.start]!r} at position "
                f"{exc.start} cannot be stored", field=field,
            ) from None
    return value


def check_name(value: Any, field: str = "name") -> str:
    return check_text(value, field, max_length=MAX_NAME, allow_empty=False)


def check_key(value: Any, field: str = "key") -> str:
    return check_text(value, field, max_length=MAX_KEY, allow_empty=False)


def check_enum(value: Any, enum: type[E], field: str) -> E:
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        if value in enum.__members__:
            return enum[value]
        for member in enum:  # str-valued enums also take their value ("experiment")
            if member.value == value:
                return member
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return enum(value)
        except ValueError:
            pass
    allowed = ", ".join(f"{m.name} ({m.value})" for m in enum)
    raise Unprocessable(f"{field} must be one of {allowed}; got {value!r}", field=field)


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise Unprocessable(f"{field} must be true or false, got {value!r}", field=field)
    return value


def check_metric_value(value: Any, field: str = "value") -> float:
    """Any real number, NaN and infinities included: a diverged loss is data, not an error. A bool is not
    a number here (True would read back as 1.0), an integer too large for a 64-bit float is refused
    rather than rounded to infinity, and zero has no sign (-0.0 is stored as 0.0: SQLite cannot keep the
    sign, so no transport does)."""
    if isinstance(value, bool):
        raise Unprocessable(f"{field} must be a real number, got bool {value!r}", field=field)
    if isinstance(value, numbers.Real) or (
        hasattr(value, "__float__") and not isinstance(value, (str, bytes, complex))
    ):
        # One-element tensors and arrays (a 0-d torch.tensor(0.25)) are numbers too.
        try:
            return float(value) + 0.0
        except OverflowError:
            raise Unprocessable(
                f"{field} must fit a 64-bit float (at most about 1.8e308), got an integer of "
                f"{len(str(abs(int(value))))} digits", field=field,
            ) from None
        except (TypeError, ValueError):
            pass
    raise Unprocessable(f"{field} must be a real number, got {type(value).__name__} {value!r}", field=field)


def check_step(value: Any, field: str = "step") -> int:
    if isinstance(value, (bool, float)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise Unprocessable(f"{field} must be a non-negative integer, got {value!r}", field=field)
    try:
        step = operator.index(value)
    except TypeError:
        raise Unprocessable(f"{field} must be a non-negative integer, got {value!r}", field=field) from None
    if step < 0 or step > MAX_STEP:
        raise Unprocessable(f"{field} must be a non-negative 64-bit integer, got {step}", field=field)
    return step


def check_max_points(value: Any, field: str = "max_points") -> int | None:
    """A downsampling budget: None (whole series) or an integer of at least 2 (one min/max bucket)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise Unprocessable(f"{field} must be an integer of at least 2, got {value!r}", field=field)
    return value


def check_datetime(value: Any, field: str) -> datetime:
    """Aware datetimes, epoch seconds or ISO strings; a naive datetime is taken to be UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (ValueError, OverflowError, OSError):
            pass  # beyond year 1..9999: refused below like any other bad date
    if isinstance(value, str):
        try:
            return check_datetime(datetime.fromisoformat(value), field)
        except ValueError:
            pass
    raise Unprocessable(f"{field} must be a datetime, epoch seconds or ISO 8601 text, got {value!r}", field=field)


def format_parameter_value(value: Any, field: str = "value") -> str:
    """Parameters are stored as text; numbers are written the way Python prints them (1e-3 -> "0.001"),
    bools as `true`/`false` (as DearDiary and MLflow store them), lists and dicts as their JSON text."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "None"
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, (numbers.Real, Decimal)):
        text = repr(float(value)) if not isinstance(value, Decimal) else str(value)
    elif isinstance(value, (list, tuple, dict)):
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise Unprocessable(
                f"{field} must hold only JSON values (text, numbers, bools, null, lists, objects with text keys; "
                f"no NaN): {exc}",
                field=field,
            ) from None
    else:
        raise Unprocessable(
            f"{field} must be a string, number, bool, None, list or dict, got {type(value).__name__}; "
            "convert it to text first",
            field=field,
        )
    return check_text(text, field, max_length=MAX_PARAMETER_VALUE)


def checked_parameters(parameters: Any, field: str = "parameters") -> dict[str, str]:
    """A mapping of parameters as the text rows they are stored as, each key and value checked."""
    if not isinstance(parameters, Mapping):
        raise Unprocessable(f"{field} must be a mapping of key to value", field=field)
    return {check_key(k): format_parameter_value(v, f"{field}[{k!r}]") for k, v in parameters.items()}


def checked_new_iteration(item: Any) -> tuple[str, dict[str, str]]:
    """A NewIteration's notes and parameter rows, checked (local and over HTTP alike)."""
    notes = check_text(item.notes, "notes")
    return notes, {} if item.parameters is None else checked_parameters(item.parameters)


def check_iteration_name(value: Any) -> str:
    """An iteration's readable name: any text up to 250 characters, empty allowed (not unique)."""
    return check_text(value, "name", max_length=MAX_NAME)


def check_page(limit: Any, offset: Any) -> tuple[int | None, int]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise Unprocessable(f"limit must be a non-negative integer or None, got {limit!r}", field="limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise Unprocessable(f"offset must be a non-negative integer, got {offset!r}", field="offset")
    return limit, offset


_MAX_STEP = 2**63


def checked_points(points: Iterable[Sequence[Any]]) -> Iterator[tuple[str, float, int, Any]]:
    """Validate `(key, value, step[, recorded_at])` points one by one, yielding `(key, value, step,
    recorded_at or None)`; the bulk write paths (local and over HTTP) share it. `recorded_at` is left as
    given, for the caller to convert."""
    good_keys: set[str] = set()
    for n, point in enumerate(points):
        size = len(point) if isinstance(point, (tuple, list)) else 0
        if size not in (3, 4):
            raise Unprocessable(
                f"points[{n}] must be (key, value, step) or (key, value, step, recorded_at)", field="points"
            )
        key, value, step = point[0], point[1], point[2]
        if type(key) is not str or key not in good_keys:  # type first: a list key is unhashable
            check_key(key, f"points[{n}].key")
            good_keys.add(key)
        # Fast paths for what training loops send (floats, int steps); anything else is checked fully.
        if type(value) is not float:
            value = check_metric_value(value, f"points[{n}].value")
        if type(step) is not int or not 0 <= step < _MAX_STEP:
            step = check_step(step, f"points[{n}].step")
        yield key, value, step, point[3] if size == 4 else None


def resource_bytes(data: Any) -> bytes:
    """A resource's bytes: given as bytes, or read from a file path."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise Unprocessable(f"data: {str(path)!r} is not a readable file", field="data")
        return path.read_bytes()
    raise Unprocessable(f"data must be bytes or a file path, got {type(data).__name__}", field="data")


def checked_batch(items: Any, name: str, item_type: type) -> list[Any]:
    """A batch argument: a list or tuple of at most MAX_BATCH `item_type` records."""
    if not isinstance(items, (list, tuple)):
        raise Unprocessable(f"{name} must be a list of {item_type.__name__}, got {type(items).__name__}", field=name)
    if len(items) > MAX_BATCH:
        raise Unprocessable(f"{name}: at most {MAX_BATCH} per call, got {len(items)}", field=name)
    for n, item in enumerate(items):
        if not isinstance(item, item_type):
            article = "an" if item_type.__name__[0] in "AEIOU" else "a"
            raise Unprocessable(
                f"{name}[{n}] must be {article} {item_type.__name__}, got {type(item).__name__}", field=f"{name}[{n}]"
            )
    return list(items)


@contextmanager
def batch_item(name: str, index: int) -> Iterator[None]:
    """An error raised about one item of a batch names the item: `endings[3].points[1].value ...`."""
    try:
        yield
    except DiaryError as exc:
        prefix = f"{name}[{index}]"
        field = f"{prefix}.{exc.field}" if exc.field else prefix
        raise type(exc)(f"{prefix}.{exc.message}", field=field) from None


def listed_points(points: Any) -> Any:
    """Points as a sequence an IterationEnding can hold (a generator would be read only once)."""
    return points if points is None or isinstance(points, (list, tuple)) else list(points)


def user_arguments(
    args: tuple[Any, ...], username: Any, password: Any, first_name: Any, last_name: Any
) -> tuple[Any, Any, Any, Any]:
    """`create_user`'s (username, password, first_name, last_name) from DearDiary's positional order
    `(first_name, last_name, username, password)`, this package's earlier `(username, password)`, or
    keywords alone."""
    if len(args) == 4:
        if username is not None or password is not None:
            raise TypeError("create_user: username and password were given both by position and by keyword")
        first, last, username, password = args
        return username, password, first, last
    if len(args) == 2:
        if username is not None or password is not None:
            raise TypeError("create_user: username and password were given both by position and by keyword")
        return args[0], args[1], first_name, last_name
    if args:
        raise TypeError(
            "create_user takes (first_name, last_name, username, password), (username, password) or keywords; "
            f"got {len(args)} positional arguments"
        )
    if username is None or password is None:
        raise TypeError("create_user: username and password are required")
    return username, password, first_name, last_name
