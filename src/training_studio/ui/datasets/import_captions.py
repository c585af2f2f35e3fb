"""Captions that come with dropped images, and the repeats of kohya `<repeats>_<name>` folders; blocking.

This module owns pairing the caption files of an image import with their images, before anything is
checked or uploaded: `split_captions()` takes the walked candidate paths and separates the caption sources
(`name.txt`, `name.caption` beside `name.<image ext>`, and an imagefolder's `metadata.jsonl` /
`metadata.csv` with `file_name` + `text`) from the files to check. Where several sources exist for one
image the order is `.txt`, then `.caption`, then metadata (kohya's own default extension first); each such
case is reported as a `CaptionConflict` naming the one chosen. A caption file without an image, or one that
cannot be used (over MAX_CAPTION_FILE_BYTES, not UTF-8, over the server's 10,000 characters) is reported as
a `RejectedFile` note. It also reports the kohya folders (`10_cats`) the images sit in, whose number is the
dataset's repeats. `split_captions` reads files and is meant to run in a worker thread; `kohya_repeats` and
`folder_dataset_name` (the name a dropped folder gives a dataset: `10_cats` gives "cats") only read names.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from dataclasses import dataclass, field

from training_studio.ui.datasets.import_scan import RejectedFile, display_name

__all__ = ["CaptionConflict", "CaptionScan", "split_captions", "kohya_repeats", "folder_dataset_name",
           "CAPTION_EXTENSIONS", "METADATA_NAMES", "MAX_CAPTION_FILE_BYTES", "MAX_METADATA_BYTES", "MAX_CAPTION_CHARS",
           "ORDER_TEXT"]

CAPTION_EXTENSIONS = (".txt", ".caption")  # in order of precedence
METADATA_NAMES = ("metadata.jsonl", "metadata.csv")
MAX_CAPTION_FILE_BYTES = 64 * 1024
# A metadata file holds every caption of its folder: 10,000 captions of a few hundred characters fit.
MAX_METADATA_BYTES = 32 * 1024 * 1024
MAX_CAPTION_CHARS = 10_000  # the server's limit for one caption
MAX_REPEATS = 10_000        # the server's limit for a dataset's repeats
_KOHYA_FOLDER = re.compile(r"^(\d+)_(.+)$")
ORDER_TEXT = "order: .txt, then .caption, then metadata"


@dataclass(frozen=True)
class CaptionConflict:
    image: str                 # the image's path
    chosen: str                # the source used: a caption file's path, or "metadata.jsonl"'s path
    unused: tuple[str, ...]    # the other sources found for it

    def describe(self) -> str:
        others = ", ".join(display_name(path) for path in self.unused)
        return f"{display_name(self.image)}: {display_name(self.chosen)} chosen over {others}"


@dataclass
class CaptionScan:
    media: list[str] = field(default_factory=list)        # candidates that are not caption sources
    captions: dict[str, str] = field(default_factory=dict)  # image path -> caption (non-empty)
    sources: dict[str, str] = field(default_factory=dict)   # image path -> the source file used
    conflicts: list[CaptionConflict] = field(default_factory=list)
    notes: list[RejectedFile] = field(default_factory=list)  # caption files not used, with why
    kohya_folders: list[tuple[str, int]] = field(default_factory=list)  # (folder, repeats), first seen first


class _Unusable(Exception):
    """A caption source cannot be used; the message is the note shown to the user."""


def kohya_repeats(folder: str) -> int | None:
    """The repeats of a kohya `<repeats>_<name>` folder name, or None when it is not one."""
    match = _KOHYA_FOLDER.match(os.path.basename(folder.rstrip(os.sep)))
    if match is None:
        return None
    repeats = int(match.group(1))
    return repeats if 1 <= repeats <= MAX_REPEATS else None


def folder_dataset_name(folder: str) -> str:
    """The dataset name a folder suggests: its own name, without the `<repeats>_` of a kohya folder
    ("10_cats" gives "cats"; "0_cats", not a kohya folder, stays whole); "" for a file system's root."""
    base = os.path.basename(folder.rstrip(os.sep)).strip()
    match = _KOHYA_FOLDER.match(base)
    if match is not None and kohya_repeats(base) is not None and match.group(2).strip():
        return match.group(2).strip()
    return base


def _is_caption_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in CAPTION_EXTENSIONS


def _is_metadata(name: str) -> bool:
    return name.lower() in METADATA_NAMES


