"""Process checks shared by the runner, reliability and app tests: is a PID really alive, a fixture body
that SIGKILLs whatever a failing test left running, and stopping the local server an app run left behind.

Read from /proc rather than through our own process-group code, so the tests check that code instead of
trusting it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """A live (non-zombie) process: a killed server's orphans may linger as zombies under some inits."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def stop_server_left_in(data_dir: Path, timeout: float = 30.0) -> None:
    """SIGTERM the local server an app run left running in `data_dir` (it outlives the window on purpose)
    and wait until it is gone; an assertion error if it is still alive at the timeout. No server.json: none
    was started (or it never got that far); the test's own assertions say why."""
    try:
        pid = int(json.loads((data_dir / "server.json").read_text())["pid"])
    except FileNotFoundError:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"the local server (pid {pid}) did not stop on SIGTERM"
        time.sleep(0.05)


def kill_leftovers() -> Iterator[list[int]]:
    """Body of a fixture: yields a list the test appends PIDs to; those still alive are SIGKILLed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
