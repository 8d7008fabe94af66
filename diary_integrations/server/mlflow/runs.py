"""MLflow's runs: create, get, update, delete, restore, search, log-parameter, set-tag, delete-tag, log-inputs.

Every write is safe to repeat, since MLflow's client retries and sends no idempotency key: a tag set
twice is set once, a parameter logged again with its value is a no-op (another value is refused, as
MLflow refuses it) and an update to the status a run already has changes nothing. Deleting a tag that
is not there is RESOURCE_DOES_NOT_EXIST, as MLflow answers (a client that retried a delete whose
answer it lost reads that). Only `runs/create` makes something new each time, as in MLflow.
"""

from __future__ import annotations

import random
import time
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select, update

from ...tracker import schema as t
from ...tracker.database import one_transaction, read_transaction
from ...tracker.enums import IterationStatus
from ...tracker.errors import Conflict
from ...tracker.local.parameters import store_parameters
from ..permissions import Action
from . import inputs, store
from .endpoint import Args, Context, route
from .errors import MlflowError, invalid
from .mapping import (
    ACTIVE,
    DELETED,
    ERROR,
    NOTE,
    PARENT_RUN,
    RUN_NAME,
    TO_MLFLOW,
    decode_token,
    encode_token,
    from_ms,
    ms,
    run_artifact_uri,
    status_of,
)
from .search import ATTRIBUTE, METRIC, Key, matches, parse_filter, parse_order_by

router = APIRouter()
MAX_RESULTS = 50_000
_WORDS = (
    "amber",
    "brisk",
    "calm",
    "deft",
    "eager",
    "fond",
    "grand",
    "hazy",
    "keen",
    "lucid",
    "mellow",
    "nimble",
    "otter",
    "pike",
    "quail",
    "raven",
    "seal",
    "tern",
    "vole",
    "wren",
    "yak",
    "zebu",
    "ibis",
    "lynx",
)


def new_name() -> str:
    # MLflow names an unnamed run with two words and a number; so does this (not unique, as there).
    return f"{random.choice(_WORDS[:12])}-{random.choice(_WORDS[12:])}-{random.randint(0, 999)}"


def _run_id(args: Args) -> str:
    found = args.text("run_id") or args.text("run_uuid")
    if not found:
        raise invalid("Missing value for required parameter 'run_id'.")
    return found


@route(router, "POST", "/runs/create")
def create_run(ctx: Context, args: Args) -> dict[str, Any]:
    found = store.experiment(ctx, args.text("experiment_id", default="0"), Action.CREATE)
    tags = dict(args.pairs("tags"))
    start = args.integer("start_time", low=0)
    name = args.text("run_name") or tags.get(RUN_NAME) or new_name()
    tags[RUN_NAME] = name
    # With auth on, the run is the authenticated user's (the client's own claim could name anyone).
    claimed = args.text("user_id")
    user = ctx.user.username if ctx.state.settings.enable_auth or not claimed else claimed
    engine = ctx.tracker.engine
    with one_transaction(engine) as conn:
        store.ensure_writable_experiment(conn, found.id)
        for key, value in tags.items():
            store.check_tag(key, value)
        if len(name) > 250:
            raise invalid(f"run_name has length {len(name)}, over the limit of 250")
        new = ctx.tracker.create_iteration(found.id, notes=tags.get(NOTE, ""), snapshot=False, name=name)
        if tags.get(PARENT_RUN):  # a parent that is no run of this experiment stays a tag, as MLflow keeps it
            store.apply_system_tags(conn, store.lock_run(conn, new.id), {PARENT_RUN: tags[PARENT_RUN]})
        store.set_run_row(
            conn,
            new.id,
            lifecycle_stage=ACTIVE,
            start_time=int(time.time() * 1000) if start is None else start,
            user_id=user[:250],
        )
        store.upsert_tags(conn, t.mlflow_run_tags, "iteration_id", new.id, list(tags.items()))
        (run,) = store.runs_json(conn, [new.id])
    return {"run": run}


