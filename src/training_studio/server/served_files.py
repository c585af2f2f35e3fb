"""Serving a file from a stored or derived path only when it really lies in the folder it belongs to.

A trainer writes its job's folder, and a third-party one can leave anything there: a checkpoint or
sample sheet that is a symlink (or sits under a symlinked folder) pointing at the user's keys must not be
served. `open_confined` resolves every link, refuses a target outside the folder, opens the file without
following a link in its last component, and then checks what it actually opened (by its own path on
Linux, by identity elsewhere), so swapping a link in between gains nothing. `OpenFileResponse` streams
the opened file, so the bytes sent are those of the file that was checked.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_CHUNK_BYTES = 256 * 1024


class OutsideFolder(PermissionError):
    """The path resolves (through links) to somewhere outside the folder it must stay in."""


def open_confined(path: Path, folder: Path) -> tuple[BinaryIO, int]:
    """Open `path` for reading if, with every link resolved, it is a regular file inside `folder`.

    Returns the open file and its size. FileNotFoundError when it is missing or not a regular file,
    OutsideFolder when it lies outside `folder`. Blocking.
    """
    try:
        real_folder = Path(folder).resolve(strict=True)
        real = Path(path).resolve(strict=True)
    except RuntimeError as exc:  # a link loop (Python before 3.13 says so with RuntimeError, not ELOOP)
        raise FileNotFoundError(f"{path} is a loop of links") from exc
    if not real.is_relative_to(real_folder):
        raise OutsideFolder(f"{path} resolves outside {folder}")
    # O_NONBLOCK: opening a FIFO someone left there must not hang; it is refused as not a regular file below.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        # ELOOP: the last component became a link after it was resolved.
        raise OutsideFolder(f"{path} changed while it was opened") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError(f"{path} is not a regular file")
        opened = _path_of_descriptor(fd)
        if opened is not None:
            if not opened.is_relative_to(real_folder):
                raise OutsideFolder(f"{path} was swapped for a file outside {folder}")
        else:
            now = os.stat(real, follow_symlinks=False)
            if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                raise OutsideFolder(f"{path} changed while it was opened")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _path_of_descriptor(fd: int) -> Path | None:
    """Where an open file really is, on Linux; None where the system cannot say."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


class OpenFileResponse(Response):
    """Streams an already opened (and checked) file, closing it when done or when the client goes away."""

    def __init__(self, handle: BinaryIO, size: int, media_type: str, *, download_name: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        all_headers = {"content-length": str(size), **(headers or {})}
        if download_name is not None:
            quoted = quote(download_name)
            all_headers["content-disposition"] = (f'attachment; filename="{download_name}"' if quoted == download_name
                                                  else f"attachment; filename*=utf-8''{quoted}")
        super().__init__(content=None, media_type=media_type, headers=all_headers)
        self._handle = handle
        self._size = size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            remaining = self._size if scope.get("method") != "HEAD" else 0
            while remaining > 0:
                # Never more than the announced length, even if a trainer is still appending to the file.
                chunk = await anyio.to_thread.run_sync(self._handle.read, min(_CHUNK_BYTES, remaining))
                if not chunk:
                    break  # the file shrank: the client sees a short body against Content-Length
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._handle.close()
