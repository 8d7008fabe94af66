"""search_iterations: MLflow's filter grammar (tracker/search_grammar.py) compiled to one SQL statement.

Nothing is loaded into Python to be filtered: each key becomes a correlated subquery that the indexes
answer with one seek per iteration (a metric's latest value through `ix_metric_iteration_key_step`, a
parameter through its unique `(iteration_id, key)`), `is_leaf` an EXISTS over the parent index, `depth`
a recursive CTE over the experiments' trees (built only when asked for). The same statement runs on
SQLite and PostgreSQL; where the two differ (LIKE's case, text order, a duration in seconds) the
dialect's own form is chosen, so both give the grammar's meaning (the one `matches` evaluates).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, exists, func, literal, or_, select

from .. import liveness
from .. import schema as t
from ..enums import IterationStatus
from ..errors import Unprocessable
from ..records import IterationPage
from ..search_grammar import (
    ATTRIBUTE,
    DEFAULT_MAX_RESULTS,
    ITERATIONS,
    METRIC,
    PARAM,
    Comparison,
    Key,
    Order,
    check_filter_text,
    check_max_results,
    checked_experiment_ids,
    checked_order_by,
    decode_page_token,
    encode_page_token,
    parse_filter,
    parse_order_by,
)
from ..statements import can_hold
from .base import TrackerBase, _iteration
from .iterations import _RUNNING_HERE, _watched
from .metrics import latest_value

_TEXT_ATTRIBUTES = {"name", "notes", "error_message"}
it = t.iterations


class SearchMixin(TrackerBase):
    def search_iterations(
        self,
        experiment_ids: int | Sequence[int],
        filter: str = "",  # noqa: A002 - MLflow's name for it
        order_by: Sequence[str] = (),
        max_results: int = DEFAULT_MAX_RESULTS,
        page_token: str | None = None,
    ) -> IterationPage:
        """The iterations of these experiments that match `filter`, ordered by `order_by` (then by id), a
        page of at most `max_results`; pass the page's `next_page_token` for the next one. Evaluated in
        the database; a filter that cannot be read raises `Unprocessable` naming the token and position."""
        ids = checked_experiment_ids(experiment_ids)
        comparisons = parse_filter(check_filter_text(filter), ITERATIONS)
        orders = parse_order_by(checked_order_by(order_by), ITERATIONS)
        limit = check_max_results(max_results)
        offset = decode_page_token(page_token)
        ids = [i for i in ids if can_hold(it.c.experiment_id, i)]
        if not ids:
            return IterationPage([], None)
        self._settle_dead_runs(ids)
        dialect = self.engine.dialect.name
        with self._read() as conn:
            if orders and orders[0].key.entity == METRIC:
                rows = _ranked_page(conn, ids, comparisons, orders, dialect, offset, limit + 1)
            else:
                stmt = _statement(comparisons, orders, dialect)
                rows = list(conn.execute(stmt.offset(offset).limit(limit + 1), {"experiments": ids}))
            found = [_iteration(r) for r in rows[:limit]]
            more = len(rows) > limit
            watched = _watched(conn, found)  # type: ignore[arg-type]
        if watched:  # a run that died since the statement began is shown as it now is
            found = self._settled(found, watched)  # type: ignore[attr-defined,arg-type]
        return IterationPage(found, encode_page_token(offset + limit) if more else None)  # type: ignore[arg-type]

    def _settle_dead_runs(self, experiment_ids: list[int]) -> None:
        """Runs of these experiments whose process on this host died become KILLED before the search, so a
        filter on status sees the truth (as `get_iterations(status=...)` does)."""
        if not liveness.supported():
            return
        owners: set[tuple[int, float]] = set()
        with self._read() as conn:
            for experiment_id in experiment_ids:
                here = {"experiment": experiment_id, "host": liveness.this_host()}
                owners.update((row[0], row[1]) for row in conn.execute(_RUNNING_HERE, here))
        if owners:
            self._settled([], owners)  # type: ignore[attr-defined]


# -- compiling -------------------------------------------------------------------------------------------


def _ranked_page(
    conn: Any, ids: list[int], comparisons: list[Comparison], orders: list[Order], dialect: str, offset: int,
    count: int,
) -> list[Any]:
    """Rows `offset` to `offset + count` of a search whose first order is a metric, read in two parts: the
    iterations with a value of it, in value order from ix_metric_latest_key_value (a first page stops
    after a page's worth of matches instead of valuing every iteration), then those without one (no
    point, or NaN, as NULLS LAST puts them), as the one ordered statement would give them."""
    bound = {"experiments": ids}
    valued = _statement(comparisons, orders, dialect, part="valued")
    rows = list(conn.execute(valued.offset(offset).limit(count), bound))
    if len(rows) == count:
        return rows
    # The valued part ended on this page (it held offset + len(rows) rows), or before it: count it then.
    before = offset + len(rows) if rows or not offset else conn.execute(
        select(func.count()).select_from(valued.subquery()), bound).scalar_one()
    unvalued = _statement(comparisons, orders, dialect, part="unvalued")
    return rows + list(conn.execute(unvalued.offset(max(0, offset - before)).limit(count - len(rows)), bound))


def _statement(comparisons: list[Comparison], orders: list[Order], dialect: str, part: str = "") -> Any:
    """The search as one statement (the experiments bound as `experiments`). With `part`, the first order
    key is a metric and the statement gives one part of the order: "valued", the iterations with a
    value of it, driven from the latest-value table in value order; "unvalued", the rest."""
    keys = [c.key for c in comparisons] + [o.key for o in orders]
    depth = None
    stmt = select(it)
    if part:
        first, orders = orders[0], orders[1:]
        ml = t.metric_latest.alias("ranked")
        has_value = and_(ml.c.iteration_id == it.c.id, ml.c.key == first.key.key, ml.c.value.is_not(None))
        # "valued" is driven from the latest-value table; "unvalued" is every other match.
        stmt = stmt.join_from(ml, it, has_value) if part == "valued" else stmt.where(~exists().where(has_value))
    if Key(ATTRIBUTE, "depth") in keys:
        tree = _tree()
        stmt = stmt.join(tree, tree.c.id == it.c.id)
        depth = tree.c.depth
    stmt = stmt.where(it.c.experiment_id.in_(bindparam("experiments", expanding=True)))
    for comparison in comparisons:
        stmt = stmt.where(_condition(comparison, dialect, depth))
    order = []
    if part == "valued":
        # The index's order, ties by id (iteration_id is the index's last column, and equal to it.id).
        order.append(ml.c.value.asc() if first.ascending else ml.c.value.desc())
    for item in orders:
        value = _value(item.key, dialect, depth)
        if item.key.entity != METRIC and _is_text(item.key) and dialect == "postgresql":
            value = value.collate("C")  # code-point order, as SQLite's BINARY and Python's str
        # NULLS LAST rather than a `value IS NULL` key first: each key's subquery is evaluated once per row.
        order.append((value.asc() if item.ascending else value.desc()).nulls_last())
    return stmt.order_by(*order, it.c.id)


@functools.cache
def _tree() -> Any:
    """(id, depth) of every iteration of the searched experiments: roots at 0, each child one below its
    parent. Built once (building statements costs more than SQLite takes to run them); the ids are bound."""
    roots = select(it.c.id, literal(0).label("depth")).where(
        it.c.experiment_id.in_(bindparam("experiments", expanding=True)), it.c.parent_iteration_id.is_(None)
    )
    tree = roots.cte("iteration_tree", recursive=True)
    child = it.alias("child")
    return tree.union_all(select(child.c.id, tree.c.depth + 1).where(child.c.parent_iteration_id == tree.c.id))


def _is_text(key: Key) -> bool:
    return key.entity != METRIC and not (key.entity == ATTRIBUTE and key.key in ITERATIONS.numeric)


def _value(key: Key, dialect: str, depth: Any) -> Any:
    """The SQL expression of an iteration's value for `key` (NULL when it has none)."""
    if key == Key(ATTRIBUTE, "depth"):
        return depth
    return _stored_value(key, dialect)


