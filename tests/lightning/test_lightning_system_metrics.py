"""DiaryLogger's system metrics in real Lightning fits on the CPU (SQLite through the sidecar, as users
run it): the process tree's RSS follows what the training step allocates, counts the DataLoader workers
as psutil does, the sampling never runs on the training thread, and it stops with the run."""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).parent))

from diary_models import TinyModel, loader, pl, trainer  # noqa: E402

from diary_integrations import IterationStatus, Unprocessable, connect  # noqa: E402
from diary_integrations.lightning import DiaryLogger  # noqa: E402
from diary_integrations.system_metrics.sampler import THREAD_NAME  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.system_metrics]

INTERVAL = 0.1
PACKAGE = str(Path(__import__("diary_integrations.system_metrics").system_metrics.__file__).parent)
READING = {"_record", "read", "sample", "_counters", "_excluded", "_is_foreign", "_peak_rss_mib"}


class Growing(TinyModel):
    """Holds on to 8 MiB more at every step (written, so it is resident), a little slowly."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        self.kept.append(torch.ones(2 * 2**20))  # 2 Mi float32 = 8 MiB
        time.sleep(0.06)
        return super().training_step(batch, batch_idx)


class CountReadingsOnThisThread:
    """sys.setprofile on the training thread only: every call into the sampler's reading code counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frame, event, arg):  # noqa: ANN001 - the profiler's signature
        if event == "call" and frame.f_code.co_name in READING and frame.f_code.co_filename.startswith(PACKAGE):
            self.calls += 1


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_rss_rises_with_what_the_step_allocates_and_sampling_stops_with_the_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    logger = DiaryLogger("P", "E", uri=uri, save_dir=tmp_path, system_metrics_interval=INTERVAL)
    counter = CountReadingsOnThisThread()
    sys.setprofile(counter)
    try:
        trainer(logger, max_epochs=1, max_steps=16).fit(Growing(), loader(n=128))
    finally:
        sys.setprofile(None)
    ended_at = time.time()
    assert counter.calls == 0  # measured: not one reading on the training thread
    assert sampler_threads() == []  # stopped by finalize, not left running
    tracker = connect(uri)
    run = tracker.get_iteration(logger.iteration_id)
    assert run.status is IterationStatus.SUCCEEDED
    rss = tracker.get_metrics(run.id, key="system/proc.rss_mib")
    assert len(rss) >= 5
    assert rss[-1].value - rss[0].value > 60  # 16 steps of 8 MiB: at least 60 MiB more at the end
    peak = tracker.get_metrics(run.id, key="system/proc.rss_mib.max")[-1].value
    assert peak >= max(p.value for p in rss)
    points = [p for p in tracker.get_metrics(run.id) if p.key.startswith("system/")]
    assert max(p.recorded_at for p in points) <= run.end_date  # nothing after the end...
    assert not any(p.key.startswith("system/gpu.") for p in points)
    time.sleep(3 * INTERVAL)
    assert len([p for p in tracker.get_metrics(run.id) if p.key.startswith("system/")]) == len(points)  # ...ever
    assert max(p.recorded_at for p in points).timestamp() <= ended_at


class SlowSquares(Dataset):
    """Each item takes 10 ms to load: the two workers are alive for the whole epoch."""

    def __len__(self) -> int:
        return 160

    def __getitem__(self, index: int):
        time.sleep(0.01)
        x = torch.full((4,), float(index % 7))
        return x, x.sum(dim=0, keepdim=True)


class TreeWatcher(pl.Callback):
    """psutil's own sum over this process and its children (the diary sidecar left out), at a few batches."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float, int]] = []  # (time, MiB, processes)
        # A test worker may already hold children of its own (a session's server, another test's Ray):
        # they are in this process's tree for the sampler as for psutil, so the fit's two workers come
        # on top of them.
        self.others = len(self.tree())

    @staticmethod
    def tree() -> list[psutil.Process]:
        """This process's live descendants but the sidecar (a zombie another test left is no process)."""
        found = []
        for child in psutil.Process().children(recursive=True):
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "diary_integrations.sidecar" not in child.cmdline():
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):  # noqa: ANN001
        if batch_idx % 4 != 2:
            return
        tree = [psutil.Process(), *self.tree()]
        self.seen.append((time.time(), sum(p.memory_info().rss for p in tree) / 2**20, len(tree)))


def test_process_tree_counts_the_dataloader_workers_as_psutil_does(tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    logger = DiaryLogger("P", "E", uri=uri, save_dir=tmp_path, system_metrics_interval=INTERVAL)
    data = DataLoader(SlowSquares(), batch_size=8, num_workers=2)
    watcher = TreeWatcher()
    trainer(logger, max_epochs=1, callbacks=[watcher]).fit(TinyModel(), data)
    tracker = connect(uri)
    rss = {p.step / 1000: p.value for p in tracker.get_metrics(logger.iteration_id, key="system/proc.rss_mib")}
    processes = {p.step / 1000: p.value for p in tracker.get_metrics(logger.iteration_id, key="system/proc.processes")}
    running = 3 + watcher.others  # the training process and its two workers (and what it held before)
    assert running in processes.values()
    # While the workers run (their start and exit are moments of change): the sampler's sum and psutil's.
    ours = statistics.median(mib for at, mib in rss.items() if processes[at] == running)
    theirs = statistics.median(mib for _, mib, n in watcher.seen if n == running)
    assert abs(ours - theirs) / theirs < 0.15, (ours, theirs)
    own = psutil.Process(os.getpid()).memory_info().rss / 2**20
    assert max(rss.values()) > 1.5 * own  # the workers' RSS is in it, not only this process's


def test_system_metrics_false_records_none_and_starts_no_thread(tmp_path):
    """The logger's own calls, as a Trainer makes them (without one: the fits above cover that path)."""
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    logger = DiaryLogger("P", "E", uri=uri, save_dir=tmp_path, system_metrics=False, open_in_background=False)
    for step in range(3):
        logger.log_metrics({"train_loss": 1.0 / (step + 1)}, step=step)
        time.sleep(0.1)
    assert sampler_threads() == []
    logger.finalize("success")
    keys = {m.key for m in connect(uri).get_metrics(logger.iteration_id)}
    assert keys == {"train_loss"}


@pytest.mark.parametrize(("options", "field"), [
    ({"system_metrics": "yes"}, "system_metrics"),
    ({"system_metrics_interval": 0}, "system_metrics_interval"),
    ({"system_metrics_interval": float("inf")}, "system_metrics_interval"),
])
def test_bad_system_metrics_options_are_refused_when_the_logger_is_built(tmp_path, options, field):
    with pytest.raises(Unprocessable) as caught:
        DiaryLogger("P", "E", uri=f"sqlite:///{tmp_path / 'runs.db'}", **options)
    assert caught.value.field == field
    assert not (tmp_path / "runs.db").exists()  # nothing written
