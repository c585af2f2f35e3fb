"""Exporting a dataset to a folder without ever leaving half a folder behind (issue 17 item 6).

The server sends a dataset only as a zip (`GET /api/datasets/{id}/export`); the folder export unpacks it. The
target must be a new or an empty folder (`FolderNotEmpty` otherwise, checked before anything is downloaded and
again when the folder is put in place). Everything happens in a hidden staging folder beside the target
(`.<name>.exporting-<random>`, same file system): the zip is streamed into it, unpacked inside it, and the
unpacked folder is renamed onto the target in one step only when whole; the staging folder is then removed,
and on any failure or cancel removed with everything in it. Every function here blocks: callers run them in a
worker thread (`loop.run_in_executor`). No Qt, no HTTP.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["EXPORT_ZIP_NAME", "FolderNotEmpty", "discard_staging", "make_staging_folder", "unpack_into_place"]

EXPORT_ZIP_NAME = "export.zip"
_CONTENT = "content"


class FolderNotEmpty(OSError):
    """The chosen folder already holds something: an export never writes into (or over) it."""

    def __init__(self, target: Path) -> None:
        super().__init__(errno.ENOTEMPTY, f"{target} is not empty; choose an empty or a new folder")
        self.target = target


def _check_target(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        if any(os.scandir(target)):
            raise FolderNotEmpty(target)
    elif target.exists() or target.is_symlink():
        raise FolderNotEmpty(target)  # a file (or a link) by that name: nothing is put over it


def make_staging_folder(target: Path) -> Path:
    """Check that `target` is new or empty (FolderNotEmpty) and create the hidden staging folder beside it
    (OSError when its parent is missing or not writable)."""
    target = Path(target)
    _check_target(target)
    staging = target.parent / f".{target.name}.exporting-{uuid.uuid4().hex[:8]}"
    staging.mkdir(mode=0o700)
    return staging


def _safe_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    for member in members:
        path = PurePosixPath(member.filename)
        if path.is_absolute() or ".." in path.parts or "\\" in member.filename:
            raise zipfile.BadZipFile(f"unsafe name in the archive: {member.filename!r}")
    return members


def unpack_into_place(staging: Path, target: Path) -> None:
    """Unpack the staged zip inside the staging folder, rename the result onto `target` (which must still be
    new or empty: FolderNotEmpty) and remove the staging folder. On failure the staging folder is left for
    the caller's `discard_staging`."""
    content = staging / _CONTENT
    zip_path = staging / EXPORT_ZIP_NAME
    with zipfile.ZipFile(zip_path) as archive:
        content.mkdir()
        archive.extractall(content, members=_safe_members(archive))
    zip_path.unlink()
    _check_target(target)
    try:
        os.rename(content, target)  # an empty folder there is replaced in the same step (POSIX)
    except FileExistsError:
        # Windows renames onto nothing that exists: an empty folder goes first (still empty: checked above).
        try:
            target.rmdir()
        except OSError:
            raise FolderNotEmpty(target) from None
        os.rename(content, target)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FolderNotEmpty(target) from None
        raise
    shutil.rmtree(staging, ignore_errors=True)


def discard_staging(staging: Path | None) -> None:
    """Remove a failed or cancelled export's staging folder and everything in it."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
