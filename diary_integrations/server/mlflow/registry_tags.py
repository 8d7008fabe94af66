"""Tags of registered models and model versions (MLflow's registry tags) over diary's `model_tag` and
`model_version_tag` tables (migration 0013): one row per key of a diary model or model version, gone with
it. Writing and reading them, and tag clauses of the registry's search filters (`tags.key = 'value'`,
`!=`, `LIKE`, `ILIKE`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, select

from ...tracker import schema as t
from ...tracker.database import read_transaction
from . import store
from .endpoint import Context
from .errors import invalid

MAX_KEY, MAX_VALUE = 250, 100_000  # MLflow's registry limits (a run tag's value is limited to 8,000)

# What a version's tags look up by: (model tags, version tags) tables and their owner columns.
MODEL, VERSION = (t.model_tags, "model_id"), (t.model_version_tags, "model_version_id")


def check(key: str, value: str) -> None:
    """MLflow's registry tag limits; a bad tag is refused before anything is written."""
    if not key.strip():
        raise invalid("Missing value for required parameter 'key'.")
    if len(key) > MAX_KEY:
        raise invalid(f"Tag key '{key[:50]}...' had length {len(key)}, which exceeded length limit of {MAX_KEY}")
    if len(value) > MAX_VALUE:
        raise invalid(f"Tag value for key '{key[:50]}' had length {len(value)}, which exceeded length limit of "
                      f"{MAX_VALUE}")


def write(conn: Connection, which: tuple[Any, str], owner: int, pairs: Iterable[tuple[str, str]]) -> None:
    """Set tags of a model or version (the last value of a repeated key wins)."""
    pairs = list(pairs)
    for key, value in pairs:
        check(key, value)
    table, column = which
    store.upsert_tags(conn, table, column, owner, pairs)


def read(conn: Connection, which: tuple[Any, str], owners: list[int]) -> dict[int, dict[str, str]]:
    """Each owner's tags as a dict (owners without tags map to {})."""
    table, column = which
    out: dict[int, dict[str, str]] = {owner: {} for owner in owners}
    if owners:
        rows = conn.execute(select(table.c[column], table.c.key, table.c.value).where(table.c[column].in_(owners))
                            .order_by(table.c.key))
        for owner, key, value in rows:
            out[owner][key] = value
    return out


def as_json(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def tags_of(ctx: Context, which: tuple[Any, str], owner: int) -> dict[str, str]:
    with read_transaction(ctx.tracker.engine) as conn:
        return read(conn, which, [owner])[owner]


# --- filters -------------------------------------------------------------------------------------------

PROMPT_KEY = "mlflow.prompt.is_prompt"
_TAG_CLAUSE = re.compile(r"^\s*tags?\.(`[^`]*`|\"[^\"]*\"|[\w.\-/]+)\s*(=|!=|LIKE|ILIKE)\s*'((?:[^']|'')*)'\s*$",
                         re.IGNORECASE)

Tags = dict[str, str]


def like(value: str, *, case: bool = True) -> re.Pattern[str]:
    """SQL LIKE as a regular expression (`%` any run, `_` one character)."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
    return re.compile(f"^{body}$", re.DOTALL | (0 if case else re.IGNORECASE))


def parse_tag_clause(clause: str) -> tuple[str, str, str] | None:
    """(key, operator, value) of one `tags.<key> <op> '<value>'` clause; None when it is not about tags."""
    found = _TAG_CLAUSE.match(clause)
    if found is None:
        return None
    key = found.group(1)
    if key[0] in "`\"":
        key = key[1:-1]
    return key, found.group(2).upper(), found.group(3).replace("''", "'")


def _test(key: str, op: str, value: str) -> Callable[[Tags], bool]:
    # As MLflow's SQL store: a clause on a key holds only for an owner that has the key (`!=` included).
    if op == "=":
        return lambda tags: tags.get(key) == value
    if op == "!=":
        return lambda tags: key in tags and tags[key] != value
    pattern = like(value, case=op == "LIKE")
    return lambda tags: key in tags and pattern.match(tags[key]) is not None


def tags_predicate(clauses: list[tuple[str, str, str]]) -> Callable[[Tags], bool]:
    """All the tag clauses of a filter as one predicate on a tags dict.

    Prompts (MLflow keeps them as registered models tagged `mlflow.prompt.is_prompt = 'true'`) are left out
    unless the filter asks for them (`= 'true'` or `!= 'false'` on that key), as MLflow's registry does;
    its client adds `tags.mlflow.prompt.is_prompt != 'true'` to every model search."""
    asking = any(k == PROMPT_KEY and ((op == "=" and v.lower() == "true") or (op == "!=" and v.lower() == "false"))
                 for k, op, v in clauses)
    tests = [_test(k, op, v) for k, op, v in clauses if asking or k != PROMPT_KEY]
    if not asking:
        tests.append(lambda tags: tags.get(PROMPT_KEY) != "true")
    return lambda tags: all(test(tags) for test in tests)
