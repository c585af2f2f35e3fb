"""A WebP's canvas size read from its first chunk header, without Pillow: shared by the server's image checks
(server/images.py) and the import window's local file check (ui/datasets/import_scan.py), which both need
the size before Pillow opens the file, because Pillow's WebP reader sizes its canvases as it opens it."""

from __future__ import annotations

import struct

__all__ = ["webp_canvas"]


def webp_canvas(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes (at least 30) of a RIFF/WebP file, as Pillow reads them, or None
    when its first chunk is none of VP8, VP8L and VP8X, or the bytes are too few."""
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", head, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None
