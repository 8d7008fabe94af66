"""The routes MLflow's web UI calls under `/ajax-api/2.0/mlflow` beside the client's: metric histories of
several runs at once (all points, or sampled by step for the charts), the datasets of experiments, and
uploading one artifact file to a run (with `/get-artifact` to read it back). Answers as MLflow's server
gives them, its error texts included."""

from __future__ import annotations

import bisect
import json
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import select

from ...tracker import schema as t
from ...tracker.database import read_transaction
from ..permissions import Action
from . import artifacts, store
from .endpoint import Args, Context, route
from .errors import MlflowError, invalid
from .mapping import ms, number_text

router = APIRouter()
m, ds, io = t.metrics, t.mlflow_datasets, t.mlflow_run_io
MAX_HISTORY_RESULTS, MAX_RUN_IDS = 25_000, 100
MAX_RESULTS_PER_RUN = 2500
DATASET_CONTEXT = "mlflow.data.context"


def _points(ctx: Context, run_ids: list[str], key: str) -> dict[str, list[dict[str, Any]]]:
    """Each readable run's points of `key`, by run id text (a run that does not exist has none)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for text in dict.fromkeys(run_ids):
        try:
            ref = store.run(ctx, text, Action.READ)
        except MlflowError as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
            continue
        with read_transaction(ctx.tracker.engine) as conn:
            rows = conn.execute(select(m.c.value, m.c.recorded_at, m.c.step)
                                .where(m.c.iteration_id == ref.id, m.c.key == key).order_by(m.c.id)).all()
        out[text] = [{"key": key, "value": number_text(r.value), "timestamp": ms(r.recorded_at), "step": r.step,
                      "run_id": text} for r in rows]
    return out


@route(router, "GET", "/metrics/get-history-bulk")
def history_bulk(ctx: Context, args: Args) -> dict[str, Any]:
    run_ids = args.strings("run_id")
    if not run_ids:
        raise invalid("GetMetricHistoryBulk request must specify at least one run_id.")
    if len(run_ids) > MAX_RUN_IDS:
        raise invalid(f"GetMetricHistoryBulk request cannot specify more than {MAX_RUN_IDS} run_ids. "
                      f"Received {len(run_ids)} run_ids.")
    key = args.text("metric_key")
    if key is None:
        raise invalid("GetMetricHistoryBulk request must specify a metric_key.")
    limit = min(args.integer("max_results", default=MAX_HISTORY_RESULTS, low=1) or 1, MAX_HISTORY_RESULTS)
    found = _points(ctx, run_ids, key)
    out = []
    for text in sorted(found):  # by run id as text, as MLflow's handler
        points = sorted(found[text], key=lambda p: (p["timestamp"], p["step"], _sortable(p["value"])))
        out.extend(points[:limit])
    return {"metrics": out}


def _sortable(value: Any) -> float:
    return float(value.replace("Infinity", "inf")) if isinstance(value, str) else value


@route(router, "GET", "/metrics/get-history-bulk-interval")
def history_bulk_interval(ctx: Context, args: Args) -> dict[str, Any]:
    """At most about `max_results` steps per run, sampled evenly over the steps logged, with each run's
    first and last step kept (MLflow's sampling, so charts match)."""
    run_ids = args.strings("run_ids")
    if not run_ids:
        raise invalid("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > MAX_RUN_IDS:
        raise invalid(f"GetMetricHistoryBulkInterval request must specify at most {MAX_RUN_IDS} run_ids. "
                      f"Received {len(run_ids)} run_ids.")
    key = args.text("metric_key")
    if not key:
        raise invalid("Missing value for required parameter 'metric_key'.")
    limit = args.integer("max_results", default=MAX_RESULTS_PER_RUN)
    if limit is None or not 1 <= limit <= MAX_RESULTS_PER_RUN:
        raise invalid(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}.")
    start, end = args.integer("start_step"), args.integer("end_step")
    if start is not None and end is not None:
        if start > end:
            raise invalid(f"end_step must be greater than start_step. Found start_step={start} and end_step={end}.")
    elif start is not None or end is not None:
        raise invalid("If either start step or end step are specified, both must be specified.")
    found = _points(ctx, run_ids, key)
    steps = _sampled_steps([[p["step"] for p in found.get(r, [])] for r in run_ids], limit, start, end)
    per_run = max(limit, len(steps))
    out = []
    for text in dict.fromkeys(run_ids):
        points = [p for p in found.get(text, []) if p["step"] in steps]
        points.sort(key=lambda p: (p["step"], p["timestamp"]))
        if len(points) > per_run:  # many values at one step: evenly over the run's history, not cut
            points = [points[int(i * len(points) / per_run)] for i in range(per_run)]
        out.extend(points)
    return {"metrics": out}


def _sampled_steps(runs: list[list[int]], limit: int, start: int | None, end: int | None) -> set[int]:
    bounds = {s for run in runs if run for s in (min(run), max(run))}
    steps = sorted({s for run in runs for s in run})
    if start is None or end is None:
        start, end = 0, (steps[-1] if steps else 0)
    bounds = {s for s in bounds if start <= s <= end}
    lo, hi = bisect.bisect_left(steps, start), bisect.bisect_right(steps, end)
    if hi - lo <= limit:
        chosen = set(steps[lo:hi])
    else:
        interval = (hi - lo) / limit
        chosen = {steps[lo + int(i * interval)] for i in range(limit) if lo + int(i * interval) < hi}
        chosen.add(steps[hi - 1])
    return chosen | bounds


@route(router, "POST", "/experiments/search-datasets")
def search_datasets(ctx: Context, args: Args) -> dict[str, Any]:
    """The datasets the runs of these experiments used, with the context their input tag gives."""
    wanted = args.strings("experiment_ids")
    if not wanted:
        raise invalid("SearchDatasets request must specify at least one experiment_id.")
    if len(wanted) > 20:
        raise invalid(f"SearchDatasets request cannot specify more than 20 experiment_ids. "
                      f"Received {len(wanted)} experiment_ids.")
    ids = [store.experiment(ctx, text, Action.READ).id for text in wanted]
    summaries: dict[tuple[Any, ...], dict[str, Any]] = {}
    with read_transaction(ctx.tracker.engine) as conn:
        stmt = (select(ds.c.experiment_id, ds.c.name, ds.c.digest, io.c.tags).join(io, io.c.dataset_id == ds.c.id)
                .where(ds.c.experiment_id.in_(ids)).order_by(ds.c.id))
        for r in conn.execute(stmt):
            context = next((tag["value"] for tag in json.loads(r.tags) if tag["key"] == DATASET_CONTEXT), None)
            summary = {"experiment_id": str(r.experiment_id), "name": r.name, "digest": r.digest}
            if context:
                summary["context"] = context
            summaries.setdefault((r.experiment_id, r.name, r.digest, context), summary)
    return {"dataset_summaries": list(summaries.values())}


@route(router, "POST", "/upload-artifact", raw_body=True)
def upload_artifact(ctx: Context, args: Args) -> dict[str, Any]:
    """One file into a run's artifacts (the UI's upload), as `mlflow-artifacts` stores it."""
    run_text = args.text("run_uuid") or args.text("run_id")
    if not run_text:
        raise invalid("Request must specify run_uuid.")
    path = args.text("path")
    if not path:
        raise invalid("Request must specify path.")
    if ".." in path.split("/") or path.startswith("/"):
        raise invalid(f"Invalid path: {path[:100]}")
    if not args.body:
        raise invalid("Request must specify data.")
    ref = store.run(ctx, run_text, Action.CREATE)
    artifacts.put(ctx, ref.experiment_id, f"{ref.id}/artifacts/{path}", bytes(args.body))
    return {}


def get_artifact(ctx: Context, args: Args) -> Response:
    """`GET /get-artifact?run_uuid=&path=`: one file of a run's artifacts."""
    run_text = args.text("run_uuid") or args.text("run_id", required=True)
    path = args.text("path", required=True) or ""
    artifacts.checked_path(path.strip("/"))
    ref = store.run(ctx, run_text, Action.READ)
    data = artifacts.read(ctx, ref.experiment_id, f"{ref.id}/artifacts/{path.strip('/')}")
    if data is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No artifact at path {path[:100]!r}")
    return Response(data, media_type="application/octet-stream")


get_artifact_router = APIRouter()
route(get_artifact_router, "GET", "/get-artifact")(get_artifact)
