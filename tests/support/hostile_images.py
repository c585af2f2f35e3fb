"""Hostile image files, built byte by byte in milliseconds: decompression and parsing bombs for the server's
image checks and thumbnails (tests/reliability/test_image_bombs.py and the hostile-upload benchmark).

Each builder takes a `variant` that changes one palette byte, so the files differ (distinct SHA-256, distinct
blobs) while costing the same to decode.
- `giant_gif`: a 10000×10000 single-frame GIF of about 75 KB (100 million pixels, the default pixel limit).
- `many_frame_gif`: about `target_bytes` of full-canvas frames (2000×2000 each): hundreds of frames per MB.
- `tiny_block_gif`: a small GIF with a comment cut into 1-byte blocks (Pillow walks them in Python).
- `many_chunk_png`: a PNG whose image data is cut into 1-byte IDAT chunks.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image


@functools.lru_cache(maxsize=4)
def _single_frame_gif(width: int, height: int) -> bytes:
    image = Image.new("P", (width, height), 3)
    image.putpalette([(index * 7) % 256 for index in range(768)])
    buffer = io.BytesIO()
    image.save(buffer, format="GIF")
    return buffer.getvalue()


def _gif_parts(data: bytes) -> tuple[bytes, bytes]:
    """(header with logical screen and global palette, everything from the first block to the trailer)."""
    packed = data[10]
    start = 13 + ((3 << ((packed & 7) + 1)) if packed & 0x80 else 0)
    assert data.endswith(b";")
    return data[:start], data[start:-1]


def _vary(header: bytes, variant: int) -> bytes:
    # The last global palette entry: unused by the pixels, but it changes the file's hash.
    return header[:-3] + bytes([variant % 256, (variant >> 8) % 256, 77])


def giant_gif(variant: int = 0, side: int = 10_000) -> bytes:
    header, body = _gif_parts(_single_frame_gif(side, side))
    return _vary(header, variant) + body + b";"


def many_frame_gif(variant: int = 0, target_bytes: int = 1_000_000, side: int = 2000,
                   frames: int | None = None) -> bytes:
    """`frames` frames of side×side, or as many as fit in about `target_bytes`."""
    header, frame = _gif_parts(_single_frame_gif(side, side))
    # A graphic control extension per frame (10 ms, dispose to background) makes it a real animation.
    control = b"!\xf9\x04\x08\x01\x00\x00\x00"
    count = frames or max(2, target_bytes // (len(frame) + len(control)))
    return _vary(header, variant) + (control + frame) * count + b";"


def tiny_block_gif(variant: int = 0, blocks: int = 200_000) -> bytes:
    """A small valid GIF with a comment cut into `blocks` 1-byte sub-blocks before its image (Pillow reads
    them one by one in Python at open and keeps each one: 200 MB of them would take minutes and gigabytes)."""
    header, body = _gif_parts(_single_frame_gif(64, 64))
    comment = b"!\xfe" + b"\x01x" * blocks + b"\x00"
    return _vary(header, variant) + comment + body + b";"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def many_chunk_png(variant: int = 0, side: int = 128) -> bytes:
    """A valid PNG of noise whose compressed data sits in 1-byte IDAT chunks."""
    image = Image.effect_noise((side, side), 60 + variant).convert("RGB")
    raw = b"".join(b"\0" + image.tobytes()[row * side * 3:(row + 1) * side * 3] for row in range(side))
    compressed = zlib.compress(raw, 1)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + b"".join(_png_chunk(b"IDAT", compressed[i:i + 1]) for i in range(len(compressed)))
            + _png_chunk(b"IEND", b""))
