"""The machine around the run: CPU, memory, disk and network, as rates since the previous reading.
Counters are kept here rather than in psutil's module-wide `cpu_percent()` state, which any other
caller in the process (a profiler, Lightning's DeviceStatsMonitor) would reset under us."""

from __future__ import annotations

import time
from typing import Any

from .process_tree import MIB

GIB = 1024 * MIB


class Machine:
    """System-wide readings for one sampler; `directory` is the filesystem whose usage is recorded."""

    def __init__(self, directory: str) -> None:
        import psutil

        self._psutil = psutil
        self.directory = directory
        self._last = self._counters()

    def _counters(self) -> dict[str, Any]:
        psutil = self._psutil
        return {
            "at": time.monotonic(),
            "cpu": psutil.cpu_times(),
            "disk": _quietly(psutil.disk_io_counters),
            "net": _quietly(psutil.net_io_counters),
        }

    def sample(self) -> dict[str, float]:
        """`system/...` values without the prefix: cpu_percent, memory, disk and network rates."""
        psutil = self._psutil
        now, last = self._counters(), self._last
        self._last = now
        seconds = max(now["at"] - last["at"], 1e-6)
        out: dict[str, float] = {"cpu_percent": _busy_percent(last["cpu"], now["cpu"])}
        memory = psutil.virtual_memory()
        out["memory.used_mib"] = memory.used / MIB
        out["memory.available_mib"] = memory.available / MIB
        out["memory.percent"] = float(memory.percent)
        if now["disk"] is not None and last["disk"] is not None:
            out["disk.read_bytes_per_s"] = _rate(last["disk"].read_bytes, now["disk"].read_bytes, seconds)
            out["disk.write_bytes_per_s"] = _rate(last["disk"].write_bytes, now["disk"].write_bytes, seconds)
        usage = _quietly(psutil.disk_usage, self.directory)
        if usage is not None:
            out["disk.used_percent"] = float(usage.percent)
            out["disk.free_gib"] = usage.free / GIB
        if now["net"] is not None and last["net"] is not None:
            out["network.sent_bytes_per_s"] = _rate(last["net"].bytes_sent, now["net"].bytes_sent, seconds)
            out["network.recv_bytes_per_s"] = _rate(last["net"].bytes_recv, now["net"].bytes_recv, seconds)
        return out


def _busy_percent(before: Any, after: Any) -> float:
    """Share of all CPUs' time not idle (nor waiting on I/O) between two `cpu_times()`, in %."""
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    return 0.0 if total <= 0 else max(0.0, min(100.0, 100.0 * (total - idle) / total))


def _rate(before: int, after: int, seconds: float) -> float:
    # A counter that wrapped or was reset (a network interface went away) gives 0, not a negative rate.
    return max(0, after - before) / seconds


def _quietly(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except Exception:  # noqa: BLE001 - a container without /proc/diskstats, a directory removed: no value
        return None
