"""MLflow's search grammar, parsed once for every search the project answers (no web framework here).

A filter is comparisons joined by AND: `metrics.rmse < 0.5 and params.solver = 'lbfgs' and
tags."mlflow.user" LIKE 'a%' and attributes.status IN ('FINISHED', 'FAILED')`. An identifier is
`entity.key` (`metric(s)`, `param(s)`/`parameter(s)`, `tag(s)`, `attribute(s)`/`attr`/`run`; a bare key
is an attribute); a key may be quoted with backticks or double quotes. Metrics and the numeric
attributes compare numbers (`true`/`false` read as 1/0); params, tags and the other attributes compare
strings with = != LIKE ILIKE (and IS [NOT] NULL for params, tags and the grammar's nullable attributes,
IN / NOT IN for attributes). A run without the key does not match. `order_by` items are
`identifier [ASC|DESC]`; runs without the key sort last either way.

Which attributes exist is the caller's `Grammar`: MLflow's runs, experiments and logged models
(server/mlflow/search.py) and diary's iterations (`ITERATIONS`, evaluated in SQL by
tracker/local/search.py). A filter that breaks a rule raises `FilterError` (an `Unprocessable`, so a 422
over REST) naming the offending token and its position (0-based, in characters).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import Unprocessable
from .validation import check_id

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
_NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">="}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE"}
MAX_FILTER_LENGTH = 10_000
DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS = 10_000


class FilterError(Unprocessable):
    """A filter or order_by that cannot be read: `token` is the text at fault, `position` where it starts."""

    def __init__(self, message: str, *, field: str = "filter", token: str = "", position: int = 0) -> None:
        super().__init__(message, field=field)
        self.token = token
        self.position = position

    def __reduce__(self) -> tuple[Any, ...]:
        # Kept whole across a pipe (the sidecar sends its errors pickled).
        return (_filter_error, (self.message, self.field, self.token, self.position))


def _filter_error(message: str, field: str | None, token: str, position: int) -> FilterError:
    return FilterError(message, field=field or "filter", token=token, position=position)


@dataclass(frozen=True)
class Grammar:
    """Which attributes a search knows (the names users write -> the canonical name), which of them are
    numbers, and which may be compared with IS [NOT] NULL."""

    attributes: dict[str, str]
    numeric: frozenset[str]
    nullable: frozenset[str] = field(default_factory=frozenset)


# diary's iterations: what `Tracker.search_iterations` filters and orders by. `created` is seconds since
# the epoch; `duration` is seconds from creation to end (none while running); `is_leaf` is 1 for an
# iteration without children; `depth` is 0 for a top-level iteration, 1 for its children, and so on.
ITERATIONS = Grammar(
    {
        "id": "id",
        "iteration_id": "id",
        "experiment_id": "experiment_id",
        "name": "name",
        "status": "status",
        "created": "created",
        "duration": "duration",
        "parent_iteration_id": "parent_iteration_id",
        "parent": "parent_iteration_id",
        "is_leaf": "is_leaf",
        "depth": "depth",
        "error_message": "error_message",
        "notes": "notes",
    },
    frozenset({"id", "experiment_id", "created", "duration", "parent_iteration_id", "is_leaf", "depth"}),
    frozenset({"parent_iteration_id", "duration"}),
)

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


@dataclass(frozen=True)
class Order:
    key: Key
    ascending: bool


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        body = text[1:-1]
        return body.replace("\\" + text[0], text[0]) if text[0] != "`" else body
    return text


def parse_key(text: str, grammar: Grammar, *, position: int = 0, field: str = "filter") -> Key:
    """`entity.key` (or a bare attribute) as a Key; an unknown entity or attribute is a FilterError."""
    entity, dot, key = text.partition(".")
    if not dot:
        entity, key = "attribute", text
    kind = _ENTITIES.get(entity)
    if kind is None:
        raise FilterError(
            f"Invalid entity type {entity!r} in {text!r} at position {position}: use metrics., params., tags. "
            "or attributes.", field=field, token=text, position=position,
        )
    key = _unquote(key)
    if not key:
        raise FilterError(
            f"Invalid identifier {text!r} at position {position}: the key is empty",
            field=field, token=text, position=position,
        )
    if kind == ATTRIBUTE:
        name = grammar.attributes.get(key)
        if name is None:
            valid = sorted(set(grammar.attributes))
            raise FilterError(
                f"Invalid attribute key {key!r} at position {position}. Valid keys are {valid}",
                field=field, token=text, position=position,
            )
        key = name
    return Key(kind, key)


def _tokens(text: str) -> list[_Token]:
    found, at = [], 0
    end = len(text.rstrip())
    while at < end:
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            start = at + len(text[at:]) - len(text[at:].lstrip())
            bad = text[start:end].split(None, 1)[0] if text[start:end].split() else text[start:start + 1]
            raise FilterError(
                f"Invalid filter: cannot read {bad[:50]!r} at position {start}", token=bad[:50], position=start
            )
        kind = match.lastgroup or ""
        found.append(_Token(kind, match.group(kind), match.start(kind)))
        at = match.end()
    return found


def _fault(message: str, token: _Token | None, text: str) -> FilterError:
    """`message` about `token` (None: the filter ended too early), with the token and where it is."""
    if token is None:
        position = len(text.rstrip())
        return FilterError(
            f"Invalid filter: {message}, but it ends at position {position}", token="", position=position
        )
    return FilterError(
        f"Invalid filter: {message}, got {token.text[:50]!r} at position {token.position}",
        token=token.text[:50], position=token.position,
    )


def parse_filter(text: str | None, grammar: Grammar) -> list[Comparison]:
    """The comparisons of a filter (an empty filter matches everything)."""
    if not text or not text.strip():
        return []
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"filter is longer than {MAX_FILTER_LENGTH} characters", token="", position=MAX_FILTER_LENGTH)
    tokens = _tokens(text)
    out: list[Comparison] = []
    n = 0

    def take(expected: str) -> _Token:
        nonlocal n
        if n >= len(tokens):
            raise _fault(f"expected {expected}", None, text)
        n += 1
        return tokens[n - 1]

    def word(value: str) -> bool:
        return n < len(tokens) and tokens[n].kind == "ident" and tokens[n].text.upper() == value

    while True:
        token = take("an identifier")
        if token.kind not in ("ident", "quoted"):
            raise _fault("expected an identifier (metrics.x, params.x, tags.x or an attribute)", token, text)
        key = parse_key(token.text, grammar, position=token.position)
        out.append(_comparison(key, token, take, word, text, grammar))
        if n >= len(tokens):
            return out
        token = take("AND")
        if token.kind != "ident" or token.text.upper() != "AND":
            raise _fault("clauses are joined by AND", token, text)


def _comparison(
    key: Key, at: _Token, take: Callable[[str], _Token], word: Callable[[str], bool], text: str, grammar: Grammar
) -> Comparison:
    token = take(f"a comparator after {at.text!r}")
    op = token.text
    if token.kind == "ident":
        op = op.upper()
        if op == "IS":
            if word("NOT"):
                take("NOT")
                op = "IS NOT NULL"
            else:
                op = "IS NULL"
            null = take("NULL after IS")
            if null.text.upper() != "NULL":
                raise _fault("expected NULL after IS", null, text)
            if key.entity not in (PARAM, TAG) and not (key.entity == ATTRIBUTE and key.key in grammar.nullable):
                raise _fault(f"{key.entity} {key.key!r} cannot be compared with {op}", token, text)
            return Comparison(key, op, None)
        if op == "NOT":
            nxt = take("IN after NOT")
            if nxt.text.upper() != "IN":
                raise _fault("expected IN after NOT", nxt, text)
            op = "NOT IN"
    elif token.kind != "op":
        raise _fault(f"expected a comparator after {at.text!r}", token, text)
    numeric = key.entity == METRIC or (key.entity == ATTRIBUTE and key.key in grammar.numeric)
    if op in ("IN", "NOT IN"):
        if key.entity != ATTRIBUTE or numeric:
            raise _fault(f"{op} applies to string attributes, not to {key.entity} {key.key!r}", token, text)
        opening = take("a parenthesised list after IN")
        if opening.text != "(":
            raise _fault("IN takes a parenthesised list of quoted strings", opening, text)
        values = []
        while True:
            item = take("a quoted string in the IN list")
            if item.kind != "string":
                raise _fault("IN takes quoted strings", item, text)
            values.append(_unquote(item.text))
            sep = take(", or ) in the IN list")
            if sep.text == ")":
                return Comparison(key, op, tuple(values))
            if sep.text != ",":
                raise _fault("expected , or ) in the IN list", sep, text)
    allowed = _NUMERIC_OPS if numeric else _STRING_OPS
    if op not in allowed:
        raise _fault(f"{key.entity} {key.key!r} takes one of the comparators {sorted(allowed)}", token, text)
    value = take(f"a value after {op}")
    if numeric:
        if value.kind == "ident" and value.text.upper() in ("TRUE", "FALSE") and key.entity == ATTRIBUTE:
            return Comparison(key, op, int(value.text.upper() == "TRUE"))
        if value.kind != "number":
            raise _fault(f"{key.entity} {key.key!r} compares with a number", value, text)
        number = float(value.text)
        return Comparison(key, op, int(number) if key.entity == ATTRIBUTE and number.is_integer() else number)
    if value.kind != "string":
        raise _fault(f"{key.entity} {key.key!r} compares with a quoted string", value, text)
    return Comparison(key, op, _unquote(value.text))


def _like(pattern: str, flags: int = 0) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(parts), flags | re.DOTALL)


def matches(comparison: Comparison, found: Any) -> bool:
    """Whether a value for the comparison's key (None when there is none) satisfies it: the grammar's
    meaning, evaluated in Python (the MLflow API's searches, and the reference the SQL is tested against)."""
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


# An order_by item's identifier: `entity.key` with the key quoted (`metrics.`val loss``), a quoted bare name,
# or any run of non-blank characters (MLflow's keys hold more than the filter's unquoted keys allow).
_ORDER_IDENTIFIER = re.compile(r"""[^\s.`"]*\.(?:`[^`]*`|"[^"]*")|`[^`]*`|\S+""")


def parse_order_by(items: list[str] | tuple[str, ...], grammar: Grammar) -> list[Order]:
    """`identifier [ASC|DESC]` items as Orders (ascending unless DESC). Anything else after the identifier
    (a misspelt direction, a second word) is a FilterError naming that token and its position in the item."""
    orders = []
    for item in items:
        if not isinstance(item, str):
            raise FilterError(f"order_by items are strings, got {item!r}", field="order_by", token=repr(item)[:50])
        start = len(item) - len(item.lstrip())
        found = _ORDER_IDENTIFIER.match(item, start)
        if found is None:
            raise FilterError(
                f"Invalid order_by clause {item!r}: write an identifier, then ASC or DESC",
                field="order_by", token=item[:50], position=0,
            )
        words = list(re.finditer(r"\S+", item[found.end():]))
        direction = words[0].group().upper() if words else "ASC"
        extra = words[0] if direction not in ("ASC", "DESC") else words[1] if len(words) > 1 else None
        if extra is not None:
            at = found.end() + extra.start()
            raise FilterError(
                f"Invalid order_by clause {item!r}: expected ASC or DESC after {found.group()!r}, got "
                f"{extra.group()[:50]!r} at position {at}", field="order_by", token=extra.group()[:50], position=at,
            )
        ascending = direction == "ASC"
        orders.append(Order(parse_key(found.group(), grammar, position=start, field="order_by"), ascending))
    return orders


def encode_page_token(offset: int) -> str:
    """The token of the page starting at `offset`, as MLflow's API writes them (base64 of `{"offset": n}`)."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset a page token names (0 for none); anything else is a FilterError on `page_token`."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError, AttributeError):
        shown = str(token)[:50]
        raise FilterError(f"Invalid page token {shown!r}", field="page_token", token=shown) from None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise FilterError(f"Invalid page token {token[:50]!r}", field="page_token", token=token[:50])
    return offset


# -- the other arguments of a search, checked alike by every transport ------------------------------------


def checked_experiment_ids(experiment_ids: Any) -> list[int]:
    """One id or a sequence of them (at least one, at most 1000)."""
    if isinstance(experiment_ids, (list, tuple)):
        ids = [check_id(i, "experiment_ids") for i in experiment_ids]
    else:
        ids = [check_id(experiment_ids, "experiment_ids")]
    if not ids or len(ids) > 1000:
        raise Unprocessable(f"experiment_ids must name 1 to 1000 experiments, got {len(ids)}", field="experiment_ids")
    return list(dict.fromkeys(ids))


def check_filter_text(text: Any) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise Unprocessable(f"filter must be a string, got {type(text).__name__}", field="filter")
    return text


def checked_order_by(order_by: Any) -> list[str]:
    if order_by is None:
        return []
    if isinstance(order_by, str):
        return [order_by]
    if not isinstance(order_by, (list, tuple)) or len(order_by) > 20:
        raise Unprocessable("order_by must be a list of at most 20 strings", field="order_by")
    return list(order_by)


def check_max_results(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RESULTS:
        raise Unprocessable(
            f"max_results must be an integer from 1 to {MAX_RESULTS}, got {value!r}", field="max_results"
        )
    return value
