"""The dashboard's pages: home, experiment tree, iteration, sweep; plus a JSON series endpoint.

A page called with `?part=live` renders only its live region, which the page's script polls while
something runs, so charts and the sweep table move without a reload.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from ..tracker.enums import IterationStatus, TagTarget
from ..tracker.errors import DiaryError
from ..tracker.records import encode_float
from . import compare as comparing
from . import data
from . import search as searching
from .access import COOKIE, LoginRequired, auth_enabled, tracker_for
from .charts import PALETTE, Dot, Series, fmt, line_chart, scatter_chart
from .formatting import absolute_time, duration, glyph, relative_time, runs, status_class, status_words
from .sweep_views import many_parameters, sweep_importance
from .system import system_section

PREFIX = "/ui"
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
    'fill="#1e293b"/><path d="M6 24 L12 14 L18 19 L26 7" stroke="#38bdf8" stroke-width="3" fill="none"/></svg>'
)
# Sparklines of DDP ranks stay small; a run rarely has more ranks than this on one page.
MAX_RANK_CARDS = 64



class _PageRoute(APIRoute):
    """A page whose URL does not validate (`/ui/iterations/abc`, `?log=maybe`) answers with the dashboard's
    own HTML page, not FastAPI's JSON 422: a person reads it in a browser. Caught here, in the route,
    because the tracking server that mounts the dashboard has JSON error handlers of its own."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.response_class is not HTMLResponse:  # the JSON endpoint keeps its JSON 422

            async def json_handler(request: Request) -> Response:
                try:
                    return await handler(request)
                except LoginRequired:
                    return JSONResponse({"code": "LOGIN_REQUIRED", "message": "log in to the dashboard"}, 401)

            return json_handler

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                try:
                    return _invalid(request, exc)
                except LoginRequired:
                    return _to_login(request)
            except LoginRequired:
                return _to_login(request)

        return page_handler


def _to_login(request: Request) -> Response:
    base = request.scope.get("root_path", "") + PREFIX
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{base}/login?{urlencode({'next': here})}", status_code=303)


router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=_PageRoute)
templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def breakable(name: str) -> Markup:
    """A key that may wrap after `_`, `/` or `.`: scikit-learn's `mean_test_score`, `param_max_depth`
    column heads then take two short lines rather than pushing the sweep table past the window."""
    text = str(escape(name))
    for sep in ("_", "/", "."):
        text = text.replace(sep, sep + "<wbr>")
    return Markup(text)


def label(iteration: Any) -> str:
    """`#12 C=1.0 solver=lbfgs`: an iteration's id, then its name when it has one."""
    return f"#{iteration.id} {iteration.name}" if getattr(iteration, "name", "") else f"#{iteration.id}"


templates.filters.update(
    label=label, breakable=breakable, fmt=fmt, rel=relative_time, abs=absolute_time, dur=duration, glyph=glyph,
    cls=status_class, status_words=status_words, runs=runs,
)
templates.tests.update(timing=data.is_timing)  # `keys|select("timing")`
templates.globals.update(Status=IterationStatus)
# Macros as a global rather than an `{% import %}`, so a page's live block renders on its own too.
templates.globals.update(m=templates.get_template("_macros.html").module)