@route(router, "GET", "/runs/get")
def get_run(ctx: Context, args: Args) -> dict[str, Any]:
    ref = store.run(ctx, _run_id(args), Action.READ)
    with read_transaction(ctx.tracker.engine) as conn:
        (run,) = store.runs_json(conn, [ref.id])
    return {"run": run}


def error_text(conn: Any, iteration_id: int) -> str:
    """What a FAILED run keeps as its error message: the `diary.error` tag, else MLflow's note."""
    tags = dict(
        conn.execute(
            select(t.mlflow_run_tags.c.key, t.mlflow_run_tags.c.value).where(
                t.mlflow_run_tags.c.iteration_id == iteration_id, t.mlflow_run_tags.c.key.in_([ERROR, NOTE])
            )
        ).all()
    )
    return tags.get(ERROR) or tags.get(NOTE) or ""


@route(router, "POST", "/runs/update")
def update_run(ctx: Context, args: Args) -> dict[str, Any]:
    ref = store.run(ctx, _run_id(args), Action.UPDATE)
    status = None if args.data.get("status") is None else status_of(args.data["status"])
    end_time = args.integer("end_time", low=0)
    name = args.text("run_name")
    tracker = ctx.tracker
    with one_transaction(tracker.engine) as conn:
        row = store.lock_run(conn, ref.id)
        if name:
            store.apply_system_tags(conn, row, {RUN_NAME: name})
            store.upsert_tags(conn, t.mlflow_run_tags, "iteration_id", ref.id, [(RUN_NAME, name)])
        if status is not None:
            _set_status(tracker, conn, ref.id, IterationStatus(row.status), status, end_time)
        (run,) = store.runs_json(conn, [ref.id])
    return {"run_info": run["info"]}


def _set_status(
    tracker: Any, conn: Any, iteration_id: int, current: IterationStatus, status: IterationStatus, end_time: int | None
) -> None:
    """MLflow's update-run is the client's word on its run: RUNNING reopens an ended run (MLflow's resume),
    an ending ends it (a FAILED one with its error text); the status it already has changes nothing, so
    a retried update is harmless."""
    if status is IterationStatus.RUNNING:
        if current.ended:
            tracker.update_iteration(iteration_id, status=status, error_message="", traceback="")
        return
    if current is status:
        return
    message = error_text(conn, iteration_id) if status is IterationStatus.FAILED else ""
    if current is IterationStatus.RUNNING:
        tracker.end_iteration(iteration_id, status, error_message=message)
    else:
        tracker.update_iteration(iteration_id, status=status, error_message=message)
    if end_time is not None:
        tracker.update_iteration(iteration_id, end_date=from_ms(end_time))


def _set_stage(ctx: Context, args: Args, stage: str) -> dict[str, Any]:
    ref = store.run(ctx, _run_id(args), Action.DELETE)
    with one_transaction(ctx.tracker.engine) as conn:
        store.set_run_row(conn, ref.id, lifecycle_stage=stage)
    return {}


@route(router, "POST", "/runs/delete")
def delete_run(ctx: Context, args: Args) -> dict[str, Any]:
    return _set_stage(ctx, args, DELETED)


@route(router, "POST", "/runs/restore")
def restore_run(ctx: Context, args: Args) -> dict[str, Any]:
    return _set_stage(ctx, args, ACTIVE)


# --- params and tags (log-batch in metrics.py writes them with these too) ---------------------------


