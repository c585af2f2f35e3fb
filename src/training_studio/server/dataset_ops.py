"""The dataset workbench's operations (issue 17), apart from HTTP: batch caption edits (computed off the
event loop, regular expressions bounded in time), the validation pick, the export zip stream, and the
captioning job's image folder and read-back. Also the per-dataset locks that keep commit, caption edits,
re-materialisation and delete of one dataset from interleaving (routes_datasets and the job runner share
them), the check that puts live layouts back in line with the database after a stop between a change's
commit and its layout swap (at server start, in the background, and before a job is given a dataset), and the
spares prepared after that check for the datasets that have none.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from training_studio.contract import Dataset, DatasetFile
from training_studio.server import layouts
from training_studio.server.files import sanitise_caption
from training_studio.server.storage import BlobInfo, LayoutRow, Storage

log = logging.getLogger(__name__)

dataset_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

MAX_CAPTION_CHARS = 10_000
# A regular expression gets this long over the whole selection, then the request fails (422): a
# catastrophic pattern costs one worker thread for at most this long, and `regex` releases the GIL while it
# matches (concurrent=True), so other clients are not slowed meanwhile.
REGEX_TIME_LIMIT_S = 5.0
MAX_REGEX_INPUT_CHARS = 50_000_000  # the selection's captions together
DRY_RUN_EXAMPLES = 5
CHANGES_CHARS_LIMIT = 2_000_000  # before+after text returned with an applied batch (the undo data)
CAPTION_FILE_LIMIT = 64 * 1024  # a captioner's .txt file read back; longer ones are cut to MAX_CAPTION_CHARS


class CaptionOpError(ValueError):
    """The operation cannot be applied (a pattern that does not compile); the message says why."""


class CaptionOpConflict(CaptionOpError):
    """The operation cannot be applied to these captions (a result over the length limit, a pattern too slow
    over them, too much text for one regular expression request): it depends on what the captions are now."""

    def __init__(self, message: str, code: str = "pattern_too_slow") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CaptionOp:
    op: str
    text: str = ""
    find: str = ""
    replace: str = ""
    ignore_case: bool = False


def compute_caption_changes(op: CaptionOp, captions: list[tuple[str, str]],
                            restore: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(sha256, before, after) for each selected caption the operation changes, in the given order.
    Blocking (run in a worker thread); CaptionOpError for a bad or too slow pattern or a too long result."""
    transform = _transform(op, sum(len(caption) for _sha, caption in captions))
    changes = []
    for sha, before in captions:
        after = sanitise_caption(restore[sha]) if restore is not None else transform(before)
        if len(after) > MAX_CAPTION_CHARS:
            raise CaptionOpConflict(f"the caption of {sha} would be {len(after):,} characters long, over the limit "
                                    f"of {MAX_CAPTION_CHARS:,}; nothing was changed", "caption_too_long")
        if after != before:
            changes.append((sha, before, after))
    return changes


