"""The dashboard with auth on: who is looking (the session cookie) and what they may see.

The tracking server with `DIARY_ENABLE_AUTH` serves the dashboard behind a login page. The session
cookie holds the same signed token as the API's bearer token (user id and token generation), so a
password change or a logout-all ends dashboard sessions too. A user who is not an administrator reads
through `ReadableTracker`: the projects they have read permission on, and nothing else (an entity in
another project looks missing, as it does to the API's per-project guards). `diary ui` over a local
file has no settings with auth on and stays login-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request

COOKIE = "diary_session"


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login page."""


def auth_enabled(request: Request) -> bool:
    settings = getattr(request.app.state, "settings", None)
    return bool(settings is not None and settings.enable_auth)


def viewer(request: Request) -> Any:
    """The logged-in user (None with auth off); raises LoginRequired."""
    if not auth_enabled(request):
        return None
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    from ..server.auth import token_user
    from ..server.errors import ApiError

    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired()
    state = request.app.state
    try:
        user = token_user(state, *state.tokens.claims(token))
    except ApiError:
        raise LoginRequired() from None
    request.state.viewer = user
    return user


def tracker_for(request: Request) -> Any:
    tracker = request.app.state.tracker
    user = viewer(request)
    if user is None or user.is_admin:
        return tracker
    view = getattr(request.state, "readable", None)
    if view is None:
        view = request.state.readable = ReadableTracker(tracker, user.id)
    return view


class ReadableTracker:
    """A tracker's read calls limited to the projects a user may read."""

    def __init__(self, tracker: Any, user_id: int) -> None:
        self._tracker = tracker
        self._projects = {
            p.project_id for p in tracker.get_user_permissions(user_id=user_id) if p.read_permission
        }
        self._experiments: dict[int, bool] = {}
        self._iterations: dict[int, bool] = {}

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the dashboard's read-only view has no {name!r}")

    # -- what may be read
    def _experiment_ok(self, experiment_id: int) -> bool:
        if experiment_id not in self._experiments:
            experiment = self._tracker.get_experiment(experiment_id)
            self._experiments[experiment_id] = experiment is not None and experiment.project_id in self._projects
        return self._experiments[experiment_id]

    def _iteration_ok(self, iteration_id: int) -> bool:
        if iteration_id not in self._iterations:
            iteration = self._tracker.get_iteration(iteration_id)
            self._iterations[iteration_id] = iteration is not None and self._experiment_ok(iteration.experiment_id)
        return self._iterations[iteration_id]

    def _ids(self, iteration_ids: Sequence[int]) -> list[int]:
        return [i for i in iteration_ids if self._iteration_ok(i)]

    # -- projects and experiments
    def get_projects(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [p for p in self._tracker.get_projects(*args, **kwargs) if p.id in self._projects]

    def get_project(self, project_id: int) -> Any:
        return self._tracker.get_project(project_id) if project_id in self._projects else None

    def get_experiments(self, project_id: int, *args: Any, **kwargs: Any) -> list[Any]:
        return self._tracker.get_experiments(project_id, *args, **kwargs) if project_id in self._projects else []

    def get_experiment(self, experiment_id: int) -> Any:
        return self._tracker.get_experiment(experiment_id) if self._experiment_ok(experiment_id) else None

    # -- iterations and their data
    def _known(self, iterations: list[Any]) -> list[Any]:
        # Iterations listed under a readable experiment or iteration are readable: remembered, so a
        # sweep's batched reads cost no look-up per child.
        for iteration in iterations:
            self._iterations[iteration.id] = True
        return iterations

    def get_iterations(self, experiment_id: int, *args: Any, **kwargs: Any) -> list[Any]:
        if not self._experiment_ok(experiment_id):
            return []
        return self._known(self._tracker.get_iterations(experiment_id, *args, **kwargs))

    def get_iteration(self, iteration_id: int) -> Any:
        return self._tracker.get_iteration(iteration_id) if self._iteration_ok(iteration_id) else None

    def get_child_iterations(self, iteration_id: int, *args: Any, **kwargs: Any) -> list[Any]:
        if not self._iteration_ok(iteration_id):
            return []
        return self._known(self._tracker.get_child_iterations(iteration_id, *args, **kwargs))

    def search_iterations(self, experiment_ids: Any, *args: Any, **kwargs: Any) -> Any:
        """The search over the readable ones of `experiment_ids`: an unreadable experiment matches nothing,
        as a missing one does."""
        from ..tracker.records import IterationPage

        ids = [experiment_ids] if isinstance(experiment_ids, int) else list(experiment_ids)
        readable = [i for i in ids if isinstance(i, int) and self._experiment_ok(i)]
        if not readable:
            return IterationPage([], None)
        page = self._tracker.search_iterations(readable, *args, **kwargs)
        self._known(page.iterations)
        return page

    def get_environment(self, iteration_id: int) -> Any:
        return self._tracker.get_environment(iteration_id) if self._iteration_ok(iteration_id) else None

    def get_parameters(self, iteration_id: int, *args: Any, **kwargs: Any) -> list[Any]:
        if not self._iteration_ok(iteration_id):
            return []
        return self._tracker.get_parameters(iteration_id, *args, **kwargs)

    def get_tags(self, target: Any = None, target_id: int | None = None, *args: Any, **kwargs: Any) -> list[Any]:
        from ..tracker.enums import TagTarget

        target = TagTarget(target) if target is not None else None
        allowed = {
            TagTarget.PROJECT: lambda i: i in self._projects,
            TagTarget.EXPERIMENT: self._experiment_ok,
            TagTarget.ITERATION: self._iteration_ok,
        }
        if target is None or target_id is None or not allowed[target](target_id):
            return []
        return self._tracker.get_tags(target, target_id, *args, **kwargs)

    def get_latest_metrics(self, iteration_ids: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        return self._tracker.get_latest_metrics(self._ids(iteration_ids), *args, **kwargs)

    def get_parameter_values(self, iteration_ids: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        return self._tracker.get_parameter_values(self._ids(iteration_ids), *args, **kwargs)

    def get_metric_series(self, iteration_ids: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        return self._tracker.get_metric_series(self._ids(iteration_ids), *args, **kwargs)

    # -- the model registry: a model is read through its project
    def _model_ok(self, model_id: int) -> bool:
        model = self._tracker.get_model(model_id)
        return model is not None and model.project_id in self._projects

    def get_models(self, project_id: int, *args: Any, **kwargs: Any) -> list[Any]:
        return self._tracker.get_models(project_id, *args, **kwargs) if project_id in self._projects else []

    def get_model_versions(self, model_id: int, *args: Any, **kwargs: Any) -> list[Any]:
        return self._tracker.get_model_versions(model_id, *args, **kwargs) if self._model_ok(model_id) else []

    def get_model_aliases(self, model_id: int) -> list[Any]:
        return self._tracker.get_model_aliases(model_id) if self._model_ok(model_id) else []
