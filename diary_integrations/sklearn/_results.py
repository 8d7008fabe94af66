"""Reading a fitted search's `cv_results_` into one record per candidate (the authoritative scores),
and reading exception text out of scikit-learn's tracebacks and FitFailedWarning."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ._describe import candidate_parameters

_SPLIT = re.compile(r"^split(\d+)_(test|train)_(.+)$")
_SUMMARY = re.compile(r"^(mean|std|rank)_")
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)+([A-Za-z_]\w*(?::|$))")


@dataclass
class CandidateResult:
    """One row of `cv_results_`: a candidate's parameters, fold scores and summary metrics."""

    row: int
    halving_iter: int  # 0 outside the halving searches
    index_in_iter: int  # the candidate's index among its iteration's candidates (= row outside halving)
    parameters: dict[str, Any]
    extra_parameters: dict[str, Any]
    fold_scores: dict[int, dict[str, float]] = field(default_factory=dict)  # fold -> {"test_score": ...}
    summary: dict[str, float] = field(default_factory=dict)  # mean_/std_/rank_ columns
    rank: float = math.inf

    def points(self, fold_times: dict[int, float] | None = None) -> list[tuple[str, float, int]]:
        """Metric points: each fold's scores as a series by fold (step = fold), summaries at step 0."""
        pts = [(key, value, fold) for fold, scores in sorted(self.fold_scores.items()) for key, value in scores.items()]
        pts += [(key, value, 0) for key, value in self.summary.items()]
        pts += [("fold_time", seconds, fold) for fold, seconds in sorted((fold_times or {}).items())]
        return pts

    def score_looks_failed(self, fold: int, error_score: Any) -> bool:
        """Whether this fold's test scores all equal `error_score` (what a failed fit leaves behind)."""
        tests = [v for k, v in self.fold_scores.get(fold, {}).items() if k.startswith("test_")]
        if not tests:
            return False
        if isinstance(error_score, (int, float)) and math.isnan(error_score):
            return all(math.isnan(v) for v in tests)
        return isinstance(error_score, (int, float)) and all(v == error_score for v in tests)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def candidate_results(search: Any) -> list[CandidateResult]:
    """Every row of a fitted search's `cv_results_`, in row order."""
    results = search.cv_results_
    params = list(results["params"])
    iters = [int(i) for i in results["iter"]] if "iter" in results else [0] * len(params)
    refit = search.refit if isinstance(search.refit, str) else "score"
    rank_key = f"rank_test_{refit}" if f"rank_test_{refit}" in results else next(
        (k for k in results if k.startswith("rank_test_")), None
    )
    seen: dict[int, int] = {}
    out = []
    for row, candidate in enumerate(params):
        it = iters[row]
        extra = {"halving_iter": it, "n_resources": int(results["n_resources"][row])} if "iter" in results else {}
        rec = CandidateResult(row, it, seen.get(it, 0), candidate_parameters(candidate), extra)
        seen[it] = rec.index_in_iter + 1
        out.append(rec)
    for key, column in results.items():
        split = _SPLIT.match(key)
        if split:
            fold, kind, name = int(split.group(1)), split.group(2), split.group(3)
            for rec in out:
                rec.fold_scores.setdefault(fold, {})[f"{kind}_{name}"] = _float(column[rec.row])
        elif _SUMMARY.match(key):
            for rec in out:
                rec.summary[key] = _float(column[rec.row])
    if rank_key is not None:
        for rec in out:
            rec.rank = _float(results[rank_key][rec.row])
    return out


def search_summary(search: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """The driver's closing parameters (`best_<name>`, `n_splits`) and metrics (best score, index, refit time)."""
    params: dict[str, Any] = {"n_splits": int(search.n_splits_)}
    metrics: dict[str, float] = {"n_candidates": float(len(search.cv_results_["params"]))}
    if hasattr(search, "best_params_"):
        params.update({f"best_{k}": v for k, v in candidate_parameters(search.best_params_).items()})
    for name in ("best_score_", "best_index_", "refit_time_"):
        if hasattr(search, name):
            metrics[name.rstrip("_")] = _float(getattr(search, name))
    return params, metrics


def exception_line(trace: str) -> str:
    """`"ValueError: ..."`: the exception line of a formatted traceback (its last exception, first line)."""
    lines = trace.rstrip().splitlines()
    start = max((n for n, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")), default=-1)
    found = next((line.strip() for line in lines[start + 1 :] if line.strip() and not line.startswith((" ", "\t"))),
                 None)
    if found is None:
        found = next((line.strip() for line in reversed(lines) if line.strip()), "")
    # Tracebacks name exceptions by module ("sklearn.utils._param_validation.InvalidParameterError: ...");
    # with_iteration's error_message uses the bare class name, so do the same.
    return _QUALIFIED.sub(r"\1", found, count=1)


def fit_failed_errors(warning_text: str) -> list[tuple[int, str, str]]:
    """The (count, exception line, traceback) groups of a FitFailedWarning: "2 fits failed with the
    following error: Traceback ..." sections, in the order scikit-learn lists them."""
    groups = []
    pattern = re.compile(r"^(\d+) fits? failed with the following error:\s*$", re.MULTILINE)
    marks = list(pattern.finditer(warning_text))
    for n, mark in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(warning_text)
        body = warning_text[mark.end() : end].strip().rstrip("-").strip()
        groups.append((int(mark.group(1)), exception_line(body), body))
    return groups
