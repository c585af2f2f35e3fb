"""What `GET /api/system` reports: host CPU and memory (psutil), disk of the data dir, NVIDIA GPUs (NVML).

`SystemSampler` takes one sample at a time on a worker thread and keeps it for `CACHE_S`, so any number of
clients polling it cost one sample per second at most and never block the event loop (an NVML query
takes milliseconds; a wedged driver can take much longer). NVML comes from NVIDIA's own bindings
(`nvidia-ml-py`, imported as `pynvml`); without the bindings, the driver's library or a GPU the list is
empty and `gpu_note` says why, never an error. NVML is initialised once and retried at most every
`NVML_RETRY_S` after a failure (a driver installed while the server runs is found without a restart).

With `serve --executor ray` the sample also carries the cluster (issue 18, runner/ray_cluster.py), asked
together with the machine and cached with it, one read in flight at a time. A request waits for a read
at most `CLUSTER_WAIT_S`: a dashboard slower than that (a stopped head takes the read's whole timeout)
leaves the previous figures, or `reachable: false` before the first answer, so `/api/system` stays quick.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

from training_studio.contract import (
    ClusterInfo,
    DiskInfo,
    GpuInfo,
    HostInfo,
    SystemInfo,
    format_timestamp,
    utc_now,
)

__all__ = ["SystemSampler", "read_gpus"]

log = logging.getLogger(__name__)

CACHE_S = 1.0
NVML_RETRY_S = 60.0
CLUSTER_WAIT_S = 1.0


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
                 gpu_jobs: Callable[[], dict[str, list[str]]] | None = None,
                 cluster_reader: Callable[[], Awaitable[ClusterInfo]] | None = None,
                 cluster_address: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.assigned_gpus = assigned_gpus
        self._gpu_jobs = gpu_jobs or (lambda: {})
        self._cached: SystemInfo | None = None
        self._cached_at = 0.0
        self._pending: asyncio.Future[SystemInfo] | None = None
        # The Ray cluster (issue 18): its reader never raises (an unreachable cluster is reachable=False).
        self._cluster_reader = cluster_reader
        self._cluster_address = cluster_address
        self._cluster_read: asyncio.Future[ClusterInfo] | None = None
        self._cluster: ClusterInfo | None = None
        psutil.cpu_percent(interval=None)  # primes the counter: the first real sample averages from here

    async def sample(self) -> SystemInfo:
        if self._cached is not None and time.monotonic() - self._cached_at < CACHE_S:
            return self._attach_jobs(self._cached)
        if self._pending is None or self._pending.done():
            # One sampling at a time, shared by every request that arrives while it runs.
            self._pending = asyncio.ensure_future(self._take_all())
        info = await asyncio.shield(self._pending)
        self._cached, self._cached_at = info, time.monotonic()
        return self._attach_jobs(info)

    async def _take_all(self) -> SystemInfo:
        machine, cluster = await asyncio.gather(asyncio.to_thread(self._take), self._read_cluster())
        return machine if cluster is None else machine.model_copy(update={"cluster": cluster})

    async def _read_cluster(self) -> ClusterInfo | None:
        """The cluster's figures of this sample: a fresh read if it answers within CLUSTER_WAIT_S, else the
        last ones while the read goes on (one at a time)."""
        if self._cluster_reader is None:
            return None
        if self._cluster_read is None or self._cluster_read.done():
            self._cluster_read = asyncio.ensure_future(self._cluster_reader())
            self._cluster_read.add_done_callback(self._keep_cluster)
        try:
            return await asyncio.wait_for(asyncio.shield(self._cluster_read), CLUSTER_WAIT_S)
        except asyncio.TimeoutError:
            if self._cluster is not None:
                return self._cluster
            return ClusterInfo(reachable=False, address=self._cluster_address,
                               error="the Ray dashboard has not answered yet")
        except Exception as error:  # a reader bug must not fail the machine's figures
            log.exception("reading the Ray cluster failed")
            return ClusterInfo(reachable=False, address=self._cluster_address,
                               error=f"the cluster could not be read: {error}")

    def _keep_cluster(self, read: asyncio.Future[ClusterInfo]) -> None:
        if not read.cancelled() and read.exception() is None:
            self._cluster = read.result()
        elif not read.cancelled():
            self._cluster = None  # the exception is logged by the request that awaited it

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
