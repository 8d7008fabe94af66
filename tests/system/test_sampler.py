"""The system metrics sampler against real trackers (a SQLite file in process, and through the sidecar):
what it records, that it stops and leaves nothing behind, no GPU key and no warning on a machine
without NVIDIA's library, and bad options refused by name."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from diary_integrations import IterationStatus, LocalTracker, Unprocessable, system_metrics
from diary_integrations.resolve import experiment_for
from diary_integrations.sidecar import SidecarTracker
from diary_integrations.system_metrics import gpu
from diary_integrations.system_metrics.gpu import Gpus, open_gpus
from diary_integrations.system_metrics.sampler import THREAD_NAME

pytestmark = pytest.mark.system_metrics

INTERVAL = 0.1


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def wait_for(condition, timeout: float = 30.0) -> None:
    """Until `condition()` (readings come every 0.1 s, later on a machine under heavy load)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def new_iteration(tracker) -> int:
    iteration_id, _ = tracker.create_iteration(experiment_for(tracker, "P", "E"))
    return iteration_id


@pytest.fixture
def tracker(tmp_path: Path):
    tracker = LocalTracker(f"sqlite:///{tmp_path / 'runs.db'}")
    yield tracker
    tracker.close()


def test_sampler_records_the_tree_and_machine_then_stops_for_good(tracker, caplog):
    iteration_id = new_iteration(tracker)
    caplog.set_level(logging.DEBUG, logger="diary_integrations")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handle = system_metrics.start(tracker, iteration_id, interval=INTERVAL)
        wait_for(lambda: handle.samples >= 4)
        handle.stop()
    stopped = time.time()
    assert not handle.running and sampler_threads() == []
    points = tracker.get_metrics(iteration_id)
    keys = {p.key for p in points}
    assert {"system/proc.cpu_percent", "system/proc.rss_mib", "system/proc.rss_mib.max", "system/proc.threads",
            "system/cpu_percent", "system/memory.used_mib", "system/memory.available_mib",
            "system/disk.used_percent", "system/network.sent_bytes_per_s"} <= keys
    assert all(k.startswith("system/") for k in keys)
    assert not any(k.startswith("system/gpu.") for k in keys)  # no NVIDIA library here: no GPU key...
    assert caught == [] and not [r for r in caplog.records if r.levelno >= logging.WARNING]  # ... nor a warning
    rss = tracker.get_metrics(iteration_id, key="system/proc.rss_mib")
    assert len(rss) == handle.samples >= 5  # the readings every 0.1 s, and the last one at stop()
    own = psutil.Process().memory_info().rss / 2**20
    assert all(0.5 * own < p.value < 2 * own for p in rss)  # this process's RSS (it has no children)
    steps = [p.step for p in rss]
    assert steps == sorted(set(steps)) and abs(steps[-1] / 1000 - stopped) < 5  # wall-clock milliseconds
    peaks = tracker.get_metrics(iteration_id, key="system/proc.rss_mib.max")
    assert peaks[-1].value >= max(p.value for p in rss)
    assert all(math.isfinite(p.value) for p in points)
    time.sleep(3 * INTERVAL)
    assert len(tracker.get_metrics(iteration_id)) == len(points)  # nothing after stop()


def test_first_reading_comes_within_two_seconds_at_the_default_interval(tracker):
    iteration_id = new_iteration(tracker)
    handle = system_metrics.start(tracker, iteration_id)  # every 10 s
    deadline = time.monotonic() + 2.0
    while handle.samples == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    first = handle.samples
    started = time.monotonic()
    handle.stop()
    assert first == 1
    assert time.monotonic() - started < 1.5  # stop() does not wait for the next interval


