"""What the dashboard reads from a tracker: trees, sweeps and downsampled metric series.

Only `Tracker` protocol methods are used; the batched ones (`get_parameter_values`, `get_metric_series`,
`get_latest_metrics`) read a sweep in a fixed number of queries (or requests, over HTTP) per page.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..tracker.enums import IterationStatus
from ..tracker.protocol import Tracker
from ..tracker.records import Experiment, Iteration, Project

# A chart is ~700 px wide: more points per series than this cannot be seen.
SERIES_POINTS = 1000
# Several hundred overlaid curves share this budget, so a 1000-child sweep stays a small page.
OVERLAY_POINTS = 40_000
OVERLAY_MIN_POINTS = 20

# Metric names whose best value is the lowest: losses, errors, durations. Short names (`mse`, `wer`) count
# only as a whole word, so `answer_rate` or `cancer_recall` are not taken for errors.
_LOWER_IS_BETTER = re.compile(
    r"loss|error|time|latency|perplexity"
    r"|(?:^|[^a-z0-9])(?:err|mse|mae|rmse|nll|wer|cer)(?:$|[^a-z0-9])",
    re.IGNORECASE,
)
# scikit-learn's `rank_test_score` (1 is the best) and ranks in general.
_RANK = re.compile(r"^rank(?:_|$)", re.IGNORECASE)
# scikit-learn negates losses into scores (`neg_log_loss`, `mean_test_neg_mean_squared_error`): higher wins.
_NEGATED = re.compile(r"(?:^|_)neg_", re.IGNORECASE)
# What a sweep is usually chosen by, when there is no `mean_test_*`.
_SCORE_LIKE = re.compile(r"score|acc|f1|auc|precision|recall|r2|map|iou|bleu", re.IGNORECASE)
_LOSS_LIKE = re.compile(r"loss|error|mse|mae|rmse|nll|perplexity", re.IGNORECASE)
# Spreads and ranks are summaries of a score, never the score to pick a child by.
_NOT_A_TARGET = re.compile(r"^(?:std|rank)_", re.IGNORECASE)


# Timings (`fit_time`, `mean_score_time`, `fold_time`, `refit_time`, `epoch_seconds`): folded away in the sweep
# table, so the parameters and scores are what fits on the screen.
_TIMING = re.compile(r"(?:^|_)(?:time|seconds|duration)(?:$|_)", re.IGNORECASE)


# System metrics (diary_integrations.system_metrics) have a page section of their own, not sweep columns.
SYSTEM_PREFIX = "system/"
# ... except the peaks, which a sweep table shows when its children recorded them.
PEAK_COLUMNS = re.compile(r"^system/(?:proc\.rss_mib|gpu\.\d+\.memory_used_mib)\.max$")


def is_system(key: str) -> bool:
    return key.startswith(SYSTEM_PREFIX)


def is_timing(key: str) -> bool:
    return bool(_TIMING.search(key))


def default_goal(metric: str) -> str:
    """`min` for ranks, losses, errors and times; `max` for everything else (accuracy, f1, auc, scores)."""
    if _RANK.search(metric):
        return "min"
    if _NEGATED.search(metric):
        return "max"
    return "min" if _LOWER_IS_BETTER.search(metric) else "max"


def default_metric(keys: Sequence[str]) -> str | None:
    """The metric a sweep is ranked by when the page names none: scikit-learn's `mean_test_score` (or
    another `mean_test_*`), else a score-like key (accuracy, f1, auc, ...), else a loss-like key, else the
    first key. Training scores come after the others: picking a child by them rewards overfitting."""
    keys = sorted(k for k in keys if not is_system(k)) or sorted(keys)
    if not keys:
        return None
    if "mean_test_score" in keys:
        return "mean_test_score"
    candidates = [k for k in keys if not _NOT_A_TARGET.search(k)]
    mean_test = [k for k in candidates if k.lower().startswith("mean_test_")]
    if mean_test:
        return mean_test[0]

    def by_train_last(found: list[str]) -> str:
        return min(found, key=lambda k: ("train" in k.lower(), k))

    scores = [k for k in candidates if _SCORE_LIKE.search(k) and default_goal(k) == "max"]
    if scores:
        return by_train_last(scores)
    losses = [k for k in candidates if _LOSS_LIKE.search(k)]
    if losses:
        return by_train_last(losses)
    return keys[0]


def series_for(
    tracker: Tracker, iteration_ids: Sequence[int], key: str, max_points: int
) -> dict[int, list[tuple[int, float]]]:
    """Each iteration's `(step, value)` series for `key`, at most about `max_points` points each."""
    return tracker.get_metric_series(list(iteration_ids), key, max_points=max_points)


