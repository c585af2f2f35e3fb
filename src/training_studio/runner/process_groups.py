"""Asking whether a trainer's process group is still alive, and killing it.

A job is over only when every process of its trainer's group is gone. `os.killpg(pgid, 0)` alone is
not enough: it also succeeds while a member is a zombie, and a zombie reparented to an init that never
reaps (some container inits) would keep a job "cancelling" forever. On Linux we therefore read /proc
and count only live (non-zombie) members; elsewhere we fall back to `killpg(pgid, 0)`.

Also owns recognising our own trainers after a server restart: a recorded pgid may by then belong to
somebody else, so on Linux we only kill a group whose members carry the job's marker in their
environment (`TRAINING_STUDIO_JOB_ID`).

Since trainers outlive the server (see trainer_wrapper.py), it also owns telling whether a recorded
process is still the one we started: a pid is only trusted together with the process start time from
/proc/<pid>/stat (field 22, clock ticks since boot), so a pid reused by somebody else never passes; and
listing every live descendant of a process (the wrapper's whole tree, setsid'd grandchildren included,
since the wrapper is their subreaper).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

JOB_ENV_MARKER = "TRAINING_STUDIO_JOB_ID"
_PROC = Path("/proc")


def _linux_proc() -> bool:
    return sys.platform.startswith("linux") and _PROC.is_dir()


def live_group_members(pgid: int) -> list[int]:
    """PIDs of the non-zombie processes in group `pgid` (Linux); [] when the group is gone."""
    if pgid <= 1:
        return []
    if not _linux_proc():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            return [pgid]
        return [pgid]
    members: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        record = _stat_record(entry)
        if record is None:
            continue
        state, _ppid, pgrp, _start = record
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    return bool(live_group_members(pgid))


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to the group; False if it no longer exists."""
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_belongs_to_job(pgid: int, job_id: str) -> bool:
    """Whether a live member of group `pgid` was started for `job_id` (always True off Linux)."""
    members = live_group_members(pgid)
    if not members:
        return False
    if not _linux_proc():
        return True
    marker = f"{JOB_ENV_MARKER}={job_id}".encode()
    for pid in members:
        try:
            environ = (_PROC / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            return True
    return False


def kill_group_and_wait(pgid: int, timeout: float = 10.0) -> bool:
    """SIGKILL the whole group and wait (blocking) until no live member is left; True if gone."""
    signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return True
        signal_group(pgid, signal.SIGKILL)
        time.sleep(0.02)
    return not group_alive(pgid)


def _stat_record(pid_dir: Path) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgrp, starttime) of a process from /proc/<pid>/stat, or None if it vanished."""
    try:
        raw = (pid_dir / "stat").read_bytes()
    except OSError:
        return None
    # comm is in parentheses and may itself contain ") "; the fields we need follow the last ')'.
    close = raw.rfind(b")")
    if close < 0:
        return None
    rest = raw[close + 2:].split()
    try:
        # rest[0] is field 3 (state): ppid is field 4, pgrp field 5, starttime field 22.
        return rest[0].decode(), int(rest[1]), int(rest[2]), int(rest[19])
    except (IndexError, ValueError):
        return None


def process_start_time(pid: int) -> int | None:
    """The start time of live process `pid` (Linux: clock ticks since boot), None if it is gone or a
    zombie, or off Linux (where there is no /proc to ask)."""
    if pid <= 0 or not _linux_proc():
        return None
    record = _stat_record(_PROC / str(pid))
    if record is None or record[0] in ("Z", "X"):
        return None
    return record[3]


def same_process_alive(pid: int, start_time: int | None) -> bool:
    """Whether `pid` is alive AND is the process that had `start_time` (Linux). Off Linux there is no
    start time: callers add their own proof (the wrapper's lock file) and this only checks the pid."""
    if pid <= 1:
        return False
    if _linux_proc():
        return start_time is not None and process_start_time(pid) == start_time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_descendants(root_pid: int) -> list[int]:
    """PIDs of every live (non-zombie) descendant of `root_pid` (Linux; [] elsewhere)."""
    if not _linux_proc():
        return []
    children: dict[int, list[int]] = {}
    live: set[int] = set()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        record = _stat_record(entry)
        if record is None:
            continue
        pid = int(entry.name)
        children.setdefault(record[1], []).append(pid)
        if record[0] not in ("Z", "X"):
            live.add(pid)
    found: list[int] = []
    stack = list(children.get(root_pid, []))
    seen: set[int] = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        if pid in live:
            found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def signal_pid(pid: int, signum: int) -> bool:
    """Send `signum` to one process; False if it no longer exists (or is not ours)."""
    if pid <= 1:
        return False
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
