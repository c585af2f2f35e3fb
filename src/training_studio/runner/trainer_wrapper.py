"""The trainer's wrapper: a small process per job that owns the trainer's life, so the server need not.

`training-studio train-wrapper --control-dir <job folder>/.training-studio` is what the server starts for
each job (in its own session, with no pipe to the server). It reads `spec.json` there (the trainer's argv,
working folder and cancel grace; the environment is the wrapper's own, which the server filtered), then:

- makes itself the *child subreaper* of its tree (Linux `prctl(PR_SET_CHILD_SUBREAPER)`, no root needed):
  a grandchild that calls setsid, or whose parent dies, is reparented to the wrapper instead of init, so
  it stays a descendant the wrapper can find and kill;
- where a cgroup v2 subtree is writable, puts the trainer in a cgroup of its own (`training-studio-job-…`)
  so that even a process that escaped the tree is still counted and killed; skipped silently elsewhere;
- starts the trainer in its own process group, stdout and stderr appended to `stdout.log` / `stderr.log`
  in the control folder (files, never pipes: a dead server breaks nothing), stdin from /dev/null;
- waits for it, reaping every orphan it inherits; once the trainer has exited, any leftover descendant is
  SIGKILLed (a finished trainer owns nothing);
- on SIGTERM/SIGINT/SIGHUP (cancel) it sends SIGTERM to the whole tree, SIGKILL after the grace;
- only when no process of the job is left does it write `exit.json` (tmp + rename, fsynced):
  `{"exit_code", "signal", "cancelled", "error", "finished_at"}`, then exits 0;
- if the job's folder is deleted (its data dir removed), it ends the run as a cancel would: nobody could
  ever follow it or record it.

`wrapper.json` (written before the trainer starts, again with the trainer's pid once it runs) records the
wrapper's pid and process start time, which is how a restarted server recognises it (pid alone could have
been reused), and `wrapper.lock` is held (flock) for the wrapper's whole life: the proof of life off Linux.

Guarantees by platform: Linux gets the subreaper (every descendant, setsid or not, is killed on cancel)
and, where writable, the cgroup; other POSIX systems get the trainer's process group only (a descendant
that calls setsid escapes cancel); Windows has no wrapper support (no sessions, no re-attach).

This module imports nothing but the standard library and process_groups: it starts fast and small.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training_studio.runner.process_groups import (
    live_descendants,
    live_group_members,
    process_start_time,
    signal_group,
    signal_pid,
)

CONTROL_DIR_NAME = ".training-studio"
POLL_INTERVAL_S = 0.05
STATUS_RETRY_S = 0.5
FOLDER_CHECK_INTERVAL_S = 1.0
FOLDER_MISSING_CHECKS = 3  # seconds in a row the job's folder must be gone before its run is ended
PR_SET_CHILD_SUBREAPER = 36
CGROUP_PREFIX = "training-studio-job-"


@dataclass(frozen=True)
class JobFiles:
    """The files a job's wrapper and the server share, all in the job's control folder."""

    control_dir: Path

    @classmethod
    def for_output_dir(cls, output_dir: Path) -> "JobFiles":
        return cls(Path(output_dir) / CONTROL_DIR_NAME)

    @property
    def spec(self) -> Path:
        return self.control_dir / "spec.json"

    @property
    def stdout(self) -> Path:
        return self.control_dir / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.control_dir / "stderr.log"

    @property
    def wrapper_info(self) -> Path:
        return self.control_dir / "wrapper.json"

    @property
    def wrapper_lock(self) -> Path:
        return self.control_dir / "wrapper.lock"

    @property
    def exit_status(self) -> Path:
        return self.control_dir / "exit.json"

    @property
    def wrapper_log(self) -> Path:
        return self.control_dir / "wrapper.log"


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            payload = json.dumps(data).encode("utf-8")
            if os.write(fd, payload) != len(payload):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def open_private_append(path: Path) -> Any:
    """`path` opened for appending bytes, created 0600 whatever the umask (trainer output is private)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`; None if missing or unreadable (a torn write is never seen: renames)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def wrapper_lock_held(files: JobFiles) -> bool:
    """Whether a live wrapper holds the job's lock file (POSIX flock); False when it is free or absent."""
    if os.name != "posix":
        return False
    import fcntl

    try:
        fd = os.open(files.wrapper_lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the shared lock we may have taken
    return False


# --- the wrapper process -------------------------------------------------------------------------

def become_subreaper() -> bool:
    """Linux: orphans of our tree are reparented to us (not to init). False where not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class JobCgroup:
    """A cgroup v2 of the job's own, where the hierarchy is writable; `create()` returns None elsewhere."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, job_id: str) -> "JobCgroup | None":
        if not sys.platform.startswith("linux"):
            return None
        try:
            base = _own_cgroup2_dir()
            if base is None or not os.access(base / "cgroup.procs", os.W_OK):
                return None
            safe_id = "".join(ch for ch in job_id if ch.isalnum())[:64] or "job"
            path = base / f"{CGROUP_PREFIX}{safe_id}-{os.getpid()}"
            path.mkdir()
        except OSError:
            return None
        if not os.access(path / "cgroup.procs", os.W_OK):
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    def join_from_child(self) -> None:
        """Runs in the trainer's process between fork and exec: move it (and so all it starts) in."""
        try:
            fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0" is the writing process itself
            finally:
                os.close(fd)
        except OSError:
            pass  # the process group and the subreaper still hold the tree

    def members(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(line) for line in text.split() if line.isdigit()]

    def kill(self) -> None:
        if not self.path.is_dir():
            return
        kill_file = self.path / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
                return
        for pid in self.members():
            signal_pid(pid, signal.SIGKILL)

    def remove(self) -> None:
        for _ in range(250):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)  # the last member is still being torn down


def _own_cgroup2_dir() -> Path | None:
    """The directory of this process's cgroup in the cgroup v2 hierarchy, if one is mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None
    for line in mountinfo:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            fields = left.split()
            root, mount_point = fields[3], fields[4]
            if relative.startswith(root):
                inner = relative[len(root):].lstrip("/")
                return Path(mount_point) / inner if inner else Path(mount_point)
    return None


class Wrapper:
    """One run of one trainer: start, supervise, kill what is left, record the exit status."""

    def __init__(self, files: JobFiles, spec: dict[str, Any]) -> None:
        self.files = files
        self.argv = [str(item) for item in spec["argv"]]
        self.cwd = spec.get("cwd") or None
        self.grace = max(0.0, float(spec.get("cancel_grace", 10.0)))
        self.job_id = str(spec.get("job_id", ""))
        self.cancelled = False
        self._term_sent_at: float | None = None
        self.trainer_pid: int | None = None
        self.trainer_status: int | None = None
        self.cgroup: JobCgroup | None = None
        self._lock_fd: int | None = None

    def on_cancel(self, signum: int, frame: Any) -> None:
        if self.trainer_status is None:  # a cancel after the trainer ended changes nothing
            self.cancelled = True

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.on_cancel)
        self._hold_lock()
        subreaper = become_subreaper()
        self.cgroup = JobCgroup.create(self.job_id)
        self._write_info(subreaper=subreaper)
        if self.cancelled:  # cancelled before the trainer even started
            self._finish({"exit_code": None, "signal": None, "cancelled": True, "error": None})
            return 0
        try:
            self._start_trainer()
        except OSError as exc:
            reason = f"could not start the trainer {self.argv[0]!r}: {exc.strerror or exc}"
            self._finish({"exit_code": None, "signal": None, "cancelled": self.cancelled, "error": reason})
            return 0
        self._write_info(subreaper=subreaper)
        self._supervise()
        status = self.trainer_status if self.trainer_status is not None else 0
        exit_code = os.waitstatus_to_exitcode(status)
        self._finish({
            "exit_code": exit_code if exit_code >= 0 else None,
            "signal": -exit_code if exit_code < 0 else None,
            "cancelled": self.cancelled,
            "error": None,
        })
        return 0

    def _hold_lock(self) -> None:
        if os.name != "posix":
            return
        import fcntl

        self._lock_fd = os.open(self.files.wrapper_lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _write_info(self, *, subreaper: bool) -> None:
        write_json_atomically(self.files.wrapper_info, {
            "pid": os.getpid(), "start_time": process_start_time(os.getpid()),
            "trainer_pid": self.trainer_pid,
            "trainer_start_time": process_start_time(self.trainer_pid) if self.trainer_pid else None,
            "subreaper": subreaper, "cgroup": str(self.cgroup.path) if self.cgroup else None,
        })

    def _start_trainer(self) -> None:
        stdout = open_private_append(self.files.stdout)
        stderr = open_private_append(self.files.stderr)
        try:
            process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=self.cwd,
                env=os.environ.copy(), close_fds=True, process_group=0,
                preexec_fn=self.cgroup.join_from_child if self.cgroup else None,
            )
        finally:
            stdout.close()
            stderr.close()
        # We reap with waitpid ourselves (orphans come to us too): keep Popen from ever waiting on it.
        process.returncode = 0
        self.trainer_pid = process.pid

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid == self.trainer_pid and self.trainer_status is None:
                self.trainer_status = status

    def _job_processes(self) -> list[int]:
        members = set(live_descendants(os.getpid()))
        if self.trainer_pid:
            members.update(live_group_members(self.trainer_pid))
        if self.cgroup is not None:
            members.update(self.cgroup.members())
        members.discard(os.getpid())
        return sorted(members)

    def _signal_all(self, signum: int) -> None:
        if self.trainer_pid:
            signal_group(self.trainer_pid, signum)
        if signum == signal.SIGKILL and self.cgroup is not None:
            self.cgroup.kill()
        for pid in self._job_processes():
            signal_pid(pid, signum)

    def _supervise(self) -> None:
        next_folder_check, folder_missing = 0.0, 0
        while True:
            self._reap()
            now = time.monotonic()
            if now >= next_folder_check and not self.cancelled and self.trainer_status is None:
                next_folder_check = now + FOLDER_CHECK_INTERVAL_S
                folder_missing = folder_missing + 1 if self._folder_deleted() else 0
                if folder_missing >= FOLDER_MISSING_CHECKS:
                    # The job's folder was deleted (its data dir removed): no server can ever follow or
                    # record this run, so it only burns the machine. End it as a cancel would.
                    print("train-wrapper: the job's folder is gone: ending the trainer", file=sys.stderr)
                    self.cancelled = True
            if self.cancelled and self._term_sent_at is None:
                self._term_sent_at = now
                self._signal_all(signal.SIGTERM)
            if self.trainer_status is not None and not self._job_processes():
                return
            grace_over = self._term_sent_at is not None and now - self._term_sent_at >= self.grace
            if grace_over or (self.trainer_status is not None and not self.cancelled):
                # A finished trainer owns nothing; a cancelled one had its grace. Again on every turn:
                # a member may have forked since the last one.
                self._signal_all(signal.SIGKILL)
            time.sleep(POLL_INTERVAL_S)

    def _folder_deleted(self) -> bool:
        """Only a folder that is really not there (not one a network mount fails to answer for)."""
        try:
            os.stat(self.files.control_dir)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return False

    def _finish(self, status: dict[str, Any]) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
        status["finished_at"] = datetime.now(timezone.utc).isoformat()
        while True:
            try:
                write_json_atomically(self.files.exit_status, status)
                return
            except FileNotFoundError:  # the job's folder is gone: nobody is left to read the status
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                    raise
            # The disk is full: without its status the job would read as lost. Stay (the server sees
            # the job running) until there is room for these few bytes.
            time.sleep(STATUS_RETRY_S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="training-studio train-wrapper",
                                     description="Run one job's trainer (started by the server).")
    parser.add_argument("--control-dir", required=True, type=Path)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    files = JobFiles(args.control_dir)
    spec = read_json(files.spec)
    if spec is None or not isinstance(spec.get("argv"), list) or not spec["argv"]:
        print(f"train-wrapper: no usable spec in {files.spec}", file=sys.stderr)
        write_json_atomically(files.exit_status, {"exit_code": None, "signal": None, "cancelled": False,
                                                  "error": "the trainer's wrapper found no usable spec"})
        return 2
    wrapper = Wrapper(files, spec)
    try:
        return wrapper.run()
    except BaseException as exc:
        # Never leave the trainer unsupervised nor the job without a status.
        with contextlib.suppress(BaseException):
            wrapper._signal_all(signal.SIGKILL)
        with contextlib.suppress(BaseException):
            wrapper._finish({"exit_code": None, "signal": None, "cancelled": wrapper.cancelled,
                             "error": f"the trainer's wrapper failed: {exc!r}"})
        raise


if __name__ == "__main__":
    raise SystemExit(main())
