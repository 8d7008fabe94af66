"""The SQL behind the MLflow routes: MLflow's experiments and runs read as diary rows plus the four
`mlflow_*` tables (lifecycle and key/value tags), and the writes the tracker has no call for."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ...tracker import schema as t
from ...tracker.enums import IterationStatus
from ...tracker.records import Experiment
from ...tracker.validation import MAX_TEXT
from ..permissions import Action
from .endpoint import Context
from .errors import MlflowError, invalid, missing
from .inputs import run_io
from .mapping import (
    ACTIVE,
    DEFAULT_EXPERIMENT,
    DELETED,
    NOTE,
    PARENT_RUN,
    RUN_NAME,
    TO_MLFLOW,
    artifact_root,
    entity_id,
    ms,
    number_text,
    run_artifact_uri,
)

it, m, p = t.iterations, t.metrics, t.parameters
mr, mrt, me, met = t.mlflow_runs, t.mlflow_run_tags, t.mlflow_experiments, t.mlflow_experiment_tags
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 8000
MAX_PARAM_VALUE = 6000


def _chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    for n in range(0, len(ids), size):
        yield ids[n : n + size]


# --- experiments -------------------------------------------------------------------------------------


def experiment(ctx: Context, text: Any, action: Action, *, field: str = "experiment_id") -> Experiment:
    """The MLflow project's experiment an id names ("0" is "Default", made on first use), once the
    caller may do `action` on the project; RESOURCE_DOES_NOT_EXIST otherwise."""
    project = ctx.allow(action)
    if text in ("0", 0):
        found = ctx.tracker.get_experiment_by_name(project, DEFAULT_EXPERIMENT)
        if found is None and action is not Action.READ:
            ctx.create_default_experiment(project)
            found = ctx.tracker.get_experiment_by_name(project, DEFAULT_EXPERIMENT)
        if found is not None:
            return found
    number = entity_id(text, "experiment")
    found = None if number is None else ctx.tracker.get_experiment(number)
    if found is None or found.project_id != project:
        raise missing(f"No Experiment with id={text} exists")
    return found


def experiment_stage(conn: Connection, experiment_id: int) -> str:
    stage = conn.execute(select(me.c.lifecycle_stage).where(me.c.experiment_id == experiment_id)).scalar()
    return stage or ACTIVE


def experiment_json(conn: Connection, found: Experiment) -> dict[str, Any]:
    row = conn.execute(select(me).where(me.c.experiment_id == found.id)).first()
    tags = conn.execute(select(met.c.key, met.c.value).where(met.c.experiment_id == found.id).order_by(met.c.key))
    created = ms(found.created_date)
    return {
        "experiment_id": str(found.id),
        "name": found.name,
        "artifact_location": (row.artifact_location if row and row.artifact_location else artifact_root(found.id)),
        "lifecycle_stage": (row.lifecycle_stage if row else ACTIVE),
        "last_update_time": (row.last_update_time if row and row.last_update_time else created),
        "creation_time": created,
        "tags": [{"key": k, "value": v} for k, v in tags],
    }


def set_experiment_row(conn: Connection, experiment_id: int, **values: Any) -> None:
    values.setdefault("last_update_time", None)
    if values["last_update_time"] is None:
        values["last_update_time"] = int(time.time() * 1000)
    changed = conn.execute(update(me).where(me.c.experiment_id == experiment_id).values(**values)).rowcount
    if not changed:
        conn.execute(insert(me).values(experiment_id=experiment_id, **values))


# --- tags ----------------------------------------------------------------------------------------------


def check_tag(key: str, value: str) -> None:
    if len(key) > MAX_TAG_KEY:
        raise invalid(f"Tag key '{key[:50]}...' had length {len(key)}, which exceeded length limit of {MAX_TAG_KEY}")
    if len(value) > MAX_TAG_VALUE:
        raise invalid(
            f"Tag value for key '{key[:50]}' had length {len(value)}, which exceeded length limit of {MAX_TAG_VALUE}"
        )


def upsert_tags(conn: Connection, table: Any, column: str, owner: int, tags: list[tuple[str, str]]) -> None:
    """Set key/value tags (the last value of a repeated key wins, as in MLflow)."""
    wanted = dict(tags)
    if not wanted:
        return
    for key, value in wanted.items():
        check_tag(key, value)
    have = set(
        conn.execute(select(table.c.key).where(table.c[column] == owner, table.c.key.in_(list(wanted)))).scalars()
    )
    for key in have:
        conn.execute(update(table).where(table.c[column] == owner, table.c.key == key).values(value=wanted[key]))
    new = [{column: owner, "key": k, "value": v} for k, v in wanted.items() if k not in have]
    if new:
        conn.execute(insert(table), new)


def remove_tag(conn: Connection, table: Any, column: str, owner: int, key: str) -> bool:
    return conn.execute(delete(table).where(table.c[column] == owner, table.c.key == key)).rowcount > 0


# --- runs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRef:
    id: int
    experiment_id: int
    status: IterationStatus
    project_id: int


def run(ctx: Context, text: Any, action: Action) -> RunRef:
    """The run (iteration) of the MLflow project a run id names, once the caller may do `action`."""
    project = ctx.allow(action)
    number = entity_id(text, "run")
    row = None
    if number is not None:
        with ctx.tracker._read() as conn:
            row = conn.execute(
                select(it.c.id, it.c.experiment_id, it.c.status, t.experiments.c.project_id)
                .join(t.experiments, t.experiments.c.id == it.c.experiment_id)
                .where(it.c.id == number)
            ).first()
    if row is None or row.project_id != project:
        raise missing(f"Run with id={text} not found")
    return RunRef(row.id, row.experiment_id, IterationStatus(row.status), row.project_id)


def lock_run(conn: Connection, iteration_id: int) -> Any:
    """The iteration's row, locked for this transaction (PostgreSQL; SQLite's write lock is whole-file),
    so two retries of one write cannot both pass the "already there?" check. Touches the heartbeat:
    an MLflow client sends none, its writes are its signs of life."""
    row = conn.execute(select(it).where(it.c.id == iteration_id).with_for_update()).first()
    if row is None:
        raise missing(f"Run with id={iteration_id} not found")
    conn.execute(update(it).where(it.c.id == iteration_id).values(heartbeat_date=datetime.now(timezone.utc)))
    return row


def set_run_row(conn: Connection, iteration_id: int, **values: Any) -> None:
    changed = conn.execute(update(mr).where(mr.c.iteration_id == iteration_id).values(**values)).rowcount
    if not changed:
        try:
            with conn.begin_nested():
                conn.execute(insert(mr).values(iteration_id=iteration_id, **values))
        except IntegrityError:
            conn.execute(update(mr).where(mr.c.iteration_id == iteration_id).values(**values))


def run_stage(conn: Connection, iteration_id: int) -> str:
    return conn.execute(select(mr.c.lifecycle_stage).where(mr.c.iteration_id == iteration_id)).scalar() or ACTIVE


def check_active_run(conn: Connection, iteration_id: int) -> None:
    """A deleted run's tags stay as they were until it is restored (MLflow's answer and words)."""
    stage = run_stage(conn, iteration_id)
    if stage != ACTIVE:
        raise invalid(f"The run {iteration_id} must be in the 'active' state. Current state is {stage}.")


def apply_system_tags(conn: Connection, row: Any, tags: dict[str, str]) -> None:
    """The tags that are iteration fields: the name, the parent (same experiment, no cycle), the note."""
    values: dict[str, Any] = {}
    if RUN_NAME in tags:
        name = tags[RUN_NAME]
        if len(name) > 250:
            raise invalid(f"run name has length {len(name)}, over the limit of 250")
        values["name"] = name
    if NOTE in tags:
        if len(tags[NOTE]) > MAX_TEXT:
            raise invalid(f"{NOTE} has length {len(tags[NOTE])}, over the limit of {MAX_TEXT}")
        values["notes"] = tags[NOTE]
    if PARENT_RUN in tags:
        values["parent_iteration_id"] = parent_of(conn, row, tags[PARENT_RUN])
    if values:
        conn.execute(update(it).where(it.c.id == row.id).values(**values))


def parent_of(conn: Connection, row: Any, text: str) -> int | None:
    """The iteration `mlflow.parentRunId` makes the run's parent; None when it names no run of the run's
    experiment (MLflow keeps such a tag as it was sent: it stays a tag, and the run has no parent here)."""
    if text == "":
        return None
    parent = entity_id(text, "run")
    found = (
        None if parent is None else conn.execute(select(it.c.id, it.c.experiment_id).where(it.c.id == parent)).first()
    )
    if found is None or found.experiment_id != row.experiment_id:
        return None
    ancestor: int | None = found.id
    for _ in range(10_000):  # a run cannot become its own ancestor
        if ancestor is None:
            break
        if ancestor == row.id:
            raise invalid(f"{PARENT_RUN}: run {text} is the run itself or one of its descendants")
        ancestor = conn.execute(select(it.c.parent_iteration_id).where(it.c.id == ancestor)).scalar()
    return found.id


def latest_points(conn: Connection, condition: Any) -> dict[tuple[int, str], Any]:
    """(run, key) -> its latest point (highest step, then newest, then last written) among the metric rows
    `condition` selects. The highest step per key comes from the (iteration, key, step) index, and only
    the points at that step are read: no sort over a long series."""
    top = (
        select(m.c.iteration_id, m.c.key, func.max(m.c.step).label("step"))
        .where(condition)
        .group_by(m.c.iteration_id, m.c.key)
        .subquery()
    )
    stmt = select(m.c.iteration_id, m.c.key, m.c.value, m.c.step, m.c.recorded_at, m.c.id).join(
        top, (m.c.iteration_id == top.c.iteration_id) & (m.c.key == top.c.key) & (m.c.step == top.c.step)
    )
    latest: dict[tuple[int, str], Any] = {}
    for r in conn.execute(stmt):
        have = latest.get((r.iteration_id, r.key))
        if have is None or (r.recorded_at, r.id) > (have.recorded_at, have.id):
            latest[(r.iteration_id, r.key)] = r
    return latest


def latest_metrics(conn: Connection, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each run's latest point per key, as MLflow's run data has it."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for chunk in _chunks(ids):
        found = latest_points(conn, m.c.iteration_id.in_(chunk))
        for (iteration_id, key), r in sorted(found.items()):
            out[iteration_id].append(metric_json(key, r.value, r.step, r.recorded_at))
    return out


def metric_json(key: str, value: float, step: int, recorded_at: Any) -> dict[str, Any]:
    return {"key": key, "value": number_text(value), "timestamp": ms(recorded_at), "step": step}


def run_rows(conn: Connection, ids: list[int]) -> dict[int, Any]:
    rows: dict[int, Any] = {}
    for chunk in _chunks(ids):
        stmt = (
            select(it, mr.c.lifecycle_stage, mr.c.start_time, mr.c.user_id, me.c.artifact_location)
            .outerjoin(mr, mr.c.iteration_id == it.c.id)
            .outerjoin(me, me.c.experiment_id == it.c.experiment_id)
            .where(it.c.id.in_(chunk))
        )
        rows.update({r.id: r for r in conn.execute(stmt)})
    return rows


def runs_json(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    """Full MLflow runs (info, data, inputs) for these iteration ids, in this order."""
    rows = run_rows(conn, ids)
    params: dict[int, list[dict[str, str]]] = {i: [] for i in ids}
    tags: dict[int, dict[str, str]] = {i: {} for i in ids}
    for chunk in _chunks(ids):
        for r in conn.execute(
            select(p.c.iteration_id, p.c.key, p.c.value)
            .where(p.c.iteration_id.in_(chunk))
            .order_by(p.c.iteration_id, p.c.key)
        ):
            params[r.iteration_id].append({"key": r.key, "value": r.value})
        for r in conn.execute(select(mrt.c.iteration_id, mrt.c.key, mrt.c.value).where(mrt.c.iteration_id.in_(chunk))):
            tags[r.iteration_id][r.key] = r.value
    metrics = latest_metrics(conn, ids)
    io = run_io(conn, ids)
    return [run_json(rows[i], tags[i], params[i], metrics[i], io.get(i)) for i in ids if i in rows]


def start_ms(row: Any) -> int:
    return row.start_time if row.start_time is not None else ms(row.created_date)


def run_json(
    row: Any,
    tags: dict[str, str],
    params: list[dict[str, str]],
    metrics: list[dict[str, Any]],
    io: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    tags = dict(tags)
    # The iteration's fields are the truth for the tags MLflow derives them from (a diary-native run
    # has no tags stored at all).
    tags[RUN_NAME] = row.name or tags.get(RUN_NAME, "")
    if row.parent_iteration_id is not None:
        tags[PARENT_RUN] = str(row.parent_iteration_id)
    run_id = str(row.id)
    info = {
        "run_id": run_id,
        "run_uuid": run_id,
        "run_name": row.name,
        "experiment_id": str(row.experiment_id),
        "user_id": row.user_id or "",
        "status": TO_MLFLOW[IterationStatus(row.status)],
        "start_time": start_ms(row),
        "artifact_uri": run_artifact_uri(row.experiment_id, row.id, row.artifact_location),
        "lifecycle_stage": row.lifecycle_stage or ACTIVE,
    }
    if row.end_date is not None:
        info["end_time"] = ms(row.end_date)
    return {
        "info": info,
        "data": {
            "metrics": metrics,
            "params": params,
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        },
        "inputs": io[0] if io else {},
        "outputs": io[1] if io else {},
    }


def run_values(conn: Connection, ids_in: Any, entity: str, keys: list[str]) -> dict[tuple[int, str], Any]:
    """(run, key) -> value of some params, tags or latest metrics, for the runs `ids_in` selects."""
    out: dict[tuple[int, str], Any] = {}
    if not keys:
        return out
    if entity == "param":
        stmt = select(p.c.iteration_id, p.c.key, p.c.value).where(p.c.iteration_id.in_(ids_in), p.c.key.in_(keys))
        out.update({(r[0], r[1]): r[2] for r in conn.execute(stmt)})
    elif entity == "tag":
        stmt = select(mrt.c.iteration_id, mrt.c.key, mrt.c.value).where(
            mrt.c.iteration_id.in_(ids_in), mrt.c.key.in_(keys)
        )
        out.update({(r[0], r[1]): r[2] for r in conn.execute(stmt)})
    else:
        # One index probe per run and key (the latest point, walking the (iteration, key, step) index
        # backwards) rather than a pass over every point of the experiment.
        runs = select(it.c.id).where(it.c.id.in_(ids_in)).subquery()
        for key in keys:
            latest = (
                select(m.c.value)
                .where(m.c.iteration_id == runs.c.id, m.c.key == key)
                .order_by(m.c.step.desc(), m.c.recorded_at.desc(), m.c.id.desc())
                .limit(1)
                .correlate(runs)
                .scalar_subquery()
            )
            # A run without the key reads NaN here (the column keeps NaN as NULL): both match no
            # comparison and sort last, as the search treats them alike.
            out.update({(run_id, key): value for run_id, value in conn.execute(select(runs.c.id, latest))})
    return out


def runs_of_experiments(experiment_ids: list[int], stage: str | None) -> Any:
    """The select of (row, lifecycle) for the runs of these experiments, `stage` "active"/"deleted"/None."""
    stmt = (
        select(
            it.c.id,
            it.c.experiment_id,
            it.c.status,
            it.c.name,
            it.c.created_date,
            it.c.end_date,
            mr.c.lifecycle_stage,
            mr.c.start_time,
            mr.c.user_id,
            me.c.artifact_location,
        )
        .outerjoin(mr, mr.c.iteration_id == it.c.id)
        .outerjoin(me, me.c.experiment_id == it.c.experiment_id)
        .where(it.c.experiment_id.in_(experiment_ids))
    )
    if stage == ACTIVE:
        stmt = stmt.where(func.coalesce(mr.c.lifecycle_stage, ACTIVE) == ACTIVE)
    elif stage == DELETED:
        stmt = stmt.where(mr.c.lifecycle_stage == DELETED)
    return stmt


def ensure_writable_experiment(conn: Connection, experiment_id: int) -> None:
    """Refuse writes into a deleted experiment; holds the experiment's row (PostgreSQL) for the rest of
    the transaction, so two writers of one experiment tag cannot both insert it."""
    conn.execute(select(t.experiments.c.id).where(t.experiments.c.id == experiment_id).with_for_update())
    if experiment_stage(conn, experiment_id) != ACTIVE:
        raise MlflowError("INVALID_STATE", f"The experiment {experiment_id} must be in the 'active' state")
