"""`diary import mlflow --from URI`: copy an MLflow store (a file store, a SQL database, or an MLflow
server, read through the mlflow package) into a diary database, nested runs as iteration trees.

Each MLflow experiment becomes an experiment of the MLflow project (`DIARY_MLFLOW_PROJECT`, default
"mlflow") of the same name, as `diary server`'s MLflow API would have written it, so the copy reads the
same through that API. Each run is copied in one transaction (iteration, parameters, every metric point
with its step and timestamp, tags, status, start and end), parents before children. The source run id
is kept as the tag `diary.mlflow_import.run_id`: importing again skips runs copied before, so an
interrupted import is resumed by running it again, and nothing is copied twice. A run the source still
shows RUNNING is copied KILLED (nothing will end it here), saying so. Artifacts are not copied.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from ..tracker import schema as t
from ..tracker.database import one_transaction
from ..tracker.enums import ExperimentStatus, IterationStatus
from ..tracker.errors import Conflict

SOURCE_TAG = "diary.mlflow_import.run_id"
_PAGE = 1000


@dataclass
class ImportSummary:
    experiments: int = 0
    runs: int = 0
    skipped: int = 0
    points: int = 0


def import_mlflow(source_uri: str, tracker: Any, *, log: Callable[[str], None] = lambda _: None) -> ImportSummary:
    """Copy every experiment and run of the MLflow store at `source_uri` into `tracker` (a LocalTracker)."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    from ..server.mlflow.mapping import project_name

    if not hasattr(tracker, "engine"):
        raise ValueError("--to must be a diary database (a path or SQLAlchemy URL), not a server")
    if "://" not in source_uri or source_uri.startswith("file:"):
        # MLflow 3 refuses its file store unless asked; reading one to move away from it is the point here.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=source_uri)
    project = _project(tracker, project_name())
    summary = ImportSummary()
    for source in _all(
        lambda token: client.search_experiments(view_type=ViewType.ALL, max_results=_PAGE, page_token=token)
    ):
        target = _experiment(tracker, project, source)
        summary.experiments += 1
        runs = list(
            _all(
                lambda token, e=source.experiment_id: client.search_runs(
                    [e], run_view_type=ViewType.ALL, max_results=_PAGE, page_token=token
                )
            )
        )
        done = _imported(tracker, target)
        copied: dict[str, int] = dict(done)
        for run in _parents_first(runs):
            if run.info.run_id in done:
                summary.skipped += 1
                continue
            copied[run.info.run_id] = _copy_run(client, tracker, target, run, copied, summary)
            summary.runs += 1
        log(f"{source.name}: {len(runs)} run(s)")
    return summary


def _all(page: Callable[[str | None], Any]) -> Any:
    token = None
    while True:
        found = page(token)
        yield from found
        token = found.token
        if not token:
            return


def _project(tracker: Any, name: str) -> int:
    found = tracker.get_project_by_name(name)
    if found is not None:
        return found.id
    try:
        return tracker.create_project(name, description="MLflow's experiments, imported or logged through MLflow").id
    except Conflict:
        return tracker.get_project_by_name(name).id


def _experiment(tracker: Any, project: int, source: Any) -> int:
    from ..server.mlflow import store

    found = tracker.get_experiment_by_name(project, source.name)
    with one_transaction(tracker.engine) as conn:
        if found is None:
            experiment_id = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, source.name).id
        else:
            experiment_id = found.id
        store.set_experiment_row(
            conn, experiment_id, lifecycle_stage=source.lifecycle_stage, last_update_time=source.last_update_time
        )
        store.upsert_tags(conn, t.mlflow_experiment_tags, "experiment_id", experiment_id, list(source.tags.items()))
    return experiment_id


def _imported(tracker: Any, experiment_id: int) -> dict[str, int]:
    """Source run id -> iteration id of the runs an earlier import copied into this experiment."""
    tags, it = t.mlflow_run_tags, t.iterations
    stmt = (
        select(tags.c.value, tags.c.iteration_id)
        .join(it, it.c.id == tags.c.iteration_id)
        .where(tags.c.key == SOURCE_TAG, it.c.experiment_id == experiment_id)
    )
    with tracker.engine.connect() as conn:
        return {value: iteration_id for value, iteration_id in conn.execute(stmt)}


def _parents_first(runs: list[Any]) -> list[Any]:
    by_id = {r.info.run_id: r for r in runs}
    ordered: list[Any] = []
    placed: set[str] = set()

    def place(run: Any, depth: int = 0) -> None:
        if run.info.run_id in placed:
            return
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent in by_id and depth < 10_000:
            place(by_id[parent], depth + 1)
        placed.add(run.info.run_id)
        ordered.append(run)

    for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
        place(run)
    return ordered


def _copy_run(
    client: Any, tracker: Any, experiment_id: int, run: Any, copied: dict[str, int], summary: ImportSummary
) -> int:
    from ..server.mlflow import mapping, store

    info, data = run.info, run.data
    tags = dict(data.tags)
    parent = copied.get(tags.get(mapping.PARENT_RUN, ""))
    points = []
    for key in data.metrics:
        for m in client.get_metric_history(info.run_id, key):
            points.append((key, m.value, max(m.step, 0), m.timestamp / 1000))
    status = mapping.TO_DIARY.get(info.status, IterationStatus.KILLED)
    message = ""
    if status is IterationStatus.RUNNING:
        status, message = IterationStatus.KILLED, "imported from MLflow while the source still showed it RUNNING"
    elif status is IterationStatus.FAILED:
        message = tags.get(mapping.ERROR) or tags.get(mapping.NOTE) or ""
    start = info.start_time if info.start_time is not None else int(time.time() * 1000)
    with one_transaction(tracker.engine) as conn:
        new = tracker.create_iteration(
            experiment_id,
            parent_iteration_id=parent,
            notes=tags.get(mapping.NOTE, ""),
            snapshot=False,
            name=(info.run_name or "")[:250],
        )
        if data.params:
            tracker.log_parameters(new.id, dict(data.params))
        if points:
            tracker.log_metric_points(new.id, points)
        tracker.end_iteration(new.id, status, error_message=message)
        end = info.end_time if info.end_time is not None else start
        conn.execute(
            update(t.iterations)
            .where(t.iterations.c.id == new.id)
            .values(created_date=mapping.from_ms(start), end_date=mapping.from_ms(end))
        )
        store.set_run_row(
            conn, new.id, lifecycle_stage=info.lifecycle_stage, start_time=start, user_id=(info.user_id or "")[:250]
        )
        tags[SOURCE_TAG] = info.run_id
        tags.pop(mapping.PARENT_RUN, None)  # the parent is the iteration's, by its new id
        if parent is not None:
            tags[mapping.PARENT_RUN] = str(parent)
        store.upsert_tags(
            conn,
            t.mlflow_run_tags,
            "iteration_id",
            new.id,
            [(k[:250], v[: store.MAX_TAG_VALUE]) for k, v in tags.items()],
        )
    summary.points += len(points)
    return new.id
