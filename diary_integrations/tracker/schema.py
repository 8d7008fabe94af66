"""The tables, as SQLAlchemy Core `Table`s. Alembic migrations beside this file create them (and a new
database is made from them at once, tracker/migrate.py).

Every table with an integer id is AUTOINCREMENT on SQLite, so an id is never handed out twice (a deleted
user's id reused by a new one would inherit old tokens; PostgreSQL's sequences never reuse ids anyway).

Queries go through SQLAlchemy Core (`select(iterations)`, `insert(...)`) rather than ORM sessions: every
call is one short transaction and batches use executemany, which keeps the hot path cheap. The tables are
Core too, not ORM mappings: nothing maps rows to classes, and importing `sqlalchemy.orm` and building
declarative classes cost a fresh training process ~0.35 s of CPU before its first write.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (the same on SQLite and PostgreSQL), handed out as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        return None if value is None else value.replace(tzinfo=timezone.utc)


class EpochTime(TypeDecorator[datetime]):
    """A timestamp stored as float seconds since the epoch: cheap to write and read by the million."""

    impl = Float(precision=53)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None or isinstance(value, float):
            return value
        return value.timestamp()

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        return None if value is None else datetime.fromtimestamp(value, timezone.utc)


class FaithfulFloat(TypeDecorator[float]):
    """A float that keeps NaN: SQLite turns NaN into NULL, so NaN is stored as NULL on purpose
    (the value is never absent otherwise) and read back as NaN. Infinities are stored natively."""

    impl = Float(precision=53)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        return None if value is None or value != value else value

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        return math.nan if value is None else value


metadata = MetaData(naming_convention=NAMING)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _table(name: str, *items: Any, autoincrement: bool = True) -> Table:
    # AUTOINCREMENT on SQLite for tables with an integer id (see the module's docstring).
    return Table(name, metadata, *items, **({"sqlite_autoincrement": True} if autoincrement else {}))


def _column(name: str, type_: Any, *args: Any, nullable: bool = False, **kwargs: Any) -> Column[Any]:
    """NOT NULL unless said otherwise."""
    return Column(name, type_, *args, nullable=nullable, **kwargs)


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True)


def _reference(name: str, target: str, ondelete: str, **kwargs: Any) -> Column[int]:
    """An integer foreign key; NOT NULL unless `nullable=True`."""
    return _column(name, Integer, ForeignKey(target, ondelete=ondelete), **kwargs)


def _owner(name: str, target: str) -> Column[int]:
    """The primary key of a row that extends another one (one row per iteration or experiment)."""
    return Column(name, Integer, ForeignKey(target, ondelete="CASCADE"), primary_key=True, autoincrement=False)


users = _table(
    "user",
    _id(),
    _column("username", String(150), unique=True),
    _column("password_hash", String(255)),
    _column("first_name", String(150), default=""),
    _column("last_name", String(150), default=""),
    _column("is_admin", Boolean, default=False),
    _column("created_date", UTCDateTime, default=_now),
    # Tokens carry the generation they were issued in; a password change, a deletion or a logout-all
    # bumps it, and every request compares the two, so older tokens stop working at once.
    _column("token_generation", Integer, default=0, server_default="0"),
)

projects = _table(
    "project",
    _id(),
    _column("name", String(250)),
    _column("description", Text, default=""),
    _column("created_date", UTCDateTime, default=_now),
    # Names are unique (migration 0003): integrations find a project by its name, so two of one name
    # would make one of them unreachable.
    # A unique index rather than a constraint: SQLite adds it without rebuilding the table (a rebuild drops
    # the table, and its ON DELETE CASCADE would take every experiment with it).
    Index("uq_project_name", "name", unique=True),
)

user_permissions = _table(
    "user_permission",
    _id(),
    _reference("user_id", "user.id", "CASCADE", index=True),
    _reference("project_id", "project.id", "CASCADE", index=True),
    _column("create_permission", Boolean, default=False),
    _column("read_permission", Boolean, default=True),
    _column("update_permission", Boolean, default=False),
    _column("delete_permission", Boolean, default=False),
    UniqueConstraint("user_id", "project_id"),
)

experiments = _table(
    "experiment",
    _id(),
    _reference("project_id", "project.id", "CASCADE", index=True),
    _column("status", Integer),
    _column("name", String(250)),
    _column("description", Text, default=""),
    _column("created_date", UTCDateTime, default=_now),
    _column("end_date", UTCDateTime, nullable=True),
    CheckConstraint("status IN (1, 2, 3)", name="status"),
    Index("uq_experiment_project_id_name", "project_id", "name", unique=True),  # as the project's name
)

iterations = _table(
    "iteration",
    _id(),
    _reference("experiment_id", "experiment.id", "CASCADE"),
    # Children outlive their parent: deleting a driver makes its children top-level.
    _reference("parent_iteration_id", "iteration.id", "SET NULL", nullable=True),
    _column("status", Integer, default=1),
    _column("notes", Text, default=""),
    _column("error_message", Text, default=""),
    _column("traceback", Text, default=""),
    _column("created_date", UTCDateTime, default=_now),
    _column("end_date", UTCDateTime, nullable=True),
    _column("heartbeat_date", UTCDateTime, default=_now),
    # A readable label (`C=1.0 solver=lbfgs`, `rank 1`); not unique. Last, as the Iteration record's field.
    _column("name", String(250), default="", server_default=""),
    CheckConstraint("status IN (1, 2, 3, 4)", name="status"),
    # The reaper looks for RUNNING rows with an old heartbeat.
    Index("ix_iteration_status_heartbeat", "status", "heartbeat_date"),
    # A parent's children (and the SET NULL when it is deleted), and a sweep's children in one status (the
    # best child among the SUCCEEDED ones) from the index alone: migration 0010 put it in place of the
    # index on parent_iteration_id alone, which it serves as well.
    Index("ix_iteration_parent_status", "parent_iteration_id", "status"),
    # A parent's children in id order (a first page of 100,000 children without sorting them all).
    Index("ix_iteration_parent_id", "parent_iteration_id", "id"),
    # An experiment's iterations, and its RUNNING ones alone (whose processes a read checks on this host)
    # without reading every row of a 100,000-run experiment for its status; migration 0012 put it in place
    # of the index on experiment_id alone, which it serves as well.
    Index("ix_iteration_experiment_status", "experiment_id", "status"),
)

# The process that runs an iteration, for embedded liveness: on the same host, a reader that finds no
# process with this pid and start time knows the run died without a word. The start time (seconds since
# the epoch, from the OS) tells a reused pid from the original.
iteration_processes = _table(
    "iteration_process",
    _owner("iteration_id", "iteration.id"),
    _column("host", String(250)),
    _column("pid", Integer),
    _column("process_start", Float(precision=53)),
    autoincrement=False,
)

# A write applied once: a repeat of the same key is answered with the first result. Rows older than a day
# are pruned.
idempotency_keys = _table(
    "idempotency_key",
    Column("key", String(100), primary_key=True),
    # Who sent it and what it was: a key reused for another request is refused, not answered.
    _column("user_id", Integer, nullable=True),
    _column("request_hash", String(64)),
    _column("status_code", Integer),
    _column("response", Text, default=""),
    _column("created_date", UTCDateTime, default=_now, index=True),
    autoincrement=False,
)

# Failed logins per username or client address in a fixed window: the login rate limit lives in the
# database, so several server processes over one database share it.
login_failures = _table(
    "login_failure",
    Column("scope", String(10), primary_key=True),  # "user" or "address"
    Column("subject", String(255), primary_key=True),
    _column("window_start", Float(precision=53)),
    _column("failures", Integer),
    autoincrement=False,
)

# One round of a tracking server's reaper (expired leases marked KILLED). Several server processes over
# one database take turns (server/cluster.py); each round that ran is a row, so an operator (and a test)
# can see who reaped what and that no two rounds overlapped. Rows older than an hour go.
reaper_runs = _table(
    "reaper_run",
    _id(),
    _column("server", String(255)),  # "host pid" of the process that ran the round
    _column("started_at", Float(precision=53), index=True),  # unix seconds
    _column("finished_at", Float(precision=53)),
    _column("reaped", Integer),  # iterations this round ended KILLED
)

environments = _table(
    "environment",
    _owner("iteration_id", "iteration.id"),
    _column("python_version", String(100), default=""),
    _column("platform", String(250), default=""),
    _column("hostname", String(250), default=""),
    _column("git_sha", String(64), default=""),
    _column("git_dirty", Boolean, default=False),
    _column("entrypoint", Text, default=""),
    _column("packages", Text, default=""),
    autoincrement=False,
)

parameters = _table(
    "parameter",
    _id(),
    _reference("iteration_id", "iteration.id", "CASCADE"),
    _column("key", String(250)),
    _column("value", Text),
    UniqueConstraint("iteration_id", "key"),
)

metrics = _table(
    "metric",
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    _reference("iteration_id", "iteration.id", "CASCADE"),
    _column("key", String(250)),
    _column("value", FaithfulFloat, nullable=True),
    _column("step", BigInteger),
    _column("recorded_at", EpochTime),
    Index("ix_metric_iteration_key_step", "iteration_id", "key", "step"),
)

# Each iteration's latest point of each metric key (the highest step; at one step, the last written),
# kept by every metric write in its own transaction (tracker/latest.py; migration 0012 filled it for older
# databases). "The latest value of x per child" is the costly part of a best child, a search ordered by a
# metric and a sweep's table: read here it is one row per child instead of a walk over every series, and
# the indexes give children in value order, so the best child or a first page stops after a few rows.
# The parent is kept beside it (an iteration's parent is set when it is made and only ever cleared, by
# the SET NULL here too), so a sweep's children come in value order from one index.
metric_latest = _table(
    "metric_latest",
    Column("iteration_id", Integer, ForeignKey("iteration.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("key", String(250), primary_key=True),
    _reference("parent_iteration_id", "iteration.id", "SET NULL", nullable=True),
    _column("value", FaithfulFloat, nullable=True),
    _column("step", BigInteger),
    Index("ix_metric_latest_parent_key_value", "parent_iteration_id", "key", "value", "iteration_id"),
    Index("ix_metric_latest_key_value", "key", "value", "iteration_id"),
    autoincrement=False,
)

tags = _table(
    "tag",
    _id(),
    _column("value", String(250), unique=True),
)


def _tag_link(name: str, owner: str, target: str) -> Table:
    return _table(
        name,
        _id(),
        _reference(owner, target, "CASCADE"),
        _reference("tag_id", "tag.id", "CASCADE", index=True),
        UniqueConstraint(owner, "tag_id"),
    )


project_tags = _tag_link("project_tag", "project_id", "project.id")
experiment_tags = _tag_link("experiment_tag", "experiment_id", "experiment.id")
iteration_tags = _tag_link("iteration_tag", "iteration_id", "iteration.id")

resources = _table(
    "resource",
    _id(),
    _reference("experiment_id", "experiment.id", "CASCADE", index=True),
    _column("name", String(250)),
    _column("description", Text, default=""),
    _column("backend", String(20), default="inline"),
    _column("uri", Text, default=""),
    _column("data", LargeBinary, nullable=True),
    _column("size_bytes", BigInteger, default=0),
    _column("content_hash", String(64), default=""),
    _column("created_date", UTCDateTime, default=_now),
    _column("updated_date", UTCDateTime, nullable=True),
)

# MLflow's tracking API (server/mlflow/): what MLflow keeps that an iteration or experiment has no field
# for. A run's soft delete (`lifecycle_stage`) and MLflow's key/value tags (diary's own tags are labels
# without a key); an iteration without a row here is an active run.
mlflow_runs = _table(
    "mlflow_run",
    _owner("iteration_id", "iteration.id"),
    _column("lifecycle_stage", String(20), default="active", server_default="active"),
    _column("start_time", BigInteger, nullable=True),  # ms, as the client sent it
    _column("user_id", String(250), default="", server_default=""),
    autoincrement=False,
)


def _mlflow_tags(name: str, owner: str, target: str) -> Table:
    """MLflow's key/value tags of a run or an experiment: one row per key."""
    return _table(
        name,
        _owner(owner, target),
        Column("key", String(250), primary_key=True),
        _column("value", Text),
        autoincrement=False,
    )