def write_params(conn: Any, iteration_id: int, pairs: list[tuple[str, str]]) -> None:
    wanted: dict[str, str] = {}
    for key, value in pairs:
        if len(key) > 250:
            raise invalid(f"Param key '{key[:50]}...' had length {len(key)}, which exceeded length limit of 250")
        if len(value) > store.MAX_PARAM_VALUE:
            raise invalid(
                f"Param value for key '{key[:50]}' had length {len(value)}, which exceeded length limit "
                f"of {store.MAX_PARAM_VALUE}"
            )
        if key in wanted and wanted[key] != value:
            raise invalid(
                f"Duplicate parameter keys have been submitted: [{key!r}]. Please ensure the request "
                "contains only one param value per param key."
            )
        wanted[key] = value
    if not wanted:
        return
    try:
        store_parameters(conn, {iteration_id: wanted})
    except Conflict as exc:
        raise invalid(f"Changing param values is not allowed for run ID={iteration_id}: {exc.message}") from None


def write_tags(conn: Any, row: Any, pairs: list[tuple[str, str]]) -> None:
    if not pairs:
        return
    tags = dict(pairs)
    store.upsert_tags(conn, t.mlflow_run_tags, "iteration_id", row.id, list(tags.items()))
    store.apply_system_tags(conn, row, tags)
    if (ERROR in tags or NOTE in tags) and row.status == int(IterationStatus.FAILED):
        # Error text sent after the FAILED ending still becomes the run's error message.
        conn.execute(
            update(t.iterations).where(t.iterations.c.id == row.id).values(error_message=error_text(conn, row.id))
        )


@route(router, "POST", "/runs/log-parameter")
def log_parameter(ctx: Context, args: Args) -> dict[str, Any]:
    ref = store.run(ctx, _run_id(args), Action.CREATE)
    key = args.text("key", required=True) or ""
    pair = (key, args.strict_text("value"))
    with one_transaction(ctx.tracker.engine) as conn:
        store.lock_run(conn, ref.id)
        write_params(conn, ref.id, [pair])
    return {}


@route(router, "POST", "/runs/set-tag")
def set_tag(ctx: Context, args: Args) -> dict[str, Any]:
    ref = store.run(ctx, _run_id(args), Action.UPDATE)
    key = args.text("key", required=True) or ""
    pair = (key, args.strict_text("value"))
    with one_transaction(ctx.tracker.engine) as conn:
        row = store.lock_run(conn, ref.id)
        store.check_active_run(conn, ref.id)
        write_tags(conn, row, [pair])
    return {}


@route(router, "POST", "/runs/delete-tag")
def delete_tag(ctx: Context, args: Args) -> dict[str, Any]:
    ref = store.run(ctx, _run_id(args), Action.UPDATE)
    key = args.text("key", required=True) or ""
    with one_transaction(ctx.tracker.engine) as conn:
        row = store.lock_run(conn, ref.id)
        store.check_active_run(conn, ref.id)
        removed = store.remove_tag(conn, t.mlflow_run_tags, "iteration_id", ref.id, key)
        if key == PARENT_RUN and row.parent_iteration_id is not None:
            removed = True
            conn.execute(update(t.iterations).where(t.iterations.c.id == row.id).values(parent_iteration_id=None))
        if not removed:  # as MLflow answers (so a retried delete reads as gone, as there)
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No tag with name: {key} in run with id {ref.id}")
    return {}


@route(router, "POST", "/runs/log-inputs")
def log_inputs(ctx: Context, args: Args) -> dict[str, Any]:
    """The run's datasets (with their input tags) and logged-model inputs, stored (inputs.py)."""
    ref = store.run(ctx, _run_id(args), Action.CREATE)
    datasets = inputs.checked_datasets(args.objects("datasets", limit=1000))
    models = inputs.checked_models(args.objects("models", limit=1000), with_step=False)
    with one_transaction(ctx.tracker.engine) as conn:
        store.lock_run(conn, ref.id)
        inputs.store_inputs(conn, ref.id, ref.experiment_id, datasets, models)
    return {}


@route(router, "POST", "/runs/outputs")
def log_outputs(ctx: Context, args: Args) -> dict[str, Any]:
    """MLflow 3's logged models a run produced (at a step), stored (inputs.py)."""
    ref = store.run(ctx, _run_id(args), Action.CREATE)
    models = inputs.checked_models(args.objects("models", limit=1000), with_step=True)
    with one_transaction(ctx.tracker.engine) as conn:
        store.lock_run(conn, ref.id)
        inputs.store_outputs(conn, ref.id, models)
    return {}