def _transform(op: CaptionOp, total_chars: int):  # noqa: ANN202 (a caption -> caption function)
    text = sanitise_caption(op.text)
    if op.op == "prefix":
        return lambda caption: text + caption
    if op.op == "suffix":
        return lambda caption: caption + text
    if op.op == "set":
        return lambda caption: text
    if op.op == "clear":
        return lambda caption: ""
    if op.op == "restore":  # the new captions come from the request (compute_caption_changes)
        return lambda caption: caption
    if op.op in ("replace", "regex_replace") and not op.find:
        return lambda caption: caption  # nothing to find: nothing changes
    if op.op == "replace":
        replacement = sanitise_caption(op.replace)
        if not op.ignore_case:
            return lambda caption: caption.replace(op.find, replacement)
        regex = _regex()
        pattern = regex.compile(regex.escape(op.find), regex.IGNORECASE)
        return lambda caption: pattern.sub(lambda _m: replacement, caption)
    if op.op == "regex_replace":
        if total_chars > MAX_REGEX_INPUT_CHARS:
            raise CaptionOpConflict(f"the selection's captions ({total_chars:,} characters) are too many for one regular "
                                 f"expression request (at most {MAX_REGEX_INPUT_CHARS:,}); select fewer files")
        regex = _regex()
        try:
            # VERSION0: Python `re` syntax; no fuzzy matching or other extensions to surprise anyone.
            pattern = regex.compile(op.find, regex.VERSION0 | (regex.IGNORECASE if op.ignore_case else 0))
        except (regex.error, OverflowError, RecursionError) as exc:
            raise CaptionOpError(f"find: not a valid regular expression: {exc}") from None
        expand = _template(sanitise_caption(op.replace), pattern)
        deadline = time.monotonic() + REGEX_TIME_LIMIT_S

        def substitute(caption: str) -> str:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaptionOpConflict(f"the regular expression took longer than {REGEX_TIME_LIMIT_S:g} s over the "
                                     "selection; nothing was changed (simplify the pattern)")
            try:
                return pattern.sub(expand, caption, timeout=remaining, concurrent=True)
            except TimeoutError:
                raise CaptionOpConflict(f"the regular expression took longer than {REGEX_TIME_LIMIT_S:g} s over the "
                                        "selection; nothing was changed (simplify the pattern)") from None
        return substitute
    raise CaptionOpError(f"op: unknown operation {op.op!r}")


_TEMPLATE_TOKEN = r"\\(?:(\d{1,2})|g<([A-Za-z_][A-Za-z0-9_]*|\d{1,2})>|(\\))"


def _regex():  # noqa: ANN202 (the `regex` module)
    """The `regex` module, imported on the first caption edit that needs it, not at the server's start (its
    import costs about 20 ms, all of it before a server's first answer otherwise)."""
    import regex

    return regex


def _template(replace: str, pattern: Any):  # noqa: ANN202 (a match -> text function)
    """The replacement of a regex_replace as a function of the match: \\1…\\99 and \\g<name> insert
    groups, \\\\ is one backslash, everything else (also a group the pattern lacks) is literal text, so
    no replacement text is ever refused."""
    groups = pattern.groups
    names = set(pattern.groupindex)
    texts: list[str] = []  # literal text before each group reference, then the text after the last one
    references: list[int | str] = []
    pending = ""
    position = 0
    for token in _regex().finditer(_TEMPLATE_TOKEN, replace):
        number, name, backslash = token.group(1), token.group(2), token.group(3)
        pending += replace[position:token.start()]
        position = token.end()
        if backslash:
            pending += "\\"
            continue
        key = number if number is not None else name
        if key.isdigit() and 0 < int(key) <= groups:
            reference: int | str = int(key)
        elif not key.isdigit() and key in names:
            reference = key
        else:
            pending += token.group(0)  # no such group: literal
            continue
        texts.append(pending)
        references.append(reference)
        pending = ""
    texts.append(pending + replace[position:])
    if not references:
        literal = texts[0]
        return lambda _match: literal

    def expand(match: Any) -> str:
        out = [texts[0]]
        for reference, text in zip(references, texts[1:]):
            out.append(match.group(reference) or "")
            out.append(text)
        return "".join(out)
    return expand


def validation_pick(hashes: list[str], percent: float) -> set[str]:
    """`percent` % of the files (rounded, at least one when percent > 0 and there are two or more files),
    chosen reproducibly: the lowest hashes of (sha256 + "validation"), so the pick does not depend on upload
    order and changes little when files are added."""
    if percent <= 0 or not hashes:
        return set()
    count = round(len(hashes) * percent / 100)
    count = max(count, 1 if len(hashes) > 1 else 0)
    count = min(count, len(hashes) - 1)
    ranked = sorted(hashes, key=lambda sha: hashlib.sha256((sha + "validation").encode()).hexdigest())
    return set(ranked[:count])