@functools.lru_cache(maxsize=512)
def _stored_value(key: Key, dialect: str) -> Any:
    """`_value` of every key but depth, built once per key."""
    if key.entity == METRIC:
        return latest_value(key.key)  # one seek in the latest-value table
    if key.entity == PARAM:
        p = t.parameters.alias("p")
        return select(p.c.value).where(p.c.iteration_id == it.c.id, p.c.key == key.key).scalar_subquery()
    if key.entity != ATTRIBUTE:  # a tag: its smallest value among the labels with this key (see _tag)
        label, value, matching = _tag(key.key)
        return select(func.min(value)).select_from(label).where(matching).scalar_subquery()
    name = key.key
    if name in ("id", "experiment_id", "parent_iteration_id", *_TEXT_ATTRIBUTES):
        return it.c[name]
    if name == "status":
        return case({int(s): s.name for s in IterationStatus}, value=it.c.status)
    if name == "created":
        return it.c.created_date
    if name == "duration":
        if dialect == "postgresql":
            return func.extract("epoch", it.c.end_date - it.c.created_date)
        return (func.julianday(it.c.end_date) - func.julianday(it.c.created_date)) * 86400.0
    if name == "is_leaf":
        child = it.alias("leaf_child")
        return case((exists().where(child.c.parent_iteration_id == it.c.id), 0), else_=1)
    raise Unprocessable(f"attribute {name!r} cannot be searched", field="filter")


