"""What an image file's first bytes say, read without Pillow: shared by the server's image checks
(server/images.py) and the import window's local file check (ui/datasets/import_scan.py), so that both name
a refused format alike and read a WebP's size the same way.

- `webp_canvas`: a WebP's canvas size, needed before Pillow opens the file (its WebP reader sizes its
  canvases as it opens it).
- `other_format_name`: the name of an image format neither accepts, from its signature, for formats Pillow
  cannot name (a damaged TIFF or ICO header; HEIC and AVIF, which it does not read).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = ["webp_canvas", "other_format_name"]

# (leading bytes, format name) of image formats that are not accepted.
_SIGNATURES = ((b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"),
               (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"qoif", "QOI"))
_HEIF_BRANDS = (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif")


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


def other_format_name(head: bytes, extra: Sequence[tuple[bytes, str]] = ()) -> str | None:
    """The format `head` (a file's first bytes, at least 12) announces among the known unaccepted ones, and
    `extra` (more signatures, checked after those), or None."""
    for magic, name in (*_SIGNATURES, *extra):
        if head.startswith(magic):
            return name
    if head[4:12] in _HEIF_BRANDS:
        return "HEIC/AVIF"
    return None
