"""Whether a process has gone, for tests that kill processes or wait for one to leave on its own."""

from __future__ import annotations

import time


def gone(pid: int) -> bool:
    """No such process, or a zombie (its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def left(pid: int, timeout: float = 30.0) -> bool:
    """True once `pid` has gone, waiting up to `timeout` (a process that exits on its own, on a loaded
    machine, does not within the same millisecond)."""
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return gone(pid)
