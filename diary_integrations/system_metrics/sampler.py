"""The sampler thread: every `interval` seconds one reading of the run's process tree, the machine and
the GPUs the tree uses, handed to a MetricWriter as `system/...` points. It never runs on the training
thread: the thread that starts it only starts a thread, and the one that stops it only joins it."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from typing import Any

log = logging.getLogger("diary_integrations")

PREFIX = "system/"
DEFAULT_INTERVAL = 10.0
FIRST_SAMPLE_AFTER = 1.0  # the first reading, so a short or failing run still has one
STOP_TIMEOUT = 1.0
# Keys whose running maximum is written too, as `<key>.max` (the latest value of which is the peak).
PEAKED = ("proc.rss_mib", "memory_used_mib", "proc_memory_mib")
THREAD_NAME = "diary-system-metrics"
# Held while a sampler reads (imports psutil, starts NVML, reads /proc), and taken by every fork of this
# process, so a DataLoader worker is never forked in the middle of a reading: the child would inherit the
# locks the sampler held then (the dynamic loader's, an allocator's), with no thread left to release them.
# A reading stuck on a dead network mount must not stop forks for good: a fork waits at most FORK_WAIT.
_reading = threading.Lock()
_forking = threading.local()
FORK_WAIT = 2.0


def _before_fork() -> None:
    _forking.held = _reading.acquire(timeout=FORK_WAIT)


def _after_fork() -> None:
    if getattr(_forking, "held", False):
        _forking.held = False
        _reading.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)
# Readings kept while the run's iteration is still being created (`attach` hands them over).
MAX_UNATTACHED = 360


class SystemSampler:
    """A running sampler (see `diary_integrations.system_metrics.start`). `stop()` ends it. Started
    without a writer and an iteration (a run still being opened), it keeps its readings until `attach`."""

    def __init__(self, writer: Any | None, iteration_id: int | None, *, pid: int, interval: float,
                 directory: str, own_writer: bool) -> None:
        self.writer = writer
        self.iteration_id = iteration_id
        self.pid = pid
        self.interval = interval
        self.directory = directory
        self.samples = 0  # readings written so far
        self.peaks: dict[str, float] = {}
        self._own_writer = own_writer
        self._stopping = threading.Event()
        self._closed = False  # set by stop(): a reading still in hand afterwards is not written
        self._lock = threading.Lock()
        self._last_step = -1
        self._unattached: deque[tuple[str, float, int, float]] = deque(maxlen=MAX_UNATTACHED * 20)
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> SystemSampler:
        self.thread.start()
        return self

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    @property
    def attached(self) -> bool:
        return self.writer is not None

    def attach(self, target: Any, iteration_id: int) -> None:
        """The run's iteration exists now: the readings kept so far, and every later one, go to it through
        `target` (a MetricWriter, or a tracker for which the sampler makes its own, closed by `stop()`)."""
        with self._lock:
            if self.writer is not None or self._closed:
                return
            writer, self._own_writer = writer_for(target)
            self.writer, self.iteration_id = writer, iteration_id
            kept = [(iteration_id, *point) for point in self._unattached]
            self._unattached.clear()
            if kept:
                writer.extend(kept)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Take one last reading (the peaks up to now), end the thread (at most `timeout` seconds), and
        from then on write nothing; a writer this sampler made for itself is closed (flushed)."""
        self._stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        with self._lock:
            self._closed = True
        if self._own_writer and self.writer is not None:
            self.writer.close()

    # -- the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with _reading:
                readers = _Readers(self.pid, self.directory)
        except Exception as exc:  # noqa: BLE001 - no psutil, the process already gone: nothing to record
            log.debug("diary: system metrics are off for pid %s: %s", self.pid, exc)
            return
        try:
            wait = min(FIRST_SAMPLE_AFTER, self.interval)
            while not self._stopping.wait(wait):
                if not self._record(readers):
                    return
                wait = self.interval
            self._record(readers)  # the last one: the peaks at the run's end
        finally:
            with _reading:
                readers.close()

    def _record(self, readers: _Readers) -> bool:
        """One reading written; False once the sampled process is gone."""
        try:
            with _reading:
                values = readers.read()
        except _Gone:
            return False
        except Exception as exc:  # noqa: BLE001 - a failed reading is skipped, never the run's problem
            log.debug("diary: a system metrics reading failed: %s", exc)
            return True
        for key in list(values):
            if key.endswith(PEAKED):
                peak = max(self.peaks.get(key, -math.inf), values[key])
                if key == "proc.rss_mib" and readers.root_peak is not None:
                    peak = max(peak, readers.root_peak)
                self.peaks[key] = peak
                values[key + ".max"] = peak
        now = time.time()
        step = max(int(now * 1000), self._last_step + 1)  # milliseconds since the epoch, always rising
        self._last_step = step
        points = [(PREFIX + key, float(value), step, now) for key, value in values.items() if math.isfinite(value)]
        with self._lock:
            if self._closed:
                return False
            if self.writer is None:
                self._unattached.extend(points)
            else:
                self.writer.extend([(self.iteration_id, *point) for point in points])
            self.samples += 1
        return True


class _Gone(Exception):
    """The sampled process has ended."""


class _Readers:
    """The tree, the machine and the GPUs, opened on the sampler's thread (importing psutil and starting
    NVML there too, not on the thread that starts the sampler)."""

    def __init__(self, pid: int, directory: str) -> None:
        from .gpu import open_gpus
        from .machine import Machine
        from .process_tree import ProcessTree

        self.tree = ProcessTree(pid)
        self.machine = Machine(directory)
        self.gpus = open_gpus()
        self.root_peak: float | None = None

    def read(self) -> dict[str, float]:
        import psutil

        if not self.tree.root.is_running():
            raise _Gone
        try:
            tree = self.tree.sample()
        except psutil.NoSuchProcess as exc:
            raise _Gone from exc
        self.root_peak = tree.root_peak_rss_mib
        values = {
            "proc.cpu_percent": tree.cpu_percent,
            "proc.rss_mib": tree.rss_mib,
            "proc.threads": float(tree.threads),
            "proc.processes": float(tree.processes),
        }
        values.update(self.machine.sample())
        if self.gpus is not None:
            values.update(self.gpus.sample(tree.pids))
        return values

    def close(self) -> None:
        if self.gpus is not None:
            self.gpus.close()


def default_directory() -> str:
    return os.getcwd()


def writer_for(target: Any) -> tuple[Any, bool]:
    """(writer, made here): a MetricWriter as it is, or a new one for a tracker (its owner closes it)."""
    if callable(getattr(type(target), "extend", None)) and callable(getattr(type(target), "flush", None)):
        return target, False
    from ..writer import MetricWriter

    return MetricWriter(target), True
