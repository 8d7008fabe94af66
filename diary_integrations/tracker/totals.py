"""Row counts behind the REST API's page totals, and storing a snapshot taken in another process.

These sit beside LocalTracker rather than in it: only the tracking server needs them. They read and
write through the tracker's own engine and transactions, so the rules stay in the core.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, func, insert, select

from . import schema as t
from .database import read_transaction, write_transaction
from .enums import IterationStatus, ModelStage, TagTarget
from .environment import EnvironmentSnapshot
from .errors import Unprocessable
from .statements import can_hold
from .validation import check_bool, check_enum, check_id, check_key, check_text


def _count(tracker: Any, table: Any, *conditions: Any) -> int:
    stmt = select(func.count()).select_from(table)
    for condition in conditions:
        stmt = stmt.where(condition)
    with read_transaction(tracker.engine) as conn:
        return int(conn.execute(stmt).scalar_one())


def _is(column: Any, value: Any, field: str) -> ColumnElement[bool]:
    """`column == id`, or FALSE for an id beyond the column's range (it names no row, as in LocalTracker)."""
    id_ = check_id(value, field)
    return column == id_ if can_hold(column, id_) else false()


def count_users(tracker: Any) -> int:
    return _count(tracker, t.users)


def count_user_permissions(tracker: Any, *, user_id: int | None = None, project_id: int | None = None) -> int:
    up = t.user_permissions
    conditions = []
    if user_id is not None:
        conditions.append(_is(up.c.user_id, user_id, "user_id"))
    if project_id is not None:
        conditions.append(_is(up.c.project_id, project_id, "project_id"))
    return _count(tracker, up, *conditions)


def count_projects(tracker: Any, *, user_id: int | None = None) -> int:
    """Every project, or those `user_id` may read (an admin reads all), as `get_projects` lists them."""
    if user_id is None:
        return _count(tracker, t.projects)
    user = tracker.get_user(check_id(user_id, "user_id"))
    if user is None or user.is_admin:
        return _count(tracker, t.projects) if user else 0
    up = t.user_permissions
    readable = select(up.c.project_id).where(up.c.user_id == user.id, up.c.read_permission)
    return _count(tracker, t.projects, t.projects.c.id.in_(readable))


def count_experiments(tracker: Any, project_id: int) -> int:
    return _count(tracker, t.experiments, _is(t.experiments.c.project_id, project_id, "project_id"))


def count_iterations(tracker: Any, experiment_id: int, *, status: Any = None) -> int:
    it = t.iterations
    conditions = [_is(it.c.experiment_id, experiment_id, "experiment_id")]
    if status is not None:
        conditions.append(it.c.status == int(check_enum(status, IterationStatus, "status")))
    return _count(tracker, it, *conditions)


def count_child_iterations(tracker: Any, iteration_id: int) -> int:
    return _count(tracker, t.iterations, _is(t.iterations.c.parent_iteration_id, iteration_id, "iteration_id"))


def count_parameters(tracker: Any, iteration_id: int) -> int:
    return _count(tracker, t.parameters, _is(t.parameters.c.iteration_id, iteration_id, "iteration_id"))


def count_metrics(tracker: Any, iteration_id: int, *, key: str | None = None) -> int:
    m = t.metrics
    conditions = [_is(m.c.iteration_id, iteration_id, "iteration_id")]
    if key is not None:
        conditions.append(m.c.key == check_key(key))
    return _count(tracker, m, *conditions)


def count_series_points(tracker: Any, iteration_ids: list[int], key: str) -> int:
    """How many points of `key` these iterations hold together (what a whole-series read would send)."""
    m = t.metrics
    stored = [check_id(i, "iteration_ids") for i in iteration_ids]
    stored = [i for i in stored if can_hold(m.c.iteration_id, i)]
    if not stored:
        return 0
    return _count(tracker, m, m.c.iteration_id.in_(stored), m.c.key == check_key(key))


def count_resources(tracker: Any, experiment_id: int) -> int:
    return _count(tracker, t.resources, _is(t.resources.c.experiment_id, experiment_id, "experiment_id"))


def count_models(tracker: Any, project_id: int) -> int:
    return _count(tracker, t.models, _is(t.models.c.project_id, project_id, "project_id"))


def count_model_versions(tracker: Any, model_id: int, *, stage: Any = None) -> int:
    v = t.model_versions
    conditions = [_is(v.c.model_id, model_id, "model_id")]
    if stage is not None:
        conditions.append(v.c.stage == int(check_enum(stage, ModelStage, "stage")))
    return _count(tracker, v, *conditions)


_TAG_LINKS = {
    TagTarget.PROJECT: (t.project_tags, "project_id"),
    TagTarget.EXPERIMENT: (t.experiment_tags, "experiment_id"),
    TagTarget.ITERATION: (t.iteration_tags, "iteration_id"),
}


def count_tags(tracker: Any, target: Any = None, target_id: int | None = None) -> int:
    if target is None:
        return _count(tracker, t.tags)
    link, column = _TAG_LINKS[check_enum(target, TagTarget, "target")]
    return _count(tracker, link, _is(link.c[column], target_id, "target_id"))


def check_snapshot(data: Any) -> EnvironmentSnapshot:
    """An environment snapshot sent by a client, checked field by field."""
    if not isinstance(data, dict):
        raise Unprocessable(f"environment must be an object, got {type(data).__name__}", field="environment")
    text_fields = ("python_version", "platform", "hostname", "git_sha", "entrypoint")
    values: dict[str, Any] = {
        name: check_text(data.get(name, ""), f"environment.{name}", max_length=4096) for name in text_fields
    }
    values["git_dirty"] = check_bool(data.get("git_dirty", False), "environment.git_dirty")
    values["packages"] = check_text(data.get("packages", ""), "environment.packages", max_length=1_000_000)
    return EnvironmentSnapshot(**values)


def save_environment(tracker: Any, iteration_id: int, snapshot: EnvironmentSnapshot) -> None:
    """Store a snapshot captured in the client's process (the run's, not the server's, environment)."""
    iteration_id = check_id(iteration_id, "iteration_id")
    with write_transaction(tracker.engine) as conn:
        conn.execute(
            insert(t.environments).values(
                iteration_id=iteration_id,
                python_version=snapshot.python_version,
                platform=snapshot.platform,
                hostname=snapshot.hostname,
                git_sha=snapshot.git_sha,
                git_dirty=snapshot.git_dirty,
                entrypoint=snapshot.entrypoint,
                packages=snapshot.packages,
            )
        )