def rows_with_captions(storage: Storage, dataset_id: str, captions: dict[str, str]) -> list[LayoutRow]:
    """The dataset's layout rows as they will be once `captions` (sha256 -> caption) are stored."""
    return [LayoutRow(sha, ext, captions.get(sha, caption), validation)
            for sha, ext, caption, validation in storage.dataset_layout_rows(dataset_id)]


# export ----------------------------------------------------------------------------------------
EXPORT_CHUNK = 1024 * 1024


class _ZipPipe:
    """A write-only, non-seekable sink for zipfile whose written bytes are taken out as they come."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts = []
        return data


def export_names(entries: list[tuple[DatasetFile, BlobInfo]]) -> dict[str, str]:
    """sha256 -> a file name for the export: the display name's stem (made safe) with the stored type's
    extension, made unique by the hash's start when two files share a stem."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for file, blob in entries:
        stem = layouts.safe_folder_name(Path(file.filename).stem) if file.filename else blob.sha256
        name = f"{stem}{blob.ext}"
        if name.lower() in used:
            name = f"{stem}-{blob.sha256[:12]}{blob.ext}"
        used.add(name.lower())
        names[blob.sha256] = name
    return names


def export_zip(storage: Storage, dataset: Dataset, layout: str) -> Iterator[bytes]:
    """The dataset as a zip in `layout` (kohya: `<repeats>_<name>/` with a .txt beside each image;
    imagefolder: the images with metadata.jsonl), validation files under `validation/`; streamed a chunk
    at a time, never the whole archive in memory. Blocking generator (Starlette runs it in a thread)."""
    entries = storage.dataset_file_entries(dataset.id)
    names = export_names(entries)
    training = [entry for entry in entries if not entry[0].validation]
    held_out = [entry for entry in entries if entry[0].validation]
    pipe = _ZipPipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for prefix, group, repeats in (("", training, None), ("validation/", held_out, 1)):
            if prefix and not group:
                continue
            if layout == "kohya":
                folder = f"{prefix}{layouts.kohya_folder_name(dataset, repeats)}/"
            else:
                folder = prefix
            for file, blob in group:
                name = names[blob.sha256]
                yield from _add_file(archive, pipe, storage.blob_path(blob.sha256), folder + name)
                if layout == "kohya":
                    archive.writestr(folder + Path(name).stem + ".txt", (file.caption or "").encode("utf-8"),
                                     compress_type=zipfile.ZIP_DEFLATED)
            if layout == "imagefolder":
                lines = "".join(json.dumps({"file_name": names[blob.sha256], "text": file.caption or ""},
                                           ensure_ascii=False) + "\n" for file, blob in group)
                archive.writestr(folder + layouts.METADATA_NAME, lines.encode("utf-8"),
                                 compress_type=zipfile.ZIP_DEFLATED)
            chunk = pipe.take()
            if chunk:
                yield chunk
    yield pipe.take()


def _add_file(archive: zipfile.ZipFile, pipe: _ZipPipe, source: Path, arcname: str) -> Iterator[bytes]:
    info = zipfile.ZipInfo.from_file(source, arcname)
    info.compress_type = zipfile.ZIP_STORED  # images are compressed already
    with open(source, "rb") as handle, archive.open(info, "w", force_zip64=True) as target:
        while True:
            block = handle.read(EXPORT_CHUNK)
            if not block:
                break
            target.write(block)
            data = pipe.take()
            if data:
                yield data
    data = pipe.take()
    if data:
        yield data


# captioning jobs -------------------------------------------------------------------------------
CAPTION_INPUT_DIR = "images"


def prepare_caption_folder(storage: Storage, dataset_id: str, output_dir: Path) -> tuple[Path, int]:
    """The folder a caption job's command works in: every image of the dataset as `<sha256><ext>` (linked
    from the blob store), inside the job's output folder, so the tool never writes into the layouts a
    trainer may be reading. Returns the folder and how many images it holds. Blocking."""
    folder = Path(output_dir) / CAPTION_INPUT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    entries = storage.dataset_file_entries(dataset_id)
    for _file, blob in entries:
        target = folder / layouts.layout_file_name(blob)
        if not target.exists():
            layouts.link_or_copy(storage.blob_path(blob.sha256), target)
    return folder, len(entries)


