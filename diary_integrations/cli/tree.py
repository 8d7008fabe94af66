"""Text rendering of an experiment's iteration tree, as `diary tree` prints it."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from ..tracker.enums import IterationStatus
from ..tracker.records import Iteration

GLYPHS = {
    IterationStatus.RUNNING: "▶",
    IterationStatus.SUCCEEDED: "✓",
    IterationStatus.FAILED: "✗",
    IterationStatus.KILLED: "⊘",
}


def format_duration(seconds: float) -> str:
    """`500 ms`, `1.06s`, `1m 30s`, `1h 1m` (DearDiary's dashboard style)."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60)}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60)}m"


def _duration(it: Iteration) -> str:
    if it.end_date is not None:
        return format_duration((it.end_date - it.created_date).total_seconds())
    return "running " + format_duration((datetime.now(timezone.utc) - it.created_date).total_seconds())


def _number(value: float) -> str:
    return f"{value:.4g}"


def format_tree(
    tracker, experiment_id: int, *, metrics: list[str] | None = None, parameters: bool = True
) -> str:
    """The experiment's iterations as an indented tree: status, id, duration, parameters and the last
    value of each metric (or of the chosen `metrics`), and the error of a failed or killed one."""
    experiment = tracker.get_experiment(experiment_id)
    if experiment is None:
        raise LookupError(f"experiment {experiment_id} does not exist")
    iterations = tracker.get_iterations(experiment_id)
    latest = tracker.get_latest_metrics([it.id for it in iterations]) if iterations else {}
    children: dict[int | None, list[Iteration]] = defaultdict(list)
    for it in iterations:
        children[it.parent_iteration_id].append(it)

    lines = [f"Experiment {experiment.id} · {experiment.name} ({experiment.status.name}, {len(iterations)} iterations)"]

    def describe(it: Iteration) -> str:
        named = f"#{it.id} {it.name}" if it.name else f"#{it.id}"
        parts = [f"{GLYPHS[it.status]} {named} {it.status.name} {_duration(it)}"]
        if parameters:
            params = tracker.get_parameters(it.id)
            if params:
                parts.append(" ".join(f"{p.key}={p.value}" for p in params[:6]) + (" …" if len(params) > 6 else ""))
        values = latest.get(it.id, {})
        keys = metrics if metrics is not None else sorted(values)
        shown = [f"{k}={_number(values[k])}" for k in keys if k in values]
        if shown:
            parts.append(" ".join(shown))
        if it.error_message:
            parts.append(f"— {it.error_message}")
        return "  ".join(parts)

    def walk(parent: int | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for n, it in enumerate(kids):
            last = n == len(kids) - 1
            branch = "" if parent is None else ("└─ " if last else "├─ ")
            lines.append(prefix + branch + describe(it))
            walk(it.id, prefix + ("" if parent is None else ("   " if last else "│  ")))

    walk(None, "")
    return "\n".join(lines)
