"""Writing a file so that readers see either the old content or the new, never half of it.

Shared by the server and the app (no Qt, no HTTP): the server rewrites server.json, captions and
metadata.jsonl in the dataset layouts and cached thumbnails; the app writes exported CSV files. The temp
file sits beside the target (same filesystem, so the rename is atomic) and is removed if anything fails,
a full disk included.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data` via temp file + fsync + rename; `mode` sets permissions before any byte lands."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.chmod(temp_name, mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
