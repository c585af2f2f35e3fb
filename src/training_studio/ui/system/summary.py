"""Plain text of `/api/system` answers (no Qt): the status bar's one-line summary and the rows of the GPU
list, with sizes in binary units and missing figures left out rather than shown as zero."""

from __future__ import annotations

from training_studio.contract import GpuInfo, SystemInfo

__all__ = ["format_bytes", "status_summary", "status_tooltip", "gpu_rows", "GPU_HEADERS"]

GPU_HEADERS = ["GPU", "Name", "Use", "Memory", "Temperature", "Jobs"]


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


def status_summary(info: SystemInfo) -> str:
    """e.g. "CPU 12% · RAM 5.1/15.5 GiB · GPU 0 37% 61°C · GPU 1 0%"; the disk only when it runs low."""
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
