"""Lightning's hyperparameters as the tracker stores them (Lightning's own conversion and sanitising over
the shared flattening in `diary_integrations.params`), and writing a run's hyperparameters."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..params import flatten_hyperparameters, parameter_value, to_float, write_parameters_once
from ..tracker.errors import Unprocessable
from ._compat import _convert_params, _sanitize_params

if TYPE_CHECKING:
    from .state import LoggerState

__all__ = ["flatten_hyperparameters", "hyperparameters", "parameter_value", "to_float", "write_parameters"]


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


def write_parameters(lg: LoggerState, flat: dict[str, Any]) -> None:
    """Write a run's hyperparameters; those a later `fit` changed keep their first value, and say so."""
    if lg._ended_ok:
        lg._reopen()
    lg._journaled_params += write_parameters_once(
        lg.tracker, lg._run_id, flat, advice="use a new DiaryLogger for a new configuration")  # type: ignore[arg-type]