mlflow_run_tags = _mlflow_tags("mlflow_run_tag", "iteration_id", "iteration.id")

mlflow_experiments = _table(
    "mlflow_experiment",
    _owner("experiment_id", "experiment.id"),
    _column("lifecycle_stage", String(20), default="active", server_default="active"),
    _column("last_update_time", BigInteger, nullable=True),
    _column("artifact_location", Text, nullable=True),  # as the client asked; None: the server's proxy
    autoincrement=False,
)

mlflow_experiment_tags = _mlflow_tags("mlflow_experiment_tag", "experiment_id", "experiment.id")

# MLflow 3's logged model (what `log_model` creates): its files are resources of its experiment under
# `models/<model_id>/artifacts/`; its tags and params are small JSON objects.
mlflow_logged_models = _table(
    "mlflow_logged_model",
    Column("model_id", String(64), primary_key=True),
    _reference("experiment_id", "experiment.id", "CASCADE", index=True),
    _column("name", String(250)),
    _reference("source_run_id", "iteration.id", "SET NULL", nullable=True),
    _column("model_type", String(250), default="", server_default=""),
    _column("status", String(40)),
    _column("status_message", Text, default="", server_default=""),
    _column("creator", String(250), default="", server_default=""),
    _column("creation_time", BigInteger),
    _column("last_update_time", BigInteger),
    _column("tags", Text, default="{}", server_default="{}"),
    _column("params", Text, default="{}", server_default="{}"),
    # A source run id that names no iteration here (MLflow stores whatever the client sent).
    _column("source_run_text", String(64), nullable=True),
    autoincrement=False,
)

