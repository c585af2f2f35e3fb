"""The machine a server runs on, as `GET /api/system` reports it (issue 16): host CPU and memory, disk
free in the data dir, and NVIDIA GPUs where NVML finds them. snake_case on the wire like the other
extensions; every field beyond `host` is optional so a server without GPUs, or an older one, still parses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GpuInfo", "HostInfo", "DiskInfo", "SystemInfo"]


class _SystemModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class HostInfo(_SystemModel):
    name: str
    cpu_count: int
    cpu_percent: float  # all cores together, 0–100, averaged since the previous sample
    memory_total: int  # bytes
    memory_used: int  # bytes (total − available: what other programs cannot have)


class DiskInfo(_SystemModel):
    total: int  # bytes of the file system holding the data dir
    free: int  # bytes an unprivileged writer can still use


class GpuInfo(_SystemModel):
    index: int  # NVML's index, the number CUDA_VISIBLE_DEVICES and `serve --gpus` use
    name: str
    uuid: str | None = None
    utilization_percent: float | None = None  # None where the driver does not say
    memory_used: int | None = None  # bytes
    memory_total: int | None = None  # bytes
    temperature_c: float | None = None
    # Which of the server's running jobs were given this GPU (`serve --gpus`); empty otherwise.
    job_ids: list[str] = Field(default_factory=list)


class SystemInfo(_SystemModel):
    host: HostInfo
    disk: DiskInfo | None = None
    gpus: list[GpuInfo] = Field(default_factory=list)
    # Why the GPU list is empty when NVML could not be asked ("NVML library not found", …); None when it
    # answered (an empty list then means the machine has no NVIDIA GPU).
    gpu_note: str | None = None
    # GPUs the server hands to jobs (`serve --gpus 0,1`), as given; None when it does not assign GPUs.
    assigned_gpus: list[str] | None = None
    # Filled by the Ray executor (issue 18): nodes, free CPUs and GPUs of the cluster.
    cluster: dict[str, Any] | None = None
    sampled_at: str  # ISO 8601 UTC: when these figures were taken (they are cached for about a second)
