"""GET /api/system against real server subprocesses: this machine (no NVIDIA GPU), a machine without the
NVML bindings, and a labelled stand-in NVML reporting two GPUs (tests/support/stand_in_nvml)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from training_studio.contract import SystemInfo
from tests.support.server import ServerProcess

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def _pythonpath(first: Path) -> dict[str, str]:
    rest = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(first), rest) if p)}


@contextmanager
def _serve(data_dir: Path, **kwargs) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def _system(server: ServerProcess) -> SystemInfo:
    with server.client() as client:
        response = client.get("/api/system")
    assert response.status_code == 200, response.text
    return SystemInfo.model_validate(response.json())


def test_system_on_this_machine_reports_host_and_disk(tmp_path):
    with _serve(tmp_path / "data") as server:
        info = _system(server)
        assert info.host.cpu_count == os.cpu_count()
        assert 0 <= info.host.cpu_percent <= 100
        assert 0 < info.host.memory_used <= info.host.memory_total
        usage = shutil.disk_usage(tmp_path)
        assert info.disk is not None and info.disk.total == usage.total
        assert 0 < info.disk.free <= info.disk.total
        assert info.assigned_gpus is None
        if not Path("/proc/driver/nvidia").exists():  # this machine: no NVIDIA driver, so NVML says why
            assert info.gpus == []
            assert info.gpu_note and "NVML" in info.gpu_note


def test_system_needs_the_token(tmp_path):
    with _serve(tmp_path / "data") as server:
        import httpx
        response = httpx.get(server.url + "/api/system", timeout=10)
        assert response.status_code == 401


def test_system_without_nvml_bindings_has_no_gpus_and_says_why(tmp_path):
    with _serve(tmp_path / "data", env=_pythonpath(SUPPORT / "no_nvml")) as server:
        info = _system(server)
        assert info.gpus == []
        assert info.gpu_note == "NVIDIA's NVML bindings (nvidia-ml-py) are not installed"


def test_system_lists_every_gpu_of_a_stand_in_nvml(tmp_path):
    with _serve(tmp_path / "data", env=_pythonpath(SUPPORT / "stand_in_nvml"),
                       extra_args=["--gpus", "0,1", "--no-runner"]) as server:
        info = _system(server)
        assert info.gpu_note is None
        assert [gpu.index for gpu in info.gpus] == [0, 1]
        first, second = info.gpus
        assert first.name == "Stand-in GPU A (tests)"  # bytes from the driver become text
        assert first.uuid == "GPU-00000000-0000-0000-0000-00000000000a"
        assert first.utilization_percent == 37
        assert (first.memory_used, first.memory_total) == (3 * 2**30, 24 * 2**30)
        assert first.temperature_c == 61
        assert second.name == "Stand-in GPU B (tests)"
        assert second.temperature_c is None  # no sensor on that board: null, not an error
        assert info.assigned_gpus == ["0", "1"]


def test_system_of_a_ray_server_whose_cluster_does_not_answer_says_so_instead_of_failing(tmp_path):
    """issue 18: `cluster` with --executor ray; a dashboard nobody listens on is `reachable: false`."""
    import socket
    with socket.socket() as closed:  # a port nobody listens on once this socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    address = f"http://127.0.0.1:{port}"
    with _serve(tmp_path / "data", extra_args=["--executor", "ray", "--ray-address", address,
                                               "--no-runner"]) as server:
        info = _system(server)
        assert info.cluster is not None
        assert info.cluster.reachable is False and info.cluster.address == address
        assert info.cluster.error == "connection refused", info.cluster.error
        assert info.cluster.nodes == [] and info.cluster.cpus_free is None
        assert info.host.cpu_count == os.cpu_count()  # the machine's figures are there all the same


def test_system_of_a_local_server_has_no_cluster(tmp_path):
    with _serve(tmp_path / "data", extra_args=["--no-runner"]) as server:
        assert _system(server).cluster is None


@pytest.mark.parametrize("value, message", [
    ("", "give GPU indices or UUIDs"),
    ("0,,1", "give GPU indices or UUIDs"),
    ("0,x", "'x' is neither a GPU index"),
    ("1,1", "names a GPU twice"),
])
def test_serve_rejects_a_bad_gpu_list_with_a_clear_message(tmp_path, value, message):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "training_studio", "serve", "--data-dir", str(tmp_path / "d"),
                             "--gpus", value], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
