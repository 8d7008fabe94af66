"""What a run read and wrote, in MLflow's terms: datasets (`log_inputs`, autologging), logged models as
inputs and outputs (`log_outputs`), and metric points linked to a model and/or dataset (MLflow 3's
`log_metric(..., model_id=, dataset_name=, dataset_digest=)`). Stored, never accepted and dropped.

A dataset is one row per (experiment, name, digest), shared by the runs that used it, as in MLflow's
store; a run's inputs and outputs point at it. Every write is safe to repeat (MLflow's client retries
without an idempotency key): an input, output or linked point already stored is not stored again.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, insert, select

from ...tracker import schema as t
from .endpoint import short as _json
from .errors import invalid
from .mapping import number_text

ds, io, ml = t.mlflow_datasets, t.mlflow_run_io, t.mlflow_metric_links
LIMITS = {"name": 500, "digest": 36, "source_type": 36, "source": 65535, "schema": 1048575, "profile": 16384}
MAX_INPUT_TAG_KEY, MAX_INPUT_TAG_VALUE = 255, 500


def _text(item: dict[str, Any], field: str, where: str, *, required: bool) -> str:
    value = item.get(field)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing value for required parameter '{where}.{field}'")
        return ""
    if not isinstance(value, str):
        raise invalid(f"Invalid value {_json(value)} for parameter '{where}.{field}' supplied: expected a string")
    if len(value) > LIMITS.get(field, 10**9):
        raise invalid(f"Parameter '{where}.{field}' had length {len(value)}, over the limit of {LIMITS[field]}")
    return value


def _input_tags(items: Any, where: str) -> list[dict[str, str]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise invalid(f"Invalid value for parameter '{where}.tags' supplied: expected a list")
    out = []
    for n, tag in enumerate(items):
        if not isinstance(tag, dict):
            raise invalid(f"Invalid value for parameter '{where}.tags[{n}]' supplied: expected an object")
        key = _text(tag, "key", f"{where}.tags[{n}]", required=True)
        value = _text(tag, "value", f"{where}.tags[{n}]", required=True)
        if len(key) > MAX_INPUT_TAG_KEY or len(value) > MAX_INPUT_TAG_VALUE:
            raise invalid(f"'{where}.tags[{n}]': key over {MAX_INPUT_TAG_KEY} or value over "
                          f"{MAX_INPUT_TAG_VALUE} characters")
        out.append({"key": key, "value": value})
    return out


def checked_datasets(items: list[dict[str, Any]]) -> list[tuple[dict[str, str], list[dict[str, str]]]]:
    """(dataset fields, input tags) of each `datasets[n]` of a log-inputs request, checked."""
    out = []
    for n, item in enumerate(items):
        dataset = item.get("dataset")
        where = f"datasets[{n}].dataset"
        if not isinstance(dataset, dict):
            raise invalid(f"Missing value for required parameter '{where}'")
        fields = {f: _text(dataset, f, where, required=f in ("name", "digest", "source_type", "source"))
                  for f in LIMITS}
        out.append((fields, _input_tags(item.get("tags"), f"datasets[{n}]")))
    return out


def checked_models(items: list[dict[str, Any]], *, with_step: bool) -> list[tuple[str, int]]:
    """(model id, step) of each `models[n]` of a log-inputs / log-outputs request, checked."""
    out = []
    for n, item in enumerate(items):
        model_id = _text(item, "model_id", f"models[{n}]", required=True)
        if len(model_id) > 64:
            raise invalid(f"Parameter 'models[{n}].model_id' is over 64 characters")
        step = item.get("step", 0) if with_step else 0
        if isinstance(step, str) and step.lstrip("-").isdigit():
            step = int(step)
        if isinstance(step, bool) or not isinstance(step, int) or abs(step) >= 2**63:
            raise invalid(f"Invalid value {_json(step)} for parameter 'models[{n}].step' supplied: expected an integer")
        out.append((model_id, step))
    return out


def _dataset_id(conn: Connection, experiment_id: int, fields: dict[str, str]) -> int:
    where = and_(ds.c.experiment_id == experiment_id, ds.c.name == fields["name"], ds.c.digest == fields["digest"])
    found = conn.execute(select(ds.c.id).where(where)).scalar()
    if found is None:
        conn.execute(insert(ds).values(experiment_id=experiment_id, **fields))
        found = conn.execute(select(ds.c.id).where(where)).scalar_one()
    return found


def store_inputs(conn: Connection, iteration_id: int, experiment_id: int,
                 datasets: list[tuple[dict[str, str], list[dict[str, str]]]], models: list[tuple[str, int]]) -> None:
    """A run's dataset and model inputs (the caller holds the run's row, so a retry sees the first)."""
    have = {(r.dataset_id, r.model_id) for r in conn.execute(
        select(io.c.dataset_id, io.c.model_id).where(io.c.iteration_id == iteration_id, io.c.direction == "input"))}
    for fields, tags in datasets:
        dataset_id = _dataset_id(conn, experiment_id, fields)
        if (dataset_id, None) not in have:
            have.add((dataset_id, None))
            conn.execute(insert(io).values(iteration_id=iteration_id, direction="input", dataset_id=dataset_id,
                                           tags=json.dumps(tags)))
    for model_id, _ in models:
        if (None, model_id) not in have:
            have.add((None, model_id))
            conn.execute(insert(io).values(iteration_id=iteration_id, direction="input", model_id=model_id))


def store_outputs(conn: Connection, iteration_id: int, models: list[tuple[str, int]]) -> None:
    have = {(r.model_id, r.step) for r in conn.execute(
        select(io.c.model_id, io.c.step).where(io.c.iteration_id == iteration_id, io.c.direction == "output"))}
    for model_id, step in models:
        if (model_id, step) not in have:
            have.add((model_id, step))
            conn.execute(insert(io).values(iteration_id=iteration_id, direction="output", model_id=model_id,
                                           step=step))


def run_io(conn: Connection, ids: list[int]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Each run's MLflow `inputs` and `outputs` objects."""
    out: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    if not ids:
        return out
    stmt = (select(io, ds.c.name, ds.c.digest, ds.c.source_type, ds.c.source, ds.c.schema, ds.c.profile)
            .outerjoin(ds, ds.c.id == io.c.dataset_id).where(io.c.iteration_id.in_(ids)).order_by(io.c.id))
    for r in conn.execute(stmt):
        inputs, outputs = out.setdefault(r.iteration_id, ({}, {}))
        if r.direction == "output":
            outputs.setdefault("model_outputs", []).append({"model_id": r.model_id, "step": r.step})
        elif r.dataset_id is not None:
            dataset = {"name": r.name, "digest": r.digest, "source_type": r.source_type, "source": r.source}
            dataset.update({k: v for k, v in (("schema", r.schema), ("profile", r.profile)) if v})
            inputs.setdefault("dataset_inputs", []).append({"tags": json.loads(r.tags), "dataset": dataset})
        else:
            inputs.setdefault("model_inputs", []).append({"model_id": r.model_id})
    return out


