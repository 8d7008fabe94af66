"""The parts of a sweep page for many parameters: the parallel-coordinates plot and parameter importance.

Drawn only for a sweep (not a DDP run's ranks) whose children differ in more than one parameter, and
bounded: at most `MAX_AXES` parameter axes and `MAX_LINES` children, which the page says when it cuts.
The plot is part of the page; importance (a forest to fit, scikit-learn to import) is a request of its
own (`?part=importance`) that the page's script fetches, so the page never waits for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from ..tracker.enums import IterationStatus
from .data import Sweep
from .importance import Importance, importance
from .sweep_charts import Line, importance_chart, parallel_chart

MAX_AXES = 12
MAX_LINES = 2000


@dataclass
class ManyParameters:
    parallel: Markup
    axes: list[str]
    axes_left_out: int
    lines: int
    lines_left_out: int


def _axes(sweep: Sweep) -> tuple[list[str], int] | None:
    """The parameters to draw (and how many more vary); None when fewer than two vary."""
    varied = [k for k in sweep.varied_keys if k != "rank"]
    if sweep.is_ddp or sweep.metric is None or len(varied) < 2:
        return None
    return varied[:MAX_AXES], len(varied) - min(len(varied), MAX_AXES)


def many_parameters(sweep: Sweep, label: Any) -> ManyParameters | None:
    """The parallel-coordinates plot of `sweep` by its chosen metric; None when it varies one parameter."""
    chosen = _axes(sweep)
    if chosen is None or sweep.metric is None:
        return None
    axes, left_out = chosen
    metric = sweep.metric
    drawn = sweep.rows[:MAX_LINES]
    lines = [
        Line(label(row.iteration), row.iteration.id, row.parameters, row.metrics.get(metric),
             dashed=row.iteration.status in (IterationStatus.FAILED, IterationStatus.KILLED), best=row.best)
        for row in drawn
    ]
    return ManyParameters(
        parallel_chart(lines, axes, metric, sweep.goal), axes, left_out, len(drawn), len(sweep.rows) - len(drawn),
    )


def sweep_importance(sweep: Sweep) -> tuple[Importance, Markup] | None:
    """The importances of the plotted parameters for the chosen metric, and their bar chart."""
    chosen = _axes(sweep)
    if chosen is None or sweep.metric is None:
        return None
    metric = sweep.metric
    # As the best child: only SUCCEEDED children's values count (a killed child's last value is partial).
    scored = [
        row for row in sweep.rows
        if row.iteration.status is IterationStatus.SUCCEEDED and metric in row.metrics
        and math.isfinite(row.metrics[metric])
    ]
    result = importance([row.parameters for row in scored], [row.metrics[metric] for row in scored], chosen[0])
    return result, importance_chart(result)
