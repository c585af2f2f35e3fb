"""A really small disk for full-disk tests: a tmpfs mounted under the test's tmp dir, and a filler that
takes all its space but what the test leaves. Mounting needs root and a kernel that allows it (CI runs
as root); elsewhere the test skips and says why."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mounted_tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    """Body of a fixture: yields the mount point of a `size` tmpfs (e.g. "8m"), unmounted at teardown."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Fill the filesystem, then give back `leave_bytes` (rounded to pages by the filesystem)."""
    filler = directory / "filler.bin"
    block = b"\0" * 65536
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    # write() may have half-filled the buffer; settle the real size before trimming.
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave_bytes))
    return filler
