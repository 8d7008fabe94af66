"""Which parameters of a sweep matter for its metric, as W&B's parameter-importance panel shows it.

Two numbers per varied parameter:

- **correlation**: Pearson's r between a numeric parameter and the metric (pure Python; a categorical
  parameter has no sign to correlate, so it gets none);
- **permutation importance**: the mean drop in R² of a `RandomForestRegressor` fitted on the children
  when that parameter's column is shuffled (scikit-learn's `permutation_importance`). Computed only when
  scikit-learn is importable (the `[sklearn]` extra) and there are enough children with a value; the
  page names the method, or says why there is none.

The work is bounded (at most `MAX_CHILDREN` children, a small forest) and the last few answers are kept,
so reloading a finished sweep's page does not fit the forest again.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from .data import as_number

# Fewer children than this say nothing a forest could learn: the page says so instead.
MIN_CHILDREN = 5
# The forest is fitted on at most this many children (an evenly spaced sample by id beyond that, which
# the page says): about a second of work on a loaded two-core machine, whatever the sweep's size.
MAX_CHILDREN = 500
TREES = 50
REPEATS = 5
SEED = 0


@dataclass
class ParameterImportance:
    key: str
    correlation: float | None  # None: categorical, or no spread
    permutation: float | None  # None: not computed (see Importance.note)


@dataclass
class Importance:
    """Per-parameter importances, the method used (named on the page) and a note when one is missing."""

    rows: list[ParameterImportance]
    children: int  # children with a metric value that were used
    method: str | None = None
    note: str | None = None
    cut: bool = False  # more children than MAX_CHILDREN had a value: an evenly spaced sample was used


# The last few answers, keyed by their inputs: a reload of a finished sweep does not fit the forest again.
_CACHE: OrderedDict[tuple, Importance] = OrderedDict()
_CACHE_SIZE = 16
_CACHE_LOCK = threading.Lock()  # pages render on the server's worker threads


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r, or None when either side has no spread (or fewer than two points)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)


def _columns(params: Sequence[dict[str, str]], keys: Sequence[str]) -> tuple[list[list[float]], set[str]]:
    """The design matrix: numeric parameters as numbers, others as ordinal codes of their sorted values
    (a tree splits on codes as well as on one-hot columns, and keeps one column per parameter). A missing
    value is its own code (-1) or, for a number, the column's minimum minus one."""
    columns: list[list[float]] = []
    numeric: set[str] = set()
    for key in keys:
        raw = [p.get(key) for p in params]
        numbers = [as_number(v) if v is not None else None for v in raw]
        if all(n is not None for n, v in zip(numbers, raw, strict=True) if v is not None):
            numeric.add(key)
            present = [n for n in numbers if n is not None]
            fill = (min(present) - 1.0) if present else 0.0
            columns.append([n if n is not None else fill for n in numbers])
        else:
            codes = {v: i for i, v in enumerate(sorted({v for v in raw if v is not None}))}
            columns.append([float(codes[v]) if v is not None else -1.0 for v in raw])
    return columns, numeric


def importance(params: Sequence[dict[str, str]], values: Sequence[float], keys: Sequence[str]) -> Importance:
    """Importances of `keys` for the metric `values` (one per child, finite), children in id order."""
    cut = len(values) > MAX_CHILDREN
    if cut:
        picked = [round(n * (len(values) - 1) / (MAX_CHILDREN - 1)) for n in range(MAX_CHILDREN)]
        params, values = [params[i] for i in picked], [values[i] for i in picked]
    params, values = list(params), list(values)
    cache_key = (tuple(keys), tuple(values), tuple(tuple(sorted(p.items())) for p in params))
    with _CACHE_LOCK:
        if cache_key in _CACHE:
            _CACHE.move_to_end(cache_key)
            return _CACHE[cache_key]
    columns, numeric = _columns(params, keys)
    correlations = [pearson(col, values) if key in numeric else None for key, col in zip(keys, columns, strict=True)]
    result = Importance([ParameterImportance(k, r, None) for k, r in zip(keys, correlations, strict=True)],
                        children=len(values), cut=cut)
    if len(values) < MIN_CHILDREN:
        result.note = (f"Permutation importance needs at least {MIN_CHILDREN} children with a value; "
                       f"this sweep has {len(values)}.")
    elif len(set(values)) == 1:
        result.note = "Every child has the same value of the metric: no parameter explains a difference."
    else:
        _permutation(result, columns, values)
    with _CACHE_LOCK:
        _CACHE[cache_key] = result
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def _permutation(result: Importance, columns: list[list[float]], values: list[float]) -> None:
    try:
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.inspection import permutation_importance
    except ImportError:
        result.note = ("Permutation importance needs scikit-learn, which is not installed here "
                       "(pip install 'diary-integrations[sklearn]'). Correlation needs nothing.")
        return
    rows = [list(row) for row in zip(*columns, strict=True)]
    forest = RandomForestRegressor(n_estimators=TREES, random_state=SEED, n_jobs=1).fit(rows, values)
    scores = permutation_importance(forest, rows, values, n_repeats=REPEATS, random_state=SEED, n_jobs=1)
    for row, mean in zip(result.rows, scores.importances_mean, strict=True):
        row.permutation = float(mean) if math.isfinite(mean) else None
    result.method = (
        f"permutation importance (scikit-learn's permutation_importance, {REPEATS} repeats): the mean drop "
        f"in R² of a RandomForestRegressor ({TREES} trees, seed {SEED}) fitted on the {len(values)} succeeded "
        "children with a value, when one parameter's column is shuffled (measured on those same children: "
        "what the forest relies on, not a held-out estimate)"
    )
