"""Materialised dataset layouts that real trainers read, built from the blob store on commit.

Two views of the same files under `datasets/<id>/`, hard-linked from the blob store (copied when the
filesystem refuses links), with file names derived from the content hash only:
- `kohya/<repeats>_<safe name>/<sha256><ext>` with `<sha256>.txt` (the caption) beside each file, as
  kohya sd-scripts' DreamBooth-style folders expect;
- `imagefolder/<sha256><ext>` plus `metadata.jsonl` lines `{"file_name", "text"}`, the Hugging Face
  `imagefolder` format.
Files held out for validation (issue 17) are not in those two but beside them, in the same two shapes:
`validation/kohya/1_<safe name>/` and `validation/imagefolder/` (empty folders when nothing is held out), so
presets can name `{validation_dir}`.
A commit builds everything in a folder that is not live and swaps it into place (one atomic exchange of
the two folders, or two renames where the system has no exchange), so a failed build (full disk) leaves the
previous state untouched; batch caption edits and repeats/validation changes rebuild the same way. The
replaced generation is kept as the dataset's spare under `layout-spares/<id>/` (outside `datasets/`) and
the next rebuild brings it up to date in place instead of starting from nothing: image links that are
right stay, captions are rewritten into the files already there, so a batch edit creates no files (on a
busy disk creating 10,000 small files takes seconds). The spare is never live: whatever state a crash
leaves it in, the next rebuild makes it right (every caption is rewritten, unknown entries removed).
A commit leaves no spare, so one is prepared once the commit has answered, in a daemon thread (hidden as
`layout-spares/.<id>.preparing`, renamed to `<id>` when whole): the first batch edit after a commit finds
it too. A rebuild stops that preparation and carries on from what it built, a removal stops it before
removing; a stop or crash leaves only the hidden folder, which the start-up sweep removes.
A single caption edit rewrites the caption file and metadata.jsonl atomically.
Every generation carries a stamp (`.layout-stamp` beside `kohya/`: a digest of the kohya folder name and of
every file's hash, type, caption and split), written into it before it is swapped in, and rewritten last by a
single caption edit. The database is committed between a rebuild and its swap, so a crash there leaves live
layouts whose stamp no longer matches the database: `stamp_matches` says so, and `bring_in_line` rebuilds
them (dataset_ops runs it for every active dataset at server start, in the background, and before a job is
given a dataset's folders).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import threading
import unicodedata
import uuid
from pathlib import Path

from training_studio.contract import Dataset
from training_studio.atomicfile import write_atomically
from training_studio.server.storage import DEFAULT_REPEATS, BlobInfo, LayoutRow, Storage, make_private_dir

KOHYA_REPEATS = DEFAULT_REPEATS  # a dataset's repeats unless it sets its own (Dataset.repeats)
VALIDATION_DIR = "validation"
METADATA_NAME = "metadata.jsonl"
STAMP_NAME = ".layout-stamp"  # in datasets/<id>/, beside kohya/ and imagefolder/ (trainers are given those)


def safe_folder_name(name: str) -> str:
    """ASCII letters, digits, '-' and '_' from the dataset name (kohya reads the class token from it)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_-")[:60]
    return cleaned or "dataset"


def kohya_folder_name(dataset: Dataset, repeats: int | None = None) -> str:
    if repeats is None:
        repeats = dataset.repeats if dataset.repeats is not None else KOHYA_REPEATS
    return f"{repeats}_{safe_folder_name(dataset.name)}"


def validation_dir(dataset_dir: Path, layout: str) -> Path:
    """The validation subset beside a dataset's layouts (dataset_dir: datasets/<id>)."""
    return Path(dataset_dir) / VALIDATION_DIR / layout


def layout_file_name(blob: BlobInfo) -> str:
    return f"{blob.sha256}{blob.ext}"


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC: do not try to copy onto a full disk
            raise
        shutil.copy2(source, target)


def _write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, text.encode("utf-8"))


def _metadata_text(rows: list[LayoutRow]) -> str:
    """The lines json.dumps({"file_name": ..., "text": ...}, ensure_ascii=False) would write, put together from
    the encoder's string quoting directly: a third of the time for the 10,000 lines of a batch edit."""
    quote = json.encoder.encode_basestring
    return "".join(f'{{"file_name": {quote(sha + ext)}, "text": {quote(caption)}}}\n'
                   for sha, ext, caption, _validation in rows)