# MLflow's datasets (`log_inputs`, autologging): one row per (experiment, name, digest), as MLflow's store.
mlflow_datasets = _table(
    "mlflow_dataset",
    _id(),
    _reference("experiment_id", "experiment.id", "CASCADE"),
    _column("name", String(500)),
    _column("digest", String(36)),
    _column("source_type", String(36)),
    _column("source", Text),
    _column("schema", Text, default="", server_default=""),
    _column("profile", Text, default="", server_default=""),
    UniqueConstraint("experiment_id", "name", "digest"),
)

# What a run read and wrote in MLflow's terms: `direction` "input" (a dataset with its tags, or a logged
# model) or "output" (a logged model, at a step).
mlflow_run_io = _table(
    "mlflow_run_io",
    _id(),
    _reference("iteration_id", "iteration.id", "CASCADE", index=True),
    _column("direction", String(10)),
    _reference("dataset_id", "mlflow_dataset.id", "CASCADE", nullable=True, index=True),
    _column("model_id", String(64), nullable=True),
    _column("step", BigInteger, default=0, server_default="0"),
    _column("tags", Text, default="[]", server_default="[]"),
)

# A metric point logged with a model and/or dataset (MLflow 3): the point is also an ordinary metric
# point of its run; this row says which model and dataset it measured (a logged model's metrics).
mlflow_metric_links = _table(
    "mlflow_metric_link",
    _id(),
    _reference("iteration_id", "iteration.id", "CASCADE", index=True),
    _column("model_id", String(64), nullable=True, index=True),
    _column("dataset_name", String(500), nullable=True),
    _column("dataset_digest", String(36), nullable=True),
    _column("key", String(250)),
    _column("value", FaithfulFloat, nullable=True),
    _column("step", BigInteger),
    _column("timestamp", BigInteger),
)