def parameters_for(tracker: Tracker, iteration_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Each iteration's parameters as `{key: value}`."""
    return tracker.get_parameter_values(list(iteration_ids))


def as_number(text: str) -> float | None:
    """A parameter's text as a number when it is one ("0.001", "12", "True" is not)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if text.strip().lower() not in {"nan", "inf", "-inf", "infinity", "-infinity"} else None


@dataclass
class Node:
    """An iteration in the tree, with its children and a count of their statuses."""

    iteration: Iteration
    children: list[Node] = field(default_factory=list)

    @property
    def descendants(self) -> int:
        return sum(1 + child.descendants for child in self.children)

    def status_counts(self) -> dict[IterationStatus, int]:
        """The children's statuses, those with none left out."""
        counts = count_statuses([child.iteration for child in self.children])
        return {status: n for status, n in counts.items() if n}


def count_statuses(iterations: Sequence[Iteration]) -> dict[IterationStatus, int]:
    """How many of `iterations` have each status (every status, zeros included), as `diary ls` counts
    an experiment's iterations at every depth."""
    counts = dict.fromkeys(IterationStatus, 0)
    for it in iterations:
        counts[it.status] += 1
    return counts


def index_nodes(nodes: Sequence[Node]) -> dict[int, Node]:
    """Every node of a tree by its iteration's id."""
    found: dict[int, Node] = {}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        found[node.iteration.id] = node
        stack.extend(node.children)
    return found


def build_tree(iterations: Sequence[Iteration]) -> list[Node]:
    """Top-level nodes of an experiment's iterations; children ordered by id under their parent."""
    nodes = {it.id: Node(it) for it in iterations}
    roots: list[Node] = []
    for it in sorted(iterations, key=lambda i: i.id):
        parent = nodes.get(it.parent_iteration_id) if it.parent_iteration_id is not None else None
        (parent.children if parent is not None else roots).append(nodes[it.id])
    return roots


def ancestors(tracker: Any, iteration: Iteration) -> list[Iteration]:
    """The chain of parents of an iteration, the top-level one first."""
    chain: list[Iteration] = []
    seen = {iteration.id}
    parent_id = iteration.parent_iteration_id
    while parent_id is not None and parent_id not in seen:
        parent = tracker.get_iteration(parent_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_iteration_id
    return chain[::-1]


@dataclass
class Navigation:
    """The sidebar: every project with its experiments, and the open experiment's iteration tree."""

    projects: list[tuple[Project, list[Experiment]]]
    experiment: Experiment | None = None
    tree: list[Node] = field(default_factory=list)
    open_ids: set[int] = field(default_factory=set)
    current_id: int | None = None


def navigation(
    tracker: Any,
    experiment: Experiment | None = None,
    iterations: Sequence[Iteration] | None = None,
    current: Iteration | None = None,
    open_ids: set[int] | None = None,
) -> Navigation:
    """The sidebar for a page; `iterations` saves reading the open experiment's iterations twice."""
    projects = [(p, tracker.get_experiments(p.id)) for p in tracker.get_projects()]
    nav = Navigation(projects, experiment, current_id=current.id if current else None)
    if experiment is not None:
        its = iterations if iterations is not None else tracker.get_iterations(experiment.id)
        nav.tree = build_tree(its)
        nav.open_ids = set(open_ids or ())
    return nav


@dataclass
class SweepRow:
    """One child of a driver in the sweep table."""

    iteration: Iteration
    parameters: dict[str, str]
    metrics: dict[str, float]
    best: bool = False

    @property
    def rank(self) -> int | None:
        value = as_number(self.parameters.get("rank", ""))
        return int(value) if value is not None and value == int(value) else None


@dataclass
class Sweep:
    """A driver's children with their parameters and final metrics, and the best one by `metric`."""

    rows: list[SweepRow]
    parameter_keys: list[str]
    metric_keys: list[str]
    metric: str | None
    goal: str
    best: SweepRow | None
    total: int = 0  # children of the driver, before a search kept some of them
    peak_keys: list[str] = field(default_factory=list)  # system/...max columns some child recorded

    @property
    def is_ddp(self) -> bool:
        """Children that carry a `rank` parameter are the ranks of one distributed run."""
        return bool(self.rows) and all(row.rank is not None for row in self.rows)

    @property
    def running(self) -> bool:
        return any(row.iteration.status is IterationStatus.RUNNING for row in self.rows)

    @property
    def varied_keys(self) -> list[str]:
        """The parameters whose value differs between children: the axes of a parallel-coordinates plot."""
        return [k for k in self.parameter_keys if len({row.parameters.get(k) for row in self.rows}) > 1]


def _varying_first(keys: list[str], rows: list[SweepRow]) -> list[str]:
    # The parameters that differ between children are what a sweep is about: show them first.
    def varies(key: str) -> bool:
        return len({row.parameters.get(key) for row in rows}) > 1

    return sorted(keys, key=lambda k: (not varies(k), k))


def sweep(
    tracker: Any, driver_id: int, metric: str | None = None, goal: str | None = None,
    only: Sequence[int] | None = None,
) -> Sweep:
    """The sweep table of a driver: three queries on a LocalTracker, whatever the number of children.
    `only`: the children a search matched, in its order; the others are left out."""
    children = tracker.get_child_iterations(driver_id)
    total = len(children)
    if only is not None:
        by_id = {c.id: c for c in children}
        children = [by_id[i] for i in only if i in by_id]
    ids = [c.id for c in children]
    params = parameters_for(tracker, ids) if ids else {}
    latest = tracker.get_latest_metrics(ids) if ids else {}
    rows = [SweepRow(c, params.get(c.id, {}), latest.get(c.id, {})) for c in children]
    parameter_keys = _varying_first(sorted({k for row in rows for k in row.parameters}), rows)
    recorded = {k for row in rows for k in row.metrics}
    metric_keys = sorted(k for k in recorded if not is_system(k))
    peak_keys = sorted(k for k in recorded if PEAK_COLUMNS.match(k))
    if metric not in metric_keys:
        metric = default_metric(metric_keys)
    goal = goal if goal in ("min", "max") else (default_goal(metric) if metric else "max")
    best = None
    is_ddp = bool(rows) and all(row.rank is not None for row in rows)
    # Ranks of one run train one model: none of them is "the best", so DDP runs get no highlight.
    if metric is not None and not is_ddp:
        # As get_best_child_iteration: among SUCCEEDED children, NaN never wins, ties go to the oldest.
        candidates = [
            r for r in rows
            if r.iteration.status is IterationStatus.SUCCEEDED
            and metric in r.metrics and not math.isnan(r.metrics[metric])
        ]
        if candidates:
            sign = 1 if goal == "min" else -1
            best = min(candidates, key=lambda r: (sign * r.metrics[metric], r.iteration.id))
            best.best = True
    if is_ddp:
        rows.sort(key=lambda r: (r.rank, r.iteration.id))
    return Sweep(rows, parameter_keys, metric_keys, metric, goal, best, total, peak_keys)


@dataclass
class ExperimentRow:
    """A top-level iteration on the experiment page: its chosen parameters and final metrics, and its
    children's statuses when it is a sweep's driver."""

    node: Node
    parameters: dict[str, str]
    metrics: dict[str, float]
    best: tuple[str, float, Iteration] | None = None  # a driver's best child: (metric, value, child)


@dataclass
class ExperimentTable:
    rows: list[ExperimentRow]
    parameter_keys: list[str]  # shown
    metric_keys: list[str]  # shown
    all_parameter_keys: list[str]
    all_metric_keys: list[str]


# Columns the experiment page shows when none are chosen.
DEFAULT_PARAMETER_COLUMNS = 4
DEFAULT_METRIC_COLUMNS = 3


def experiment_table(
    tracker: Any, tree: list[Node], parameters: Sequence[str] = (), metrics: Sequence[str] = ()
) -> ExperimentTable:
    """The top-level iterations of an experiment with chosen parameters and final metrics (two batched
    reads). Without a choice: the parameters that vary between rows (else the first few) and the score a
    sweep would be ranked by, then a few more metrics, timings last."""
    ids = [node.iteration.id for node in tree]
    params = parameters_for(tracker, ids) if ids else {}
    latest = tracker.get_latest_metrics(ids) if ids else {}
    rows = [ExperimentRow(node, params.get(node.iteration.id, {}), latest.get(node.iteration.id, {})) for node in tree]
    _best_children(tracker, rows)
    all_params = sorted({k for row in rows for k in row.parameters})
    all_metrics = sorted({k for row in rows for k in row.metrics})
    chosen_params = [k for k in parameters if k in all_params]
    if not chosen_params:
        varying = [k for k in all_params if len({row.parameters.get(k) for row in rows}) > 1]
        chosen_params = (varying or all_params)[:DEFAULT_PARAMETER_COLUMNS]
    chosen_metrics = [k for k in metrics if k in all_metrics]
    if not chosen_metrics:
        first = default_metric(all_metrics)
        rest = sorted((k for k in all_metrics if k != first and not _NOT_A_TARGET.search(k) and not is_system(k)),
                      key=is_timing)
        chosen_metrics = ([first] if first else []) + rest[: DEFAULT_METRIC_COLUMNS - (1 if first else 0)]
    return ExperimentTable(rows, chosen_params, chosen_metrics, all_params, all_metrics)


def _best_children(tracker: Any, rows: list[ExperimentRow]) -> None:
    """Each driver's best child by the metric its sweep page would rank by (one batched read for all)."""
    child_ids = [child.iteration.id for row in rows for child in row.node.children]
    if not child_ids:
        return
    latest = tracker.get_latest_metrics(child_ids)
    for row in rows:
        children = [c.iteration for c in row.node.children]
        metric = default_metric(sorted({k for c in children for k in latest.get(c.id, {})}))
        if metric is None:
            continue
        goal = default_goal(metric)
        # As the sweep page: SUCCEEDED children only, NaN never wins, ties go to the oldest.
        scored = [
            (latest[c.id][metric], c) for c in children
            if c.status is IterationStatus.SUCCEEDED and metric in latest.get(c.id, {})
            and not math.isnan(latest[c.id][metric])
        ]
        if scored:
            sign = 1 if goal == "min" else -1
            value, child = min(scored, key=lambda vc: (sign * vc[0], vc[1].id))
            row.best = (metric, value, child)


def single_values(series: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """The metrics with one value (a score, a count): shown as numbers, since a one-dot chart says nothing."""
    return {k: points[0][1] for k, points in series.items() if len(points) == 1}


def metric_keys(tracker: Any, iteration_id: int) -> dict[str, float]:
    """An iteration's metric keys with their latest values, sorted by key."""
    return dict(sorted(tracker.get_latest_metrics([iteration_id]).get(iteration_id, {}).items()))


@dataclass
class VersionRow:
    """One version on the models page: its stage and aliases, and the iteration (and sweep) behind it."""

    version: Any
    aliases: list[str]
    iteration: Iteration | None
    sweep_id: int | None  # the driver whose sweep produced it: the iteration itself or its parent


@dataclass
class ModelCard:
    model: Any
    versions: list[VersionRow]


def project_models(tracker: Any, project_id: int) -> list[ModelCard]:
    """A project's registered models, newest version first, each linked to the iteration that made it."""
    cards = []
    for model in tracker.get_models(project_id):
        aliases: dict[int, list[str]] = defaultdict(list)
        for alias in tracker.get_model_aliases(model.id):
            aliases[alias.model_version_id].append(alias.alias)
        rows = []
        for version in reversed(tracker.get_model_versions(model.id)):
            iteration = tracker.get_iteration(version.iteration_id)
            sweep_id = None
            if iteration is not None:
                sweep_id = iteration.parent_iteration_id or (
                    iteration.id if tracker.get_child_iterations(iteration.id, limit=1) else None
                )
            rows.append(VersionRow(version, aliases.get(version.id, []), iteration, sweep_id))
        cards.append(ModelCard(model, rows))
    return cards


def mlflow_io(tracker: Any, iteration_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The datasets and logged models an MLflow client recorded as the run's inputs and outputs (MLflow's
    `inputs` and `outputs` objects); empty for runs logged otherwise, or a tracker without a database."""
    base = getattr(tracker, "_tracker", tracker)  # the read-only view has checked the iteration already
    engine = getattr(base, "engine", None)
    if engine is None:
        return {}, {}
    from ..server.mlflow.inputs import run_io
    from ..tracker.database import read_transaction

    with read_transaction(engine) as conn:
        return run_io(conn, [iteration_id]).get(iteration_id, ({}, {}))
