"""What a Trainer run records as parameters and metrics: the TrainingArguments a user changed (compared
with a default instance of the same class), the model's config, and each `on_log` dict as metric values
with a `train/`, `eval/` or `test/` prefix."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from ..params import flatten_hyperparameters

# Transformers' own prefixes for evaluation and prediction metrics; anything else is training.
_PREFIXES = (("eval_", "eval/"), ("test_", "test/"))


def changed_arguments(args: Any) -> dict[str, Any]:
    """The TrainingArguments (or subclass) fields a user (or a hyperparameter search) set to something
    else than the field's default, as `to_dict()` shows them (enums as their values, tokens masked).

    Compared with the dataclass defaults, not with a second instance: building one sets up the devices,
    which resets accelerate's state under a Trainer in use. What `__post_init__` derives from an unset
    default (None or "none" becoming False, [] or a default config object) counts as unchanged."""
    current = args.to_dict()
    defaults = {f.name: f for f in dataclasses.fields(args) if f.init}
    return {
        key: value
        for key, value in current.items()
        if key not in defaults or not _unchanged(getattr(args, key, value), value, defaults[key])
    }


def _unchanged(attribute: Any, value: Any, field: dataclasses.Field[Any]) -> bool:
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return False  # a required field (output_dir): always recorded
    if isinstance(default, enum.Enum):
        default = default.value
    if value == default or attribute == default:
        return True
    if default not in (None, "", "none"):
        return False
    if not value or value == "none":
        return True
    # A default configuration object filled in for None (accelerator_config): unchanged if it is the default.
    try:
        return dataclasses.is_dataclass(attribute) and attribute == type(attribute)()
    except Exception:  # noqa: BLE001 - a class that needs arguments: it was set on purpose
        return False


def model_config(model: Any) -> dict[str, Any]:
    """The model's configuration (`model.config.to_dict()`), or {} for a model without one."""
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    return to_dict() if callable(to_dict) else {}


def run_parameters(args: Any, model: Any) -> dict[str, Any]:
    """A run's parameters, flattened with "/": `args/<field>` for each changed TrainingArguments field
    and `config/<key>` for the model's configuration."""
    return flatten_hyperparameters({"args": changed_arguments(args), "config": model_config(model)})


def metric_values(logs: Mapping[str, Any] | None) -> dict[str, float]:
    """One `on_log` dict as metric values: `eval_loss` -> `eval/loss`, `test_acc` -> `test/acc`, anything
    else `train/<key>` (as Transformers' W&B integration names them). Values that are not one number (a
    string, a list) are left out; NaN and infinities are kept: a diverged loss is data."""
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        number = _number(value)
        if number is None:
            continue
        for prefix, group in _PREFIXES:
            if key.startswith(prefix):
                out[group + key[len(prefix):]] = number
                break
        else:
            out["train/" + key] = number
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)
    numel = getattr(value, "numel", None)
    if callable(item) and (not callable(numel) or numel() == 1):
        try:
            found = item()
        except (ValueError, RuntimeError):
            return None
        if isinstance(found, (int, float)) and not isinstance(found, complex):
            return float(found)
    return None


__all__ = ["changed_arguments", "metric_values", "model_config", "run_parameters"]
