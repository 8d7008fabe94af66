"""The run's process tree, read by pid: the training process and its descendants (DataLoader workers,
loky workers), without the diary sidecar (tracking, not training) nor another DDP rank started from
this one (that rank records its own tree). Works from any process: nothing here asks the sampled
process anything but what /proc (psutil) says about it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
SIDECAR_MODULE = "diary_integrations.sidecar"
RANK_VARIABLES = ("RANK", "LOCAL_RANK")


@dataclass
class TreeSample:
    """One reading of the tree: summed over its processes."""

    cpu_percent: float  # of one core: 200 means two cores busy
    rss_mib: float
    threads: int
    processes: int
    pids: frozenset[int]
    root_peak_rss_mib: float | None  # the kernel's own high-water mark of the root process (Linux)


class ProcessTree:
    """Keeps a psutil.Process per pid seen, so each one's CPU % is measured since the previous reading,
    and decides once per pid whether it belongs to the run."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self.pid = pid
        self.root = psutil.Process(pid)
        self._own = pid == os.getpid()
        # Another process's environment as it started (/proc); this one's is read live (below).
        self._ranks = None if self._own else _rank_variables(self.root)
        self._known: dict[int, Any] = {pid: self.root}
        self._foreign: set[int] = set()
        self.root.cpu_percent(None)  # the baseline: the first reading measures from here

    def sample(self) -> TreeSample:
        """The tree as it is now (processes that ended since the last reading are forgotten)."""
        psutil = self._psutil
        members = [self.root]
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            children = []
        parent_of = {}
        for child in children:
            try:
                parent_of[child.pid] = child.ppid()
            except psutil.Error:
                continue
        for child in children:
            if child.pid not in parent_of or self._excluded(child, parent_of):
                continue
            members.append(self._known.setdefault(child.pid, child))
        cpu = rss = 0.0
        threads = 0
        pids = set()
        for process in members:
            try:
                with process.oneshot():
                    if process.status() == psutil.STATUS_ZOMBIE:
                        continue  # a worker that exited, not yet reaped: no longer part of the run
                    cpu += process.cpu_percent(None)  # 0.0 at a new process's first reading
                    rss += process.memory_info().rss
                    threads += process.num_threads()
            except psutil.Error:
                continue
            pids.add(process.pid)
        for gone in set(self._known) - pids:
            del self._known[gone]
        return TreeSample(cpu, rss / MIB, threads, len(pids), frozenset(pids), _peak_rss_mib(self.pid))

    def _excluded(self, child: Any, parent_of: dict[int, int]) -> bool:
        """A sidecar, another rank, or anything below one of them (decided once per pid)."""
        pid = child.pid
        if pid in self._foreign:
            return True
        if pid in self._known:
            return False
        parent = parent_of.get(pid)
        if parent in self._foreign or self._is_foreign(child):
            self._foreign.add(pid)
            return True
        return False

    def _is_foreign(self, child: Any) -> bool:
        psutil = self._psutil
        try:
            if SIDECAR_MODULE in child.cmdline():
                return True
        except psutil.Error:
            return False
        # Lightning sets LOCAL_RANK=0 in rank 0's os.environ just before it starts ranks 1.. with theirs.
        own = tuple(os.environ.get(name) for name in RANK_VARIABLES) if self._own else self._ranks
        ranks = _rank_variables(child)
        if own is None or ranks is None or all(value is None for value in ranks):
            return False  # a child without rank variables (a worker with a clean environment) is ours
        return ranks != own


def _rank_variables(process: Any) -> tuple[str | None, ...] | None:
    """RANK and LOCAL_RANK as the process sees them (None when its environment cannot be read). A DDP
    launcher starts rank 1.. as children of rank 0 with other values; a DataLoader worker inherits its own."""
    try:
        env = process.environ()
    except Exception:  # noqa: BLE001 - psutil.AccessDenied, a zombie: counted as ours
        return None
    return tuple(env.get(name) for name in RANK_VARIABLES)


def _peak_rss_mib(pid: int) -> float | None:
    """VmHWM, the kernel's record of the process's highest RSS, where there is a /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None
