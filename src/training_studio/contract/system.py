"""The machine a server runs on, as `GET /api/system` reports it (issue 16): host CPU and memory, disk
free in the data dir, and NVIDIA GPUs where NVML finds them. snake_case on the wire like the other
extensions; every field beyond `host` is optional so a server without GPUs, or an older one, still parses.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GpuInfo", "HostInfo", "DiskInfo", "ClusterNode", "ClusterInfo", "SystemInfo"]


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


class ClusterNode(_SystemModel):
    """One alive node of the Ray cluster. Ray counts resources in fractions (a job may ask for 0.5 GPU), so
    the figures are floats; a free figure is None while Ray has not reported the node's usage yet."""

    node_id: str  # Ray's node id (hex), the `node` of the placement of a job whose driver runs there
    address: str | None = None  # the node's IP address
    head: bool = False
    cpus_total: float | None = None
    cpus_free: float | None = None
    gpus_total: float | None = None
    gpus_free: float | None = None


class ClusterInfo(_SystemModel):
    """The Ray cluster the server runs jobs on (issue 18), as its dashboard reports it. An unreachable
    cluster is `{reachable: false, error}` with no figures, never an error of the endpoint."""

    reachable: bool
    error: str | None = None  # why the cluster could not be asked (when `reachable` is false)
    address: str | None = None  # the dashboard / Jobs API address the server uses (`--ray-address`)
    nodes_alive: int = 0
    nodes_dead: int = 0  # nodes Ray still lists as dead (gone since the cluster started)
    nodes: list[ClusterNode] = Field(default_factory=list)  # the alive ones, head first
    cpus_total: float | None = None  # over the alive nodes
    cpus_free: float | None = None  # None while some node's usage is not known
    gpus_total: float | None = None
    gpus_free: float | None = None


class SystemInfo(_SystemModel):
    host: HostInfo
    disk: DiskInfo | None = None
    gpus: list[GpuInfo] = Field(default_factory=list)
    # Why the GPU list is empty when NVML could not be asked ("NVML library not found", …); None when it
    # answered (an empty list then means the machine has no NVIDIA GPU).
    gpu_note: str | None = None
    # GPUs the server hands to jobs (`serve --gpus 0,1`), as given; None when it does not assign GPUs.
    assigned_gpus: list[str] | None = None
    # With `serve --executor ray` (issue 18): the cluster's nodes and free CPUs and GPUs; None otherwise.
    cluster: ClusterInfo | None = None
    sampled_at: str  # ISO 8601 UTC: when these figures were taken (they are cached for about a second)