def read_caption_files(storage: Storage, dataset_id: str, folder: Path) -> dict[str, str]:
    """sha256 -> caption from the `<sha256>.txt` files a captioner wrote into `folder` (only files of the
    dataset; surrounding whitespace dropped, control characters removed, cut to the caption limit)."""
    captions: dict[str, str] = {}
    for sha, _caption in storage.dataset_captions(dataset_id):
        path = Path(folder) / f"{sha}.txt"
        try:
            with open(path, "rb") as handle:
                data = handle.read(CAPTION_FILE_LIMIT)
        except (FileNotFoundError, IsADirectoryError):
            continue
        text = sanitise_caption(data.decode("utf-8", "replace").strip())
        captions[sha] = text[:MAX_CAPTION_CHARS]
    return captions


def running_trainers(storage: Storage, dataset_id: str) -> list[str]:
    """Names of running training jobs that read this dataset's layouts (a rebuild would pull their folder
    from under them)."""
    return [job.name for job in storage.jobs_with_status(["running"])
            if job.dataset_id == dataset_id and job.kind != "caption"]




async def store_captions(storage: Storage, dataset: Dataset, captions: dict[str, str]) -> None:
    """Store new captions (sha256 -> caption) in one commit and, for a committed dataset, swap in layouts
    rebuilt with them (one rename): the new layouts are built first, so a failure before the commit (full
    disk) changes nothing. The caller holds the dataset's lock. OSError, LookupError (dataset gone)."""
    built = None
    if dataset.status.value == "active":
        rows = await asyncio.to_thread(rows_with_captions, storage, dataset.id, captions)
        built = await asyncio.to_thread(layouts.build, storage, dataset, rows)
    try:
        stored = await asyncio.to_thread(storage.set_captions, dataset.id, captions)
    except BaseException:
        if built is not None:
            layouts.discard_build(built)
        raise
    if not stored:
        if built is not None:
            layouts.discard_build(built)
        raise LookupError(dataset.id)
    if built is not None:
        if os.environ.get(FAULT_PAUSE_BEFORE_SWAP_ENV):
            await asyncio.to_thread(_fault_pause_before_swap)
        await asyncio.to_thread(layouts.swap_in, storage, dataset.id, built)


# FAULT INJECTION, for the crash tests only (tests/server/test_dataset_workbench.py): set to a file path, this
# variable makes a caption edit that has committed write that file and wait forever before it swaps its layouts
# in, so a test can kill -9 the server exactly between the two steps. Read only here; unset, nothing happens.
FAULT_PAUSE_BEFORE_SWAP_ENV = "TRAINING_STUDIO_FAULT_PAUSE_BEFORE_LAYOUT_SWAP"


def _fault_pause_before_swap() -> None:
    marker = Path(os.environ[FAULT_PAUSE_BEFORE_SWAP_ENV])
    marker.write_text(str(os.getpid()), encoding="ascii")
    threading.Event().wait()


# layouts in line with the database -------------------------------------------------------------
LAYOUTS_CHECKED_MESSAGE = "dataset layouts checked against the database"


async def bring_layouts_in_line(storage: Storage, dataset_id: str) -> bool:
    """Rebuild a committed dataset's live layouts if their stamp does not match the database (a stop between
    a change's commit and its swap: layouts.bring_in_line), under the dataset's lock; True when rebuilt. Left
    as they are while a trainer reads them. OSError (a full disk)."""
    async with dataset_locks[dataset_id]:
        dataset = storage.get_dataset(dataset_id)
        if dataset is None or dataset.status.value != "active":
            return False
        if running_trainers(storage, dataset_id):
            return False
        rebuilt = await asyncio.to_thread(layouts.bring_in_line, storage, dataset)
    if rebuilt:
        log.warning("the layouts of dataset %s did not match the database (a stop between a change and its "
                    "layout swap); rebuilt them", dataset_id)
    return rebuilt