@functools.lru_cache(maxsize=512)
def _tag(key: str) -> tuple[Any, Any, Any]:
    """diary's tags are labels: `key=value` reads as tag `key` with that value, a label without `=` as
    tag `label` with the value ''. Returns the link joined to its tag, the value expression, and the
    condition that a label of this iteration has this key."""
    link, tag = t.iteration_tags.alias("tl"), t.tags.alias("tg")
    joined = link.join(tag, tag.c.id == link.c.tag_id)
    prefix = key + "="
    value = case((tag.c.value == key, literal("")), else_=func.substr(tag.c.value, len(prefix) + 1))
    matching = and_(
        link.c.iteration_id == it.c.id,
        or_(tag.c.value == key, func.substr(tag.c.value, 1, len(prefix)) == prefix),
    )
    return joined, value, matching


def _condition(comparison: Comparison, dialect: str, depth: Any) -> ColumnElement[bool]:
    key, op, wanted = comparison.key, comparison.op, comparison.value
    if key.entity not in (METRIC, PARAM, ATTRIBUTE):
        # A tag holds when some label with this key satisfies the comparison (IS NULL: none has the key).
        label, value, matching = _tag(key.key)
        found = exists(select(literal(1)).select_from(label).where(matching))
        if op == "IS NULL":
            return ~found
        if op == "IS NOT NULL":
            return found
        return exists(
            select(literal(1)).select_from(label).where(matching, _compare(value, op, wanted, dialect))
        )
    value = _value(key, dialect, depth)
    if key.entity == ATTRIBUTE and key.key == "created" and op not in ("IS NULL", "IS NOT NULL"):
        wanted = datetime.fromtimestamp(wanted, timezone.utc)
    return _compare(value, op, wanted, dialect)


def _compare(value: Any, op: str, wanted: Any, dialect: str) -> ColumnElement[bool]:
    if op == "IS NULL":
        return value.is_(None)
    if op == "IS NOT NULL":
        return value.is_not(None)
    if op == "IN":
        return value.in_(list(wanted))
    if op == "NOT IN":
        return value.not_in(list(wanted))
    if op == "LIKE":
        if dialect == "sqlite":  # SQLite's LIKE ignores ASCII case; GLOB is the case-sensitive match
            return value.op("GLOB")(_glob(wanted))
        return value.like(wanted.replace("\\", "\\\\"))  # a backslash is a plain character here
    if op == "ILIKE":
        if dialect == "sqlite":
            return value.like(wanted)
        return value.ilike(wanted.replace("\\", "\\\\"))
    return {
        "=": value.__eq__, "!=": value.__ne__, "<": value.__lt__, "<=": value.__le__, ">": value.__gt__,
        ">=": value.__ge__,
    }[op](wanted)


def _glob(pattern: str) -> str:
    """A LIKE pattern as SQLite GLOB: % and _ are the wildcards, every other character stands for itself."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(ch, ch) for ch in pattern)