def _tracker(request: Request) -> Any:
    """What this request may read: the whole tracker, or with auth on the logged-in user's projects."""
    return tracker_for(request)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    base = request.scope.get("root_path", "") + PREFIX
    context.update(ui=base, now=datetime.now(timezone.utc), viewer=getattr(request.state, "viewer", None))
    template = templates.get_template(name)
    part = request.query_params.get("part")
    if part in ("live", "importance") and part in template.blocks:  # a region the page's script fetches
        html = "".join(template.blocks[part](template.new_context(context)))
    else:
        html = template.render(context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _not_found(request: Request, what: str, message: str = "It may have been deleted.") -> HTMLResponse:
    nav = data.navigation(_tracker(request))
    return _render(request, "not_found.html", 404, nav=nav, title=f"{what} not found", message=message)


def _invalid(request: Request, exc: RequestValidationError) -> HTMLResponse:
    # An id that is not a number names nothing: the same 404 as a deleted one. A bad query value is a 400.
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if loc[:1] == ("path",) and str(loc[-1]).endswith("_id"):
            what = str(loc[-1]).removesuffix("_id")
            return _not_found(request, what.capitalize(), f"{error.get('input')!r} is not an {what} id.")
    problems = "; ".join(
        f"{error['loc'][-1]}: {error.get('msg', 'invalid')}" for error in exc.errors() if error.get("loc")
    )
    return _render(
        request, "not_found.html", 400, nav=data.navigation(_tracker(request)), title="Bad request",
        message=f"This page cannot be shown for that address ({problems}).",
    )


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    tracker = _tracker(request)
    nav = data.navigation(tracker)
    # Each experiment's iterations by status at every depth, as `diary ls` counts them.
    counts = {e.id: data.count_statuses(tracker.get_iterations(e.id)) for _, exps in nav.projects for e in exps}
    models = {p.id: len(tracker.get_models(p.id)) for p, _ in nav.projects}
    return _render(request, "home.html", nav=nav, counts=counts, models=models, title=None)


@router.get("/projects/{project_id}/models", response_class=HTMLResponse)
def models_page(request: Request, project_id: int) -> HTMLResponse:
    """The project's registered models: versions, stages and aliases, each linked to its iteration."""
    tracker = _tracker(request)
    project = tracker.get_project(project_id)
    if project is None:
        return _not_found(request, "Project")
    cards = data.project_models(tracker, project_id)
    return _render(
        request, "models.html", nav=data.navigation(tracker), project=project, cards=cards,
        title=f"{project.name} models",
    )


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(
    request: Request,
    experiment_id: int,
    param: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI reads the default, never mutates it
    metric: Annotated[list[str], Query()] = [],  # noqa: B006
    filter_text: Annotated[str, Query(alias="filter")] = "",
    order_by: str = "",
) -> HTMLResponse:
    tracker = _tracker(request)
    experiment = tracker.get_experiment(experiment_id)
    if experiment is None:
        return _not_found(request, "Experiment")
    iterations = tracker.get_iterations(experiment_id)
    nav = data.navigation(tracker, experiment, iterations)
    project = tracker.get_project(experiment.project_id)
    by_status = {s: sum(1 for it in iterations if it.status is s) for s in IterationStatus}
    found = searching.search(tracker, experiment_id, filter_text, order_by)
    rows = nav.tree
    if found.ids is not None:
        # Matches at any depth, in the search's order, each with its children (a driver keeps its counts).
        index = data.index_nodes(nav.tree)
        rows = [index[i] for i in found.ids if i in index]
        param, metric = param or found.params, metric or found.metrics
    return _render(
        request, "experiment.html", 422 if found.error else 200, nav=nav, experiment=experiment, project=project,
        iterations=iterations, by_status=by_status, table=data.experiment_table(tracker, rows, param, metric),
        tags=tracker.get_tags(TagTarget.EXPERIMENT, experiment_id), search=found, chosen=(param, metric),
        title=experiment.name,
    )


def _metric_charts(
    tracker: Any, iteration_id: int, keys: list[str], overlay: list[str], log_y: bool
) -> tuple[list[tuple[str, Any]], Any]:
    series = {k: data.series_for(tracker, [iteration_id], k, data.SERIES_POINTS)[iteration_id] for k in keys}
    singles = data.single_values(series)
    charts = [(k, line_chart([Series(k, series[k])], y_label=k, log_y=log_y)) for k in keys if k not in singles]
    overlaid = None
    chosen = [k for k in overlay if k in series]
    if len(chosen) >= 2:
        overlaid = line_chart([Series(k, series[k]) for k in chosen], y_label=", ".join(chosen), log_y=log_y)
    return charts, overlaid


@router.get("/iterations/{iteration_id}", response_class=HTMLResponse)
def iteration_page(
    request: Request,
    iteration_id: int,
    overlay: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI reads the default, never mutates it
    log: bool = False,
) -> HTMLResponse:
    tracker = _tracker(request)
    iteration = tracker.get_iteration(iteration_id)
    if iteration is None:
        return _not_found(request, "Iteration")
    experiment = tracker.get_experiment(iteration.experiment_id)
    parents = data.ancestors(tracker, iteration)
    live = request.query_params.get("part") == "live"
    everything = data.metric_keys(tracker, iteration_id)
    # The `system/...` metrics have their own section (one time axis), not a chart each among the others.
    latest = {k: v for k, v in everything.items() if not data.is_system(k)}
    charts, overlaid = _metric_charts(tracker, iteration_id, list(latest), overlay, log)
    charted = {key for key, _ in charts}
    context: dict[str, Any] = dict(
        iteration=iteration, experiment=experiment, parents=parents, latest=latest, charts=charts,
        system=system_section(tracker, iteration, everything),
        singles={k: v for k, v in latest.items() if k not in charted},
        overlaid=overlaid, overlay=overlay, log=log,
        parameters=tracker.get_parameters(iteration_id),
        children=tracker.get_child_iterations(iteration_id),
        tags=tracker.get_tags(TagTarget.ITERATION, iteration_id),
    )
    context["inputs"], context["outputs"] = data.mlflow_io(tracker, iteration_id)
    if not live:
        iterations = tracker.get_iterations(iteration.experiment_id)
        open_ids = {p.id for p in parents} | {iteration.id}
        context.update(
            nav=data.navigation(tracker, experiment, iterations, iteration, open_ids),
            project=tracker.get_project(experiment.project_id) if experiment else None,
            environment=tracker.get_environment(iteration_id),
            title=f"{label(iteration)} · {experiment.name if experiment else ''}",
        )
    return _render(request, "iteration.html", **context)


def _overlay(tracker: Any, sweep: data.Sweep) -> Any:
    if sweep.metric is None or not sweep.rows:
        return None
    ids = [row.iteration.id for row in sweep.rows]
    per_series = max(data.OVERLAY_MIN_POINTS, min(data.SERIES_POINTS, data.OVERLAY_POINTS // len(ids)))
    series = data.series_for(tracker, ids, sweep.metric, per_series)
    if all(len(points) <= 1 for points in series.values()):
        return None  # one value per child (a cross-validated score): the parameter chart shows it already
    curves = [
        Series(
            _row_label(row), series.get(row.iteration.id, []), highlight=row.best,
            dashed=row.iteration.status in (IterationStatus.FAILED, IterationStatus.KILLED),
            iteration_id=row.iteration.id,
        )
        for row in sweep.rows
    ]
    return line_chart(curves, y_label=sweep.metric)


def _row_label(row: data.SweepRow) -> str:
    if row.rank is not None:
        return f"rank {row.rank} (#{row.iteration.id})"
    return label(row.iteration)


def _scatter(sweep: data.Sweep, x: str | None) -> Any:
    if sweep.metric is None or x is None:
        return None
    dots = [
        Dot(row.parameters[x], row.metrics[sweep.metric], _row_label(row), row.best, row.iteration.id)
        for row in sweep.rows
        if x in row.parameters and sweep.metric in row.metrics
    ]
    return scatter_chart(dots, x_label=x, y_label=sweep.metric)


def _rank_cards(tracker: Any, sweep: data.Sweep) -> list[tuple[data.SweepRow, Any]]:
    rows = sweep.rows[:MAX_RANK_CARDS]
    if not sweep.is_ddp or sweep.metric is None:
        return [(row, None) for row in rows] if sweep.is_ddp else []
    series = data.series_for(tracker, [r.iteration.id for r in rows], sweep.metric, 300)
    return [
        (r, line_chart([Series(_row_label(r), series[r.iteration.id])], y_label=sweep.metric, small=True))
        for r in rows
    ]


@router.get("/iterations/{iteration_id}/sweep", response_class=HTMLResponse)
def sweep_page(
    request: Request, iteration_id: int, metric: str | None = None, goal: str | None = None, x: str | None = None,
    filter_text: Annotated[str, Query(alias="filter")] = "", order_by: str = "", importance: str | None = None,
) -> Response:
    tracker = _tracker(request)
    driver = tracker.get_iteration(iteration_id)
    if driver is None:
        return _not_found(request, "Iteration")
    found = searching.search(tracker, driver.experiment_id, filter_text, order_by, parent_id=iteration_id,
                             limit=searching.SWEEP_MATCHES)
    sweep = data.sweep(tracker, iteration_id, metric, goal, only=found.ids)
    if not sweep.total and driver.ended:
        # A leaf is not a sweep: its own page, rather than a sweep page saying "No children yet". (A driver
        # still RUNNING keeps its sweep page: its children are on their way.)
        return RedirectResponse(f"{request.scope.get('root_path', '')}{PREFIX}/iterations/{iteration_id}", 307)
    if x not in sweep.parameter_keys:
        x = next((k for k in sweep.parameter_keys if k != "rank"), sweep.parameter_keys[0] if sweep.parameter_keys
                 else None)
    experiment = tracker.get_experiment(driver.experiment_id)
    context: dict[str, Any] = dict(
        driver=driver, experiment=experiment, sweep=sweep, x=x,
        overlay=_overlay(tracker, sweep), scatter=None if sweep.is_ddp else _scatter(sweep, x),
        ranks=_rank_cards(tracker, sweep), search=found,
        running=sweep.running or driver.status is IterationStatus.RUNNING,
        counts={s: sum(1 for r in sweep.rows if r.iteration.status is s) for s in IterationStatus},
        has_errors=any(r.iteration.error_message for r in sweep.rows),
    )
    part = request.query_params.get("part")
    if part == "importance" or (part is None and importance == "now"):
        # Its own request (a forest to fit): the page's script fetches it, or `importance=now` without one.
        context.update(importance=sweep_importance(sweep), importance_asked=True)
    if part is None:
        parents = data.ancestors(tracker, driver)
        iterations = tracker.get_iterations(driver.experiment_id)
        context.update(
            nav=data.navigation(tracker, experiment, iterations, driver, {p.id for p in parents} | {driver.id}),
            parents=parents, title=f"Sweep {label(driver)} · {experiment.name if experiment else ''}",
            # Outside the live region: not redrawn every two seconds while children run.
            many=many_parameters(sweep, label),
        )
    return _render(request, "sweep.html", 422 if found.error else 200, **context)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    ids: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI reads the default, never mutates it
    log: bool = False,
) -> HTMLResponse:
    """Runs from any experiments side by side: parameters (differences first and marked) and one chart
    per metric key with a curve per run. A run this reader cannot see makes the page a 404, as a run
    that does not exist does, so the page never tells which ids exist in projects the reader may not read."""
    tracker = _tracker(request)
    nav = data.navigation(tracker)
    try:
        wanted = comparing.parse_ids(ids)
    except comparing.BadIds as exc:
        return _render(request, "not_found.html", 400, nav=nav, title="Bad request",
                       message=f"This page cannot be shown for that address (ids: {exc}).")
    if not wanted:
        return _render(request, "compare.html", nav=nav, comparison=None, charts=[], log=log, title="Compare runs")
    comparison = comparing.compare(tracker, wanted)
    if comparison.missing:
        shown = ", ".join(f"#{i}" for i in comparison.missing)
        return _not_found(request, "Iteration", f"No iteration {shown} to compare. It may have been deleted.")
    runs = comparison.runs
    per_run = comparing.points_per_run(len(runs))
    charts = []
    for key in comparison.metric_keys:
        series = data.series_for(tracker, [r.id for r in runs], key, per_run)
        # A run keeps its colour on every chart; a run without this key is left out of its chart and key.
        curves = [
            Series(_compare_label(r, comparison), series.get(r.id, []), colour=PALETTE[n % len(PALETTE)],
                   iteration_id=r.id)
            for n, r in enumerate(runs) if series.get(r.id)
        ]
        if curves:
            charts.append((key, line_chart(curves, y_label=key, log_y=log, legend=True)))
    return _render(request, "compare.html", nav=nav, comparison=comparison, charts=charts, log=log,
                   per_run=per_run, max_compared=comparing.MAX_COMPARED, title="Compare runs")


def _compare_label(run: Any, comparison: comparing.Comparison) -> str:
    # Runs from several experiments: the experiment's name tells apart two `#3`-like names.
    experiment = comparison.experiments.get(run.experiment_id)
    if len(comparison.experiments) > 1 and experiment is not None:
        return f"{label(run)} ({experiment.name})"
    return label(run)


@router.get("/api/iterations/{iteration_id}/series")
def series_json(
    request: Request, iteration_id: int, key: str, max_points: Annotated[int, Query(ge=2, le=100_000)] = 1000
) -> JSONResponse:
    """One metric's series of an iteration, downsampled to at most about `max_points` points."""
    tracker = _tracker(request)
    if tracker.get_iteration(iteration_id) is None:
        return JSONResponse({"code": "NOT_FOUND", "message": f"iteration {iteration_id} not found"}, 404)
    try:
        points = data.series_for(tracker, [iteration_id], key, max_points)[iteration_id]
    except DiaryError as exc:  # an empty or overlong key
        return JSONResponse({"code": "UNPROCESSABLE", "message": str(exc)}, 422)
    return JSONResponse({
        "iteration_id": iteration_id, "key": key,
        "steps": [s for s, _ in points],
        "values": [encode_float(v) for _, v in points],
    })


# -- login (only with auth on; `diary ui` over a file has no login) --------------------------------------


def _safe_next(target: str | None, base: str) -> str:
    """Where to go after logging in: a dashboard page of this server, never another site."""
    if target and target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return base + "/"


def _login_page(request: Request, target: str, message: str = "", status_code: int = 200) -> HTMLResponse:
    base = request.scope.get("root_path", "") + PREFIX
    html = templates.get_template("login.html").render(ui=base, next=target, message=message)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query's name
    base = request.scope.get("root_path", "") + PREFIX
    if not auth_enabled(request):
        return RedirectResponse(base + "/", status_code=303)
    return _login_page(request, _safe_next(next, base))


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    """The form's username and password, checked as `POST /auth` checks them (same rate limits)."""
    from ..server.errors import ApiError
    from ..server.login import check_login

    base = request.scope.get("root_path", "") + PREFIX
    if not auth_enabled(request):
        return RedirectResponse(base + "/", status_code=303)
    form = await request.form(max_files=0, max_fields=10)
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")), base)
    try:
        user, generation = await check_login(request, username, password)
    except ApiError as exc:
        message = "Wrong username or password." if exc.http_status == 401 else exc.message
        page = _login_page(request, target, message, status_code=exc.http_status)
        page.headers.update(exc.headers)
        return page
    answer = request.app.state.tokens.issue(user, generation)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, answer["access_token"], max_age=request.app.state.settings.token_ttl_seconds, path=base or "/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", response_class=HTMLResponse)
def logout(request: Request) -> Response:
    """Forget this browser's session (`POST /auth/logout-all` ends every session and token)."""
    base = request.scope.get("root_path", "") + PREFIX
    response = RedirectResponse(base + "/login", status_code=303)
    response.delete_cookie(COOKIE, path=base or "/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
