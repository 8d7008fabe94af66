"""The compare page's data: runs picked from any experiments, their parameters side by side and their
metric curves overlaid, in a bounded number of reads whatever was asked for.

`/ui/compare?ids=1,5,9` (or `ids=1&ids=5`) names the runs. A run the reader may not see (another
project under auth) or that does not exist makes the whole page a 404 naming nothing but the id the
reader typed: whether it exists elsewhere is not told.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..tracker.records import Experiment, Iteration

# Ten runs: as many as the chart palette tells apart (charts.MAX_COLOURED), and a table that still fits.
MAX_COMPARED = 10
# One chart per metric key; beyond this the page says how many were left out.
MAX_METRIC_CHARTS = 24
# Points per curve: all curves of one chart share about this many points.
POINTS_PER_CHART = 4000


class BadIds(ValueError):
    """`ids` is not a comma-separated list of iteration ids."""


def parse_ids(values: Iterable[str]) -> list[int]:
    """`["1,5", "9"]` -> `[1, 5, 9]`: each value may hold several ids; duplicates dropped, order kept."""
    ids: dict[int, None] = {}  # insertion-ordered, and a long address costs linear time
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isascii() or not part.isdigit() or len(part) > 18:
                raise BadIds(f"{part[:40]!r} is not an iteration id")
            ids[int(part)] = None
    return list(ids)


@dataclass
class ParameterRow:
    """One parameter key across the compared runs; `differs` when the runs do not all agree."""

    key: str
    values: list[str | None]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass
class Comparison:
    """The compared runs (in the order asked), their experiments, parameters and metric keys."""

    runs: list[Iteration]
    experiments: dict[int, Experiment | None]
    parameters: list[ParameterRow]
    latest: dict[int, dict[str, float]]
    metric_keys: list[str]
    asked: int  # how many ids were asked for, before the cap
    dropped_metric_keys: int = 0
    missing: list[int] = field(default_factory=list)

    @property
    def capped(self) -> bool:
        return self.asked > len(self.runs)


def compare(tracker: Any, ids: list[int]) -> Comparison:
    """Read the first `MAX_COMPARED` of `ids`; `missing` lists those the tracker does not show this reader."""
    chosen = ids[:MAX_COMPARED]
    runs: list[Iteration] = []
    missing: list[int] = []
    for iteration_id in chosen:
        iteration = tracker.get_iteration(iteration_id)
        (runs.append(iteration) if iteration is not None else missing.append(iteration_id))
    experiments = {e: tracker.get_experiment(e) for e in {r.experiment_id for r in runs}}
    run_ids = [r.id for r in runs]
    params = tracker.get_parameter_values(run_ids) if run_ids else {}
    latest = tracker.get_latest_metrics(run_ids) if run_ids else {}
    keys = sorted({k for r in runs for k in params.get(r.id, {})})
    rows = [ParameterRow(k, [params.get(r.id, {}).get(k) for r in runs]) for k in keys]
    # Differences first: they are why one compares runs.
    rows.sort(key=lambda row: not row.differs)
    metric_keys = sorted({k for r in runs for k in latest.get(r.id, {})})
    return Comparison(
        runs, experiments, rows, {r.id: latest.get(r.id, {}) for r in runs}, metric_keys[:MAX_METRIC_CHARTS],
        asked=len(ids), dropped_metric_keys=max(0, len(metric_keys) - MAX_METRIC_CHARTS), missing=missing,
    )


def points_per_run(runs: int) -> int:
    """Each run's share of a chart's point budget."""
    return max(20, POINTS_PER_CHART // max(runs, 1))
