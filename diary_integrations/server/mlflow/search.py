"""MLflow's search grammar with MLflow's attributes: the one parser (tracker/search_grammar.py), given the
attributes MLflow's runs and experiments have. The MLflow routes evaluate the comparisons with `matches`;
a `FilterError` is an `Unprocessable`, which the MLflow error mapping answers INVALID_PARAMETER_VALUE."""

from __future__ import annotations

from ...tracker.search_grammar import (
    ATTRIBUTE,
    METRIC,
    PARAM,
    TAG,
    Comparison,
    Grammar,
    Key,
    Order,
    matches,
)
from ...tracker.search_grammar import parse_filter as _parse_filter
from ...tracker.search_grammar import parse_order_by as _parse_order_by

__all__ = [
    "ATTRIBUTE", "EXPERIMENTS", "METRIC", "PARAM", "RUNS", "TAG", "Comparison", "Grammar", "Key", "Order", "matches",
    "parse_filter", "parse_order_by",
]

NUMERIC_ATTRIBUTES = {
    "start_time": "start_time",
    "end_time": "end_time",
    "created": "start_time",
    "Created": "start_time",
}
STRING_ATTRIBUTES = {
    "run_id": "run_id",
    "run_name": "run_name",
    "status": "status",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
}
RUNS = Grammar({**NUMERIC_ATTRIBUTES, **STRING_ATTRIBUTES}, frozenset({"start_time", "end_time"}))
EXPERIMENTS = Grammar(
    {
        "name": "name",
        "creation_time": "creation_time",
        "last_update_time": "last_update_time",
        "experiment_id": "experiment_id",
        "lifecycle_stage": "lifecycle_stage",
    },
    frozenset({"creation_time", "last_update_time"}),
)


def parse_filter(text: str | None, grammar: Grammar = RUNS) -> list[Comparison]:
    """A runs filter (or another MLflow entity's with its grammar)."""
    return _parse_filter(text, grammar)


def parse_order_by(items: list[str], grammar: Grammar = RUNS) -> list[Order]:
    """A runs order_by (or another MLflow entity's with its grammar)."""
    return _parse_order_by(items, grammar)