def _read_text(path: str, limit: int) -> str:
    size = os.stat(path).st_size
    if size > limit:
        raise _Unusable(f"caption file over {limit // 1024:,} KiB ({size:,} bytes): not used")
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _Unusable(f"caption file over {limit // 1024:,} KiB: not used")
    try:
        return codecs.decode(data, "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Unusable(f"caption file is not UTF-8 text (byte {exc.start:,}): not used") from exc


def _clean(caption: str) -> str:
    caption = caption.strip()
    if len(caption) > MAX_CAPTION_CHARS:
        raise _Unusable(f"caption of {len(caption):,} characters, over the server's limit of "
                        f"{MAX_CAPTION_CHARS:,}: not used")
    return caption


def _read_metadata(path: str) -> dict[str, str]:
    """image path -> caption from one metadata.jsonl / metadata.csv (file_name relative to its folder)."""
    text = _read_text(path, MAX_METADATA_BYTES)
    rows: list[object] = []
    if path.lower().endswith(".jsonl"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise _Unusable(f"metadata line {number:,} is not JSON ({exc.msg}): not used") from exc
    else:
        try:
            rows = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as exc:
            raise _Unusable(f"metadata is not readable CSV ({exc}): not used") from exc
    folder = os.path.dirname(path)
    captions: dict[str, str] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        name, caption = row.get("file_name"), row.get("text")
        if not isinstance(name, str) or not isinstance(caption, str) or not name.strip():
            continue
        captions[os.path.normpath(os.path.join(folder, name))] = caption
    if rows and not captions:
        raise _Unusable("metadata without “file_name” and “text” columns: not used")
    return captions


def split_captions(candidates: list[str]) -> CaptionScan:
    """Separate caption sources from the files to check and pair them; see the module docstring. Blocking."""
    scan = CaptionScan()
    caption_files: dict[tuple[str, str], dict[str, str]] = {}  # (folder, stem) -> {extension: path}
    metadata_files: list[str] = []
    for path in candidates:
        name = os.path.basename(path)
        if _is_metadata(name):
            metadata_files.append(path)
        elif _is_caption_file(name):
            stem, extension = os.path.splitext(name)
            caption_files.setdefault((os.path.dirname(path), stem), {})[extension.lower()] = path
        else:
            scan.media.append(path)

    from_metadata: dict[str, tuple[str, str]] = {}  # image path -> (caption, metadata path)
    for path in metadata_files:
        try:
            for image, caption in _read_metadata(path).items():
                from_metadata.setdefault(image, (caption, path))
        except _Unusable as note:
            scan.notes.append(RejectedFile(path, str(note)))
        except OSError as exc:
            scan.notes.append(RejectedFile(path, f"metadata unreadable ({exc.strerror or exc}): not used"))

    media_keys = {(os.path.dirname(path), os.path.splitext(os.path.basename(path))[0]) for path in scan.media}
    media_paths = {os.path.normpath(path) for path in scan.media}
    for key, by_extension in caption_files.items():
        if key not in media_keys:
            for path in by_extension.values():
                scan.notes.append(RejectedFile(path, "caption file with no image of the same name beside it: "
                                                     "ignored"))
    used_metadata: set[str] = set()
    missing_in_metadata: dict[str, int] = {}
    for image, (_caption, source) in from_metadata.items():
        if image not in media_paths:
            missing_in_metadata[source] = missing_in_metadata.get(source, 0) + 1

    kohya_seen: set[str] = set()
    for path in scan.media:
        folder = os.path.dirname(path)
        if folder not in kohya_seen:
            kohya_seen.add(folder)
            repeats = kohya_repeats(folder)
            if repeats is not None:
                scan.kohya_folders.append((folder, repeats))
        sources: list[tuple[str, str | None]] = []  # (source path, caption when already known)
        by_extension = caption_files.get((folder, os.path.splitext(os.path.basename(path))[0]), {})
        sources.extend((by_extension[ext], None) for ext in CAPTION_EXTENSIONS if ext in by_extension)
        meta = from_metadata.get(os.path.normpath(path))
        if meta is not None:
            sources.append((meta[1], meta[0]))
            used_metadata.add(meta[1])
        chosen: str | None = None
        for source, known in sources:
            try:
                caption = _clean(known if known is not None else _read_text(source, MAX_CAPTION_FILE_BYTES))
            except _Unusable as note:
                scan.notes.append(RejectedFile(source, str(note)) if known is None else
                                  RejectedFile(source, f"caption for {display_name(path)}: {note}"))
                continue
            except OSError as exc:
                scan.notes.append(RejectedFile(source, f"caption file unreadable ({exc.strerror or exc}): "
                                                       "not used"))
                continue
            if not caption:
                continue  # an empty caption file says nothing; the next source may
            chosen = source
            scan.captions[path] = caption
            scan.sources[path] = source
            break
        if chosen is not None and len(sources) > 1:
            scan.conflicts.append(CaptionConflict(path, chosen, tuple(s for s, _ in sources if s != chosen)))
    for source, count in missing_in_metadata.items():
        if source not in used_metadata:
            scan.notes.append(RejectedFile(source, "metadata names no image that was added: ignored"))
        elif source not in {note.path for note in scan.notes}:
            # The file itself is used; the rows without an image are what the user should hear about.
            scan.notes.append(RejectedFile(source, f"{count:,} row{'s' if count != 1 else ''} name no image "
                                                   "that was added: those rows are ignored"))
    return scan