async def bring_all_layouts_in_line(storage: Storage) -> int:
    """`bring_layouts_in_line` for every committed dataset, one at a time (the server's start runs it in the
    background, a moment after its first answers: app.py); how many were rebuilt. Logs
    LAYOUTS_CHECKED_MESSAGE when done."""
    datasets = await asyncio.to_thread(storage.list_datasets)
    rebuilt = 0
    for dataset in datasets:
        if dataset.status.value != "active":
            continue
        try:
            rebuilt += await bring_layouts_in_line(storage, dataset.id)
        except OSError as exc:  # a full disk: the next start, or the next job on it, tries again
            log.error("could not rebuild the layouts of dataset %s: %s", dataset.id, exc)
    log.info("%s: %d rebuilt", LAYOUTS_CHECKED_MESSAGE, rebuilt)
    return rebuilt


# How often the start's spare preparation looks whether the one it began has finished (a stop must not wait).
SPARE_WAIT_POLL_S = 0.2


async def begin_missing_spare(storage: Storage, dataset_id: str) -> None:
    """Start preparing the spare layouts of a committed dataset that has none (layouts.prepare_missing_spare).
    Under the dataset's lock, like every change to it: a delete or an edit that came first wins (the dataset is
    gone, or the edit built what it needed itself), one that comes later stops the preparation as usual."""
    async with dataset_locks[dataset_id]:
        dataset = storage.get_dataset(dataset_id)
        if dataset is None or dataset.status.value != "active":
            return
        try:
            await asyncio.to_thread(layouts.prepare_missing_spare, storage, dataset)
        except OSError as exc:  # a full disk: the first batch edit builds what it needs itself
            log.warning("could not start preparing the spare layouts of dataset %s: %s", dataset_id, exc)


async def prepare_missing_spares(storage: Storage) -> None:
    """After the start's layout check: the spare of every committed dataset that has none (committed by a
    server from before spares, or whose preparation a stop cut short), one dataset at a time, each after the
    previous one is done, so that its first batch edit does not have to create every caption file itself
    (seconds at 10,000 files). An edit or a delete meanwhile stops a preparation as it stops the one after a
    commit."""
    for dataset in await asyncio.to_thread(storage.list_datasets):
        if dataset.status.value != "active":
            continue
        await begin_missing_spare(storage, dataset.id)
        while layouts.spare_preparation_running(storage, dataset.id):
            await asyncio.sleep(SPARE_WAIT_POLL_S)


async def apply_caption_folder(storage: Storage, dataset_id: str, folder: Path) -> int:
    """A finished caption job's read-back: the `.txt` files in `folder` become the dataset's captions (one
    commit, one layout swap). Returns how many captions changed. LookupError when the dataset is gone,
    RuntimeError when a trainer is reading it right now, OSError."""
    async with dataset_locks[dataset_id]:
        dataset = storage.get_dataset(dataset_id)
        if dataset is None:
            raise LookupError(dataset_id)
        found = await asyncio.to_thread(read_caption_files, storage, dataset_id, folder)
        # Off the loop too: up to one row per file (10,000 and more), and other clients wait on the loop.
        current = dict(await asyncio.to_thread(storage.dataset_captions, dataset_id))
        changed = {sha: caption for sha, caption in found.items() if current.get(sha) != caption}
        if not changed:
            return 0
        if dataset.status.value == "active":
            users = running_trainers(storage, dataset_id)
            if users:
                raise RuntimeError(f"the dataset is in use by the running job(s) {', '.join(users[:3])}; "
                                   "run the captioner again when they have finished")
        await store_captions(storage, dataset, changed)
        return len(changed)
