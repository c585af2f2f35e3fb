"""Process checks shared by the runner and reliability tests: is a PID really alive, and a fixture body
that SIGKILLs whatever a failing test left running.

Read from /proc rather than through our own process-group code, so the tests check that code instead of
trusting it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """A live (non-zombie) process: a killed server's orphans may linger as zombies under some inits."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_leftovers() -> Iterator[list[int]]:
    """Body of a fixture: yields a list the test appends PIDs to; those still alive are SIGKILLed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