def test_sidecar_is_not_counted_in_the_tree_and_children_are(tmp_path):
    """Through the sidecar (a child process of this one, which must not count as the run's), with a child
    that holds ~60 MiB (which must)."""
    tracker = SidecarTracker(f"sqlite:///{tmp_path / 'runs.db'}")
    iteration_id = new_iteration(tracker)
    sidecar = tracker.pid
    assert sidecar is not None and sidecar in [c.pid for c in psutil.Process().children()]
    child = subprocess.Popen([sys.executable, "-c", "import sys,time; b = bytearray(60 * 2**20); b[::4096] = "
                              "b'x' * len(b[::4096]); print(flush=True); time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # its memory is touched
        handle = system_metrics.start(tracker, iteration_id, interval=INTERVAL)
        wait_for(lambda: handle.samples >= 3)
        # This process's tree as the run's: every descendant but the sidecar. (A test worker may hold other
        # children of its own, a session's tracking server: they count as the run's workers would.)
        tree = [psutil.Process()] + [p for p in psutil.Process().children(recursive=True)
                                     if p.pid != sidecar and sidecar not in [a.pid for a in p.parents()]]
        assert child.pid in [p.pid for p in tree]
        from diary_integrations.system_metrics.process_tree import ProcessTree

        assert child.pid in ProcessTree(os.getpid()).sample().pids
        expected = sum(p.memory_info().rss for p in tree) / 2**20
        handle.stop()
    finally:
        child.kill()
        child.wait()
    processes = tracker.get_metrics(iteration_id, key="system/proc.processes")
    assert processes and all(p.value >= 2 for p in processes)  # this process and its child at least
    # Which processes the sampler's tree holds: the child, never the sidecar (other children a test worker
    # holds, or leaves as zombies, come and go between readings, so the count is not compared exactly).
    from diary_integrations.system_metrics.process_tree import ProcessTree

    assert sidecar not in ProcessTree(os.getpid()).sample().pids
    rss = tracker.get_metrics(iteration_id, key="system/proc.rss_mib")[-1].value
    assert abs(rss - expected) / expected < 0.15
    tracker.close()


def test_with_iteration_records_system_metrics_only_on_request(tracker):
    experiment = experiment_for(tracker, "P", "E")
    with tracker.with_iteration(experiment, system_metrics=True, system_metrics_interval=INTERVAL) as it:
        wait_for(lambda: len(tracker.get_metrics(it.id, key="system/proc.rss_mib")) >= 2)
    with tracker.with_iteration(experiment) as plain:
        time.sleep(0.2)
    assert sampler_threads() == []
    ended = tracker.get_iteration(it.id)
    assert ended.status is IterationStatus.SUCCEEDED
    points = tracker.get_metrics(it.id, key="system/proc.rss_mib")
    assert len(points) >= 3
    assert all(p.recorded_at <= ended.end_date for p in points)  # every point before the end
    assert tracker.get_metrics(plain.id) == []


def test_a_failing_body_still_gets_its_last_reading_before_the_end(tracker):
    experiment = experiment_for(tracker, "P", "E")
    with pytest.raises(MemoryError), tracker.with_iteration(
            experiment, system_metrics=True, system_metrics_interval=30.0) as it:
        raise MemoryError("out of memory")
    ended = tracker.get_iteration(it.id)
    assert ended.status is IterationStatus.FAILED
    # The run was shorter than the first reading: stop() took one, with the peak.
    assert [p.key for p in tracker.get_metrics(it.id, key="system/proc.rss_mib.max")] == ["system/proc.rss_mib.max"]


@pytest.mark.parametrize(("enabled", "interval", "field"), [
    ("yes", 10.0, "system_metrics"),
    (True, 0, "system_metrics_interval"),
    (True, -1.0, "system_metrics_interval"),
    (True, math.nan, "system_metrics_interval"),
    (True, True, "system_metrics_interval"),
    (True, "10", "system_metrics_interval"),
])
def test_bad_options_are_refused_by_name(tracker, enabled, interval, field):
    experiment = experiment_for(tracker, "P", "E")
    with pytest.raises(Unprocessable) as caught:
        tracker.with_iteration(experiment, system_metrics=enabled, system_metrics_interval=interval) \
            if enabled is True else system_metrics.check_options(enabled, interval)
    assert caught.value.field == field
    assert tracker.get_iterations(experiment) == []  # nothing written


@pytest.mark.parametrize("driver_files_seen", [False, True])
def test_no_nvml_library_means_no_gpus_and_no_warning(driver_files_seen, monkeypatch):
    """Seen: a machine whose driver files fooled the cheap check still gets None from NVML itself."""
    monkeypatch.setattr(gpu, "_driver_may_be_loaded", lambda: driver_files_seen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_gpus() is None  # nvidia-ml-py is installed; the NVIDIA library and driver are not


@pytest.mark.skipif(os.path.exists("/proc/driver/nvidia"), reason="this machine has an NVIDIA driver")
def test_without_a_driver_pynvml_is_not_even_imported():
    """Its import is tens of milliseconds of a short run's start (issue 28's and 29's figures)."""
    code = ("import sys; from diary_integrations.system_metrics.gpu import open_gpus; "
            "assert open_gpus() is None; print('pynvml' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


class _StandInNvml:
    """NVML's calls as nvidia-ml-py exposes them, for two GPUs of which the tree uses GPU 1: checks our
    units and key names only (the real calls run on a GPU machine)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.shut = False

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=self.pid, usedGpuMemory=512 * 2**20)] if handle == 1 else []

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=3 * 2**30, total=16 * 2**30, free=13 * 2**30)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 71

    def nvmlDeviceGetPowerUsage(self, handle):
        return 215_500  # milliwatts

    def nvmlShutdown(self):
        self.shut = True


def test_gpu_readings_become_keys_for_the_gpus_the_tree_uses():
    nvml = _StandInNvml(pid=4242)
    gpus = Gpus(nvml)
    assert gpus.sample(frozenset({1, 2})) == {}  # the tree runs on no GPU
    assert gpus.sample(frozenset({4242})) == {
        "gpu.1.util": 87.0, "gpu.1.memory_used_mib": 3072.0, "gpu.1.memory_total_mib": 16384.0,
        "gpu.1.proc_memory_mib": 512.0, "gpu.1.temperature_c": 71.0, "gpu.1.power_w": 215.5,
    }
    gpus.close()
    assert nvml.shut
