"""What `diary ls` and `diary show` print: the projects and experiments with their ids, an experiment's
iterations with chosen parameters and metrics, one iteration in full. Each view is plain data (the
`--json` output) and a text rendering of it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ..tracker.records import Iteration
from ..tracker.search_grammar import ITERATIONS, MAX_RESULTS, METRIC, PARAM, parse_filter, parse_order_by
from .tree import GLYPHS, format_duration

# `diary ls EXPERIMENT` shows this many metrics when none are chosen (the sweep's score first).
DEFAULT_METRICS = 3


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def _last_activity(iterations: Sequence[Iteration]) -> datetime | None:
    times = [it.end_date or it.heartbeat_date or it.created_date for it in iterations]
    return max(times) if times else None


def _relative(when: datetime | None) -> str:
    if when is None:
        return "never"
    from ..dashboard.formatting import relative_time

    return relative_time(when)


def _number(value: float) -> float | str:
    """JSON has no NaN or infinity: those travel as the strings the REST API uses."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _duration(it: Iteration) -> float:
    end = it.end_date or datetime.now(timezone.utc)
    return max((end - it.created_date).total_seconds(), 0.0)


def label(it: Iteration) -> str:
    """`#12 C=1.0 solver=lbfgs`, or `#12` for an iteration without a name."""
    return f"#{it.id} {it.name}" if it.name else f"#{it.id}"


def overview(tracker: Any) -> list[dict[str, Any]]:
    """Every project with its experiments: ids, names, iteration counts by status and last activity."""
    projects = []
    for project in tracker.get_projects():
        experiments = []
        for experiment in tracker.get_experiments(project.id):
            iterations = tracker.get_iterations(experiment.id)
            counts: dict[str, int] = {}
            for it in iterations:
                counts[it.status.name] = counts.get(it.status.name, 0) + 1
            experiments.append({
                "id": experiment.id, "name": experiment.name, "status": experiment.status.name,
                "iterations": len(iterations), "statuses": counts,
                "top_level": sum(it.parent_iteration_id is None for it in iterations),
                "last_activity": _when(_last_activity(iterations) or experiment.created_date),
            })
        projects.append({"id": project.id, "name": project.name, "experiments": experiments})
    return projects


def format_overview(projects: list[dict[str, Any]], where: str) -> str:
    if not projects:
        return f"no projects in {where} yet"
    lines = []
    for project in projects:
        lines.append(f"project {project['id']} · {project['name']}")
        if not project["experiments"]:
            lines.append("  (no experiments)")
        for exp in project["experiments"]:
            marks = " ".join(f"{n}{GLYPHS_BY_NAME[s]}" for s, n in exp["statuses"].items())
            last = _relative(datetime.fromisoformat(exp["last_activity"]) if exp["last_activity"] else None)
            lines.append(
                f"  experiment {exp['id']} · {exp['name']}  {exp['status']}  "
                f"{exp['iterations']} iteration{'s' if exp['iterations'] != 1 else ''}"
                + (f" ({marks})" if marks else "") + f"  last activity {last}"
            )
    lines.append("")
    lines.append("next: diary ls EXPERIMENT_ID (its iterations), diary tree EXPERIMENT_ID, diary show ITERATION_ID")
    return "\n".join(lines)


GLYPHS_BY_NAME = {status.name: glyph for status, glyph in GLYPHS.items()}


def _chosen_metrics(latest: dict[int, dict[str, float]], metrics: list[str] | None) -> list[str]:
    if metrics is not None:
        return metrics
    from ..dashboard.data import default_metric

    keys = sorted({k for values in latest.values() for k in values})
    first = default_metric(keys)
    rest = [k for k in keys if k != first and not k.startswith(("std_", "rank_", "split"))]
    return ([first] if first else []) + rest[: DEFAULT_METRICS - (1 if first else 0)]


def varied_parameters(values: dict[int, dict[str, str]], limit: int = 4) -> list[str]:
    """The parameters that say what each iteration is: those taking two or more values among the
    iterations that have them, the most widely carried first (a sweep's children's `solver` before its
    driver's `best_solver`, which only the driver has and so never varies)."""
    carried: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    for params in values.values():
        for key, value in params.items():
            carried.setdefault(key, set()).add(value)
            count[key] = count.get(key, 0) + 1
    varied = [key for key, seen in carried.items() if len(seen) > 1]
    return sorted(varied, key=lambda key: (-count[key], key))[:limit]


