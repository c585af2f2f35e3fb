"""Plain text of `/api/system` answers (no Qt): the status bar's one-line summary and the rows of the GPU
list, with sizes in binary units and missing figures left out rather than shown as zero. With a Ray
server (issue 18) the summary starts with the cluster ("Ray: 3 nodes · 12/16 CPU · 2/4 GPU free") and
the details list its nodes (`cluster_text`, `node_rows`)."""

from __future__ import annotations

from training_studio.contract import ClusterInfo, ClusterNode, GpuInfo, SystemInfo

__all__ = ["format_bytes", "status_summary", "status_tooltip", "gpu_rows", "GPU_HEADERS", "cluster_summary",
           "cluster_text", "node_rows", "NODE_HEADERS"]

GPU_HEADERS = ["GPU", "Name", "Use", "Memory", "Temperature", "Jobs"]
NODE_HEADERS = ["Node", "Address", "Role", "CPUs free", "GPUs free"]
# Between the cluster's part of the status bar and the server machine's.
CLUSTER_SEPARATOR = "  |  "


def format_bytes(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit in ("B", "KiB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop always returns


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f}"


def _count(value: float | None) -> str:
    """Ray's resource counts: whole numbers without decimals (fractions of a GPU keep one), "?" unknown."""
    if value is None:
        return "?"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _free_of(free: float | None, total: float | None) -> str:
    return f"{_count(free)}/{_count(total)}"


def cluster_summary(cluster: ClusterInfo) -> str:
    """e.g. "Ray: 3 nodes · 12/16 CPU · 2/4 GPU free" (no GPU part on a cluster without GPUs), or
    "Ray: unreachable"."""
    if not cluster.reachable:
        return "Ray: unreachable"
    parts = [f"Ray: {cluster.nodes_alive} node{'s' if cluster.nodes_alive != 1 else ''}",
             f"{_free_of(cluster.cpus_free, cluster.cpus_total)} CPU"]
    if cluster.gpus_total:
        parts.append(f"{_free_of(cluster.gpus_free, cluster.gpus_total)} GPU")
    return " · ".join(parts) + " free"


def cluster_text(cluster: ClusterInfo) -> str:
    """The cluster's lines above its node list in the details."""
    where = f" at {cluster.address}" if cluster.address else ""
    if not cluster.reachable:
        return f"Ray cluster{where}: unreachable ({cluster.error or 'no answer'})"
    lines = [f"Ray cluster{where}: {cluster.nodes_alive} node{'s' if cluster.nodes_alive != 1 else ''} alive"
             + (f", {cluster.nodes_dead} gone" if cluster.nodes_dead else "")]
    lines.append(f"Free: {_free_of(cluster.cpus_free, cluster.cpus_total)} CPUs, "
                 f"{_free_of(cluster.gpus_free, cluster.gpus_total)} GPUs")
    return "\n".join(lines)


def node_rows(nodes: list[ClusterNode]) -> list[list[str]]:
    """Node id (shortened as Ray's own tools do; the tooltip has it whole), address, role, free/total."""
    return [[node.node_id[:8], node.address or "—", "head" if node.head else "worker",
             _free_of(node.cpus_free, node.cpus_total), _free_of(node.gpus_free, node.gpus_total)]
            for node in nodes]


def status_summary(info: SystemInfo) -> str:
    """e.g. "CPU 12% · RAM 5.1/15.5 GiB · GPU 0 37% 61°C · GPU 1 0%"; the disk only when it runs low. A Ray
    server's starts with its cluster: "Ray: 3 nodes · 12/16 CPU · 2/4 GPU free  |  CPU 12% · …"."""
    machine = _machine_summary(info)
    if info.cluster is None:
        return machine
    return f"{cluster_summary(info.cluster)}{CLUSTER_SEPARATOR}{machine}"


def _machine_summary(info: SystemInfo) -> str:
    parts = [f"CPU {info.host.cpu_percent:.0f}%",
             f"RAM {_gib(info.host.memory_used)}/{_gib(info.host.memory_total)} GiB"]
    for gpu in info.gpus[:4]:
        text = f"GPU {gpu.index}"
        if gpu.utilization_percent is not None:
            text += f" {gpu.utilization_percent:.0f}%"
        if gpu.temperature_c is not None:
            text += f" {gpu.temperature_c:.0f}°C"
        parts.append(text)
    if len(info.gpus) > 4:
        parts.append(f"+{len(info.gpus) - 4} GPUs")
    if info.disk is not None and info.disk.total and info.disk.free < min(10 * 2**30, info.disk.total // 10):
        parts.append(f"disk {format_bytes(info.disk.free)} free")
    return " · ".join(parts)


def status_tooltip(info: SystemInfo) -> str:
    lines = [f"{info.host.name}: {info.host.cpu_count} CPUs at {info.host.cpu_percent:.0f}%, "
             f"memory {format_bytes(info.host.memory_used)} of {format_bytes(info.host.memory_total)} in use"]
    if info.disk is not None:
        lines.append(f"Data folder's disk: {format_bytes(info.disk.free)} free of {format_bytes(info.disk.total)}")
    if info.gpus:
        lines.append(f"{len(info.gpus)} NVIDIA GPU{'s' if len(info.gpus) != 1 else ''}: "
                     + ", ".join(gpu.name for gpu in info.gpus))
    elif info.gpu_note:
        lines.append(f"No GPU listed: {info.gpu_note}")
    else:
        lines.append("No NVIDIA GPU on the server")
    if info.cluster is not None:
        lines.append(cluster_text(info.cluster).replace("\n", "; "))
    lines.append("Click for details")
    return "\n".join(lines)


def gpu_rows(gpus: list[GpuInfo]) -> list[list[str]]:
    rows = []
    for gpu in gpus:
        if gpu.memory_used is not None and gpu.memory_total:
            memory = f"{format_bytes(gpu.memory_used)} / {format_bytes(gpu.memory_total)}"
        else:
            memory = "—"
        rows.append([str(gpu.index), gpu.name,
                     f"{gpu.utilization_percent:.0f}%" if gpu.utilization_percent is not None else "—", memory,
                     f"{gpu.temperature_c:.0f} °C" if gpu.temperature_c is not None else "—",
                     str(len(gpu.job_ids)) if gpu.job_ids else ""])
    return rows
