"""Saving a streamed download to a file without ever leaving half a file behind.

Shared by the Models tab's checkpoint download (ui.models.store) and the dataset export (ui.datasets.
workbench_store): the bytes go into `<target>.part` (`part_path`), every disk operation runs in a worker
thread (the callers hand these functions to `loop.run_in_executor`), and only a complete download is
flushed, synced and renamed onto the target (`finish_download`, atomic: the target is either the old file or
the whole new one). On any failure or cancel `discard_partial` closes and removes the `.part` file. No Qt,
no HTTP: plain file handling.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["PART_SUFFIX", "discard_partial", "finish_download", "open_for_writing", "part_path"]

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"


def part_path(target: Path) -> Path:
    """Where the download of `target` is written until it is complete."""
    return target.with_name(target.name + PART_SUFFIX)


def open_for_writing(part: Path) -> BinaryIO:
    """Blocking (run in a worker thread)."""
    return open(part, "wb")


def finish_download(handle: BinaryIO, part: Path, target: Path) -> None:
    """Blocking (run in a worker thread): flush, sync and close the part file, then rename it onto target."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(part, target)  # atomic: the target is either the old file or the whole new one


async def discard_partial(loop: asyncio.AbstractEventLoop, handle: BinaryIO | None, part: Path) -> None:
    """Close and remove the part file of a failed or cancelled download (in a worker thread)."""
    def remove() -> None:
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass
        try:
            part.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("could not remove the partial download %s: %s", part, error)

    # Shielded: a cancel (the user's or at quit) must still clean up the partial file.
    await asyncio.shield(loop.run_in_executor(None, remove))
