"""The parts of a sweep page for many parameters: the parallel-coordinates plot and parameter importance.

Drawn only for a sweep (not a DDP run's ranks) whose children differ in more than one parameter, and
bounded: at most `MAX_AXES` parameter axes and `MAX_LINES` children, which the page says when it cuts.
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
    importance: Importance
    importance_chart: Markup
    axes: list[str]
    axes_left_out: int
    lines: int
    lines_left_out: int


def many_parameters(sweep: Sweep, label: Any) -> ManyParameters | None:
    """The plot and the importances of `sweep` by its chosen metric; None when it varies one parameter."""
    varied = [k for k in sweep.varied_keys if k != "rank"]
    if sweep.is_ddp or sweep.metric is None or len(varied) < 2:
        return None
    metric = sweep.metric
    axes = varied[:MAX_AXES]
    drawn = sweep.rows[:MAX_LINES]
    lines = [
        Line(label(row.iteration), row.iteration.id, row.parameters, row.metrics.get(metric),
             dashed=row.iteration.status in (IterationStatus.FAILED, IterationStatus.KILLED), best=row.best)
        for row in drawn
    ]
    # As the best child: only SUCCEEDED children's values count (a killed child's last value is partial).
    scored = [
        row for row in sweep.rows
        if row.iteration.status is IterationStatus.SUCCEEDED and metric in row.metrics
        and math.isfinite(row.metrics[metric])
    ]
    result = importance([row.parameters for row in scored], [row.metrics[metric] for row in scored], axes)
    return ManyParameters(
        parallel_chart(lines, axes, metric, sweep.goal), result, importance_chart(result), axes,
        len(varied) - len(axes), len(drawn), len(sweep.rows) - len(drawn),
    )
