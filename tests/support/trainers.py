"""Trainers outlive the server that started them (runner/trainer_wrapper.py): stopping a test's server no
longer ends its jobs. This finds the trainer wrappers a test left running under a folder and ends them
the way cancel does (SIGTERM to the wrapper, which ends its whole tree), SIGKILL if they do not go.

Read from /proc directly (a wrapper is `… train-wrapper --control-dir <path>`), not through the app's
own code, so a bug there cannot hide a leftover.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _cmdline(pid_dir: Path) -> list[str]:
    try:
        return pid_dir.joinpath("cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def wrappers_under(root: Path) -> list[int]:
    """PIDs of live trainer wrappers whose control folder is inside `root`."""
    root_text = str(Path(root).resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(entry)
        if "train-wrapper" not in argv or "--control-dir" not in argv:
            continue
        index = argv.index("--control-dir") + 1
        if index < len(argv) and argv[index].startswith(root_text + os.sep) and _state(int(entry.name)) not in (
                None, "Z", "X"):
            found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def end_wrappers_under(root: Path, timeout: float = 20.0) -> list[int]:
    """End every trainer wrapper (and so its trainer) under `root`; returns the wrapper PIDs found."""
    wrappers = wrappers_under(root)
    for pid in wrappers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_state(pid) not in (None, "Z", "X") for pid in wrappers):
        time.sleep(0.05)
    for pid in wrappers:  # still there: take the whole tree down by force
        if _state(pid) not in (None, "Z", "X"):
            for victim in [*_descendants(pid), pid]:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    return wrappers
