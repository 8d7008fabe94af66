"""The iteration page's "System" section: the run's `system/...` metrics (diary_integrations.system_metrics)
as CPU, memory, GPU, disk and network charts on one time axis (seconds since the first reading; the
points' steps are wall-clock milliseconds), with the peaks as numbers. A FAILED run whose error mentions
memory shows its memory curve first, and the section before the others."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from ..tracker.enums import IterationStatus
from .charts import Series, line_chart
from .data import SERIES_POINTS, is_system, series_for

PREFIX = "system/"
# "MemoryError", "CUDA out of memory", "OutOfMemoryError", "OOM", "Cannot allocate memory", "std::bad_alloc".
_MEMORY_TROUBLE = re.compile(r"memory|\boom\b|bad_alloc", re.IGNORECASE)
_GPU = re.compile(r"^system/gpu\.(\d+)\.")


@dataclass
class SystemChart:
    name: str  # "cpu", "memory", "gpu.0.memory", ...: the figure's data-key
    title: str
    chart: Markup


@dataclass
class SystemSection:
    charts: list[SystemChart]
    peaks: dict[str, float] = field(default_factory=dict)  # `system/....max` -> value
    memory_first: bool = False


def _groups(keys: set[str]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(name, title, [(key, label)]) of every chart that has at least one recorded key, in page order."""
    groups = [
        ("cpu", "CPU (%; the process tree's is of one core)", [("proc.cpu_percent", "process tree"),
                                                              ("cpu_percent", "machine")]),
        ("memory", "Process tree memory (RSS, MiB)", [("proc.rss_mib.max", "peak"), ("proc.rss_mib", "RSS")]),
    ]
    for index in sorted({int(m.group(1)) for k in keys if (m := _GPU.match(k))}):
        g = f"gpu.{index}."
        groups.append((f"gpu.{index}.memory", f"GPU {index} memory (MiB)",
                       [(g + "memory_used_mib", "used"), (g + "proc_memory_mib", "this run"),
                        (g + "memory_total_mib", "total")]))
        groups.append((f"gpu.{index}", f"GPU {index} utilisation (%)", [(g + "util", "utilisation")]))
        groups.append((f"gpu.{index}.power", f"GPU {index} power (W) and temperature (°C)",
                       [(g + "power_w", "power"), (g + "temperature_c", "temperature")]))
    groups += [
        ("machine-memory", "Machine memory (MiB)",
         [("memory.used_mib", "used"), ("memory.available_mib", "available")]),
        ("disk", "Disk (bytes/s)", [("disk.read_bytes_per_s", "read"), ("disk.write_bytes_per_s", "write")]),
        ("network", "Network (bytes/s)",
         [("network.sent_bytes_per_s", "sent"), ("network.recv_bytes_per_s", "received")]),
    ]
    out = []
    for name, title, members in groups:
        present = [(PREFIX + key, label) for key, label in members if PREFIX + key in keys]
        if present:
            out.append((name, title, present))
    return out


def memory_trouble(iteration: Any) -> bool:
    """A FAILED run whose error speaks of memory: its memory is what its user looks at first."""
    if iteration.status is not IterationStatus.FAILED:
        return False
    return bool(_MEMORY_TROUBLE.search(f"{iteration.error_message}\n{iteration.traceback[-4000:]}"))


def system_section(tracker: Any, iteration: Any, latest: dict[str, float]) -> SystemSection | None:
    """The section for `iteration` (None when it recorded no system metrics)."""
    keys = {k for k in latest if is_system(k)}
    if not keys:
        return None
    groups = _groups(keys)
    drawn = sorted({key for _, _, members in groups for key, _ in members})
    series = {k: series_for(tracker, [iteration.id], k, SERIES_POINTS)[iteration.id] for k in drawn}
    steps = [step for points in series.values() for step, _ in points]
    origin = min(steps) if steps else 0
    end = max((max(steps) - origin) / 1000.0, 1.0) if steps else 1.0
    memory_first = memory_trouble(iteration)
    if memory_first:
        # The memory charts (the tree's, then each GPU's) first, the rest in their usual order.
        groups.sort(key=lambda g: 0 if g[0] == "memory" else 1 if g[0].endswith(".memory") else 2)
    charts = []
    for name, title, members in groups:
        # A peak is drawn dashed, under the curve it follows (often on it).
        curves = [Series(label, [((step - origin) / 1000.0, value) for step, value in series[key]],
                         dashed=key.endswith(".max")) for key, label in members]
        charts.append(SystemChart(name, title, line_chart(curves, y_label=title.split(" (")[0],
                                                          x_label="seconds since the first reading",
                                                          x_domain=(0.0, end))))
    peaks = {k: latest[k] for k in sorted(keys) if k.endswith(".max")}
    return SystemSection(charts, peaks, memory_first)
