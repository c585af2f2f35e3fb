"""Image uploads and thumbnails at a bounded cost, on their own small thread pools.

This module owns everything the server does with image bytes: checking an upload (`inspect_image` from the
headers, then `decode_image`), rendering thumbnails (`render_thumbnail`) and `ImageWork`, the pools that run
both, apart from the default thread pool every other route uses.

Why it looks the way it does: a 1 MB GIF can hold hundreds of full-canvas frames and a 75 KB GIF a
10000×10000 canvas, and Pillow walks some containers byte by byte in Python. So before Pillow decodes
anything, the container's structure is scanned over an mmap (GIF blocks, PNG chunks, JPEG segments and scans,
BMP run-length coding) and the work is priced from the headers: frames, canvas pixels and the memory the
decode needs for that format. A file over a limit is refused (`ImageTooComplex`, 415 `image_too_complex`)
before it costs anything; an accepted file is decoded frame by frame with a CPU-time check between frames.
Thumbnails decode the first frame only, JPEG at a reduced scale (`draft`), palette images reduced before
they are converted to RGB. Cheap work (one frame of at most `LIGHT_WORK_PIXELS`) runs on the light pool,
everything else queues on the heavy pool (one worker), so hostile files wait behind each other, not in front
of a user's small photos; the heavy queue is bounded (503 `server_busy` past it).
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import math
import mmap
import struct
import sys
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from PIL import Image

from training_studio.server.errors import ApiError
from training_studio.image_headers import other_format_name, webp_canvas

IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}
ALLOWED_TEXT = "PNG, JPEG, WebP, BMP or GIF"

MAX_ANIMATION_FRAMES = 1000
# Canvas pixels decoded for the frames after the first (each is composited onto the full canvas).
ANIMATION_PIXEL_BUDGET = 100_000_000
# Memory one decode may need (the request's whole budget is 512 MB; the rest is headroom).
DECODE_MEMORY_LIMIT = 400 * 1024 * 1024
# CPU time one check may spend, tested between frames (a single frame is bounded by the limits above).
CHECK_CPU_LIMIT_S = 1.5
# Work cheap enough for the light pool: one frame of at most this many decoded pixels.
LIGHT_WORK_PIXELS = 16_000_000
LIGHT_WORKERS = 2
HEAVY_WORKERS = 1
HEAVY_QUEUE_LIMIT = 32
# Bytes Pillow would step over one at a time in Python (GIF and JPEG tolerate junk between blocks).
MAX_JUNK_BYTES = 65536
MAX_JPEG_SEGMENTS = 2000
MAX_JPEG_SCANS = 500
MAX_RLE_BMP_BYTES = 1024 * 1024

_pillow: ModuleType | None = None
_pillow_lock = threading.Lock()
_max_image_pixels: int | None = None  # set_max_image_pixels(), applied when Pillow is loaded


def set_max_image_pixels(pixels: int) -> None:
    """Pillow's decompression-bomb guard (process-wide): the server's pixel limit."""
    global _max_image_pixels
    with _pillow_lock:
        _max_image_pixels = pixels
        if _pillow is not None:
            _pillow.MAX_IMAGE_PIXELS = pixels


def pillow() -> ModuleType:
    """`PIL.Image`, imported on the first image this server handles, not at its start: Pillow's import costs
    about 25 ms (most of it PIL.ExifTags), paid before the first answer of every server start otherwise."""
    global _pillow
    if _pillow is None:
        with _pillow_lock:
            if _pillow is None:
                from PIL import Image

                # We compare sizes with the limit ourselves (the message says which); Pillow's warning between
                # one and two times MAX_IMAGE_PIXELS would only be noise, and catching it per call is not
                # thread-safe.
                warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
                if _max_image_pixels is not None:
                    Image.MAX_IMAGE_PIXELS = _max_image_pixels
                _pillow = Image
    return _pillow

# Beyond the signatures image_headers knows: Netpbm, named here only (its two-byte signatures would also
# name plain text starting with "P5"/"P6", which the import window's check leaves to Pillow).
_NETPBM_SIGNATURES = ((b"P6", "PPM"), (b"P5", "PGM"))


class UnsupportedImage(ValueError):
    """Not an acceptable image; the message says why (415 `unsupported_file`)."""


class ImageTooComplex(UnsupportedImage):
    """Acceptable in kind but too costly to check or render (415 `image_too_complex`)."""


@dataclass(frozen=True)
class ImagePlan:
    """What the headers say a file will cost, before any pixel is decoded."""

    format: str
    width: int
    height: int
    frames: int
    decode_pixels: int  # pixels decoded over all frames
    memory_bytes: int  # estimated peak memory of the decode

    @property
    def ext(self) -> str:
        return IMAGE_FORMATS[self.format]

    @property
    def heavy(self) -> bool:
        return self.frames > 1 or self.decode_pixels > LIGHT_WORK_PIXELS


@dataclass(frozen=True)
class CheckedImage:
    ext: str
    width: int
    height: int


# --- container structure ---------------------------------------------------------------------------------

def _mapped(path: Path) -> tuple[object, mmap.mmap | bytes]:
    handle = open(path, "rb")
    try:
        return handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except ValueError:  # empty file
        return handle, b""


def _scan_gif(data: mmap.mmap | bytes) -> tuple[int, int, int]:
    """(frames, canvas width, canvas height) from the block structure; frames may grow the canvas."""
    size = len(data)
    if size < 13:
        raise UnsupportedImage("the GIF is truncated")
    width, height = struct.unpack_from("<HH", data, 6)
    packed = data[10]
    pos = 13 + ((3 << ((packed & 7) + 1)) if packed & 0x80 else 0)
    frames = blocks = junk = 0
    # Encoders write 255-byte data blocks; a file of tiny ones makes Pillow's Python loop crawl.
    block_limit = size // 128 + 4 * MAX_ANIMATION_FRAMES + 1000
    while pos < size:
        marker = data[pos]
        pos += 1
        if marker == 0x3B:
            break
        if marker == 0x21:
            pos += 1
        elif marker == 0x2C:
            if pos + 10 > size:
                break
            x, y, frame_w, frame_h, flags = struct.unpack_from("<HHHHB", data, pos)
            pos += 9 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
            width, height = max(width, x + frame_w), max(height, y + frame_h)
            frames += 1
            if frames > MAX_ANIMATION_FRAMES:
                raise ImageTooComplex(f"the animation has more than {MAX_ANIMATION_FRAMES:,} frames")
        else:
            junk += 1
            if junk > MAX_JUNK_BYTES:
                raise UnsupportedImage("the GIF is damaged (too much unknown data between its blocks)")
            continue
        while pos < size:
            length = data[pos]
            pos += length + 1
            blocks += 1
            if length == 0:
                break
            if blocks > block_limit:
                raise ImageTooComplex("the GIF is cut into an unusual number of tiny data blocks")
    return max(frames, 1), width, height


def _scan_png(data: mmap.mmap | bytes) -> int:
    """Frames of a PNG (fcTL chunks of an APNG), refusing files cut into absurdly many chunks."""
    size = len(data)
    pos, chunks, frame_controls, animated = 8, 0, 0, False
    chunk_limit = 10_000 + size // 4096
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        pos += 12 + length
        chunks += 1
        if kind == b"fcTL":
            frame_controls += 1
            if frame_controls > MAX_ANIMATION_FRAMES:
                raise ImageTooComplex(f"the animation has more than {MAX_ANIMATION_FRAMES:,} frames")
        elif kind == b"acTL":
            animated = True
        elif kind == b"IEND":
            break
        if chunks > chunk_limit:
            raise ImageTooComplex(f"the PNG is cut into more than {chunk_limit:,} chunks")
    return max(frame_controls, 1) if animated else 1


def _scan_jpeg(data: mmap.mmap | bytes) -> None:
    """Refuse JPEGs whose headers Pillow would crawl through (junk, endless segments) or with absurdly many
    progressive scans (each one a pass over every coefficient)."""
    size, pos, segments, junk = len(data), 2, 0, 0
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            pos += 1
            junk += 1
            if junk > MAX_JUNK_BYTES:
                raise UnsupportedImage("the JPEG is damaged (too much unknown data between its segments)")
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte: Pillow steps over these one at a time too
            pos += 1
            junk += 1
            if junk > MAX_JUNK_BYTES:
                raise UnsupportedImage("the JPEG is damaged (too much padding between its segments)")
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA:
            break
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageTooComplex(f"the JPEG has more than {MAX_JPEG_SEGMENTS:,} header segments")
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    scans, find = 0, data.find
    while (pos := find(b"\xff\xda", pos)) >= 0:
        scans += 1
        pos += 2
        if scans > MAX_JPEG_SCANS:
            raise ImageTooComplex(f"the JPEG has more than {MAX_JPEG_SCANS:,} progressive scans")


def _check_webp_header(head: bytes, file_size: int, max_pixels: int) -> None:
    """Refuse a WebP too big for its decoder before Pillow creates one (it sizes its canvases at once)."""
    canvas = webp_canvas(head)
    if canvas is None:
        return
    width, height = canvas
    if width * height > max_pixels:
        raise UnsupportedImage(f"the image has too many pixels: {width}×{height} = {width * height:,}, "
                               f"over the limit of {max_pixels:,}")
    if file_size + width * height * 16 > DECODE_MEMORY_LIMIT:
        raise ImageTooComplex(f"decoding this {width}×{height} WEBP image would need about "
                              f"{(file_size + width * height * 16) // (1024 * 1024):,} MB of memory, over the "
                              f"limit of {DECODE_MEMORY_LIMIT // (1024 * 1024):,} MB per image")


def _scan(data: mmap.mmap | bytes, max_pixels: int) -> tuple[int, int, int] | None:
    """Structure checks by magic bytes; (frames, width, height) for GIF, frames for PNG, else None."""
    head = bytes(data[:32])
    if head.startswith(b"GIF8"):
        return _scan_gif(data)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _scan_png(data), 0, 0
    if head.startswith(b"\xff\xd8"):
        _scan_jpeg(data)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        _check_webp_header(head, len(data), max_pixels)
    return None


# --- pricing --------------------------------------------------------------------------------------------

def _bytes_per_pixel(mode: str) -> int:
    # Pillow keeps 1, L and P in one byte, the 16-bit greys in two, everything else in four.
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _price(image: Image.Image, frames: int, width: int, height: int, file_size: int) -> tuple[int, int]:
    """(decoded pixels, peak bytes) of checking every frame of `image`."""
    canvas = width * height
    per_pixel = _bytes_per_pixel(image.mode)
    if image.format == "JPEG":
        # Checked and thumbnailed through libjpeg's 1/8 scaling: every coefficient is read, few are kept.
        reduced = math.ceil(width / 8) * math.ceil(height / 8)
        return reduced, reduced * 4 * 2
    if image.format == "WEBP":
        # libwebp's animation decoder holds the file, its canvases and a copy of each frame, all RGBA
        # (measured: about 16 bytes per canvas pixel at the peak; see also _check_webp_header).
        return canvas * frames, file_size + canvas * 16
    if frames > 1:
        # After the first frame GIFs are composited in RGB(A), APNGs keep a disposal copy of the canvas.
        return canvas * frames, canvas * (per_pixel + 4 + 4)
    return canvas, canvas * per_pixel


def inspect_image(path: Path, max_pixels: int) -> ImagePlan:
    """Price an image from its container structure and headers, decoding nothing. Blocking.

    UnsupportedImage when it is not an acceptable image, ImageTooComplex when it is over a work limit."""
    Image = pillow()
    handle, data = _mapped(path)
    try:
        if len(data) == 0:
            raise UnsupportedImage("the file is empty (0 bytes)")
        head = bytes(data[:16])
        try:
            scanned = _scan(data, max_pixels)
        except (struct.error, IndexError, ValueError) as exc:
            if isinstance(exc, UnsupportedImage):
                raise
            raise UnsupportedImage(f"the image is damaged or truncated ({exc})") from exc
        file_size = len(data)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
        handle.close()  # type: ignore[attr-defined]
    try:
        with Image.open(path, formats=list(IMAGE_FORMATS)) as image:
            if image.format not in IMAGE_FORMATS:  # MPO: a JPEG with several pictures
                raise UnsupportedImage(f"{image.format} images are not accepted; use {ALLOWED_TEXT}")
            width, height = image.size
            frames = 1
            if image.format == "GIF" and scanned:
                frames, width, height = scanned[0], max(width, scanned[1]), max(height, scanned[2])
            elif image.format == "PNG" and scanned:
                frames = min(scanned[0], int(getattr(image, "n_frames", 1) or 1))
            elif image.format == "WEBP":
                frames = int(getattr(image, "n_frames", 1) or 1)
            elif image.format == "BMP" and image.tile and image.tile[0][0] == "bmp_rle" \
                    and file_size > MAX_RLE_BMP_BYTES:
                # Pillow decodes BMP run-length coding in Python, one run at a time.
                raise ImageTooComplex(f"run-length coded BMPs over {MAX_RLE_BMP_BYTES // (1024 * 1024)} MB are "
                                      "not accepted; save it as PNG")
            if width < 1 or height < 1:
                raise UnsupportedImage(f"the image has no pixels ({width}×{height})")
            if width * height > max_pixels:
                raise UnsupportedImage(f"the image has too many pixels: {width}×{height} = {width * height:,}, "
                                       f"over the limit of {max_pixels:,}")
            if frames > MAX_ANIMATION_FRAMES:
                raise ImageTooComplex(f"the animation has {frames:,} frames, over the limit of "
                                      f"{MAX_ANIMATION_FRAMES:,}")
            decode_pixels, memory = _price(image, frames, width, height, file_size)
            if frames > 1 and (frames - 1) * width * height > ANIMATION_PIXEL_BUDGET:
                raise ImageTooComplex(f"the animation has {frames:,} frames of {width}×{height}: checking them "
                                      f"would decode {(frames - 1) * width * height:,} pixels after the first "
                                      f"frame, over the limit of {ANIMATION_PIXEL_BUDGET:,}")
            if memory > DECODE_MEMORY_LIMIT:
                kind = f"{'animated ' if frames > 1 else ''}{image.format}"
                raise ImageTooComplex(f"decoding this {width}×{height} {kind} image would need about "
                                      f"{memory // (1024 * 1024):,} MB of memory, over the limit of "
                                      f"{DECODE_MEMORY_LIMIT // (1024 * 1024):,} MB per image")
            return ImagePlan(format=image.format, width=width, height=height, frames=frames,
                             decode_pixels=decode_pixels, memory_bytes=memory)
    except UnsupportedImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnsupportedImage(f"the image has too many pixels (over the limit of {max_pixels:,}): {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        other = other_format_name(head, _NETPBM_SIGNATURES)
        if other:
            raise UnsupportedImage(f"{other} images are not accepted; use {ALLOWED_TEXT}") from exc
        raise UnsupportedImage(f"not an image this server accepts ({ALLOWED_TEXT})") from exc
    except MemoryError as exc:
        raise ImageTooComplex("the image is too large to decode") from exc
    except Exception as exc:  # Pillow reports damage with many exception types
        raise UnsupportedImage(f"the image is damaged or truncated ({exc})") from exc


# --- decoding -------------------------------------------------------------------------------------------

def decode_image(path: Path, plan: ImagePlan, max_pixels: int) -> CheckedImage:
    """Decode every frame the plan priced, stopping at the CPU limit. Blocking."""
    Image = pillow()
    started = time.thread_time()
    try:
        with Image.open(path, formats=[plan.format]) as image:
            for index in range(plan.frames):
                if index:
                    if time.thread_time() - started > CHECK_CPU_LIMIT_S:
                        raise ImageTooComplex(f"checking its {plan.frames:,} frames took more than "
                                              f"{CHECK_CPU_LIMIT_S:g} s of CPU time")
                    image.seek(index)
                    width, height = image.size
                    if width * height > max_pixels:
                        raise UnsupportedImage(f"a frame grows the image to {width}×{height} pixels, over the "
                                               f"limit of {max_pixels:,}")
                elif plan.format == "JPEG":
                    image.draft(image.mode, (max(1, plan.width // 8), max(1, plan.height // 8)))
                image.load()
        return CheckedImage(ext=plan.ext, width=plan.width, height=plan.height)
    except UnsupportedImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnsupportedImage(f"the image has too many pixels (over the limit of {max_pixels:,}): {exc}") from exc
    except MemoryError as exc:
        raise ImageTooComplex("the image is too large to decode") from exc
    except Exception as exc:
        raise UnsupportedImage(f"the image is damaged or truncated ({exc})") from exc


def _fit(width: int, height: int, box: int) -> tuple[int, int]:
    scale = min(1.0, box / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_thumbnail(path: Path, plan: ImagePlan, size: int) -> tuple[bytes, str]:
    """A JPEG (PNG with transparency) of the first frame, no larger than size×size. Blocking."""
    Image = pillow()
    with Image.open(path, formats=[plan.format]) as image:
        if plan.format == "JPEG":
            image.draft("RGB", (size, size))  # libjpeg decodes at 1/2, 1/4 or 1/8 scale
        has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            image.mode == "P" and "transparency" in image.info)
        image.load()  # the first frame only
        frame: Image.Image = image
        if frame.mode in ("1", "P"):
            # Palette images resize by nearest neighbour only: shrink to twice the target in the palette,
            # then convert the small copy and filter it down properly.
            frame = frame.resize(_fit(*frame.size, 2 * size), Image.Resampling.NEAREST)
        elif max(frame.size) > 2 * size:
            try:
                frame = frame.resize(_fit(*frame.size, 2 * size), Image.Resampling.BOX, reducing_gap=2.0)
            except ValueError:  # a mode resize does not take: convert first (rare modes only)
                frame = frame.convert("RGBA" if has_alpha else "RGB")
                frame = frame.resize(_fit(*frame.size, 2 * size), Image.Resampling.BOX)
        frame = frame.convert("RGBA" if has_alpha else "RGB")
        frame.thumbnail((size, size))
        buffer = io.BytesIO()
        if has_alpha:
            frame.save(buffer, format="PNG")
            return buffer.getvalue(), "image/png"
        frame.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue(), "image/jpeg"


# --- the pools ------------------------------------------------------------------------------------------

def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The C library the process already has loaded: `ctypes.util.find_library` would run `ldconfig -p`
        # in a subprocess at every server start, on the path to its first answer.
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


T = TypeVar("T")
_trim = _malloc_trim()
RELEASE_AFTER_BYTES = 32 * 1024 * 1024


def _then_release_memory(plan: ImagePlan, function: Callable[..., T], *args: object) -> T:
    """Run `function`, then hand a big decode's freed memory back to the system.

    glibc raises its mmap threshold after a big block is freed, so the next decoded image (Pillow allocates
    16 MB blocks) lands in a heap arena and stays resident once freed: a few thumbnails of big images left
    the server holding gigabytes. malloc_trim returns the free pages of every arena."""
    try:
        return function(*args)
    finally:
        if _trim is not None and plan.memory_bytes >= RELEASE_AFTER_BYTES:
            _trim(0)


class ImageWork:
    """Two small thread pools for image work: light (cheap, single-frame) and heavy (one worker, bounded
    queue). Separate from asyncio's default pool, so no image can hold up the rest of the API."""

    def __init__(self, light_workers: int = LIGHT_WORKERS, heavy_workers: int = HEAVY_WORKERS,
                 heavy_queue_limit: int = HEAVY_QUEUE_LIMIT) -> None:
        self._sizes = (light_workers, heavy_workers)
        self._heavy_queue_limit = heavy_queue_limit
        self._lock = threading.Lock()
        self._light: ThreadPoolExecutor | None = None
        self._heavy: ThreadPoolExecutor | None = None
        self._heavy_in_flight = 0

    def _pools(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        with self._lock:
            if self._light is None or self._heavy is None:
                self._light = ThreadPoolExecutor(self._sizes[0], thread_name_prefix="image-light")
                self._heavy = ThreadPoolExecutor(self._sizes[1], thread_name_prefix="image-heavy")
            return self._light, self._heavy

    async def run(self, heavy: bool, function: Callable[..., T], *args: object) -> T:
        light_pool, heavy_pool = self._pools()
        if not heavy:
            return await asyncio.wrap_future(light_pool.submit(function, *args))
        with self._lock:
            if self._heavy_in_flight >= self._heavy_queue_limit:
                raise ApiError(503, "server_busy", "The server is busy checking other large or animated images; "
                               "try this one again in a minute.")
            self._heavy_in_flight += 1
        future = heavy_pool.submit(function, *args)
        future.add_done_callback(self._heavy_done)
        return await asyncio.wrap_future(future)

    def _heavy_done(self, _future: object) -> None:
        with self._lock:
            self._heavy_in_flight -= 1

    async def check(self, path: Path, max_pixels: int) -> CheckedImage:
        """Price on the light pool, then decode on the pool the price calls for."""
        plan = await self.run(False, inspect_image, path, max_pixels)
        return await self.run(plan.heavy, _then_release_memory, plan, decode_image, path, plan, max_pixels)

    async def thumbnail(self, path: Path, size: int, max_pixels: int) -> tuple[bytes, str]:
        plan = await self.run(False, inspect_image, path, max_pixels)
        return await self.run(plan.heavy, _then_release_memory, plan, render_thumbnail, path, plan, size)

    def shutdown(self) -> None:
        """Drop queued work and let running work finish (the process is exiting)."""
        with self._lock:
            pools, self._light, self._heavy = (self._light, self._heavy), None, None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)


image_work = ImageWork()