# A registered model: a name (unique in its project) whose versions point at the iterations that
# produced them. `latest_version` is the last number handed out, so numbers are never reused.
models = _table(
    "model",
    _id(),
    _reference("project_id", "project.id", "CASCADE", index=True),
    _column("name", String(250)),
    _column("description", Text, default=""),
    _column("created_date", UTCDateTime, default=_now),
    _column("updated_date", UTCDateTime, nullable=True),
    _column("latest_version", Integer, default=0, server_default="0"),
    Index("uq_model_project_id_name", "project_id", "name", unique=True),
)

# One version of a model: numbered from 1 per model, made by an iteration of the model's project,
# optionally with the resource holding its weights (the version stays if that resource is deleted).
model_versions = _table(
    "model_version",
    _id(),
    _reference("model_id", "model.id", "CASCADE"),
    _column("version", Integer),
    _reference("iteration_id", "iteration.id", "CASCADE", index=True),
    _reference("resource_id", "resource.id", "SET NULL", nullable=True, index=True),
    _column("stage", Integer, default=1),
    _column("description", Text, default=""),
    _column("created_date", UTCDateTime, default=_now),
    _column("updated_date", UTCDateTime, nullable=True),
    UniqueConstraint("model_id", "version"),
    CheckConstraint("stage IN (1, 2, 3, 4)", name="stage"),
    CheckConstraint("version > 0", name="version"),
)

# An alias (`champion`): a name pointing at one version of a model, moved by updating the row.
model_aliases = _table(
    "model_alias",
    _id(),
    _reference("model_id", "model.id", "CASCADE"),
    _column("alias", String(250)),
    _reference("model_version_id", "model_version.id", "CASCADE", index=True),
    UniqueConstraint("model_id", "alias"),
)

# What MLflow's client said of a version it registered (model-versions/create): where its files are.
mlflow_model_versions = _table(
    "mlflow_model_version",
    _owner("model_version_id", "model_version.id"),
    _column("source", Text, default="", server_default=""),
    _column("model_id", String(64), nullable=True),  # the logged model it came from
    autoincrement=False,
)

# Key/value tags of a registered model and of a model version (MLflow's registry tags): one row per key,
# gone with their model or version.
model_tags = _table(
    "model_tag",
    _owner("model_id", "model.id"),
    Column("key", String(250), primary_key=True),
    _column("value", Text),
    autoincrement=False,
)

model_version_tags = _table(
    "model_version_tag",
    _owner("model_version_id", "model_version.id"),
    Column("key", String(250), primary_key=True),
    _column("value", Text),
    autoincrement=False,
)