def store_metric_links(conn: Connection, iteration_id: int, links: list[dict[str, Any]]) -> None:
    """Points logged with a model or dataset (dicts: key, value, step, timestamp, model_id, dataset_name,
    dataset_digest); one already stored is skipped."""
    if not links:
        return
    stmt = select(ml.c.key, ml.c.value, ml.c.step, ml.c.timestamp, ml.c.model_id, ml.c.dataset_name,
                  ml.c.dataset_digest).where(ml.c.iteration_id == iteration_id,
                                             ml.c.key.in_(sorted({p["key"] for p in links})))
    have = {_link_identity(dict(r._mapping)) for r in conn.execute(stmt)}
    fresh = []
    for link in links:
        identity = _link_identity(link)
        if identity not in have:
            have.add(identity)
            fresh.append({"iteration_id": iteration_id, **link})
    if fresh:
        conn.execute(insert(ml), fresh)


def _link_identity(p: dict[str, Any]) -> tuple[Any, ...]:
    value = p["value"]
    return (p["key"], "NaN" if value != value else value, p["step"], p["timestamp"], p.get("model_id"),
            p.get("dataset_name"), p.get("dataset_digest"))


def link_json(r: Any) -> dict[str, Any]:
    out = {"key": r.key, "value": number_text(r.value), "timestamp": r.timestamp, "step": r.step,
           "run_id": str(r.iteration_id)}
    for field in ("model_id", "dataset_name", "dataset_digest"):
        if getattr(r, field) is not None:
            out[field] = getattr(r, field)
    return out


def model_metrics(conn: Connection, model_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each logged model's linked metric points."""
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in model_ids}
    if model_ids:
        for r in conn.execute(select(ml).where(ml.c.model_id.in_(model_ids)).order_by(ml.c.id)):
            out[r.model_id].append(link_json(r))
    return out
