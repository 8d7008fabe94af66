"""System metrics for a Lightning run (diary_integrations.system_metrics): a sampler thread writes the
process's tree, machine and GPU readings through a MetricWriter of its own (the logger's counters and
warnings stay about the training's metrics), from the fit's start until the run's end. Under DDP with
`per_rank=True` each rank samples its own process into its own child; without it rank 0 samples into the
run (the other ranks' processes are left out of its tree: each rank is its own process)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from .. import system_metrics

if TYPE_CHECKING:
    from .state import LoggerState

log = logging.getLogger("diary_integrations")


def start_sampling(lg: LoggerState) -> None:
    """Start the sampler (a no-op when `system_metrics=False`). While the run is being opened in the
    background it samples from now on and keeps its readings; once the iteration this process writes
    exists, they go to it. It only starts a thread: nothing is read on the calling thread. Never raises:
    a run without system metrics is still a run."""
    if not lg._system_metrics:
        return
    try:
        # The training thread and the one opening the run may both get here at once: one sampler.
        with lg._sampling:
            _start(lg)
    except Exception as exc:  # noqa: BLE001
        log.warning("diary: system metrics are off for this run: %s", exc)


def _start(lg: LoggerState) -> None:
    sampler = lg._sampler if lg._sampler is not None and lg._sampler.running else None
    target = lg._rank_id if lg._per_rank else (lg._run_id if lg._owns_run else None)
    directory = lg._save_dir or os.getcwd()
    if target is None:
        if sampler is None and lg._opener is not None:  # the run's first seconds count too
            lg._sampler = system_metrics.start_unattached(interval=lg._system_metrics_interval, directory=directory)
        return
    if sampler is not None and not sampler.attached:
        sampler.attach(lg.tracker, target)
    elif sampler is None:
        lg._sampler = system_metrics.start(lg.tracker, target, interval=lg._system_metrics_interval,
                                           directory=directory)


def stop_sampling(lg: LoggerState) -> None:
    """The run ends: a last reading, then the sampler's writer is flushed, before the status is written."""
    with lg._sampling:
        sampler, lg._sampler = lg._sampler, None
    system_metrics.stop_quietly(sampler)
