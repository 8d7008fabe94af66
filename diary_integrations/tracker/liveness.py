"""Embedded liveness: which process runs an iteration, and whether that process still lives.

A LocalTracker records, beside each iteration it creates (or beats, or reopens), the host, pid and start
time of the process doing it. A reader on the same host that finds that process gone, a zombie, or a
different process under the same pid (its start time differs: the pid was reused) knows the run died
without a word, and records it KILLED at once. Hosts are told apart by name and PID namespace, so a
container never judges pids it cannot see. Only Linux is covered (the start time comes from /proc, no
dependency); elsewhere no process is recorded and the lease (heartbeats, `diary reap`) covers the run.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from functools import lru_cache

# The start time is rebuilt from the boot time the kernel reports, which NTP can shift by a second
# between two readers; a pid reused within this many seconds of the original's start is not told apart.
START_TOLERANCE_SECONDS = 2.0
# A process found alive is not looked up again for this long, so a page listing RUNNING rows stays cheap.
ALIVE_CACHE_SECONDS = 1.0

_alive_until: dict[tuple[int, float], float] = {}


@lru_cache(maxsize=1)
def _clock_ticks() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _stat(pid: int) -> tuple[str, float] | None:
    """(state letter, start time in epoch seconds) of a process, from /proc; None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    boot = _boot_time()
    if len(fields) < 20 or boot is None:
        return None
    return fields[0].decode(), boot + int(fields[19]) / _clock_ticks()  # field 3 (state), field 22 (starttime)


@lru_cache(maxsize=1)
def supported() -> bool:
    """True where process start times can be read (Linux /proc)."""
    return _stat(os.getpid()) is not None


@lru_cache(maxsize=1)
def this_host() -> str:
    """This host as an iteration_process row names it: the host name and the PID namespace, so two
    containers with one host name (each with its own pids) are different hosts."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    name = socket.gethostname()
    return f"{name} {namespace}"[:250] if namespace else name[:250]


_own: dict[int, tuple[str, int, float]] = {}


def _launcher() -> int | None:
    """The pid of the process that started this one as a multiprocessing worker (mp.spawn, ddp_spawn),
    if it is one."""
    multiprocessing = sys.modules.get("multiprocessing")
    parent = multiprocessing.parent_process() if multiprocessing is not None else None
    return None if parent is None else parent.pid


def own_process() -> tuple[str, int, float] | None:
    """(host, pid, start time) of the process a run made here lives by, or None where liveness is not
    supported. That is this process, except in a multiprocessing worker: its launcher waits for it and
    ends what the worker left with the worker's real outcome (`distributed.conclude_launcher`), so a
    worker's run lives by its launcher."""
    pid = os.getpid()  # recomputed after a fork: the child is another process
    found = _own.get(pid)
    if found is None:
        if not supported():
            return None
        owner = _launcher() or pid
        stat = _stat(owner)
        if stat is None:
            return None
        found = _own[pid] = (this_host(), owner, stat[1])
    return found


def adopt(owner: tuple[str, int, float]) -> None:
    """This process writes on behalf of `owner` (a sidecar for its training process): the iterations
    it creates, beats or reopens live by that process, which is the one whose death ends them."""
    _own[os.getpid()] = (owner[0], int(owner[1]), float(owner[2]))


def is_gone(pid: int, start: float) -> bool:
    """True only when the process recorded as (pid, start) on this host certainly no longer runs: no such
    pid, a zombie, or another process that reused the pid. Anything unsure (a process of another user
    whose /proc entry is hidden) counts as alive, so a live run is never ended."""
    own = own_process()
    if own is not None and pid == own[1]:
        return abs(own[2] - start) > START_TOLERANCE_SECONDS
    key = (pid, start)
    now = time.monotonic()
    if _alive_until.get(key, 0.0) > now:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, as another user's process
    except OSError:
        return False
    stat = _stat(pid)
    if stat is not None:
        state, started = stat
        if state in ("Z", "X") or abs(started - start) > START_TOLERANCE_SECONDS:
            return True
    if len(_alive_until) > 10_000:
        _alive_until.clear()
    _alive_until[key] = now + ALIVE_CACHE_SECONDS
    return False


def exit_message(pid: int) -> str:
    """The error_message of an iteration whose process died without ending it."""
    return f"process {pid} exited without ending the run"
