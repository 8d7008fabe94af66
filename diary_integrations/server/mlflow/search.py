"""MLflow's search grammar, parsed and evaluated here (the server does not need the mlflow package).

A filter is comparisons joined by AND: `metrics.rmse < 0.5 and params.solver = 'lbfgs' and
tags."mlflow.user" LIKE 'a%' and attributes.status IN ('FINISHED', 'FAILED')`. An identifier is
`entity.key` (`metric(s)`, `param(s)`/`parameter(s)`, `tag(s)`, `attribute(s)`/`attr`/`run`; a bare key
is an attribute); a key may be quoted with backticks or double quotes. Metrics and the numeric
attributes compare numbers; params, tags and the other attributes compare strings with = != LIKE ILIKE
(and IS [NOT] NULL for params and tags, IN / NOT IN for attributes). A run without the key does not
match. `order_by` items are `identifier [ASC|DESC]`; runs without the key sort last either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import invalid

METRIC, PARAM, TAG, ATTRIBUTE = "metric", "param", "tag", "attribute"
_ENTITIES = {
    "metric": METRIC,
    "metrics": METRIC,
    "param": PARAM,
    "params": PARAM,
    "parameter": PARAM,
    "parameters": PARAM,
    "tag": TAG,
    "tags": TAG,
    "attribute": ATTRIBUTE,
    "attributes": ATTRIBUTE,
    "attr": ATTRIBUTE,
    "run": ATTRIBUTE,
}
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
RUN_ATTRIBUTES = {**NUMERIC_ATTRIBUTES, **STRING_ATTRIBUTES}
RUN_NUMERIC = frozenset({"start_time", "end_time"})
EXPERIMENT_ATTRIBUTES = {
    "name": "name",
    "creation_time": "creation_time",
    "last_update_time": "last_update_time",
    "experiment_id": "experiment_id",
    "lifecycle_stage": "lifecycle_stage",
}
EXPERIMENT_NUMERIC = frozenset({"creation_time", "last_update_time"})


@dataclass(frozen=True)
class Grammar:
    """Which attributes a search knows, and which of them are numbers."""

    attributes: dict[str, str]
    numeric: frozenset[str]


RUNS = Grammar(RUN_ATTRIBUTES, RUN_NUMERIC)
EXPERIMENTS = Grammar(EXPERIMENT_ATTRIBUTES, EXPERIMENT_NUMERIC)
_NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">="}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE"}
MAX_FILTER_LENGTH = 10_000

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<op>!=|>=|<=|=|<|>)
      | (?P<paren>[(),])
      | (?P<ident>[A-Za-z_][\w]*(?:\.(?:`[^`]*`|"[^"]*"|[\w.:\-/]+))?)
      | (?P<quoted>`[^`]*`)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Key:
    entity: str
    key: str


@dataclass(frozen=True)
class Comparison:
    key: Key
    op: str
    value: Any


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        body = text[1:-1]
        return body.replace("\\" + text[0], text[0]) if text[0] != "`" else body
    return text


def parse_key(text: str, grammar: Grammar = RUNS) -> Key:
    entity, dot, key = text.partition(".")
    if not dot:
        entity, key = "attribute", text
    kind = _ENTITIES.get(entity)
    if kind is None:
        raise invalid(f"Invalid entity type {entity!r} in {text!r}: use metrics., params., tags. or attributes.")
    key = _unquote(key)
    if not key:
        raise invalid(f"Invalid identifier {text!r}: the key is empty")
    if kind == ATTRIBUTE:
        name = grammar.attributes.get(key)
        if name is None:
            valid = sorted(set(grammar.attributes.values()))
            raise invalid(f"Invalid attribute key {key!r}. Valid keys are {valid}")
        key = name
    return Key(kind, key)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, at = [], 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise invalid(f"Invalid filter {text!r}: cannot read it at position {at}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        at = match.end()
    return found


def parse_filter(text: str | None, grammar: Grammar = RUNS) -> list[Comparison]:
    if not text or not text.strip():
        return []
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    tokens = _tokens(text)
    out: list[Comparison] = []
    n = 0

    def take() -> tuple[str, str]:
        nonlocal n
        if n >= len(tokens):
            raise invalid(f"Invalid filter {text!r}: it ends too early")
        n += 1
        return tokens[n - 1]

    def word(value: str) -> bool:
        return n < len(tokens) and tokens[n][0] == "ident" and tokens[n][1].upper() == value

    while True:
        kind, value = take()
        if kind not in ("ident", "quoted"):
            raise invalid(f"Invalid filter {text!r}: expected an identifier, got {value!r}")
        key = parse_key(value, grammar)
        out.append(_comparison(key, take, word, text, grammar))
        if n >= len(tokens):
            return out
        kind, value = take()
        if kind != "ident" or value.upper() != "AND":
            raise invalid(f"Invalid filter {text!r}: clauses are joined by AND, got {value!r}")


def _comparison(
    key: Key, take: Callable[[], tuple[str, str]], word: Callable[[str], bool], text: str, grammar: Grammar
) -> Comparison:
    kind, op = take()
    if kind == "ident":
        op = op.upper()
        if op == "IS":
            if word("NOT"):
                take()
                op = "IS NOT NULL"
            else:
                op = "IS NULL"
            kind, null = take()
            if null.upper() != "NULL":
                raise invalid(f"Invalid filter {text!r}: expected NULL after IS")
            if key.entity not in (PARAM, TAG):
                raise invalid(f"Invalid comparator {op!r} for {key.entity} {key.key!r}")
            return Comparison(key, op, None)
        if op == "NOT":
            kind, nxt = take()
            if nxt.upper() != "IN":
                raise invalid(f"Invalid filter {text!r}: expected IN after NOT")
            op = "NOT IN"
    elif kind != "op":
        raise invalid(f"Invalid filter {text!r}: expected a comparator after {key.key!r}")
    numeric = key.entity == METRIC or (key.entity == ATTRIBUTE and key.key in grammar.numeric)
    if op in ("IN", "NOT IN"):
        if key.entity != ATTRIBUTE or numeric:
            raise invalid(f"Invalid comparator {op!r} for {key.entity} {key.key!r}")
        if take()[1] != "(":
            raise invalid(f"Invalid filter {text!r}: IN takes a parenthesised list of strings")
        values = []
        while True:
            kind, value = take()
            if kind != "string":
                raise invalid(f"Invalid filter {text!r}: IN takes quoted strings")
            values.append(_unquote(value))
            sep = take()[1]
            if sep == ")":
                return Comparison(key, op, tuple(values))
            if sep != ",":
                raise invalid(f"Invalid filter {text!r}: expected , or ) in the IN list")
    allowed = _NUMERIC_OPS if numeric else _STRING_OPS
    if op not in allowed:
        raise invalid(f"Invalid comparator {op!r} for {key.entity} {key.key!r}; use one of {sorted(allowed)}")
    kind, value = take()
    if numeric:
        if kind != "number":
            raise invalid(f"Invalid filter {text!r}: {key.entity} {key.key!r} compares with a number, got {value!r}")
        number = float(value)
        return Comparison(key, op, int(number) if key.entity == ATTRIBUTE else number)
    if kind != "string":
        raise invalid(f"Invalid filter {text!r}: {key.entity} {key.key!r} compares with a quoted string, got {value!r}")
    return Comparison(key, op, _unquote(value))


def _like(pattern: str, flags: int = 0) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(parts), flags | re.DOTALL)


def matches(comparison: Comparison, found: Any) -> bool:
    """Whether a run's value for the comparison's key (None when it has none) satisfies it."""
    op, wanted = comparison.op, comparison.value
    if op == "IS NULL":
        return found is None
    if op == "IS NOT NULL":
        return found is not None
    if found is None:
        return False
    if op == "IN":
        return found in wanted
    if op == "NOT IN":
        return found not in wanted
    if op == "LIKE":
        return _like(wanted).fullmatch(found) is not None
    if op == "ILIKE":
        return _like(wanted, re.IGNORECASE).fullmatch(found) is not None
    if op == "=":
        return bool(found == wanted)
    if op == "!=":
        return bool(found != wanted)
    if op == "<":
        return bool(found < wanted)
    if op == "<=":
        return bool(found <= wanted)
    if op == ">":
        return bool(found > wanted)
    return bool(found >= wanted)


@dataclass(frozen=True)
class Order:
    key: Key
    ascending: bool


def parse_order_by(items: list[str], grammar: Grammar = RUNS) -> list[Order]:
    orders = []
    for item in items:
        text = item.strip()
        ascending = True
        upper = text.upper()
        if upper.endswith(" DESC"):
            text, ascending = text[:-5].rstrip(), False
        elif upper.endswith(" ASC"):
            text = text[:-4].rstrip()
        if not text:
            raise invalid(f"Invalid order_by clause {item!r}")
        orders.append(Order(parse_key(text, grammar), ascending))
    return orders