def layout_stamp(dataset: Dataset, rows: list[LayoutRow]) -> str:
    """What a generation built from `rows` for `dataset` holds, as one digest: equal stamps, equal layouts.
    A few milliseconds for 10,000 files (one string hashed once)."""
    text = "".join(f"{sha}{ext} {int(validation)} {len(caption)}:{caption}\n" for sha, ext, caption, validation in rows)
    digest = hashlib.sha256(f"{kohya_folder_name(dataset)}\n".encode("utf-8"))
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _write_stamp(root: Path, stamp: str) -> None:
    """The stamp by temp file and rename (never half written; no fsync: it guards against a stopped process,
    and the files it describes are not synced either)."""
    temp = root / f"{STAMP_NAME}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        temp.write_text(stamp, encoding="ascii")
        os.replace(temp, root / STAMP_NAME)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def live_stamp(storage: Storage, dataset_id: str) -> str | None:
    """The stamp of the dataset's live layouts; None when they or their stamp are missing."""
    try:
        return (storage.dataset_dir(dataset_id) / STAMP_NAME).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def stamp_matches(storage: Storage, dataset: Dataset) -> bool:
    """Whether the live layouts are those of the dataset as stored (captions, split, repeats). Blocking."""
    return live_stamp(storage, dataset.id) == layout_stamp(dataset, storage.dataset_layout_rows(dataset.id))


def bring_in_line(storage: Storage, dataset: Dataset) -> bool:
    """Rebuild and swap in the live layouts of a committed dataset when their stamp does not match the
    database (a stop between a change's commit and its swap); True when it rebuilt. The caller holds the
    dataset's lock and has checked no trainer reads the layouts. Blocking; OSError (a full disk)."""
    rows = storage.dataset_layout_rows(dataset.id)
    if live_stamp(storage, dataset.id) == layout_stamp(dataset, rows):
        return False
    swap_in(storage, dataset.id, build(storage, dataset, rows))
    return True


def materialise(storage: Storage, dataset: Dataset) -> None:
    """(Re)build both layouts of `dataset` from its stored files; all or nothing. Blocking. A commit leaves the
    dataset without a spare: the caller starts its preparation with `prepare_missing_spare` when it suits (the
    commit route, once its answer is sent)."""
    swap_in(storage, dataset.id, build(storage, dataset))


def prepare_missing_spare(storage: Storage, dataset: Dataset) -> None:
    """Start preparing the spare of a materialised dataset that has none (and none on the way). Blocking (reads
    the dataset's rows); the preparation itself runs in the background."""
    if not spare_dir(storage, dataset.id).is_dir():
        prepare_spare_later(storage, dataset, storage.dataset_layout_rows(dataset.id))


def spare_preparation_running(storage: Storage, dataset_id: str) -> bool:
    """Whether the dataset's spare is being prepared in the background right now."""
    with _preparations_lock:
        return (str(storage.data_dir), dataset_id) in _preparations


def _split(rows: list[LayoutRow]) -> tuple[list[LayoutRow], list[LayoutRow]]:
    return [row for row in rows if not row.validation], [row for row in rows if row.validation]


def spare_dir(storage: Storage, dataset_id: str) -> Path:
    """The previous generation of a dataset's layouts, kept to be brought up to date by the next rebuild. Outside
    `datasets/` (which holds only live layouts and, briefly, hidden ones being built or removed)."""
    return storage.data_dir / SPARES_DIR / dataset_id


SPARES_DIR = "layout-spares"
PREPARING_SUFFIX = ".preparing"


def preparing_dir(storage: Storage, dataset_id: str) -> Path:
    """Where a spare is prepared in the background (hidden: `layout-spares/<id>` appears only once it is
    whole, by one rename, so its presence is the positive "spare ready" signal; a crash leaves only this
    hidden folder, which the start-up sweep removes)."""
    return storage.data_dir / SPARES_DIR / f".{dataset_id}{PREPARING_SUFFIX}"


class _SparePreparation:
    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.cancelled = threading.Event()


