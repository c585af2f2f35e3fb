"""A real local Ray head for the Ray executor's tests (issue 18), kept to this machine.

Started once per test session: loopback only, free ports for every Ray service (two heads on one
machine would collide on Ray's defaults), a short `--temp-dir` (Ray's unix socket paths are limited to
108 bytes), no GPUs, a HOME of its own whose `ray_bootstrap_config.yaml` says the provider is local (so
the dashboard does not probe cloud metadata servers) and usage stats off, reported to a closed local
port. Stopped by its own process group, then any process still carrying our marker variable is
killed: never a bare `ray stop`, which would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKER_ENV = "TRAINING_STUDIO_TEST_RAY_HEAD"
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_program() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else "ray"


class RayHead:
    def __init__(self) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
        self.home = self.temp_dir / "h"
        self.marker = f"{os.getpid()}-{time.monotonic_ns()}"
        self.ports = {name: free_port() for name in (
            "port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
            "runtime-env-agent-port", "ray-client-server-port", "metrics-export-port", "node-manager-port",
            "object-manager-port")}
        self.address = f"http://127.0.0.1:{self.ports['dashboard-port']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.temp_dir / "head.log"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
        env.update({"HOME": str(self.home), MARKER_ENV: self.marker, "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_USAGE_STATS_REPORT_URL": f"http://127.0.0.1:{free_port()}/closed",
                    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "5", "PYTHONUNBUFFERED": "1"})
        env.pop("TRAINING_STUDIO_TOKEN", None)
        return env

    def start(self) -> "RayHead":
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
        session = self.temp_dir / "s"
        args = [ray_program(), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                "--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--num-cpus", "2",
                "--num-gpus", "0", "--temp-dir", str(session), "--disable-usage-stats",
                *[item for name, port in self.ports.items() for item in (f"--{name}", str(port))]]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                     start_new_session=True, cwd=self.temp_dir)
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + START_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the Ray head exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                JobSubmissionClient(self.address).list_jobs()
                return
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(0.5)
        raise RuntimeError(f"the Ray head's Jobs API did not answer in {START_TIMEOUT_S}s ({last}):\n"
                           f"{self.log_tail()}")

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def marked_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"{MARKER_ENV}={self.marker}".encode() in environ.split(b"\0"):
                pids.append(int(entry.name))
        return pids

    def dashboard_pid(self) -> int:
        """The head's dashboard process (it serves the Jobs API)."""
        for pid in self.marked_pids():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(part.endswith(b"dashboard/dashboard.py") for part in cmdline):
                return pid
        raise RuntimeError("the Ray head has no dashboard process")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while self.marked_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.marked_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.temp_dir / "s", ignore_errors=True)
        self.proc = None

    def remove(self) -> None:
        shutil.rmtree(self.temp_dir, ignore_errors=True)
