"""The Tracker protocol: the methods LocalTracker (SQL) and RemoteTracker (HTTP) both provide.

The contract test suite runs against every implementation, so the two can never drift. Defaults
written `...` mean "leave unchanged" (None there means "clear").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from .enums import ExperimentStatus, IterationStatus, ModelStage, Result, TagTarget
from .lifecycle import IterationRun
from .records import (
    Created,
    Environment,
    Experiment,
    Iteration,
    IterationEnding,
    IterationPage,
    Metric,
    Model,
    ModelAlias,
    ModelVersion,
    NewIteration,
    Parameter,
    Project,
    Resource,
    Tag,
    User,
    UserPermission,
)


@runtime_checkable
class Tracker(Protocol):
    url: str

    def close(self) -> None:
        ...

    def get_user(self, user: int | str) -> User | None:
        """By id, or by username when given a string."""
        ...

    def get_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        """Every user (without password hashes)."""
        ...

    def create_user(
        self,
        *args: str,
        username: str | None = None,
        password: str | None = None,
        first_name: str = "",
        last_name: str = "",
        is_admin: bool = False,
    ) -> Created:
        """A user. Positionally in DearDiary's order `(first_name, last_name, username, password)`, or
        `(username, password)`; keywords work in either case."""
        ...

    def get_user_by_username(self, username: str) -> User | None:
        """DearDiary's `get_user_by_username`: `get_user` given a name."""
        ...

    def update_user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        password: str | None = None,
        is_admin: bool | None = None,
    ) -> Result:
        """Change a user's names, password or admin flag (`default` stays an admin)."""
        ...

    def delete_user(self, user_id: int) -> bool:
        """Deletes the user and their permissions; the `default` user cannot be deleted (False)."""
        ...

    def authenticate(self, username: str, password: str) -> User | None:
        """The user whose password this is, or None."""
        ...

    def create_user_permission(
        self,
        user_id: int,
        project_id: int,
        *,
        create: bool = False,
        read: bool = True,
        update: bool = False,
        delete: bool = False,
    ) -> Created:
        """What `user_id` may do on `project_id` (read only by default); Conflict if the pair has one."""
        ...

    def create_userpermission(
        self,
        user_id: int,
        project_id: int,
        *,
        create: bool = False,
        read: bool = True,
        update: bool = False,
        delete: bool = False,
    ) -> Created:
        """DearDiary's name for `create_user_permission`."""
        ...

    def get_user_permission(self, user_id: int, project_id: int) -> UserPermission | None:
        """The permission of `user_id` on `project_id`, or None."""
        ...

    def get_user_permissions(
        self,
        *,
        user_id: int | None = None,
        project_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[UserPermission]:
        """Permission rows, all or those of one user or one project."""
        ...

    def update_user_permission(
        self,
        permission_id: int,
        *,
        create: bool | None = None,
        read: bool | None = None,
        update: bool | None = None,
        delete: bool | None = None,
    ) -> Result:
        """Change the flags of a permission row."""
        ...

    def delete_user_permission(self, permission_id: int) -> bool:
        """Deletes the permission row; False if missing."""
        ...

    def create_project(self, name: str, *, description: str = "", user_id: int | None = None) -> Created:
        """A project, owned by `user_id` (default: the `default` user), who gets every permission on it."""
        ...

    def get_or_create_project(self, name: str, *, description: str = "", user_id: int | None = None) -> Project:
        """The project named `name`, created (with `description`, owned by `user_id`) when there is none.
        Two processes asking at once both get the one project."""
        ...

    def get_or_create_experiment(self, project_id: int, name: str, *, description: str = "") -> Experiment:
        """The project's experiment named `name`, created IN_PROGRESS (with `description`) when there is
        none. Two processes asking at once both get the one experiment."""
        ...

    def get_project(self, project_id: int) -> Project | None:
        """The project, or None if it does not exist."""
        ...

    def get_projects(
        self, *, user_id: int | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Project]:
        """Every project, or with `user_id` the ones that user may read (an admin reads all)."""
        ...

    def get_project_by_name(self, name: str) -> Project | None:
        """The oldest project with this name (names are not unique, as in DearDiary)."""
        ...

    def update_project(self, project_id: int, *, name: str | None = None, description: str | None = None) -> Result:
        """Rename or redescribe a project."""
        ...

    def delete_project(self, project_id: int) -> bool:
        """Deletes the project with its experiments, iterations and resources (files included)."""
        ...

    def create_experiment(
        self, project_id: int, status: ExperimentStatus | int, name: str, *, description: str = ""
    ) -> Created:
        """An IN_PROGRESS experiment in the project (DearDiary refuses any other starting status); its
        name is unique in the project."""
        ...

    def get_experiment(self, experiment_id: int) -> Experiment | None:
        """The experiment, or None if it does not exist."""
        ...

    def get_experiments(self, project_id: int, *, limit: int | None = None, offset: int = 0) -> list[Experiment]:
        """The project's experiments, oldest first."""
        ...

    def get_experiment_by_name(self, project_id: int, name: str) -> Experiment | None:
        """The project's experiment with this name, or None."""
        ...

    def update_experiment(
        self,
        experiment_id: int,
        *,
        status: ExperimentStatus | int | None = None,
        name: str | None = None,
        description: str | None = None,
        end_date: datetime | None = ...,
    ) -> Result:
        """Moving to STOPPED or FINISHED stamps `end_date` (unless given); back to IN_PROGRESS clears it."""
        ...

    def delete_experiment(self, experiment_id: int) -> bool:
        """Deletes the experiment with its iterations and resources; False if it does not exist."""
        ...

    def create_iteration(
        self,
        experiment_id: int,
        *,
        parent_iteration_id: int | None = None,
        notes: str = "",
        snapshot: bool | None = None,
        parameters: Mapping[str, Any] | None = None,
        name: str = "",
    ) -> Created:
        """A RUNNING iteration. A parent must exist in the same experiment. `snapshot` (default: only
        for top-level iterations) stores the environment beside it; `parameters` are set in the same
        transaction. `name` is a readable label (not unique; empty by default)."""
        ...

    def create_iterations(
        self, experiment_id: int, iterations: Sequence[NewIteration], *, parent_iteration_id: int | None = None
    ) -> list[int]:
        """Several RUNNING iterations (each with its notes and parameters) in one transaction, all or
        nothing: a sweep's children a batch at a time. No environment snapshots. Their ids, in order."""
        ...

    def get_iteration(self, iteration_id: int) -> Iteration | None:
        """The iteration (status, parent, error, timings), or None if it does not exist."""
        ...

    def get_iterations(
        self,
        experiment_id: int,
        *,
        status: IterationStatus | int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Iteration]:
        """The experiment's iterations, oldest first (children included)."""
        ...

    def get_child_iterations(
        self, iteration_id: int, *, limit: int | None = None, offset: int = 0
    ) -> list[Iteration]:
        """The direct children of an iteration, ordered by id."""
        ...

    def search_iterations(
        self,
        experiment_ids: int | Sequence[int],
        filter: str = "",  # noqa: A002 - MLflow's name for it
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> IterationPage:
        """The iterations of these experiments that match `filter` (MLflow's grammar: `params.x`,
        `metrics.y` (latest value), `tags.z`, `attributes.status`, `name`, `created`, `duration`,
        `parent_iteration_id`, `is_leaf`, `depth`; AND, comparisons, LIKE/ILIKE, IN), ordered by
        `order_by` (`"metrics.loss"`, `"params.lr DESC"`; then by id), at most `max_results` (1 to 10,000)
        per page; the page's `next_page_token` fetches the next. Evaluated in the database. A filter that
        cannot be read raises `Unprocessable` naming the token and its position."""
        ...

    def get_environment(self, iteration_id: int) -> Environment | None:
        """The environment snapshot stored with the iteration (interpreter, git, entrypoint, lock files), or None."""
        ...

    def update_iteration(
        self,
        iteration_id: int,
        *,
        notes: str | None = None,
        status: IterationStatus | int | None = None,
        error_message: str | None = None,
        traceback: str | None = None,
        end_date: datetime | None = ...,
    ) -> Result:
        """Change an iteration. A status other than RUNNING stamps `end_date` unless one is given."""
        ...

    def reopen_iteration(
        self, iteration_id: int, *, expected_status: IterationStatus | int, reason: str
    ) -> Result:
        """Continue an iteration (a requeued or resumed run): RUNNING again with a fresh heartbeat, its end
        and error cleared, and a notes line saying when, from which status and error, and why. Refused with
        `Conflict` (nothing written) unless it is still in `expected_status`, so only one process takes it
        over."""
        ...

    def end_iteration(
        self,
        iteration_id: int,
        status: IterationStatus | int = IterationStatus.SUCCEEDED,
        *,
        error_message: str = "",
        traceback: str = "",
        parameters: Mapping[str, Any] | None = None,
        points: Iterable[Sequence[Any]] | None = None,
        notes: str | None = None,
    ) -> Result:
        """Finish a RUNNING iteration with its final status. Ending an ended iteration is refused, so a
        late or duplicate finaliser can never overwrite the status that was first recorded. `parameters`,
        `points` (as `log_metric_points`) and `notes` are written in the same transaction as the end."""
        ...

    def end_iterations(self, endings: Sequence[IterationEnding]) -> int:
        """End several RUNNING iterations, each with its own status and last data, in one transaction, all
        or nothing (an unknown, already ended or repeated iteration refuses the whole batch). Returns how
        many were ended."""
        ...

    def delete_iteration(self, iteration_id: int) -> bool:
        """Deletes the iteration and its data; its children stay, as top-level iterations."""
        ...

    def heartbeat(self, *iteration_ids: int) -> None:
        """Mark these iterations alive now; `IterationEnded` names those already ended (never reopened)."""
        ...

    def reap(
        self, older_than: float | timedelta = 300.0, *, experiment_id: int | None = None, force: bool = False
    ) -> list[int]:
        """Mark KILLED every RUNNING iteration whose heartbeat is older than `older_than` (seconds):
        its process died without a word (SIGKILL, OOM killer, lost node). Returns their ids. A tracking
        server refuses an age under its lease unless `force` (admins); a LocalTracker takes any age."""
        ...

    def with_iteration(
        self,
        experiment_id: int,
        *,
        parent_iteration_id: int | None = None,
        notes: str = "",
        snapshot: bool | None = None,
        name: str = "",
        system_metrics: bool = False,
        system_metrics_interval: float = 10.0,
    ) -> IterationRun:
        """A context manager (and call form) that opens an iteration and finalises it truthfully
        (`system_metrics=True`: with the process's system metrics recorded while it runs)."""
        ...

    def create_parameter(self, iteration_id: int, key: str, value: Any) -> Created:
        """A parameter, stored as text. A key is set once per iteration (Conflict otherwise)."""
        ...

    def log_parameters(self, iteration_id: int, parameters: Mapping[str, Any]) -> int:
        """Set several parameters in one transaction, all or nothing. A key already set to the same
        value is skipped (so a re-run of the same logging is harmless); a different value is a Conflict.
        Returns how many were written."""
        ...

    def get_parameter(self, parameter_id: int) -> Parameter | None:
        """One parameter, or None."""
        ...

    def get_parameters(self, iteration_id: int, *, limit: int | None = None, offset: int = 0) -> list[Parameter]:
        """The iteration's parameters, in the order they were written (values as strings)."""
        ...

    def update_parameter(self, parameter_id: int, *, key: str | None = None, value: Any = ...) -> Result:
        """Change a parameter of a RUNNING iteration (its key or value)."""
        ...

    def delete_parameter(self, parameter_id: int) -> bool:
        """Deletes a parameter of a RUNNING iteration; False if missing or ended."""
        ...

    def create_metric(
        self,
        iteration_id: int,
        key: str,
        value: float,
        *,
        step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> Created:
        """One metric point. Without `step`, the key's next step (0, 1, 2, ...)."""
        ...

    def log_metrics(
        self,
        iteration_id: int,
        metrics: Mapping[str, float],
        *,
        step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> int:
        """Several keys at one step, in one transaction, all or nothing. Without `step`, each key takes
        its own next step. Returns how many points were written."""
        ...

    def log_metric_points(
        self, iteration_id: int, points: Iterable[Sequence[Any]]
    ) -> int:
        """The bulk path: `(key, value, step)` or `(key, value, step, recorded_at)` tuples, any number
        of steps, written with one executemany in one transaction. Returns how many were written."""
        ...

    def log_metric_points_many(self, points_by_iteration: Mapping[int, Iterable[Sequence[Any]]]) -> int:
        """The bulk path for several iterations at once: `{iteration_id: points}`, one transaction, all
        or nothing. Returns how many were written."""
        ...

    def get_metric(self, metric_id: int) -> Metric | None:
        """One metric point, or None."""
        ...

    def get_metrics(
        self, iteration_id: int, *, key: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Metric]:
        """An iteration's metric points ordered by step then id (one key's series with `key=`)."""
        ...

    def get_latest_metrics(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """For each iteration, each key's value at its highest step: what a sweep table shows."""
        ...

    def get_parameter_values(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """For each iteration, its parameters as `{key: value}` in a fixed number of queries (`{}` for an
        iteration without parameters or that does not exist): what a sweep table shows."""
        ...

    def get_metric_series(
        self, iteration_ids: Sequence[int], key: str, *, max_points: int | None = None
    ) -> dict[int, list[tuple[int, float]]]:
        """Each iteration's `(step, value)` series for one key, ordered by step (`[]` when it has none). With
        `max_points` (at least 2), a longer series is cut into `max_points // 2` step buckets in the database,
        each giving its lowest and highest value, so every peak and trough survives."""
        ...

    def get_best_child_iteration(
        self,
        iteration_id: int,
        key: str,
        *,
        mode: str = "max",
        status: IterationStatus | int | None = IterationStatus.SUCCEEDED,
    ) -> tuple[Iteration, float] | None:
        """The child whose latest `key` value is highest (`mode="max"`) or lowest (`"min"`), with that
        value; among SUCCEEDED children by default (`status=None`: any). NaN never wins. None if no child
        has the metric."""
        ...

    def update_metric(
        self, metric_id: int, *, value: float | None = None, step: int | None = None
    ) -> Result:
        """Change a metric point of a RUNNING iteration (its value or step)."""
        ...

    def delete_metric(self, metric_id: int) -> bool:
        """Deletes one metric point of a RUNNING iteration; False if missing or ended."""
        ...

    def create_tag(self, value: str) -> Created:
        """A tag in the global vocabulary; Conflict if the value exists."""
        ...

    def get_tag(self, tag: int | str) -> Tag | None:
        """By id, or by value when given a string."""
        ...

    def get_tags(
        self,
        target: TagTarget | str | None = None,
        target_id: int | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Tag]:
        """Every tag, or the tags on one project, experiment or iteration."""
        ...

    def update_tag(self, tag_id: int, value: str) -> Result:
        """Change a tag's value everywhere it is attached."""
        ...

    def delete_tag(self, tag_id: int) -> bool:
        """Deletes the tag and detaches it from everything it was on."""
        ...

    def add_tag(self, target: TagTarget | str, target_id: int, value: str) -> Created:
        """Attach a tag (created if new) to a project, experiment or iteration; Conflict if already on it."""
        ...

    def remove_tag(self, target: TagTarget | str, target_id: int, value: str) -> bool:
        """Detaches the tag from the project, experiment or iteration; False if it was not on it."""
        ...

    def create_resource(
        self, experiment_id: int, name: str, data: bytes | str | os.PathLike[str], *, description: str = ""
    ) -> Created:
        """Store artifact bytes (or a file's bytes) on an experiment, with their size and sha256."""
        ...

    def get_resource(self, resource_id: int) -> Resource | None:
        """The resource's description (name, size, sha256, where its bytes are), or None."""
        ...

    def get_resource_data(self, resource_id: int) -> bytes | None:
        """The resource's bytes, or None if it does not exist."""
        ...

    def get_resources(self, experiment_id: int, *, limit: int | None = None, offset: int = 0) -> list[Resource]:
        """The experiment's resources, oldest first."""
        ...

    def update_resource(
        self,
        resource_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        data: bytes | str | os.PathLike[str] | None = None,
    ) -> Result:
        """Rename or redescribe a resource, or replace its bytes."""
        ...

    def delete_resource(self, resource_id: int) -> bool:
        """Deletes the resource and its stored bytes; False if missing."""
        ...

    # -- the model registry (tracker/local/models.py) ----------------------------------------------

    def create_model(self, project_id: int, name: str, *, description: str = "") -> Created:
        """A registered model in a project; its name is unique there (Conflict otherwise)."""
        ...

    def get_model(self, model_id: int) -> Model | None:
        """The registered model, or None."""
        ...

    def get_model_by_name(self, project_id: int, name: str) -> Model | None:
        """The project's model with this name, or None."""
        ...

    def get_models(self, project_id: int, *, limit: int | None = None, offset: int = 0) -> list[Model]:
        """A project's models, ordered by id."""
        ...

    def update_model(self, model_id: int, *, name: str | None = None, description: str | None = None) -> Result:
        """Rename or redescribe a registered model."""
        ...

    def delete_model(self, model_id: int) -> bool:
        """Deletes the model with its versions and aliases; the resources holding weights stay."""
        ...

    def create_model_version(
        self, model_id: int, iteration_id: int, *, resource_id: int | None = None, description: str = ""
    ) -> Created:
        """The model's next version (1, 2, ...; a number is never handed out twice), made by
        `iteration_id`, its weights in `resource_id`; both must belong to the model's project. It
        starts at NO_STAGE."""
        ...

    def get_model_version(self, model_version_id: int) -> ModelVersion | None:
        """One model version, or None."""
        ...

    def get_model_versions(
        self, model_id: int, *, stage: ModelStage | int | str | None = None, limit: int | None = None,
        offset: int = 0,
    ) -> list[ModelVersion]:
        """A model's versions ordered by number (only those at `stage` when given)."""
        ...

    def update_model_version(
        self, model_version_id: int, *, stage: ModelStage | int | str | None = None,
        description: str | None = None, resource_id: int | None = ...,
    ) -> Result:
        """Change a version's stage, description or resource (None detaches it). Moving one to
        PRODUCTION archives the model's other PRODUCTION versions in the same transaction."""
        ...

    def delete_model_version(self, model_version_id: int) -> bool:
        """Deletes one version (its resource stays); False if missing."""
        ...

    def set_model_alias(self, model_id: int, alias: str, version: int) -> Result:
        """Point `alias` at the model's version `version` (CREATED), or move it there (UPDATED)."""
        ...

    def get_model_aliases(self, model_id: int) -> list[ModelAlias]:
        """The model's aliases, ordered by name."""
        ...

    def delete_model_alias(self, model_id: int, alias: str) -> bool:
        """Removes the model's alias; False if it had none of that name."""
        ...
