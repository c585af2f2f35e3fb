"""What `GET /api/system` reports: host CPU and memory (psutil), disk of the data dir, NVIDIA GPUs (NVML).

`SystemSampler` takes one sample at a time on a worker thread and keeps it for `CACHE_S`, so any number of
clients polling it cost one sample per second at most and never block the event loop (an NVML query
takes milliseconds; a wedged driver can take much longer). NVML comes from NVIDIA's own bindings
(`nvidia-ml-py`, imported as `pynvml`); without the bindings, the driver's library or a GPU the list is
empty and `gpu_note` says why, never an error. NVML is initialised once and retried at most every
`NVML_RETRY_S` after a failure (a driver installed while the server runs is found without a restart).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from training_studio.contract import DiskInfo, GpuInfo, HostInfo, SystemInfo, format_timestamp, utc_now

__all__ = ["SystemSampler", "read_gpus"]

log = logging.getLogger(__name__)

CACHE_S = 1.0
NVML_RETRY_S = 60.0


class _Nvml:
    """NVML through pynvml, initialised lazily; `gpus()` answers (list, note)."""

    def __init__(self) -> None:
        self._module: Any = None
        self._ready = False
        self._note: str | None = None
        self._next_try = 0.0

    def _init(self) -> None:
        if self._ready or time.monotonic() < self._next_try:
            return
        self._next_try = time.monotonic() + NVML_RETRY_S
        try:
            import pynvml  # NVIDIA's bindings (nvidia-ml-py)
        except ImportError:
            self._note = "NVIDIA's NVML bindings (nvidia-ml-py) are not installed"
            return
        try:
            pynvml.nvmlInit()
        except Exception as error:  # NVMLError_LibraryNotFound, _DriverNotLoaded, …: no GPU to report
            self._note = f"NVML is not available: {_nvml_text(error)}"
            return
        self._module = pynvml
        self._ready = True
        self._note = None

    def gpus(self) -> tuple[list[GpuInfo], str | None]:
        self._init()
        if not self._ready:
            return [], self._note
        nvml = self._module
        try:
            count = nvml.nvmlDeviceGetCount()
        except Exception as error:
            return [], f"NVML could not count GPUs: {_nvml_text(error)}"
        found: list[GpuInfo] = []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = _text(nvml.nvmlDeviceGetName(handle))
            except Exception as error:
                log.warning("NVML: GPU %d cannot be read: %s", index, _nvml_text(error))
                continue
            found.append(GpuInfo(
                index=index, name=name,
                uuid=_quietly(lambda: _text(nvml.nvmlDeviceGetUUID(handle))),
                utilization_percent=_quietly(lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)),
                memory_used=_quietly(lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).used)),
                memory_total=_quietly(lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total)),
                temperature_c=_quietly(lambda: float(nvml.nvmlDeviceGetTemperature(
                    handle, nvml.NVML_TEMPERATURE_GPU))),
            ))
        return found, None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _nvml_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _quietly(read: Callable[[], Any]) -> Any:
    """One optional NVML figure: None where the GPU or driver does not support it."""
    try:
        return read()
    except Exception:
        return None


_nvml = _Nvml()
_nvml_lock = threading.Lock()


def read_gpus() -> tuple[list[GpuInfo], str | None]:
    """Every NVIDIA GPU NVML sees, and why the list is empty when NVML could not be asked."""
    with _nvml_lock:
        return _nvml.gpus()


class SystemSampler:
    """One cached sample of the machine at a time; `sample()` is safe to await from every request."""

    def __init__(self, data_dir: Path, *, assigned_gpus: list[str] | None = None,
                 gpu_jobs: Callable[[], dict[str, list[str]]] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.assigned_gpus = assigned_gpus
        self._gpu_jobs = gpu_jobs or (lambda: {})
        self._cached: SystemInfo | None = None
        self._cached_at = 0.0
        self._pending: asyncio.Future[SystemInfo] | None = None
        psutil.cpu_percent(interval=None)  # primes the counter: the first real sample averages from here

    async def sample(self) -> SystemInfo:
        if self._cached is not None and time.monotonic() - self._cached_at < CACHE_S:
            return self._attach_jobs(self._cached)
        if self._pending is None or self._pending.done():
            # One sampling at a time, shared by every request that arrives while it runs.
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._take))
        info = await asyncio.shield(self._pending)
        self._cached, self._cached_at = info, time.monotonic()
        return self._attach_jobs(info)

    def _attach_jobs(self, info: SystemInfo) -> SystemInfo:
        by_gpu = self._gpu_jobs()
        if not by_gpu:
            return info
        gpus = [gpu.model_copy(update={"job_ids": by_gpu.get(str(gpu.index), [])}) for gpu in info.gpus]
        return info.model_copy(update={"gpus": gpus})

    def _take(self) -> SystemInfo:
        memory = psutil.virtual_memory()
        host = HostInfo(name=socket.gethostname(), cpu_count=os.cpu_count() or 1,
                        cpu_percent=float(psutil.cpu_percent(interval=None)),
                        memory_total=int(memory.total), memory_used=int(memory.total - memory.available))
        try:
            usage = shutil.disk_usage(self.data_dir)
            disk: DiskInfo | None = DiskInfo(total=usage.total, free=usage.free)
        except OSError:
            disk = None
        gpus, note = read_gpus()
        return SystemInfo(host=host, disk=disk, gpus=gpus, gpu_note=note, assigned_gpus=self.assigned_gpus,
                          sampled_at=format_timestamp(utc_now()))
