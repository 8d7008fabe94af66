"""MLflow's metrics: log-metric, log-batch (metrics with params and tags), get-history (paged).

Exactly once: MLflow's client retries a write whose answer it did not get, and a metric point's
identity in MLflow is (key, timestamp, step, value). A point already stored with that identity, or
repeated inside one request, is skipped, so a retried log-batch adds nothing; the check and the insert
run in one transaction that holds the run's row (PostgreSQL) or the database's write lock (SQLite).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from ...tracker import hotpath
from ...tracker import schema as t
from ...tracker.database import one_transaction, read_transaction
from ...tracker.validation import check_key
from ..permissions import Action
from . import inputs, store
from .endpoint import Args, Context, as_number, route, short
from .errors import invalid
from .mapping import decode_token, encode_token, ms
from .runs import _run_id, write_params, write_tags

router = APIRouter()
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTRIES = 1000, 100, 100, 1000
MAX_HISTORY_PAGE = 25_000
m = t.metrics


def _points(
    items: list[dict[str, Any]], *, single: bool = False
) -> tuple[list[tuple[str, float, int, int]], list[dict[str, Any]]]:
    """The points of a request (key, value, timestamp ms, step; MLflow takes negative steps too), and
    those linked to a model or dataset, as inputs.store_metric_links takes them. Fields are named as
    MLflow names them: `key` on log-metric (`single`), `metrics[0].key` in a batch; `key`, `value` and
    `timestamp` are required, as in MLflow's protos."""
    points, links = [], []
    for n, item in enumerate(items):
        at = "" if single else f"metrics[{n}]."
        key = item.get("key")
        if key is None or key == "":
            raise invalid(f"Missing value for required parameter '{at}key'.")
        if not isinstance(key, str):
            raise invalid(f"Invalid value {short(key)} for parameter '{at}key' supplied.")
        if len(key) > 250:
            raise invalid(f"Metric key '{key[:50]}...' had length {len(key)}, which exceeded length limit of 250")
        if item.get("value") is None:
            raise invalid(f"Missing value for required parameter '{at}value'.")
        value = as_number(item["value"], f"{at}value")
        if item.get("timestamp") is None:
            raise invalid(f"Missing value for required parameter '{at}timestamp'.")
        sub = Args({f"{at}{k}": v for k, v in item.items()}, from_query=False)
        timestamp = sub.integer(f"{at}timestamp", low=0, high=2**53) or 0
        step = sub.integer(f"{at}step", default=0) or 0
        points.append((key, value, timestamp, step))
        link = {f: sub.text(f"{at}{f}") for f in ("model_id", "dataset_name", "dataset_digest")}
        if any(link.values()):
            for field, limit in (("model_id", 64), ("dataset_name", 500), ("dataset_digest", 36)):
                if link[field] is not None and len(link[field]) > limit:
                    raise invalid(f"Parameter '{at}{field}' is over {limit} characters")
            links.append({"key": key, "value": value, "step": step, "timestamp": timestamp, **link})
    return points, links


def _identity(key: str, value: float, timestamp: int, step: int) -> tuple[Any, ...]:
    return key, step, timestamp, "NaN" if value != value else value


def write_metrics(conn: Any, iteration_id: int, points: list[tuple[str, float, int, int]]) -> int:
    """Insert the points not stored yet (by MLflow's identity); how many were new."""
    if not points:
        return 0
    keys = sorted({p[0] for p in points})
    steps = sorted({p[3] for p in points})
    seen = set()
    for chunk in range(0, len(steps), 900):
        stmt = select(m.c.key, m.c.value, m.c.recorded_at, m.c.step).where(
            m.c.iteration_id == iteration_id, m.c.key.in_(keys), m.c.step.in_(steps[chunk : chunk + 900])
        )
        seen.update(_identity(r.key, r.value, ms(r.recorded_at) or 0, r.step) for r in conn.execute(stmt))
    fresh = []
    for key, value, timestamp, step in points:
        identity = _identity(key, value, timestamp, step)
        if identity in seen:
            continue
        seen.add(identity)
        fresh.append((key, value, step, timestamp / 1000))
    for key in {p[0] for p in fresh}:
        check_key(key, "metric key")
    # Built here rather than by hotpath.metric_rows: MLflow's negative steps are kept as they were sent.
    rows = [(iteration_id, key, value if value == value else None, step, when) for key, value, step, when in fresh]
    if rows:
        hotpath.insert_rows(conn, rows)
    return len(rows)


@route(router, "POST", "/runs/log-metric")
def log_metric(ctx: Context, args: Args) -> dict[str, Any]:
    ref = store.run(ctx, _run_id(args), Action.CREATE)
    fields = ("key", "value", "timestamp", "step", "model_id", "dataset_name", "dataset_digest")
    item = {k: args.data.get(k) for k in fields if args.data.get(k) is not None}
    points, links = _points([item], single=True)
    with one_transaction(ctx.tracker.engine) as conn:
        store.lock_run(conn, ref.id)
        write_metrics(conn, ref.id, points)
        inputs.store_metric_links(conn, ref.id, links)
    return {}


@route(router, "POST", "/runs/log-batch")
def log_batch(ctx: Context, args: Args) -> dict[str, Any]:
    """Metrics, params and tags of one run, all or nothing (MLflow's limits: 1,000 metrics, 100 params,
    100 tags, 1,000 in all)."""
    ref = store.run(ctx, _run_id(args), Action.CREATE)
    points, links = _points(args.objects("metrics", limit=MAX_METRICS))
    params = args.pairs("params", limit=MAX_PARAMS)
    tags = args.pairs("tags", limit=MAX_TAGS)
    if len(points) + len(params) + len(tags) > MAX_ENTRIES:
        raise invalid(
            f"A batch logging request can contain at most {MAX_ENTRIES} metrics, params and tags in all. "
            f"Got {len(points) + len(params) + len(tags)}."
        )
    with one_transaction(ctx.tracker.engine) as conn:
        row = store.lock_run(conn, ref.id)
        write_params(conn, ref.id, params)
        write_tags(conn, row, tags)
        write_metrics(conn, ref.id, points)
        inputs.store_metric_links(conn, ref.id, links)
    return {}


@route(router, "GET", "/metrics/get-history")
def get_history(ctx: Context, args: Args) -> dict[str, Any]:
    ref = store.run(ctx, _run_id(args), Action.READ)
    key = args.text("metric_key", required=True) or ""
    limit = args.integer("max_results", default=MAX_HISTORY_PAGE, low=1, high=MAX_HISTORY_PAGE) or MAX_HISTORY_PAGE
    offset = decode_token(args.text("page_token"))
    stmt = (
        select(m.c.key, m.c.value, m.c.recorded_at, m.c.step)
        .where(m.c.iteration_id == ref.id, m.c.key == key)
        .order_by(m.c.step, m.c.recorded_at, m.c.id)
        .offset(offset)
        .limit(limit + 1)
    )
    with read_transaction(ctx.tracker.engine) as conn:
        rows = conn.execute(stmt).all()
    answer: dict[str, Any] = {
        "metrics": [store.metric_json(r.key, r.value, r.step, r.recorded_at) for r in rows[:limit]]
    }
    if len(rows) > limit:
        answer["next_page_token"] = encode_token(offset + limit)
    return answer