_preparations: dict[tuple[str, str], _SparePreparation] = {}  # (data dir, dataset id) -> the one running
_preparations_lock = threading.Lock()


def prepare_spare_later(storage: Storage, dataset: Dataset, rows: list[LayoutRow]) -> None:
    """Build the dataset's spare in a daemon thread, so the first batch edit after a commit finds one: without
    it that edit creates all 10,000 caption files itself (4 to 8 s on a busy disk, benchmarks/bench_datasets.py)
    while the commit's answer is not delayed either. A rebuild or a removal of the dataset stops it first
    (_stop_preparation) and a rebuild carries on from what it built; a server stop does not wait for it (daemon
    thread; the hidden half-built folder is swept at the next start)."""
    key = (str(storage.data_dir), dataset.id)
    with _preparations_lock:
        if key in _preparations:
            return
        thread = threading.Thread(target=_prepare_spare, args=(storage, dataset, rows), name="prepare-layout-spare",
                                  daemon=True)
        _preparations[key] = _SparePreparation(thread)
        thread.start()  # under the lock: _stop_preparation never finds a thread it cannot join yet


def _stop_preparation(storage: Storage, dataset_id: str) -> None:
    """Stop the background preparation of the dataset's spare (if any) and wait until it has let go of its
    folder: within one file's write. Blocking; worker threads only."""
    with _preparations_lock:
        preparation = _preparations.get((str(storage.data_dir), dataset_id))
    if preparation is None:
        return
    preparation.cancelled.set()
    if preparation.thread is not threading.current_thread():
        preparation.thread.join()


class _Cancelled(Exception):
    pass


def _prepare_spare(storage: Storage, dataset: Dataset, rows: list[LayoutRow]) -> None:
    key = (str(storage.data_dir), dataset.id)
    preparation = _preparations[key]
    folder = preparing_dir(storage, dataset.id)
    try:
        if preparation.cancelled.is_set() or spare_dir(storage, dataset.id).exists():
            return
        make_private_dir(folder.parent)
        training, held_out = _split(rows)
        stop = preparation.cancelled
        _sync_layouts(storage, folder, kohya_folder_name(dataset), training, keep={VALIDATION_DIR, STAMP_NAME},
                      stop=stop)
        _sync_layouts(storage, folder / VALIDATION_DIR, kohya_folder_name(dataset, 1), held_out, stop=stop)
        if not stop.is_set():
            os.rename(folder, spare_dir(storage, dataset.id))  # ready (one step: whole or absent)
    except _Cancelled:
        pass  # a rebuild takes the folder over as it is, or a removal removes it
    except Exception:  # noqa: BLE001 (a full disk, say: no spare then, the next rebuild builds from nothing)
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        with _preparations_lock:
            _preparations.pop(key, None)


def build(storage: Storage, dataset: Dataset, rows: list[LayoutRow] | None = None) -> Path:
    """Build the layouts of `dataset` (from `rows`, else its stored files) in a folder that is not live and
    return it for `swap_in`; nothing is left behind on failure (OSError). Blocking.

    The folder is the dataset's spare (the generation `swap_in` last replaced) when there is one, brought up
    to date in place: its image links stay, files that came or went are linked or removed, and each caption
    is rewritten into the caption file already there. A batch edit of 10,000 captions so creates no file at
    all: on a busy shared disk creating 10,000 small files (new inodes) took 3 to 12 s, rewriting them 0.15 to
    0.35 s (benchmarks/bench_datasets.py). Without a spare the folder is built from nothing beside the live
    one."""
    if rows is None:
        rows = storage.dataset_layout_rows(dataset.id)
    _stop_preparation(storage, dataset.id)
    spare = spare_dir(storage, dataset.id)
    preparing = preparing_dir(storage, dataset.id)
    if spare.is_dir():
        built = spare
        shutil.rmtree(preparing, ignore_errors=True)
    elif preparing.is_dir():
        built = preparing  # a spare whose background preparation this rebuild stopped: carried on from there
    else:
        built = storage.dataset_dir(dataset.id).parent / f".{dataset.id}.building-{uuid.uuid4().hex[:8]}"
    try:
        training, held_out = _split(rows)
        _sync_layouts(storage, built, kohya_folder_name(dataset), training, keep={VALIDATION_DIR, STAMP_NAME})
        _sync_layouts(storage, built / VALIDATION_DIR, kohya_folder_name(dataset, 1), held_out)
        _write_stamp(built, layout_stamp(dataset, rows))  # last: a stamp vouches for everything before it
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)  # a full disk: give back what it holds, spare or not
        raise
    return built