def searched(
    tracker: Any, experiment_ids: Sequence[int], filter_text: str = "", order_by: Sequence[str] = (),
    max_results: int | None = None,
) -> list[Iteration]:
    """Every iteration `search_iterations` answers (walking its pages), or the first `max_results`."""
    found: list[Iteration] = []
    token = None
    while max_results is None or len(found) < max_results:
        want = MAX_RESULTS if max_results is None else min(MAX_RESULTS, max_results - len(found))
        page = tracker.search_iterations(list(experiment_ids), filter_text, list(order_by), max_results=want,
                                         page_token=token)
        found += page.iterations
        token = page.next_page_token
        if token is None:
            break
    return found


def experiment_listing(
    tracker: Any, experiment_id: int, *, metrics: list[str] | None = None, parameters: list[str] | None = None,
    filter_text: str = "", order_by: Sequence[str] = (),
) -> dict[str, Any]:
    """An experiment's iterations (id, name, parent, status, duration, error) with the chosen parameters
    and the last value of the chosen metrics (default: the sweep's score and a few more); with a filter or
    an order (the search grammar), only the matching ones, in that order."""
    experiment = tracker.get_experiment(experiment_id)
    if experiment is None:
        raise LookupError(f"experiment {experiment_id} does not exist")
    if filter_text or order_by:
        iterations = searched(tracker, [experiment_id], filter_text, order_by)
    else:
        iterations = tracker.get_iterations(experiment_id)
    ids = [it.id for it in iterations]
    latest = tracker.get_latest_metrics(ids) if ids else {}
    values = tracker.get_parameter_values(ids) if ids else {}
    metric_keys = _chosen_metrics(latest, metrics)
    if parameters is None:
        parameters = varied_parameters(values)
    rows = []
    for it in iterations:
        rows.append({
            "id": it.id, "name": it.name, "parent_iteration_id": it.parent_iteration_id,
            "status": it.status.name, "duration_seconds": _duration(it), "error_message": it.error_message,
            "parameters": {k: values.get(it.id, {}).get(k) for k in parameters},
            "metrics": {k: _number(latest[it.id][k]) if k in latest.get(it.id, {}) else None for k in metric_keys},
        })
    return {
        "experiment": {"id": experiment.id, "name": experiment.name, "project_id": experiment.project_id,
                       "status": experiment.status.name},
        "parameters": parameters, "metrics": metric_keys, "iterations": rows,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[n]) for r in rows)) if rows else len(h) for n, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return [line(header), *(line(r) for r in rows)]


def format_experiment_listing(listing: dict[str, Any]) -> str:
    exp = listing["experiment"]
    lines = [f"experiment {exp['id']} · {exp['name']} ({exp['status']}, {len(listing['iterations'])} iterations)"]
    if not listing["iterations"]:
        return lines[0] + "\n(no iterations yet)"
    header = ["id", "name", "parent", "status", "duration", *listing["parameters"], *listing["metrics"], "error"]
    rows = []
    for row in listing["iterations"]:
        error = row["error_message"]
        rows.append([
            f"#{row['id']}", row["name"] or "—",
            "—" if row["parent_iteration_id"] is None else f"#{row['parent_iteration_id']}",
            f"{GLYPHS_BY_NAME[row['status']]} {row['status']}", format_duration(row["duration_seconds"]),
            *(_cell(row["parameters"][k]) for k in listing["parameters"]),
            *(_cell(row["metrics"][k]) for k in listing["metrics"]),
            (error[:60] + "…") if len(error) > 60 else error,
        ])
    return "\n".join(lines + _table(header, rows))


# What `diary search --columns` can show, beside `params.<key>` and `metrics.<key>`.
SEARCH_COLUMNS = ("id", "name", "experiment", "parent", "status", "created", "duration", "error")


def search_listing(
    tracker: Any, experiment_ids: Sequence[int], filter_text: str = "", order_by: Sequence[str] = (), *,
    columns: list[str] | None = None, max_results: int | None = 1000,
) -> dict[str, Any]:
    """The iterations a search finds, one row each with the chosen columns (default: id, name, parent,
    status, duration, the parameters that vary and the metrics the filter or order names, else the score
    and a few more). Cells hold the values as stored: parameters as text, metrics as numbers."""
    for column in columns or []:
        if column not in SEARCH_COLUMNS and not column.startswith(("params.", "metrics.")):
            raise ValueError(
                f"unknown column {column!r}: use {', '.join(SEARCH_COLUMNS)}, params.<key> or metrics.<key>"
            )
    found = searched(tracker, experiment_ids, filter_text, order_by, max_results)
    ids = [it.id for it in found]
    latest = tracker.get_latest_metrics(ids) if ids else {}
    values = tracker.get_parameter_values(ids) if ids else {}
    if columns is None:
        named = [c.key for c in parse_filter(filter_text, ITERATIONS)] + [o.key for o in parse_order_by(
            list(order_by), ITERATIONS)]
        params = list(dict.fromkeys([k.key for k in named if k.entity == PARAM] + varied_parameters(values)))
        metrics = list(dict.fromkeys([k.key for k in named if k.entity == METRIC])) or _chosen_metrics(latest, None)
        columns = ["id", "name", "parent", "status", "duration", *(f"params.{k}" for k in params),
                   *(f"metrics.{k}" for k in metrics)]
    rows = []
    for it in found:
        cells: dict[str, Any] = {}
        for column in columns:
            if column.startswith("params."):
                cells[column] = values.get(it.id, {}).get(column[len("params."):])
            elif column.startswith("metrics."):
                value = latest.get(it.id, {}).get(column[len("metrics."):])
                cells[column] = None if value is None else _number(value)
            else:
                cells[column] = {
                    "id": it.id, "name": it.name, "experiment": it.experiment_id, "parent": it.parent_iteration_id,
                    "status": it.status.name, "created": _when(it.created_date), "duration": _duration(it),
                    "error": it.error_message,
                }[column]
        rows.append(cells)
    return {"columns": columns, "iterations": rows}


