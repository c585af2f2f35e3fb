"""Local checks of files picked for a new dataset: folder walks, type checks and hashing, all blocking.

This module owns deciding, before anything is uploaded, which local paths can go into a dataset of a
given type and why the others cannot. `walk_paths()` expands files and folders recursively (following
symbolic links to folders, but never around a loop, and listing broken links and loops with their
reason); `check_file()` reads an image's header with Pillow (format and size, no pixels decoded), checks the
server's limits, then makes sure the image is whole (a JPEG that ends with its end marker; anything else read
to its end by the same opened image) so a file that ends early (damaged, or still being copied) is refused
here with a plain reason instead of by the server; or it checks an audio/video/text file's extension and
content; and it hashes the file (SHA-256, streamed in 1 MiB chunks). Every function here blocks on disk I/O
and is meant to run in a worker thread (plain Python threads of a concurrent.futures executor), so nothing
here may use Qt, not only no widgets. A full UI test run once hung with the GUI thread blocked and a worker
inside QImageReader (which makes a QFile, a QObject, in that plain thread): a Qt call that holds the GIL while
it waits on a Qt-internal lock the GUI thread holds while it waits for the GIL is the likely cause, and it
never occurred again in repeated runs, so it is not proven. Pillow takes no lock the GUI thread could hold, so
images are read with Pillow alone. The server's full decode stays
authoritative; these checks catch what can be caught early at a bounded cost (see `_check_complete`).
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import stat
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from PIL import BmpImagePlugin, GifImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from training_studio.image_headers import other_format_name, webp_canvas

# Pillow warns above ~89 Mpx; the pixel limit here is the server's (checked from the header first), so
# the warning is noise. Set once at import: warnings.catch_warnings is not thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

__all__ = [
    "ScanLimits",
    "AcceptedFile",
    "RejectedFile",
    "DEFAULT_LIMITS",
    "TYPE_EXTENSIONS",
    "walk_paths",
    "check_file",
    "check_files",
    "display_name",
]

CHUNK_BYTES = 1 << 20
HEAD_BYTES = 64
# What the server accepts (see server/images.py), by Pillow's name for the format: the name shown for it and
# what reads its header. The client mirrors the server so users learn early.
IMAGE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF"}
IMAGE_FORMAT_NAMES = "PNG, JPEG, WebP, BMP or GIF"
_HEADER_READERS = {"PNG": PngImagePlugin.PngImageFile, "JPEG": JpegImagePlugin.jpeg_factory,
                   "WEBP": WebPImagePlugin.WebPImageFile, "BMP": BmpImagePlugin.BmpImageFile,
                   "GIF": GifImagePlugin.GifImageFile}
NO_USABLE_SIZE = "damaged image: its header gives no usable size"
TYPE_EXTENSIONS: dict[str, frozenset[str]] = {
    "audio": frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".m4a", ".m4b",
                        ".mp3"}),
    "video": frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}),
    "text": frozenset({".txt", ".text", ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".yaml",
                       ".yml", ".xml", ".html", ".rst"}),
}
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
ENDS_EARLY = "the file ends early: it is damaged or still being copied"
# GIF, BMP and WebP have no cheap partial decode: they are decoded in full up to this many pixels (about
# 160 MB of RGBA at most per worker); bigger ones are left to the server. JPEG is decoded at 1/8 scale
# (the whole stream is still read) and PNG checked chunk by chunk, so their cost stays small at any size.
FULL_DECODE_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class ScanLimits:
    """The server's limits, from /api/health (the embedded server's defaults when it does not say)."""

    max_upload_bytes: int = 200 * 1000 * 1000
    max_pixels: int = 100_000_000


DEFAULT_LIMITS = ScanLimits()


@dataclass(frozen=True)
class AcceptedFile:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    kind: str                # the dataset type it was checked for
    format: str              # "PNG", "WAV", "TXT"… for display
    width: int | None = None
    height: int | None = None

    @property
    def name(self) -> str:
        return display_name(self.path)


@dataclass(frozen=True)
class RejectedFile:
    path: str
    reason: str              # one human phrase: "not an image", "empty file (0 bytes)"…

    @property
    def name(self) -> str:
        return display_name(self.path)


class _Rejected(Exception):
    """Internal: a check failed; the message is the reason shown to the user."""


def display_name(path: str) -> str:
    """The last path component, safe to show on one line (control characters made visible)."""
    base = os.path.basename(path.rstrip(os.sep)) or path
    return "".join(ch if ch.isprintable() else "\N{SYMBOL FOR NEWLINE}" if ch == "\n" else "\N{REPLACEMENT CHARACTER}"
                   for ch in base)


# walking -----------------------------------------------------------------------------------------
def walk_paths(paths: Iterable[str]) -> tuple[list[str], list[RejectedFile]]:
    """Expand files and folders into regular-file candidates (sorted per folder) plus what cannot be used.

    Links to folders are followed, except back into a folder that is already being walked (a loop) or
    one already walked (it would only add duplicates). Blocking.
    """
    files: list[str] = []
    rejected: list[RejectedFile] = []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()

    def add_file(path: str) -> None:
        if path not in seen_files:
            seen_files.add(path)
            files.append(path)

    def classify(path: str) -> os.stat_result | None:
        """stat() following links; None (and a rejection) when that is impossible."""
        try:
            return os.stat(path)
        except OSError as exc:
            is_link = os.path.islink(path)
            if exc.errno == errno.ELOOP:
                rejected.append(RejectedFile(path, "symbolic link loop (the link points back to itself)"))
            elif is_link and exc.errno == errno.ENOENT:
                target = _readlink(path)
                rejected.append(RejectedFile(path, f"broken symbolic link (its target {target} does not exist)"))
            elif exc.errno == errno.ENOENT:
                rejected.append(RejectedFile(path, "does not exist"))
            else:
                rejected.append(RejectedFile(path, f"unreadable ({exc.strerror or exc})"))
            return None

    def walk_dir(root: str, root_stat: os.stat_result) -> None:
        # Iterative, so deep trees cannot hit the recursion limit; each entry carries its ancestors.
        stack: list[tuple[str, tuple[tuple[int, int], ...]]] = [(root, ((root_stat.st_dev, root_stat.st_ino),))]
        seen_dirs.add((root_stat.st_dev, root_stat.st_ino))
        while stack:
            folder, ancestors = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    names = sorted(entry.name for entry in entries)
            except OSError as exc:
                rejected.append(RejectedFile(folder, f"folder unreadable ({exc.strerror or exc})"))
                continue
            subfolders: list[tuple[str, tuple[tuple[int, int], ...]]] = []
            for name in names:
                path = os.path.join(folder, name)
                info = classify(path)
                if info is None:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    key = (info.st_dev, info.st_ino)
                    if key in ancestors:
                        rejected.append(RejectedFile(path, "symbolic link loop (it points back to a folder "
                                                           "that contains it); not followed"))
                    elif key in seen_dirs:
                        rejected.append(RejectedFile(path, "folder already added through another path; "
                                                           "not walked twice"))
                    else:
                        seen_dirs.add(key)
                        subfolders.append((path, ancestors + (key,)))
                elif stat.S_ISREG(info.st_mode):
                    add_file(path)
                else:
                    rejected.append(RejectedFile(path, f"not a regular file ({_kind_of(info.st_mode)})"))
            stack.extend(reversed(subfolders))  # pop() then walks them in name order

    for raw in paths:
        path = os.path.abspath(os.fspath(raw))
        info = classify(path)
        if info is None:
            continue
        if stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in seen_dirs:
                continue  # the same folder dropped twice: nothing new to say
            walk_dir(path, info)
        elif stat.S_ISREG(info.st_mode):
            add_file(path)
        else:
            rejected.append(RejectedFile(path, f"not a regular file ({_kind_of(info.st_mode)})"))
    return files, rejected


def _readlink(path: str) -> str:
    try:
        return repr(os.readlink(path))
    except OSError:
        return "(unknown)"


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe, which cannot be read like a file"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "an unusual file type"


# checking ----------------------------------------------------------------------------------------
def check_files(paths: Iterable[str], kind: str, limits: ScanLimits) -> list[AcceptedFile | RejectedFile]:
    """check_file() over a batch (one executor hop per batch instead of per file). Blocking."""
    return [check_file(path, kind, limits) for path in paths]


def check_file(path: str, kind: str, limits: ScanLimits = DEFAULT_LIMITS) -> AcceptedFile | RejectedFile:
    """Decide whether `path` can go into a dataset of type `kind`; hashes accepted files. Blocking."""
    try:
        return _check(path, kind, limits)
    except _Rejected as rejection:
        return RejectedFile(path, str(rejection))
    except OSError as exc:
        return RejectedFile(path, f"unreadable ({exc.strerror or exc})")


def _check(path: str, kind: str, limits: ScanLimits) -> AcceptedFile:
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        # Never open() a FIFO or device: the read could block forever.
        raise _Rejected(f"not a regular file ({_kind_of(info.st_mode)})")
    if info.st_size == 0:
        raise _Rejected("empty file (0 bytes)")
    if info.st_size > limits.max_upload_bytes:
        raise _Rejected(f"too large: {info.st_size:,} bytes, over the server's limit of "
                        f"{limits.max_upload_bytes:,} bytes")
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    width = height = None
    if kind == "image":
        format_name, width, height = _check_image(path, head, limits)
    elif kind in TYPE_EXTENSIONS:
        extension = os.path.splitext(path)[1].lower()
        if extension not in TYPE_EXTENSIONS[kind]:
            allowed = ", ".join(sorted(TYPE_EXTENSIONS[kind]))
            shown = f"“{extension}” files" if extension else "files without an extension"
            article = "an" if kind[0] in "aeiou" else "a"
            raise _Rejected(f"not {article} {kind} file: {shown} are not accepted (use {allowed})")
        format_name = _check_media(kind, head) if kind != "text" else "TEXT"
    else:
        raise _Rejected(f"datasets of type {kind!r} cannot take files")
    sha256 = _hash(path, info.st_size, text=kind == "text")
    return AcceptedFile(path=path, size=info.st_size, mtime_ns=info.st_mtime_ns, sha256=sha256, kind=kind,
                        format=format_name, width=width, height=height)


def _check_image(path: str, head: bytes, limits: ScanLimits) -> tuple[str, int | None, int | None]:
    format_id = _signature_format(head)
    with open(path, "rb") as handle:  # one open for the header and the completeness check
        if format_id is None:
            other = _other_format(handle, head)
            if other is None:
                raise _Rejected(f"not an image ({IMAGE_FORMAT_NAMES} expected)")
            raise _Rejected(f"{other.upper()} images are not accepted; use {IMAGE_FORMAT_NAMES}")
        canvas = webp_canvas(head) if format_id == "WEBP" else None
        if canvas is not None:
            # Checked before Pillow opens it: its WebP decoder sizes its canvases when it is created.
            _check_dimensions(*canvas, limits)
        if format_id == "WEBP" and _riff_is_short(handle, head):
            raise _Rejected(ENDS_EARLY)
        try:
            # The format's own reader, not Image.open(): that one refuses anything over twice Pillow's
            # MAX_IMAGE_PIXELS (process-wide, about 179 Mpx) before the size can be read, and the limit that
            # matters is the server's, checked below with the size in the message. Nothing is decoded here.
            image = _HEADER_READERS[format_id](handle, path)
        except Image.DecompressionBombError:
            # Raised by the few readers that check it themselves (WebP, whose canvas was checked above; a GIF
            # whose first frame outgrows its canvas; a multi-picture JPEG): over Pillow's own ceiling, so the
            # server decides, as in _check_complete.
            return IMAGE_FORMATS[format_id], *(canvas or (None, None))
        except Exception as exc:  # Pillow's readers report a header they cannot read with many exception types
            raise _Rejected(NO_USABLE_SIZE) from exc
        if image.format not in IMAGE_FORMATS:  # MPO: a JPEG with several pictures, which the server refuses
            raise _Rejected(f"{image.format} images are not accepted; use {IMAGE_FORMAT_NAMES}")
        width, height = image.size
        _check_dimensions(width, height, limits)
        _check_complete(image, handle, IMAGE_FORMATS[format_id], width * height)
    return IMAGE_FORMATS[format_id], width, height


def _signature_format(head: bytes) -> str | None:
    """The accepted format whose signature `head` starts with (tested as Pillow's readers test it), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def _other_format(handle: BinaryIO, head: bytes) -> str | None:
    """The name of an image format that is not accepted, only to say so; None if it is no image known here."""
    handle.seek(0)
    try:
        with Image.open(handle) as image:
            if image.format not in IMAGE_FORMATS:
                return image.format
    except Exception:  # Pillow fails in many ways on what it cannot read: not an accepted image either way
        pass
    # Named by their signature when Pillow cannot name them, as the server names them (image_headers), plus
    # SVG, which Qt's reader used to name here.
    name = other_format_name(head)
    if name is None and b"<svg" in head:
        return "SVG"
    return name


def _check_dimensions(width: int, height: int, limits: ScanLimits) -> None:
    if width < 1 or height < 1:
        raise _Rejected(NO_USABLE_SIZE)
    if width * height > limits.max_pixels:
        raise _Rejected(f"too many pixels: {width:,}×{height:,} = {width * height:,}, over the server's limit of "
                        f"{limits.max_pixels:,}")


def _check_complete(image: ImageFile.ImageFile, handle: BinaryIO, format_name: str, pixels: int) -> None:
    """Read the image (opened on `handle` by _check_image) to its end, so a truncated file is refused with
    ENDS_EARLY. Pillow's LOAD_TRUNCATED_IMAGES must be (and by default is) off, or it would pad a short file
    with grey. The header check has already bounded the pixel count by the server's limit."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        ImageFile.LOAD_TRUNCATED_IMAGES = False  # nothing in the app wants half images accepted
    try:
        if format_name == "JPEG" and _ends_with_jpeg_end_marker(handle):
            return
        if format_name == "PNG":
            image.verify()  # every chunk's CRC up to IEND, without decoding pixels
        elif format_name == "JPEG":
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()  # the whole entropy-coded stream, into an image 64 times smaller
        elif pixels <= FULL_DECODE_MAX_PIXELS:
            image.load()
    except Image.DecompressionBombError:
        return  # over Pillow's own ceiling but within the server's: the server decides
    except (EOFError, struct.error) as exc:
        raise _Rejected(ENDS_EARLY) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if "truncated" in str(exc).lower():
            raise _Rejected(ENDS_EARLY) from exc
        raise _Rejected("damaged image: it cannot be decoded") from exc
    except MemoryError:
        return  # not enough memory to check it here: the server decides


def _ends_with_jpeg_end_marker(handle: BinaryIO) -> bool:
    """Whether a JPEG's last two bytes are its end-of-image marker (FF D9): then the file is whole, as far as a
    local check can tell cheaply. A file cut short (still being copied, a broken download) does not end so:
    FF D9 cannot occur inside the entropy-coded data, and a cut inside the headers fails the header read
    before this. Checked this way, a 2 MP photo costs two bytes read instead of a decode of its whole stream
    (about 9 ms of CPU each, on the cores the upload and the server's own check need: a fifth of an import's
    time at 2,000 photos). Anything else (trailing bytes after the marker, as some cameras write) is decoded
    as before; a file damaged in its middle is left to the server's full decode, which refuses it with its
    reason in the import window."""
    handle.seek(0, os.SEEK_END)
    if handle.tell() < 4:
        return False
    handle.seek(-2, os.SEEK_END)
    return handle.read(2) == b"\xff\xd9"


def _riff_is_short(handle: BinaryIO, head: bytes) -> bool:
    """A WebP (RIFF) file shorter than its header says: Pillow reports it only as 'could not create decoder'."""
    if len(head) < 12 or head[:4] != b"RIFF":
        return False
    return os.fstat(handle.fileno()).st_size < struct.unpack("<I", head[4:8])[0] + 8


def _check_media(kind: str, head: bytes) -> str:
    if kind == "audio":
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return "WAV"
        if head[:4] == b"fLaC":
            return "FLAC"
        if head[:4] == b"OggS":
            return "OGG"
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return "AIFF"
        if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
            return "M4A"
        if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
            return "MP3"
        raise _Rejected("not an audio file: its content is not WAV, FLAC, Ogg, AIFF, M4A or MP3")
    if head[4:8] == b"ftyp":
        return "MOV" if head[8:12] == b"qt  " else "MP4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WEBM" if b"webm" in head else "MKV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    raise _Rejected("not a video file: its content is not MP4, MOV, MKV, WebM or AVI")


def _hash(path: str, expected_size: int, *, text: bool) -> str:
    """SHA-256 of the file; for text also checks UTF-8 without NUL in the same single pass."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict") if text else None
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            if decoder is not None:
                if b"\0" in chunk:
                    raise _Rejected("not a text file (it contains NUL bytes)")
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise _Rejected(f"not UTF-8 text (invalid byte at offset {size + exc.start:,})") from exc
            size += len(chunk)
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise _Rejected("not UTF-8 text (it ends inside a character)") from exc
    if size != expected_size:
        raise _Rejected("the file changed while it was being read; add it again")
    return digest.hexdigest()