def discard_build(built: Path) -> None:
    shutil.rmtree(built, ignore_errors=True)


def swap_in(storage: Storage, dataset_id: str, built: Path) -> None:
    """Put a built layout folder in place of the live one in one step (an atomic exchange of the two folders
    where the system has one, else two renames) and keep the replaced one as the dataset's spare."""
    final = storage.dataset_dir(dataset_id)
    spare = spare_dir(storage, dataset_id)
    if not final.exists():
        os.replace(built, final)
        return
    try:
        exchanged = _exchange(built, final)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    if exchanged:
        previous = built  # the replaced generation now sits where the built one was
    else:
        previous = final.parent / f".{dataset_id}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, previous)
        try:
            os.replace(built, final)
        except BaseException:
            os.replace(previous, final)
            shutil.rmtree(built, ignore_errors=True)
            raise
    if previous == spare:
        return
    try:
        if spare.exists():
            # A spare built for other files (a first build beside it): out of the way now, removed in the
            # background, since removing its files is not part of the swap the caller waits for.
            doomed = final.parent / f".{dataset_id}.old-{uuid.uuid4().hex[:8]}"
            os.replace(spare, doomed)
            threading.Thread(target=shutil.rmtree, args=(doomed,), kwargs={"ignore_errors": True},
                             name="remove-old-layout", daemon=True).start()
        make_private_dir(spare.parent)
        os.replace(previous, spare)
    except OSError:
        shutil.rmtree(previous, ignore_errors=True)  # no spare then; the next rebuild starts from nothing


# renameat2(RENAME_EXCHANGE) swaps two paths atomically (Linux 3.15+, glibc 2.28+); elsewhere, or on a file
# system without it, swap_in falls back to two renames.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
except (AttributeError, OSError, TypeError):
    _renameat2 = None


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step; False when the system cannot (nothing changed then)."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(error, os.strerror(error), str(second))


