"""Measuring side by side: variants of a case run interleaved, several times, and are reported as
medians, min-max and ratios to the peer. Nothing here asserts a speed; it measures and reports."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Comparison:
    """`ratio = value(numerator) / value(denominator)`, judged against `target` in direction `better`."""

    label: str
    numerator: str
    denominator: str
    target: float | None  # None: reported for reference, no target
    better: str  # "higher" or "lower"
    note: str = ""


@dataclass
class Limit:
    """An absolute target for one variant's median, e.g. at most 20 µs per call."""

    label: str
    variant: str
    bound: float
    better: str  # "higher" or "lower"


@dataclass
class Case:
    name: str
    description: str
    unit: str  # what each variant's number is: "s" (lower is better) or e.g. "points/s"
    variants: dict[str, Callable[[], float]]
    comparisons: list[Comparison]
    repeats: int = 5
    limits: list[Limit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines a variant adds while it runs


@dataclass
class Result:
    case: Case
    samples: dict[str, list[float]] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    error: str | None = None  # why the case stopped before its last run (its figures are then left out)

    def median(self, variant: str) -> float:
        return statistics.median(self.samples[variant])


def run_case(case: Case, *, log: Callable[[str], None] = print) -> Result:
    """Run every variant `case.repeats` times, interleaved (A B C A B C ...) so drift hits all alike."""
    result = Result(case, {name: [] for name in case.variants})
    result.extra = case.notes
    for rep in range(case.repeats):
        for name, variant in case.variants.items():
            gc.collect()
            try:
                value = variant()
            except Exception as exc:  # noqa: BLE001 - one broken case must not cost an hour-long run the others
                result.error = f"{name}, run {rep + 1}: {type(exc).__name__}: {str(exc)[-500:]}"
                log(f"  {case.name} · FAILED · {result.error}")
                return result
            result.samples[name].append(value)
            log(f"  {case.name} · {name} · run {rep + 1}/{case.repeats}: {format_value(value, case.unit)}")
    return result


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if value < 1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M {unit}"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k {unit}"
    return f"{value:.1f} {unit}"


def ratio(result: Result, comparison: Comparison) -> float:
    return result.median(comparison.numerator) / result.median(comparison.denominator)


def verdict(value: float, comparison: Comparison) -> str:
    if comparison.target is None:
        return "reference"
    met = value >= comparison.target if comparison.better == "higher" else value <= comparison.target
    sign = "≥" if comparison.better == "higher" else "≤"
    return f"{'met' if met else 'MISSED'} (target {sign} {comparison.target:g}x)"


def limit_verdict(value: float, limit: Limit, unit: str) -> str:
    met = value >= limit.bound if limit.better == "higher" else value <= limit.bound
    sign = "≥" if limit.better == "higher" else "≤"
    return f"{'met' if met else 'MISSED'} (target {sign} {format_value(limit.bound, unit)})"


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def read_back(variants: dict[str, Callable[[], float]], kept: dict[str, list[float]]) -> dict[str, Callable[[], float]]:
    """Variants for a second figure of the same runs: each sample is the next number a run of the first
    case kept in `kept[name]` (a run is made when none is left, e.g. when this case runs alone)."""

    def recorded(name: str) -> Callable[[], float]:
        run = variants[name]

        def sample() -> float:
            if not kept[name]:
                run()
            return kept[name].pop(0)

        return sample

    return {name: recorded(name) for name in variants}


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/meminfo") as info:
            mem_kb = next(int(line.split()[1]) for line in info if line.startswith("MemTotal"))
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        sha = ""
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem} RAM; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}; commit {sha or '?'}"
    )


def report(results: list[Result], *, quick: bool, versions: dict[str, str]) -> str:
    """BENCHMARKS.md: per case, every variant's median and range, then the ratios against their targets."""
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        f"Mode: {'quick (smaller sizes, a smoke test; ratios are indicative only)' if quick else 'full'}. "
        "Each variant ran several times, interleaved with its peers in the same process run; "
        "medians are reported, with min–max.",
        "",
        "Regenerate with `python -m benchmarks` (add `--quick` for the smoke run).",
        "",
        "## Summary",
        "",
        "| case | comparison | ratio | verdict |",
        "|---|---|---|---|",
    ]
    for result in results:
        if result.error:
            lines.append(f"| {result.case.name} | — | — | FAILED: {result.error.splitlines()[0][:200]} |")
            continue
        for comparison in result.case.comparisons:
            value = ratio(result, comparison)
            lines.append(f"| {result.case.name} | {comparison.label} | {value:.2f}x | {verdict(value, comparison)} |")
        for limit in result.case.limits:
            value = result.median(limit.variant)
            lines.append(f"| {result.case.name} | {limit.label} | {format_value(value, result.case.unit)} | "
                         f"{limit_verdict(value, limit, result.case.unit)} |")
    for result in results:
        case = result.case
        lines += ["", f"## {case.name}", "", case.description, ""]
        if result.error:
            lines.append(f"The case failed: {result.error}")
            continue
        lines += ["| variant | median | min – max | runs |", "|---|---|---|---|"]
        for name, samples in result.samples.items():
            lines.append(
                f"| {name} | {format_value(statistics.median(samples), case.unit)} | "
                f"{format_value(min(samples), case.unit)} – {format_value(max(samples), case.unit)} | {len(samples)} |"
            )
        for comparison in case.comparisons:
            value = ratio(result, comparison)
            note = f" {comparison.note}" if comparison.note else ""
            lines.append("")
            lines.append(f"- {comparison.label}: **{value:.2f}x**, {verdict(value, comparison)}.{note}")
        for limit in case.limits:
            value = result.median(limit.variant)
            lines.append(f"- {limit.label}: **{format_value(value, case.unit)}**, "
                         f"{limit_verdict(value, limit, case.unit)}.")
        for extra in result.extra:
            lines.append(f"- {extra}")
    return "\n".join(lines) + "\n"