def format_search_listing(listing: dict[str, Any]) -> str:
    """The rows as an aligned table (`—` for a value an iteration does not have)."""
    if not listing["iterations"]:
        return "no iterations match"
    shown = []
    for row in listing["iterations"]:
        cells = []
        for column in listing["columns"]:
            value = row[column]
            if column in ("id", "parent") and value is not None:
                cells.append(f"#{value}")
            elif column == "status":
                cells.append(f"{GLYPHS_BY_NAME[value]} {value}")
            elif column == "duration":
                cells.append(format_duration(value))
            else:
                cells.append(_cell(value))
        shown.append(cells)
    count = len(listing["iterations"])
    return "\n".join(_table(listing["columns"], shown) + [f"({count} iteration{'s' if count != 1 else ''})"])


def search_csv(listing: dict[str, Any]) -> str:
    """The rows as CSV with a header line (empty cells for missing values)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(listing["columns"])
    for row in listing["iterations"]:
        writer.writerow(["" if row[c] is None else row[c] for c in listing["columns"]])
    return out.getvalue()


def iteration_detail(tracker: Any, iteration_id: int) -> dict[str, Any]:
    """One iteration: status, dates, error and traceback, parameters, the last value of every metric."""
    it = tracker.get_iteration(iteration_id)
    if it is None:
        raise LookupError(f"iteration {iteration_id} does not exist")
    experiment = tracker.get_experiment(it.experiment_id)
    latest = tracker.get_latest_metrics([it.id]).get(it.id, {})
    return {
        "id": it.id, "name": it.name, "status": it.status.name,
        "experiment": {"id": experiment.id, "name": experiment.name} if experiment else {"id": it.experiment_id},
        "parent_iteration_id": it.parent_iteration_id,
        "children": len(tracker.get_child_iterations(it.id)),
        "created_date": _when(it.created_date), "end_date": _when(it.end_date),
        "duration_seconds": _duration(it), "notes": it.notes,
        "error_message": it.error_message, "traceback": it.traceback,
        "parameters": tracker.get_parameter_values([it.id]).get(it.id, {}),
        "metrics": {k: _number(v) for k, v in sorted(latest.items())},
    }


def format_iteration_detail(detail: dict[str, Any]) -> str:
    head = f"iteration {detail['id']}" + (f" · {detail['name']}" if detail["name"] else "")
    exp = detail["experiment"]
    lines = [
        head,
        f"  status      {GLYPHS_BY_NAME[detail['status']]} {detail['status']}"
        + ("" if detail["end_date"] else " (running)"),
        f"  experiment  {exp['id']}" + (f" · {exp['name']}" if "name" in exp else ""),
        f"  parent      {'—' if detail['parent_iteration_id'] is None else '#' + str(detail['parent_iteration_id'])}"
        + (f"   children: {detail['children']}" if detail["children"] else ""),
        f"  started     {detail['created_date']}",
        f"  duration    {format_duration(detail['duration_seconds'])}",
    ]
    if detail["notes"]:
        lines.append(f"  notes       {detail['notes']}")
    if detail["error_message"]:
        lines.append(f"  error       {detail['error_message']}")
    lines.append("parameters" + ("" if detail["parameters"] else "  (none)"))
    lines += [f"  {k} = {v}" for k, v in detail["parameters"].items()]
    lines.append("metrics (last value)" + ("" if detail["metrics"] else "  (none)"))
    lines += [f"  {k} = {_cell(v)}" for k, v in detail["metrics"].items()]
    if detail["traceback"]:
        lines.append("traceback")
        lines += ["  " + line for line in detail["traceback"].rstrip().splitlines()]
    return "\n".join(lines)
