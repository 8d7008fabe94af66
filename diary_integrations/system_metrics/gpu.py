"""NVIDIA GPUs through NVML (`nvidia-ml-py`, imported as `pynvml`), written against NVML's documented
calls: nvmlInit, nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex, nvmlDeviceGetComputeRunningProcesses,
nvmlDeviceGetUtilizationRates, nvmlDeviceGetMemoryInfo, nvmlDeviceGetTemperature and
nvmlDeviceGetPowerUsage. Without the package, the library or a driver there are no GPUs: no key, no
warning (most machines that train on a CPU have none of them)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from .process_tree import MIB

log = logging.getLogger("diary_integrations")


class Gpus:
    """The GPUs a process tree uses (an NVML compute process of the tree runs on them), read each sample.
    `nvml` is the `pynvml` module, or anything with the same calls."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]

    def sample(self, pids: frozenset[int]) -> dict[str, float]:
        """`gpu.<index>.<name>` values for each GPU one of `pids` computes on. The index is NVML's (the
        order `nvidia-smi` shows), which CUDA_VISIBLE_DEVICES does not renumber."""
        nvml = self.nvml
        out: dict[str, float] = {}
        for index, handle in enumerate(self.handles):
            try:
                running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                ours = [p for p in running if p.pid in pids]
                if not ours:
                    continue
                prefix = f"gpu.{index}."
                out[prefix + "util"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                out[prefix + "memory_used_mib"] = memory.used / MIB
                out[prefix + "memory_total_mib"] = memory.total / MIB
                # usedGpuMemory is None where the driver cannot tell (Windows WDDM): left out then.
                used = [p.usedGpuMemory for p in ours if isinstance(p.usedGpuMemory, int)]
                if used:
                    out[prefix + "proc_memory_mib"] = sum(used) / MIB
                out[prefix + "temperature_c"] = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
                out[prefix + "power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # milliwatts
            except Exception as exc:  # noqa: BLE001 - one GPU's reading failed (a lost device): the others go on
                log.debug("diary: reading GPU %s failed: %s", index, exc)
        return out

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - nothing to release
            pass


def open_gpus() -> Gpus | None:
    """The machine's GPUs, or None (silently) when NVML cannot start: no package, no library, no driver."""
    if not _driver_may_be_loaded():
        return None
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, _DriverNotLoaded...: no GPU here
        return None
    try:
        gpus = Gpus(pynvml)
    except Exception:  # noqa: BLE001
        _shutdown(pynvml)
        return None
    if not gpus.handles:
        gpus.close()
        return None
    return gpus


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass


def _driver_may_be_loaded() -> bool:
    """False on a Linux machine with no NVIDIA driver (most machines that train on a CPU): importing
    `pynvml` and failing nvmlInit there costs tens of milliseconds of a short run's start for nothing. The
    kernel driver shows /proc/driver/nvidia; WSL 2 reaches the Windows driver through /dev/dxg instead.
    Elsewhere NVML itself is asked."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/dxg")