def _remove_entry(folder: Path, name: str) -> None:
    path = folder / name
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _sync_folder(folder: Path, wanted_dir: str) -> Path:
    """`folder/wanted_dir` as the only entry of `folder`: an existing folder there is renamed to it (kohya's
    `<repeats>_<name>` after a repeats change keeps its files), anything else removed."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = os.listdir(folder)
    target = folder / wanted_dir
    if wanted_dir not in entries:
        reusable = [name for name in entries if (folder / name).is_dir() and not (folder / name).is_symlink()]
        if reusable:
            os.rename(folder / reusable[0], target)
            entries.remove(reusable[0])
        else:
            target.mkdir()
    for name in entries:
        if name != wanted_dir:
            _remove_entry(folder, name)
    return target


def _sync_layouts(storage: Storage, root: Path, kohya_folder: str, rows: list[LayoutRow], *,
                  keep: set[str] | None = None, stop: threading.Event | None = None) -> None:
    """Make `root` hold exactly the kohya folder and the imagefolder of `rows` (and the `keep` entries),
    keeping what is right already."""
    root.mkdir(parents=True, exist_ok=True)
    for extra in set(os.listdir(root)) - {"kohya", "imagefolder", *(keep or ())}:
        _remove_entry(root, extra)
    kohya = _sync_folder(root / "kohya", kohya_folder)
    images = root / "imagefolder"
    images.mkdir(exist_ok=True)
    images_wanted = {row.sha256 + row.ext for row in rows}
    # A text dataset's file already has the caption's name: writing the caption there would write through the
    # hard link into the stored blob itself, so it has none.
    captions = {row.sha256 + ".txt": row.caption for row in rows if row.ext != ".txt"}
    _sync_entries(storage, kohya, images_wanted, captions, stop)
    _sync_entries(storage, images, images_wanted, {METADATA_NAME: _metadata_text(rows)}, stop)


def _sync_entries(storage: Storage, folder: Path, images: set[str], texts: dict[str, str],
                  stop: threading.Event | None = None) -> None:
    """Make `folder` hold exactly `images` (linked from the blob store) and the files `texts` (name -> text).
    Relative to open folder descriptors: a batch caption edit goes over 10,000 files' worth of layout and must
    stay within a second (benchmarks/bench_datasets.py), so no path is resolved twice."""
    present = set(os.listdir(folder))
    for name in present - images - texts.keys():
        _remove_entry(folder, name)
    blobs = os.open(storage.data_dir / "blobs", os.O_RDONLY | os.O_DIRECTORY)
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in images - present:
            if stop is not None and stop.is_set():
                raise _Cancelled
            sha = name.split(".", 1)[0]
            _link_at(storage, blobs, f"{sha[:2]}/{sha}", folder_fd, folder, name)
        for name, text in texts.items():
            if stop is not None and stop.is_set():
                raise _Cancelled
            _rewrite_at(folder, folder_fd, name, text.encode("utf-8"), name in present)
    finally:
        os.close(blobs)
        os.close(folder_fd)


def _rewrite_at(folder: Path, folder_fd: int, name: str, data: bytes, present: bool) -> None:
    """`name` in the folder holds exactly `data`: written over the file already there (no new file to
    create) unless that is not a plain file of its own (a hard link to a blob, say), which is replaced."""
    handle = -1
    size = 0
    if present:
        try:
            handle = os.open(name, os.O_WRONLY | os.O_NOFOLLOW, dir_fd=folder_fd)
            info = os.fstat(handle)
            size = info.st_size
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                os.close(handle)
                handle = -1
                size = 0
                os.unlink(name, dir_fd=folder_fd)
        except FileNotFoundError:
            handle = -1
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EISDIR):  # a link or a folder by that name
                raise
            _remove_entry(folder, name)
    if handle < 0:
        handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=folder_fd)
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += os.pwrite(handle, view[offset:], offset)
        # Cut after writing (not truncate-then-write): ext4 flushes a file cut to nothing when it is closed.
        if size > len(data):
            os.ftruncate(handle, len(data))
    finally:
        os.close(handle)


def _link_at(storage: Storage, blobs_fd: int, source: str, folder_fd: int, folder: Path, name: str) -> None:
    try:
        os.link(source, name, src_dir_fd=blobs_fd, dst_dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC: do not try to copy onto a full disk
            raise
        # Copied under a temporary name, then renamed: a copy cut short (a crash) is never taken for the
        # image by a later rebuild of this folder.
        partial = folder / f".{name}.copying"
        try:
            shutil.copy2(storage.data_dir / "blobs" / source, partial)
            os.replace(partial, folder / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise


def update_caption(storage: Storage, dataset: Dataset, sha256: str) -> None:
    """Bring a committed dataset's caption file and metadata.jsonl in step with storage, then its stamp (a
    stop before that leaves a stamp that does not match: the next start rebuilds). Blocking."""
    live = root = storage.dataset_dir(dataset.id)
    if not root.is_dir():
        return
    all_rows = rows = storage.dataset_layout_rows(dataset.id)
    found = next((row for row in rows if row.sha256 == sha256), None)
    if found is None:
        return
    if found.validation:
        root = root / VALIDATION_DIR
    rows = [row for row in rows if row.validation == found.validation]
    for folder in (root / "kohya").glob("*"):
        if folder.is_dir() and found.ext != ".txt":  # a text file is its own caption file (see _sync_layouts)
            _write_text_atomically(folder / f"{sha256}.txt", found.caption)
    imagefolder = root / "imagefolder"
    if imagefolder.is_dir():
        _write_text_atomically(imagefolder / METADATA_NAME, _metadata_text(rows))
    _write_stamp(live, layout_stamp(dataset, all_rows))


def remove_layouts(storage: Storage, dataset_id: str) -> None:
    """The live layouts and the spare (the spare first: it is the one nothing else would ever remove), after
    stopping the spare's background preparation, so nothing writes there afterwards."""
    _stop_preparation(storage, dataset_id)
    shutil.rmtree(preparing_dir(storage, dataset_id), ignore_errors=True)
    shutil.rmtree(spare_dir(storage, dataset_id), ignore_errors=True)
    shutil.rmtree(storage.dataset_dir(dataset_id), ignore_errors=True)
