"""System metrics for a Lightning run (diary_integrations.system_metrics): a sampler thread writes the
process's tree, machine and GPU readings into the run's own MetricWriter, from the moment the run's
iteration exists until its end. Under DDP with `per_rank=True` each rank samples its own process into
its own child; without it rank 0 samples into the run (the other ranks' processes are left out of
its tree: each rank is its own process)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .. import system_metrics
from .metrics import metric_writer

if TYPE_CHECKING:
    from .logger import DiaryLogger


def start_sampling(lg: DiaryLogger) -> None:
    """Start the sampler once the iteration this process writes exists (a no-op if it runs already, or
    when `system_metrics=False`). It only starts a thread: nothing is read on the calling thread."""
    if not lg._system_metrics or (lg._sampler is not None and lg._sampler.running):
        return
    target = lg._rank_id if lg._per_rank else (lg._run_id if lg._owns_run else None)
    if target is None:
        return
    lg._sampler = system_metrics.start(
        metric_writer(lg), target, interval=lg._system_metrics_interval, directory=lg._save_dir or os.getcwd())


def stop_sampling(lg: DiaryLogger) -> None:
    """The run ends: a last reading goes into the writer, which the end then flushes before the status."""
    sampler, lg._sampler = lg._sampler, None
    system_metrics.stop_quietly(sampler)
