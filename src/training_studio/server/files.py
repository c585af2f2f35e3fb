"""Dataset files on disk: streaming uploads, content checks, the content-addressed blob store, thumbnails.

An upload streams from the request into a temp file inside the data dir (same filesystem, so the
final `os.replace` is atomic), hashed as it streams and cut off at the size limit. The file is then
checked for its dataset type off the event loop (images priced from their headers and decoded on their
own bounded pools, see images.py; audio and video by magic bytes; text as UTF-8) and only then moved to
`blobs/ab/<sha256>`.
Any failure removes the temp file, so nothing partial is ever left behind. Names sent by clients are
display text only: `clean_display_text` cleans them and no path is ever built from them.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from training_studio.server import images, layouts
from training_studio.atomicfile import write_atomically
from training_studio.server.errors import DISK_FULL_MESSAGE, ApiError, is_disk_full
from training_studio.server.storage import BlobInfo, Storage

log = logging.getLogger(__name__)

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MAX_FILENAME_CHARS = 255
# Serialises "move a blob into place + record it" against "forget a blob + delete its file".
blob_lock = threading.RLock()


class UnsupportedFile(ValueError):
    """The bytes are not an acceptable file of the dataset's type; the message says why."""


class ImageTooComplex(UnsupportedFile):
    """An image of an accepted kind that costs too much to check or render (frames, pixels, memory, CPU)."""


@dataclass(frozen=True)
class VerifiedFile:
    ext: str
    width: int | None = None
    height: int | None = None


def normalise_sha256(text: str) -> str:
    value = text.strip().lower()
    if not SHA256_PATTERN.match(value):
        raise ApiError(400, "invalid_hash", f"{text[:80]!r} is not a SHA-256 hex digest (64 hex digits).")
    return value


def clean_display_text(text: str | None, fallback: str) -> str:
    """Client-sent names as display text: control and format characters removed, whitespace collapsed,
    length capped; `fallback` when nothing is left (for a file name, its hash)."""
    kept = "".join(ch for ch in (text or "") if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    kept = " ".join(kept.split())[:MAX_FILENAME_CHARS].strip()
    return kept or fallback


def sanitise_caption(caption: str) -> str:
    """Captions keep newlines and tabs but lose other control characters (they end up in text files)."""
    return "".join(ch for ch in caption if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))


# streaming -------------------------------------------------------------------------------------
@dataclass
class StreamedUpload:
    path: Path
    size: int
    sha256: str


async def stream_to_temp(chunks: AsyncIterator[bytes], storage: Storage, max_bytes: int) -> StreamedUpload:
    """Write `chunks` to a temp file in the data dir, hashing as it goes; 413 past `max_bytes`, 507 on a full disk.

    The caller owns the returned file and must remove it (see `discard`) unless it moves it into place.
    """
    storage.tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=storage.tmp_dir)
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(413, "too_large", f"The file is larger than the server's limit of "
                                   f"{max_bytes:,} bytes.")
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            # fsync of a large file can take a while: keep it off the event loop.
            await asyncio.to_thread(os.fsync, handle.fileno())
    except BaseException as exc:
        discard(path)
        if is_disk_full(exc):
            raise ApiError(507, "insufficient_storage", DISK_FULL_MESSAGE) from exc
        raise
    return StreamedUpload(path=path, size=size, sha256=digest.hexdigest())


def discard(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# content checks --------------------------------------------------------------------------------
def verify_file(path: Path, kind: str, max_pixels: int) -> VerifiedFile:
    """Check a stored upload against its dataset type; UnsupportedFile says what is wrong. Blocking."""
    if path.stat().st_size == 0:
        raise UnsupportedFile("the file is empty (0 bytes)")
    if kind == "image":
        return _verify_image(path, max_pixels)
    if kind == "text":
        return _verify_text(path)
    with open(path, "rb") as handle:
        head = handle.read(64)
    if kind == "audio":
        return _verify_audio(head)
    if kind == "video":
        return _verify_video(head)
    raise UnsupportedFile(f"datasets of type {kind!r} cannot take files")


def _verify_image(path: Path, max_pixels: int) -> VerifiedFile:
    try:
        checked = images.decode_image(path, images.inspect_image(path, max_pixels), max_pixels)
    except images.ImageTooComplex as exc:
        raise ImageTooComplex(str(exc)) from exc
    except images.UnsupportedImage as exc:
        raise UnsupportedFile(str(exc)) from exc
    return VerifiedFile(ext=checked.ext, width=checked.width, height=checked.height)


async def verify_upload(path: Path, kind: str, max_pixels: int) -> VerifiedFile:
    """`verify_file` off the event loop: images on their own bounded pools (see images.py), the cheap
    magic-byte and UTF-8 checks of the other kinds on the default pool."""
    if kind != "image":
        return await asyncio.to_thread(verify_file, path, kind, max_pixels)
    if (await asyncio.to_thread(os.path.getsize, path)) == 0:
        raise UnsupportedFile("the file is empty (0 bytes)")
    try:
        checked = await images.image_work.check(path, max_pixels)
    except images.ImageTooComplex as exc:
        raise ImageTooComplex(str(exc)) from exc
    except images.UnsupportedImage as exc:
        raise UnsupportedFile(str(exc)) from exc
    return VerifiedFile(ext=checked.ext, width=checked.width, height=checked.height)


def _verify_text(path: Path) -> VerifiedFile:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                if b"\0" in chunk:
                    raise UnsupportedFile("not a text file (it contains NUL bytes)")
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise UnsupportedFile(f"not UTF-8 text (invalid byte at offset {offset + exc.start})") from exc
    return VerifiedFile(ext=".txt")


_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}


