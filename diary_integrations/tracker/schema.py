"""The tables, as SQLAlchemy 2 typed mappings. Alembic migrations beside this file create them.

Every table with an integer id is AUTOINCREMENT on SQLite, so an id is never handed out twice (a deleted
user's id reused by a new one would inherit old tokens; PostgreSQL's sequences never reuse ids anyway).

Queries go through SQLAlchemy Core (`select(Iteration.__table__)`, `insert(...)`) rather than ORM sessions:
every call is one short transaction and batches use executemany, which keeps the hot path cheap.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class UserRow(Base):
    __tablename__ = "user"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str] = mapped_column(String(150), default="")
    last_name: Mapped[str] = mapped_column(String(150), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    # Tokens carry the generation they were issued in; a password change, a deletion or a logout-all
    # bumps it, and every request compares the two, so older tokens stop working at once.
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ProjectRow(Base):
    __tablename__ = "project"
    # Names are unique (migration 0003): integrations find a project by its name, so two of one name
    # would make one of them unreachable.
    # A unique index rather than a constraint: SQLite adds it without rebuilding the table (a rebuild drops
    # the table, and its ON DELETE CASCADE would take every experiment with it).
    __table_args__ = (Index("uq_project_name", "name", unique=True), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(250))
    description: Mapped[str] = mapped_column(Text, default="")
    created_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class UserPermissionRow(Base):
    __tablename__ = "user_permission"
    __table_args__ = (UniqueConstraint("user_id", "project_id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    create_permission: Mapped[bool] = mapped_column(Boolean, default=False)
    read_permission: Mapped[bool] = mapped_column(Boolean, default=True)
    update_permission: Mapped[bool] = mapped_column(Boolean, default=False)
    delete_permission: Mapped[bool] = mapped_column(Boolean, default=False)


class ExperimentRow(Base):
    __tablename__ = "experiment"
    __table_args__ = (
        CheckConstraint("status IN (1, 2, 3)", name="status"),
        Index("uq_experiment_project_id_name", "project_id", "name", unique=True),  # as the project's name
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    status: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(250))
    description: Mapped[str] = mapped_column(Text, default="")
    created_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IterationRow(Base):
    __tablename__ = "iteration"
    __table_args__ = (
        CheckConstraint("status IN (1, 2, 3, 4)", name="status"),
        # The reaper looks for RUNNING rows with an old heartbeat.
        Index("ix_iteration_status_heartbeat", "status", "heartbeat_date"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"), index=True)
    # Children outlive their parent: deleting a driver makes its children top-level.
    parent_iteration_id: Mapped[int | None] = mapped_column(
        ForeignKey("iteration.id", ondelete="SET NULL"), nullable=True, index=True
    )
    status: Mapped[int] = mapped_column(Integer, default=1)
    notes: Mapped[str] = mapped_column(Text, default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    traceback: Mapped[str] = mapped_column(Text, default="")
    created_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    # A readable label (`C=1.0 solver=lbfgs`, `rank 1`); not unique. Last, as the Iteration record's field.
    name: Mapped[str] = mapped_column(String(250), default="", server_default="")


class IterationProcessRow(Base):
    """The process that runs an iteration, for embedded liveness: on the same host, a reader that finds
    no process with this pid and start time knows the run died without a word. The start time (seconds
    since the epoch, from the OS) tells a reused pid from the original."""

    __tablename__ = "iteration_process"
    iteration_id: Mapped[int] = mapped_column(
        ForeignKey("iteration.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    host: Mapped[str] = mapped_column(String(250))
    pid: Mapped[int] = mapped_column(Integer)
    process_start: Mapped[float] = mapped_column(Float(precision=53))


class IdempotencyKeyRow(Base):
    """A write applied once: a repeat of the same key is answered with the first result. Rows older
    than a day are pruned."""

    __tablename__ = "idempotency_key"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    # Who sent it and what it was: a key reused for another request is refused, not answered.
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text, default="")
    created_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, index=True)


class LoginFailureRow(Base):
    """Failed logins per username or client address in a fixed window: the login rate limit lives in the
    database, so several server processes over one database share it."""

    __tablename__ = "login_failure"
    scope: Mapped[str] = mapped_column(String(10), primary_key=True)  # "user" or "address"
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float(precision=53))
    failures: Mapped[int] = mapped_column(Integer)


class ReaperRunRow(Base):
    """One round of a tracking server's reaper (expired leases marked KILLED). Several server processes
    over one database take turns (server/cluster.py); each round that ran is a row, so an operator (and
    a test) can see who reaped what and that no two rounds overlapped. Rows older than an hour go."""

    __tablename__ = "reaper_run"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server: Mapped[str] = mapped_column(String(255))  # "host pid" of the process that ran the round
    started_at: Mapped[float] = mapped_column(Float(precision=53), index=True)  # unix seconds
    finished_at: Mapped[float] = mapped_column(Float(precision=53))
    reaped: Mapped[int] = mapped_column(Integer)  # iterations this round ended KILLED


class EnvironmentRow(Base):
    __tablename__ = "environment"
    iteration_id: Mapped[int] = mapped_column(
        ForeignKey("iteration.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    python_version: Mapped[str] = mapped_column(String(100), default="")
    platform: Mapped[str] = mapped_column(String(250), default="")
    hostname: Mapped[str] = mapped_column(String(250), default="")
    git_sha: Mapped[str] = mapped_column(String(64), default="")
    git_dirty: Mapped[bool] = mapped_column(Boolean, default=False)
    entrypoint: Mapped[str] = mapped_column(Text, default="")
    packages: Mapped[str] = mapped_column(Text, default="")


class ParameterRow(Base):
    __tablename__ = "parameter"
    __table_args__ = (UniqueConstraint("iteration_id", "key"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iteration.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[str] = mapped_column(Text)


class MetricRow(Base):
    __tablename__ = "metric"
    __table_args__ = (
        Index("ix_metric_iteration_key_step", "iteration_id", "key", "step"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iteration.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(FaithfulFloat, nullable=True)
    step: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(EpochTime)


class TagRow(Base):
    __tablename__ = "tag"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(250), unique=True)


class ProjectTagRow(Base):
    __tablename__ = "project_tag"
    __table_args__ = (UniqueConstraint("project_id", "tag_id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"), index=True)


class ExperimentTagRow(Base):
    __tablename__ = "experiment_tag"
    __table_args__ = (UniqueConstraint("experiment_id", "tag_id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"), index=True)


class IterationTagRow(Base):
    __tablename__ = "iteration_tag"
    __table_args__ = (UniqueConstraint("iteration_id", "tag_id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iteration.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"), index=True)


class ResourceRow(Base):
    __tablename__ = "resource"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(250))
    description: Mapped[str] = mapped_column(Text, default="")
    backend: Mapped[str] = mapped_column(String(20), default="inline")
    uri: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    created_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    updated_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# MLflow's tracking API (server/mlflow/): what MLflow keeps that an iteration or experiment has no field
# for. A run's soft delete (`lifecycle_stage`) and MLflow's key/value tags (diary's own tags are labels
# without a key); an iteration without a row here is an active run.
class MlflowRunRow(Base):
    __tablename__ = "mlflow_run"
    iteration_id: Mapped[int] = mapped_column(
        ForeignKey("iteration.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    start_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # ms, as the client sent it
    user_id: Mapped[str] = mapped_column(String(250), default="", server_default="")


class MlflowRunTagRow(Base):
    __tablename__ = "mlflow_run_tag"
    iteration_id: Mapped[int] = mapped_column(
        ForeignKey("iteration.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MlflowExperimentRow(Base):
    __tablename__ = "mlflow_experiment"
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiment.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    last_update_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MlflowExperimentTagRow(Base):
    __tablename__ = "mlflow_experiment_tag"
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiment.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MlflowLoggedModelRow(Base):
    """MLflow 3's logged model (what `log_model` creates): its files are resources of its experiment
    under `models/<model_id>/artifacts/`; its tags and params are small JSON objects."""

    __tablename__ = "mlflow_logged_model"
    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(250))
    source_run_id: Mapped[int | None] = mapped_column(ForeignKey("iteration.id", ondelete="SET NULL"), nullable=True)
    model_type: Mapped[str] = mapped_column(String(250), default="", server_default="")
    status: Mapped[str] = mapped_column(String(40))
    status_message: Mapped[str] = mapped_column(Text, default="", server_default="")
    creator: Mapped[str] = mapped_column(String(250), default="", server_default="")
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)
    tags: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    params: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")


class ModelRow(Base):
    """A registered model: a name (unique in its project) whose versions point at the iterations that
    produced them. `latest_version` is the last number handed out, so numbers are never reused."""

    __tablename__ = "model"
    __table_args__ = (
        Index("uq_model_project_id_name", "project_id", "name", unique=True),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(250))
    description: Mapped[str] = mapped_column(Text, default="")
    created_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    updated_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    latest_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ModelVersionRow(Base):
    """One version of a model: numbered from 1 per model, made by an iteration of the model's project,
    optionally with the resource holding its weights (the version stays if that resource is deleted)."""

    __tablename__ = "model_version"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint("stage IN (1, 2, 3, 4)", name="stage"),
        CheckConstraint("version > 0", name="version"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iteration.id", ondelete="CASCADE"), index=True)
    resource_id: Mapped[int | None] = mapped_column(
        ForeignKey("resource.id", ondelete="SET NULL"), nullable=True, index=True
    )
    stage: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str] = mapped_column(Text, default="")
    created_date: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    updated_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ModelAliasRow(Base):
    """An alias (`champion`): a name pointing at one version of a model, moved by updating the row."""

    __tablename__ = "model_alias"
    __table_args__ = (UniqueConstraint("model_id", "alias"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(250))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id", ondelete="CASCADE"), index=True)


metadata = Base.metadata
users = UserRow.__table__
projects = ProjectRow.__table__
user_permissions = UserPermissionRow.__table__
experiments = ExperimentRow.__table__
iterations = IterationRow.__table__
environments = EnvironmentRow.__table__
iteration_processes = IterationProcessRow.__table__
idempotency_keys = IdempotencyKeyRow.__table__
parameters = ParameterRow.__table__
metrics = MetricRow.__table__
tags = TagRow.__table__
project_tags = ProjectTagRow.__table__
experiment_tags = ExperimentTagRow.__table__
iteration_tags = IterationTagRow.__table__
resources = ResourceRow.__table__
login_failures = LoginFailureRow.__table__
reaper_runs = ReaperRunRow.__table__
mlflow_runs = MlflowRunRow.__table__
mlflow_run_tags = MlflowRunTagRow.__table__
mlflow_experiments = MlflowExperimentRow.__table__
mlflow_experiment_tags = MlflowExperimentTagRow.__table__
mlflow_logged_models = MlflowLoggedModelRow.__table__


models = ModelRow.__table__
model_versions = ModelVersionRow.__table__
model_aliases = ModelAliasRow.__table__