# --- search ----------------------------------------------------------------------------------------

_VIEWS = {"ACTIVE_ONLY": ACTIVE, "DELETED_ONLY": DELETED, "ALL": None, 1: ACTIVE, 2: DELETED, 3: None}


@route(router, "POST", "/runs/search")
def search_runs(ctx: Context, args: Args) -> dict[str, Any]:
    wanted = args.strings("experiment_ids")
    view_text = args.data.get("run_view_type", "ACTIVE_ONLY")
    if not isinstance(view_text, (str, int)) or isinstance(view_text, bool) or view_text not in _VIEWS:
        raise invalid(f"Invalid run_view_type {view_text!r}: ACTIVE_ONLY, DELETED_ONLY or ALL")
    view = _VIEWS[view_text]
    limit = args.integer("max_results", default=1000, low=1, high=MAX_RESULTS) or 1000
    comparisons = parse_filter(args.text("filter"))
    orders = parse_order_by(args.strings("order_by"))
    offset = decode_token(args.text("page_token"))
    experiments = []
    for text in wanted:
        try:
            experiments.append(store.experiment(ctx, text, Action.READ).id)
        except MlflowError as exc:  # an unknown experiment has no runs, as in MLflow
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
    if not experiments:
        return {"runs": []}
    with read_transaction(ctx.tracker.engine) as conn:
        rows = conn.execute(store.runs_of_experiments(experiments, view)).all()
        ids_in = select(t.iterations.c.id).where(t.iterations.c.experiment_id.in_(experiments))
        keys = [c.key for c in comparisons] + [o.key for o in orders]
        values: dict[str, dict[tuple[int, str], Any]] = {}
        for entity in ("metric", "param", "tag"):
            names = sorted({k.key for k in keys if k.entity == entity})
            values[entity] = store.run_values(conn, ids_in, entity, names)

        def value(row: Any, key: Key) -> Any:
            if key.entity == ATTRIBUTE:
                return _attribute(row, key.key)
            found = values[key.entity].get((row.id, key.key))
            # NaN matches no metric comparison and sorts with the runs that lack the key.
            return None if key.entity == METRIC and found is not None and found != found else found

        for comparison in comparisons:
            rows = [r for r in rows if matches(comparison, value(r, comparison.key))]
        # MLflow's order: newest start first, then run id as text (its ids are strings: "10" before "2").
        rows.sort(key=lambda r: str(r.id))
        rows.sort(key=lambda r: _attribute(r, "start_time"), reverse=True)
        for order in reversed(orders):
            present = [r for r in rows if value(r, order.key) is not None]
            absent = [r for r in rows if value(r, order.key) is None]
            present.sort(key=lambda r, o=order: value(r, o.key), reverse=not order.ascending)
            rows = present + absent
        page = rows[offset : offset + limit]
        answer: dict[str, Any] = {"runs": store.runs_json(conn, [r.id for r in page])}
    if offset + limit < len(rows):
        answer["next_page_token"] = encode_token(offset + limit)
    return answer


def _attribute(row: Any, name: str) -> Any:
    if name == "run_id":
        return str(row.id)
    if name == "run_name":
        return row.name
    if name == "status":
        return TO_MLFLOW[IterationStatus(row.status)]
    if name == "user_id":
        return row.user_id or ""
    if name == "artifact_uri":
        return run_artifact_uri(row.experiment_id, row.id, row.artifact_location)
    if name == "lifecycle_stage":
        return row.lifecycle_stage or ACTIVE
    if name == "start_time":
        return row.start_time if row.start_time is not None else ms(row.created_date)
    if name == "end_time":
        return ms(row.end_date)
    raise invalid(f"Invalid attribute key {name!r}")