def _verify_audio(head: bytes) -> VerifiedFile:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return VerifiedFile(ext=".wav")
    if head[:4] == b"fLaC":
        return VerifiedFile(ext=".flac")
    if head[:4] == b"OggS":
        return VerifiedFile(ext=".ogg")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return VerifiedFile(ext=".aiff")
    if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
        return VerifiedFile(ext=".m4a")
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return VerifiedFile(ext=".mp3")
    raise UnsupportedFile("not an audio file this server recognises (WAV, FLAC, Ogg, AIFF, M4A or MP3)")


def _verify_video(head: bytes) -> VerifiedFile:
    if head[4:8] == b"ftyp":
        return VerifiedFile(ext=".mov" if head[8:12] == b"qt  " else ".mp4")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return VerifiedFile(ext=".webm" if b"webm" in head else ".mkv")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return VerifiedFile(ext=".avi")
    raise UnsupportedFile("not a video file this server recognises (MP4, MOV, MKV, WebM or AVI)")


# blob store ------------------------------------------------------------------------------------
def move_into_store(storage: Storage, temp_path: Path, sha256: str) -> bool:
    """Move a verified temp file to its blob path; False if the blob was already there (temp removed)."""
    target = storage.blob_path(sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        discard(temp_path)
        return False
    os.chmod(temp_path, 0o600)  # uploads are the user's private data (see storage.PRIVATE_FILE_MODE)
    os.replace(temp_path, target)
    return True


def remove_blob_files(storage: Storage, hashes: list[str]) -> None:
    for sha in hashes:
        discard(storage.blob_path(sha))
        thumbs = storage.data_dir / "thumbnails" / sha[:2]
        if thumbs.is_dir():
            for thumb in thumbs.glob(f"{sha}-*"):
                discard(thumb)


def sweep_temp_files(storage: Storage) -> None:
    """Start-up cleanup after a crash: unfinished uploads, half-built layouts, blobs nothing references."""
    for leftover in storage.tmp_dir.glob("*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            discard(leftover)
    datasets_root = storage.data_dir / "datasets"
    known_datasets = storage.dataset_ids()
    for entry in datasets_root.glob("*"):
        if entry.name.startswith(".") or entry.name not in known_datasets:
            shutil.rmtree(entry, ignore_errors=True)
    # Kept generations of deleted datasets, and spares whose background preparation a stop or crash cut short
    # (hidden `.<id>.preparing`, never a known id; such a dataset's next rebuild starts from nothing).
    for entry in (storage.data_dir / layouts.SPARES_DIR).glob("*"):
        if entry.name not in known_datasets:
            shutil.rmtree(entry, ignore_errors=True)
    known_blobs = storage.referenced_blobs()
    with blob_lock:
        for blob in (storage.data_dir / "blobs").glob("*/*"):
            if blob.name not in known_blobs:
                log.info("removing unreferenced blob %s", blob.name)
                discard(blob)


# thumbnails ------------------------------------------------------------------------------------
def _cached_thumbnail(storage: Storage, sha256: str, size: int) -> tuple[bytes, str] | None:
    for ext, media in ((".jpg", "image/jpeg"), (".png", "image/png")):
        cached = storage.thumbnail_path(sha256, size, ext)
        if cached.exists():
            return cached.read_bytes(), media
    return None


async def thumbnail(storage: Storage, blob: BlobInfo, size: int, max_pixels: int) -> tuple[bytes, str]:
    """A JPEG (or PNG for images with transparency) no larger than size×size, cached on disk.

    A cached one is read on the default pool; rendering runs on the image pools (first frame only, at
    reduced size, priced from the headers first: see images.py). FileNotFoundError when the blob is gone."""
    cached = await asyncio.to_thread(_cached_thumbnail, storage, blob.sha256, size)
    if cached is not None:
        return cached
    try:
        data, media = await images.image_work.thumbnail(storage.blob_path(blob.sha256), size, max_pixels)
    except images.ImageTooComplex as exc:
        raise ImageTooComplex(str(exc)) from exc
    except images.UnsupportedImage as exc:
        raise UnsupportedFile(str(exc)) from exc
    ext = ".png" if media == "image/png" else ".jpg"
    await asyncio.to_thread(_cache_thumbnail, storage.thumbnail_path(blob.sha256, size, ext), data)
    return data, media


def _cache_thumbnail(path: Path, data: bytes) -> None:
    # The cache is an optimisation: a full disk must not fail the request.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
    except OSError as exc:
        log.warning("could not cache thumbnail %s: %s", path.name, exc)
