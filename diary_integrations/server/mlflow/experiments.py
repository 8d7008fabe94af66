"""MLflow's experiments: create, get, get-by-name, search, update, delete, restore, (set|delete)-experiment-tag.

Deleting is MLflow's soft delete (the experiment and its runs stay, marked deleted, until restored);
diary's own `DELETE /experiment/{id}` is the hard one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from ...tracker import schema as t
from ...tracker.database import one_transaction, read_transaction
from ...tracker.errors import Conflict
from ..errors import ApiError
from ..permissions import Action
from . import store
from .endpoint import Args, Context, route
from .errors import MlflowError
from .mapping import ACTIVE, DEFAULT_EXPERIMENT, DELETED, artifact_location, decode_token, encode_token
from .search import ATTRIBUTE, EXPERIMENTS, TAG, matches, parse_filter, parse_order_by

router = APIRouter()
MAX_EXPERIMENTS_PAGE = 50_000


@route(router, "POST", "/experiments/create")
def create_experiment(ctx: Context, args: Args) -> dict[str, Any]:
    name = args.text("name", required=True)
    location = args.text("artifact_location")
    tags = args.pairs("tags")
    project = ctx.allow(Action.CREATE)
    engine = ctx.tracker.engine
    try:
        with one_transaction(engine) as conn:
            new = ctx.tracker.create_experiment(project, 1, name)
            store.upsert_tags(conn, t.mlflow_experiment_tags, "experiment_id", new.id, tags)
            store.set_experiment_row(conn, new.id, lifecycle_stage=ACTIVE,
                                     artifact_location=(artifact_location(location) if location
                                                        else ctx.default_location(new.id)))
    except Conflict:
        raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.") from None
    return {"experiment_id": str(new.id)}


@route(router, "GET", "/experiments/get")
def get_experiment(ctx: Context, args: Args) -> dict[str, Any]:
    found = store.experiment(ctx, args.text("experiment_id", required=True), Action.READ)
    with read_transaction(ctx.tracker.engine) as conn:
        return {"experiment": store.experiment_json(conn, found)}


@route(router, "GET", "/experiments/get-by-name")
def get_experiment_by_name(ctx: Context, args: Args) -> dict[str, Any]:
    name = args.text("experiment_name", required=True)
    project = ctx.project_id()
    found = None
    if project is not None:
        ctx.allow(Action.READ)
        found = ctx.tracker.get_experiment_by_name(project, name) if name and len(name) <= 250 else None
    if found is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'")
    with read_transaction(ctx.tracker.engine) as conn:
        return {"experiment": store.experiment_json(conn, found)}


def _search(ctx: Context, args: Args) -> dict[str, Any]:
    limit = args.integer("max_results", default=1000, low=1, high=MAX_EXPERIMENTS_PAGE)
    comparisons = parse_filter(args.text("filter"), EXPERIMENTS)
    orders = parse_order_by(args.strings("order_by"), EXPERIMENTS)
    for item in [c.key for c in comparisons] + [o.key for o in orders]:
        if item.entity not in (TAG, ATTRIBUTE):
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"Invalid key {item.entity}.{item.key} for experiments: "
                "use name, creation_time, last_update_time or tags.<key>",
            )
    view = _view(args.text("view_type", default="ACTIVE_ONLY"))
    offset = decode_token(args.text("page_token"))
    project = ctx.project_id()
    if project is None or ctx.tracker.get_experiment_by_name(project, DEFAULT_EXPERIMENT) is None:
        # MLflow lists "Default" before anything was logged: made now, if the caller may write.
        try:
            store.experiment(ctx, "0", Action.CREATE)
        except (ApiError, MlflowError):
            pass
        project = ctx.project_id()
    if project is None:
        return {"experiments": []}
    ctx.allow(Action.READ)
    with read_transaction(ctx.tracker.engine) as conn:
        docs = [store.experiment_json(conn, e) for e in ctx.tracker.get_experiments(project)]
    docs = [d for d in docs if view is None or d["lifecycle_stage"] == view]
    for comparison in comparisons:
        docs = [d for d in docs if matches(comparison, _experiment_value(d, comparison.key))]
    for order in reversed(orders or []):
        present = [d for d in docs if _experiment_value(d, order.key) is not None]
        absent = [d for d in docs if _experiment_value(d, order.key) is None]
        present.sort(key=lambda d, o=order: _experiment_value(d, o.key), reverse=not order.ascending)
        docs = present + absent
    if not orders:
        docs.sort(key=lambda d: (-d["creation_time"], -int(d["experiment_id"])))
    page = docs[offset : offset + limit]
    answer: dict[str, Any] = {"experiments": page}
    if offset + limit < len(docs):
        answer["next_page_token"] = encode_token(offset + limit)
    return answer


def _experiment_value(doc: dict[str, Any], key: Any) -> Any:
    if key.entity == TAG:
        return next((tag["value"] for tag in doc["tags"] if tag["key"] == key.key), None)
    return doc[key.key]


def _view(text: str | None) -> str | None:
    views = {"ACTIVE_ONLY": ACTIVE, "DELETED_ONLY": DELETED, "ALL": None, "1": ACTIVE, "2": DELETED, "3": None}
    if text not in views:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid view_type {text!r}: ACTIVE_ONLY, DELETED_ONLY or ALL")
    return views[text]


search_post = route(router, "POST", "/experiments/search")(_search)
search_get = route(router, "GET", "/experiments/search")(_search)


@route(router, "POST", "/experiments/update")
def update_experiment(ctx: Context, args: Args) -> dict[str, Any]:
    found = store.experiment(ctx, args.text("experiment_id", required=True), Action.UPDATE)
    new_name = args.text("new_name")
    if new_name:
        with one_transaction(ctx.tracker.engine) as conn:
            store.ensure_writable_experiment(conn, found.id)
            try:
                ctx.tracker.update_experiment(found.id, name=new_name)
            except Conflict:
                raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment(name={new_name}) already exists.") from None
            store.set_experiment_row(conn, found.id)
    return {}


def _set_stage(ctx: Context, args: Args, stage: str) -> dict[str, Any]:
    found = store.experiment(ctx, args.text("experiment_id", required=True), Action.DELETE)
    with one_transaction(ctx.tracker.engine) as conn:
        store.set_experiment_row(conn, found.id, lifecycle_stage=stage)
        # MLflow's delete takes the experiment's runs along (and restore brings them back).
        ids = select(t.iterations.c.id).where(t.iterations.c.experiment_id == found.id)
        for (iteration_id,) in conn.execute(ids).all():
            store.set_run_row(conn, iteration_id, lifecycle_stage=stage)
    return {}


@route(router, "POST", "/experiments/delete")
def delete_experiment(ctx: Context, args: Args) -> dict[str, Any]:
    return _set_stage(ctx, args, DELETED)


@route(router, "POST", "/experiments/restore")
def restore_experiment(ctx: Context, args: Args) -> dict[str, Any]:
    return _set_stage(ctx, args, ACTIVE)


@route(router, "POST", "/experiments/set-experiment-tag")
def set_experiment_tag(ctx: Context, args: Args) -> dict[str, Any]:
    found = store.experiment(ctx, args.text("experiment_id", required=True), Action.UPDATE)
    key = args.text("key", required=True) or ""
    value = args.text("value", default="") or ""
    with one_transaction(ctx.tracker.engine) as conn:
        store.ensure_writable_experiment(conn, found.id)
        store.upsert_tags(conn, t.mlflow_experiment_tags, "experiment_id", found.id, [(key, value)])
        store.set_experiment_row(conn, found.id)
    return {}


@route(router, "POST", "/experiments/delete-experiment-tag")
def delete_experiment_tag(ctx: Context, args: Args) -> dict[str, Any]:
    found = store.experiment(ctx, args.text("experiment_id", required=True), Action.UPDATE)
    key = args.text("key", required=True) or ""
    with one_transaction(ctx.tracker.engine) as conn:
        if not store.remove_tag(conn, t.mlflow_experiment_tags, "experiment_id", found.id, key):
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No tag with name: {key} in experiment {found.id}")
    return {}
