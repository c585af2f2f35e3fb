"""Start the real `training-studio serve` as a subprocess for tests, and talk to it over HTTP.

The server binds an ephemeral port on 127.0.0.1 inside a temp data dir; we learn its URL from the
server.json it writes (the same discovery file the GUI uses), then wait for /api/health. The token
goes through a 0600 token file, as the GUI does, never argv.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

# A positive-signal wait (server.json names this process and /api/health answers), so only a server that
# fails pays for it in full. A start takes about 1 s, but a shared box has stalled a start's imports for over
# 30 s once (a CI run of 2026-12-05: empty server log, no database yet).
START_TIMEOUT_S = 60.0


class ServerProcess:
    def __init__(self, data_dir: Path, *, token: str | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.token = token or secrets.token_urlsafe(24)
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.url: str = ""
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"

    # lifecycle -----------------------------------------------------------------------------
    def start(self) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.data_dir.parent / f"{self.data_dir.name}-token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        info = self.data_dir / "server.json"
        if info.exists() and self.proc is None:
            info.unlink()  # stale file from a killed server: the new one will overwrite it anyway
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("TRAINING_STUDIO_TOKEN", None)
        args = [sys.executable, "-m", "training_studio", "serve", "--data-dir", str(self.data_dir),
                "--host", "127.0.0.1", "--port", "0", "--token-file", str(token_file), *self.extra_args]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        info = self.data_dir / "server.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                data = json.loads(info.read_text())
                if data.get("pid") == self.proc.pid:
                    self.url = data["url"].rstrip("/")
                    r = httpx.get(self.url + "/api/health", timeout=2)
                    if r.status_code == 200:
                        return
            except (OSError, ValueError, KeyError, httpx.HTTPError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy in {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """Clean stop (SIGTERM), as a user quitting the server would."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL the server process only (its trainers live in their own process groups)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> "ServerProcess":
        self.stop()
        return self.start()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # HTTP -------------------------------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=kwargs.pop("timeout", 30), **kwargs)


def with_presets(server_factory, data_dir: Path, presets_toml: str, **kwargs) -> ServerProcess:
    """A server (from the `server_factory` fixture) whose data dir `data_dir` (under the test's tmp_path)
    holds `presets_toml` as its presets.toml; cancel grace 1 s unless `extra_args` says otherwise."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "presets.toml").write_text(presets_toml)
    kwargs.setdefault("extra_args", ["--cancel-grace", "1"])
    return server_factory(data_dir.name, **kwargs)
