"""MLflow 3's logged models (`log_model` creates one, uploads its files, then finalises it): create, get,
finalize, delete, set/delete tags, log params, search. A model's files live as resources of its
experiment under `models/<model_id>/artifacts/` (artifacts.py serves them)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import and_, delete, insert, or_, select, update

from ...tracker import schema as t
from ...tracker.database import one_transaction, read_transaction
from ..permissions import Action
from . import artifacts, inputs, runs, store
from .endpoint import Args, Context, route
from .errors import MlflowError, invalid, missing
from .mapping import decode_token, encode_token, entity_id
from .search import ATTRIBUTE, PARAM, TAG, Grammar, matches, parse_filter, parse_order_by

router = APIRouter()
lm, ml = t.mlflow_logged_models, t.mlflow_metric_links
STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
MODELS = Grammar(
    {
        "name": "name",
        "model_id": "model_id",
        "source_run_id": "source_run_id",
        "status": "status",
        "model_type": "model_type",
        "creation_timestamp": "creation_timestamp_ms",
        "creation_time": "creation_timestamp_ms",
        "last_updated_timestamp": "last_updated_timestamp_ms",
    },
    frozenset({"creation_timestamp_ms", "last_updated_timestamp_ms"}),
)


def _now() -> int:
    return int(time.time() * 1000)


def _json(row: Any, metrics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    tags, params = json.loads(row.tags), json.loads(row.params)
    info = {
        "model_id": row.model_id,
        "experiment_id": str(row.experiment_id),
        "name": row.name,
        "creation_timestamp_ms": row.creation_time,
        "last_updated_timestamp_ms": row.last_update_time,
        "artifact_uri": f"mlflow-artifacts:/{row.experiment_id}/models/{row.model_id}/artifacts",
        "status": row.status,
        "model_type": row.model_type,
        "status_message": row.status_message,
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
    }
    if row.source_run_id is not None:
        info["source_run_id"] = str(row.source_run_id)
    elif row.source_run_text:
        info["source_run_id"] = row.source_run_text
    return {
        "info": info,
        "data": {"params": [{"key": k, "value": v} for k, v in sorted(params.items())], "metrics": metrics or []},
    }


def _with_metrics(conn: Any, rows: list[Any]) -> list[dict[str, Any]]:
    metrics = inputs.model_metrics(conn, [r.model_id for r in rows])
    return [_json(r, metrics[r.model_id]) for r in rows]


def _model(ctx: Context, model_id: str, action: Action) -> Any:
    project = ctx.allow(action)
    with read_transaction(ctx.tracker.engine) as conn:
        row = conn.execute(
            select(lm, t.experiments.c.project_id)
            .join(t.experiments, t.experiments.c.id == lm.c.experiment_id)
            .where(lm.c.model_id == model_id)
        ).first()
    if row is None or row.project_id != project:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Logged model with ID '{model_id}' not found")
    return row


def _pairs_json(pairs: list[tuple[str, str]]) -> dict[str, str]:
    for key, value in pairs:
        store.check_tag(key, value)
    return dict(pairs)


@route(router, "POST", "/logged-models")
def create_model(ctx: Context, args: Args) -> dict[str, Any]:
    found = store.experiment(ctx, args.text("experiment_id", required=True), Action.CREATE)
    name = args.text("name") or runs.new_name()  # as MLflow names an unnamed logged model: not one shared name
    if len(name) > 250:
        raise invalid(f"name has length {len(name)}, over the limit of 250")
    source = args.text("source_run_id")
    run_id, run_text = None, None
    if source:
        if len(source) > 64:
            raise invalid(f"source_run_id has length {len(source)}, over the limit of 64")
        try:
            run_id = store.run(ctx, source, Action.CREATE).id
        except MlflowError as exc:  # MLflow keeps a source run id it does not know, as it was sent
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
            run_text = source
    tags, params = _pairs_json(args.pairs("tags")), _pairs_json(args.pairs("params"))
    model_id = f"m-{uuid.uuid4().hex}"
    now = _now()
    with one_transaction(ctx.tracker.engine) as conn:
        store.ensure_writable_experiment(conn, found.id)
        conn.execute(
            insert(lm).values(
                model_id=model_id,
                experiment_id=found.id,
                name=name,
                source_run_id=run_id,
                source_run_text=run_text,
                model_type=(args.text("model_type") or "")[:250],
                status="LOGGED_MODEL_PENDING",
                status_message="",
                creator=ctx.user.username,
                creation_time=now,
                last_update_time=now,
                tags=json.dumps(tags),
                params=json.dumps(params),
            )
        )
        row = conn.execute(select(lm).where(lm.c.model_id == model_id)).one()
        return {"model": _json(row)}


@route(router, "GET", "/logged-models/{model_id}")
def get_model(ctx: Context, args: Args) -> dict[str, Any]:
    row = _model(ctx, args.path["model_id"], Action.READ)
    with read_transaction(ctx.tracker.engine) as conn:
        return {"model": _with_metrics(conn, [row])[0]}


def _change(ctx: Context, model_id: str, **values: Any) -> dict[str, Any]:
    _model(ctx, model_id, Action.UPDATE)
    with one_transaction(ctx.tracker.engine) as conn:
        conn.execute(update(lm).where(lm.c.model_id == model_id).values(last_update_time=_now(), **values))
        return {"model": _json(conn.execute(select(lm).where(lm.c.model_id == model_id)).one())}


@route(router, "PATCH", "/logged-models/{model_id}")
def finalize_model(ctx: Context, args: Args) -> dict[str, Any]:
    status = args.data.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and 1 <= status <= 3:
        status = STATUSES[status - 1]
    if status not in STATUSES:
        raise invalid(f"Invalid value {json.dumps(status)} for parameter 'status' supplied: "
            f"use one of {list(STATUSES)}")
    return _change(ctx, args.path["model_id"], status=status)


@route(router, "DELETE", "/logged-models/{model_id}")
def delete_model(ctx: Context, args: Args) -> dict[str, Any]:
    row = _model(ctx, args.path["model_id"], Action.DELETE)
    with one_transaction(ctx.tracker.engine) as conn:
        conn.execute(delete(lm).where(lm.c.model_id == row.model_id))
    return {}


@route(router, "PATCH", "/logged-models/{model_id}/tags")
def set_model_tags(ctx: Context, args: Args) -> dict[str, Any]:
    row = _model(ctx, args.path["model_id"], Action.UPDATE)
    tags = {**json.loads(row.tags), **_pairs_json(args.pairs("tags"))}
    _change(ctx, row.model_id, tags=json.dumps(tags))
    return {}


@route(router, "DELETE", "/logged-models/{model_id}/tags/{tag_key:path}")
def delete_model_tag(ctx: Context, args: Args) -> dict[str, Any]:
    row = _model(ctx, args.path["model_id"], Action.UPDATE)
    tags = json.loads(row.tags)
    key = args.path["tag_key"]
    if key not in tags:
        raise missing(f"No tag with key {key!r} found for model with ID {row.model_id!r}.")
    del tags[key]
    _change(ctx, row.model_id, tags=json.dumps(tags))
    return {}


@route(router, "POST", "/logged-models/{model_id}/params")
def log_model_params(ctx: Context, args: Args) -> dict[str, Any]:
    row = _model(ctx, args.path["model_id"], Action.UPDATE)
    params = {**json.loads(row.params), **_pairs_json(args.pairs("params"))}
    _change(ctx, row.model_id, params=json.dumps(params))
    return {}


def _dataset_filter(items: Any) -> list[tuple[str, str | None]]:
    """search_logged_models(datasets=[{"dataset_name", "dataset_digest"?}]): models with a metric on one."""
    if not items:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise invalid("Invalid value for parameter 'datasets' supplied: expected a list of objects")
    out = []
    for n, item in enumerate(items):
        name, digest = item.get("dataset_name"), item.get("dataset_digest")
        if not isinstance(name, str) or not name:
            raise invalid(f"Missing value for required parameter 'datasets[{n}].dataset_name'")
        out.append((name, digest if isinstance(digest, str) and digest else None))
    return out


@route(router, "POST", "/logged-models/search")
def search_models(ctx: Context, args: Args) -> dict[str, Any]:
    limit = args.integer("max_results", default=100, low=1, high=50_000) or 100
    comparisons = parse_filter(args.text("filter"), MODELS)
    orders = args.data.get("order_by") or []
    if not isinstance(orders, list):
        raise invalid("order_by must be a list")
    order_keys = parse_order_by(
        [
            o.get("field_name", "") + ("" if o.get("ascending", True) else " DESC")
            for o in orders
            if isinstance(o, dict)
        ],
        MODELS,
    )
    offset = decode_token(args.text("page_token"))
    project = ctx.project_id()
    if project is None:
        return {"models": []}
    ctx.allow(Action.READ)
    ids = [i for i in (entity_id(e, "experiment") for e in args.strings("experiment_ids")) if i is not None]
    with read_transaction(ctx.tracker.engine) as conn:
        stmt = (
            select(lm)
            .join(t.experiments, t.experiments.c.id == lm.c.experiment_id)
            .where(t.experiments.c.project_id == project)
        )
        if ids:
            stmt = stmt.where(lm.c.experiment_id.in_(ids))
        datasets = _dataset_filter(args.data.get("datasets"))
        if datasets:
            linked = select(ml.c.model_id).where(or_(*[
                and_(ml.c.dataset_name == name, *([ml.c.dataset_digest == digest] if digest else []))
                for name, digest in datasets
            ]))
            stmt = stmt.where(lm.c.model_id.in_(linked))
        rows = list(conn.execute(stmt.order_by(lm.c.creation_time.desc(), lm.c.model_id)))
        docs = _with_metrics(conn, rows)

    def value(doc: dict[str, Any], key: Any) -> Any:
        if key.entity == ATTRIBUTE:
            return doc["info"].get(key.key)
        items = doc["data"]["params"] if key.entity == PARAM else doc["info"]["tags"] if key.entity == TAG else []
        return next((i["value"] for i in items if i["key"] == key.key), None)

    for comparison in comparisons:
        docs = [d for d in docs if matches(comparison, value(d, comparison.key))]
    for order in reversed(order_keys):
        present = [d for d in docs if value(d, order.key) is not None]
        absent = [d for d in docs if value(d, order.key) is None]
        present.sort(key=lambda d, o=order: value(d, o.key), reverse=not order.ascending)
        docs = present + absent
    answer: dict[str, Any] = {"models": docs[offset : offset + limit]}
    if offset + limit < len(docs):
        answer["next_page_token"] = encode_token(offset + limit)
    return answer


# --- a logged model's files (the UI's model page reads them) ---------------------------------------------


def _files_root(row: Any) -> str:
    return f"models/{row.model_id}/artifacts"


@route(router, "GET", "/logged-models/{model_id}/artifacts/directories")
def list_model_artifacts(ctx: Context, args: Args) -> dict[str, Any]:
    """The files and directories under `artifact_directory_path` of a logged model's artifacts."""
    row = _model(ctx, args.path["model_id"], Action.READ)
    path = (args.text("artifact_directory_path") or "").strip("/")
    if path:
        artifacts.checked_path(path)
    prefix = f"{path}/" if path else ""
    files = artifacts.children(ctx, row.experiment_id, f"{_files_root(row)}/{path}".rstrip("/"))
    return {"root_uri": _json(row)["info"]["artifact_uri"], "files": [{**f, "path": prefix + f["path"]} for f in files]}


@route(router, "GET", "/logged-models/{model_id}/artifacts/files")
def get_model_artifact(ctx: Context, args: Args) -> Response:
    """One file of a logged model's artifacts (`artifact_file_path`), as bytes."""
    row = _model(ctx, args.path["model_id"], Action.READ)
    path = (args.text("artifact_file_path", required=True) or "").strip("/")
    artifacts.checked_path(path)
    data = artifacts.read(ctx, row.experiment_id, f"{_files_root(row)}/{path}")
    if data is None:
        raise missing(f"No artifact at path {path[:100]!r} of logged model {row.model_id!r}")
    return Response(data, media_type="application/octet-stream")
