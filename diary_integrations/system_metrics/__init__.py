"""System metrics: what the machine did during a run, recorded off the training thread.

`start(tracker_or_writer, iteration_id)` starts a daemon thread that, every `interval` seconds (10 by
default, the first reading after one second), reads the run's process tree (the training process and
its DataLoader or loky workers, by pid), the machine (CPU, memory, disk, network) and the NVIDIA GPUs
the tree computes on, and hands the values as `system/...` metric points to a MetricWriter. Their step
is the wall clock in milliseconds since the epoch, so they never collide with training steps and a
resumed run's readings follow its earlier ones. `handle.stop()` takes a last reading (the peaks) and
ends the thread within a second; from then on the sampler writes nothing.

Keys (all under `system/`): proc.cpu_percent (of one core), proc.rss_mib, proc.rss_mib.max,
proc.threads, proc.processes; cpu_percent, memory.used_mib, memory.available_mib, memory.percent,
disk.read_bytes_per_s, disk.write_bytes_per_s, disk.used_percent, disk.free_gib (the filesystem of
`directory`), network.sent_bytes_per_s, network.recv_bytes_per_s; per GPU N the tree uses: gpu.N.util,
gpu.N.memory_used_mib (.max), gpu.N.memory_total_mib, gpu.N.proc_memory_mib (.max), gpu.N.temperature_c,
gpu.N.power_w.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..tracker.errors import Unprocessable
from .sampler import DEFAULT_INTERVAL, PREFIX, STOP_TIMEOUT, SystemSampler, writer_for

__all__ = ["DEFAULT_INTERVAL", "PREFIX", "SystemSampler", "check_options", "start", "start_unattached",
           "stop_quietly"]


# An operator's switch, as MLflow's MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING and W&B's WANDB_DISABLE_STATS:
# `DIARY_SYSTEM_METRICS=off` records none for any run of the process, whatever the code asked for.
ENV_SWITCH = "DIARY_SYSTEM_METRICS"
_OFF = {"0", "off", "false", "no"}


def switched_off() -> bool:
    """True when $DIARY_SYSTEM_METRICS turns system metrics off for this process."""
    return os.environ.get(ENV_SWITCH, "").strip().lower() in _OFF


class _SwitchedOff:
    """What `start` hands out while $DIARY_SYSTEM_METRICS is off: a sampler that never reads."""

    running = False
    attached = False

    def attach(self, target: Any, iteration_id: int) -> None:
        del target, iteration_id

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        del timeout


def check_options(enabled: Any, interval: Any) -> None:
    """`system_metrics` must be true or false, `system_metrics_interval` a positive number of seconds."""
    if not isinstance(enabled, bool):
        raise Unprocessable(f"system_metrics must be true or false, got {enabled!r}", field="system_metrics")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
            math.isfinite(interval) and interval > 0):
        raise Unprocessable(
            f"system_metrics_interval must be a positive number of seconds, got {interval!r}",
            field="system_metrics_interval",
        )


def start(
    target: Any,
    iteration_id: int,
    *,
    pid: int | None = None,
    interval: float = DEFAULT_INTERVAL,
    directory: str | os.PathLike[str] | None = None,
) -> SystemSampler:
    """Sample process `pid` (default: this one) and its tree into `iteration_id` every `interval` seconds.

    `target` is a `writer.MetricWriter` (the run's own: its owner flushes and closes it after `stop()`)
    or a tracker (a MetricWriter is made for the sampler and closed by `stop()`). `directory` is where
    the run writes (default: the working directory): its filesystem's usage is recorded."""
    check_options(True, interval)
    if switched_off():
        return _SwitchedOff()  # type: ignore[return-value]
    writer, own = writer_for(target)
    sampler = SystemSampler(
        writer, iteration_id, pid=os.getpid() if pid is None else pid, interval=float(interval),
        directory=os.fspath(directory) if directory is not None else os.getcwd(), own_writer=own,
    )
    return sampler.start()


def start_unattached(
    *, pid: int | None = None, interval: float = DEFAULT_INTERVAL, directory: str | os.PathLike[str] | None = None,
) -> SystemSampler:
    """A sampler for a run whose iteration is still being created: it reads from now on (the run's first
    seconds count) and keeps its readings until `handle.attach(tracker_or_writer, iteration_id)`."""
    check_options(True, interval)
    if switched_off():
        return _SwitchedOff()  # type: ignore[return-value]
    sampler = SystemSampler(
        None, None, pid=os.getpid() if pid is None else pid, interval=float(interval),
        directory=os.fspath(directory) if directory is not None else os.getcwd(), own_writer=False,
    )
    return sampler.start()


def stop_quietly(sampler: SystemSampler | None, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a sampler (None: nothing), never raising: a run's end must go on."""
    if sampler is None:
        return
    try:
        sampler.stop(timeout)
    except Exception as exc:  # noqa: BLE001 - a writer that cannot flush reports that itself
        import logging

        logging.getLogger("diary_integrations").debug("diary: stopping system metrics failed: %s", exc)
