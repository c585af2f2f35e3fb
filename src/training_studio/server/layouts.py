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
A commit builds everything in a hidden temp directory and renames it into place, so a failed build (full
disk) leaves the previous state untouched; batch caption edits and repeats/validation changes rebuild the
same way (one rename swap). A single caption edit rewrites the caption file and metadata.jsonl atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import unicodedata
import uuid
from pathlib import Path

from training_studio.contract import Dataset
from training_studio.atomicfile import write_atomically
from training_studio.server.storage import DEFAULT_REPEATS, BlobInfo, LayoutRow, Storage

KOHYA_REPEATS = DEFAULT_REPEATS  # a dataset's repeats unless it sets its own (Dataset.repeats)
VALIDATION_DIR = "validation"
METADATA_NAME = "metadata.jsonl"


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
    return "".join(json.dumps({"file_name": row.sha256 + row.ext, "text": row.caption}, ensure_ascii=False) + "\n"
                   for row in rows)


def materialise(storage: Storage, dataset: Dataset) -> None:
    """(Re)build both layouts of `dataset` from its stored files; all or nothing. Blocking."""
    swap_in(storage, dataset.id, build(storage, dataset))


def _split(rows: list[LayoutRow]) -> tuple[list[LayoutRow], list[LayoutRow]]:
    return [row for row in rows if not row.validation], [row for row in rows if row.validation]


def build(storage: Storage, dataset: Dataset, rows: list[LayoutRow] | None = None, *,
          captions_only: bool = False) -> Path:
    """Build the layouts of `dataset` (from `rows`, else its stored files) in a hidden folder beside the live
    one and return it for `swap_in`; nothing is left behind on failure (OSError). Blocking.

    `captions_only`: only captions differ from the live layouts (a batch caption edit), so the imagefolder
    layouts, whose images do not change, are not rebuilt: their new metadata.jsonl is staged and `swap_in`
    moves the live imagefolder folders over (a rename each) before swapping. A third fewer files to write
    keeps 10,000 captions within a second."""
    if rows is None:
        rows = storage.dataset_layout_rows(dataset.id)
    final = storage.dataset_dir(dataset.id)
    reuse = captions_only and all((final / sub / "imagefolder").is_dir() for sub in ("", VALIDATION_DIR))
    built = final.parent / f".{dataset.id}.building-{uuid.uuid4().hex[:8]}"
    try:
        training, held_out = _split(rows)
        _build_layouts(storage, built, kohya_folder_name(dataset), training, imagefolder=not reuse)
        _build_layouts(storage, built / VALIDATION_DIR, kohya_folder_name(dataset, 1), held_out,
                       imagefolder=not reuse)
        if reuse:
            (built / _STAGED_METADATA).write_text(_metadata_text(training), encoding="utf-8")
            (built / VALIDATION_DIR / _STAGED_METADATA).write_text(_metadata_text(held_out), encoding="utf-8")
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return built


_STAGED_METADATA = ".imagefolder-metadata.jsonl"


def discard_build(built: Path) -> None:
    shutil.rmtree(built, ignore_errors=True)


def swap_in(storage: Storage, dataset_id: str, built: Path) -> None:
    """Put a built layout folder in place of the live one: one rename of the folder (after moving the live
    imagefolder layouts over when `build` reused them), then the old one is removed in the background."""
    final = storage.dataset_dir(dataset_id)
    previous = final.parent / f".{dataset_id}.old-{uuid.uuid4().hex[:8]}"
    moved: list[tuple[Path, Path]] = []
    try:
        for sub in (built, built / VALIDATION_DIR):
            staged = sub / _STAGED_METADATA
            if staged.exists():
                live = final / sub.relative_to(built) / "imagefolder"
                os.replace(live, sub / "imagefolder")
                moved.append((sub / "imagefolder", live))
                os.replace(staged, sub / "imagefolder" / METADATA_NAME)
        if final.exists():
            os.replace(final, previous)
        os.replace(built, final)
    except BaseException:
        if previous.exists() and not final.exists():
            os.replace(previous, final)
        for source, live in moved:  # put reused folders back where they were
            if source.exists() and not live.exists():
                os.replace(source, live)
        shutil.rmtree(built, ignore_errors=True)
        raise
    # Out of the way already (a hidden name); removing its files is not part of the swap, so it goes on in
    # the background instead of holding the caller (a batch caption edit) for a third of a second.
    threading.Thread(target=shutil.rmtree, args=(previous,), kwargs={"ignore_errors": True},
                     name="remove-old-layout", daemon=True).start()


def _build_layouts(storage: Storage, root: Path, kohya_folder: str, rows: list[LayoutRow], *,
                   imagefolder: bool = True) -> None:
    kohya = root / "kohya" / kohya_folder
    images = root / "imagefolder"
    kohya.mkdir(parents=True)
    if imagefolder:
        images.mkdir(parents=True)
    # Relative to open folder descriptors: a batch caption edit rebuilds 10,000 files' worth of layout and
    # must stay within a second (benchmarks/bench_datasets.py), so no path is resolved twice.
    blobs = os.open(storage.data_dir / "blobs", os.O_RDONLY | os.O_DIRECTORY)
    kohya_fd = os.open(kohya, os.O_RDONLY | os.O_DIRECTORY)
    images_fd = os.open(images, os.O_RDONLY | os.O_DIRECTORY) if imagefolder else -1
    try:
        for sha, ext, caption, _validation in rows:
            source = f"{sha[:2]}/{sha}"
            name = sha + ext
            _link_at(storage, blobs, source, kohya_fd, kohya, name)
            if imagefolder:
                _link_at(storage, blobs, source, images_fd, images, name)
            if ext == ".txt":
                # A text dataset's file already has the caption's name: writing the caption there would
                # write through the hard link into the stored blob itself.
                continue
            handle = os.open(f"{sha}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=kohya_fd)
            try:
                data = caption.encode("utf-8")
                while data:
                    data = data[os.write(handle, data):]
            finally:
                os.close(handle)
    finally:
        os.close(blobs)
        os.close(kohya_fd)
        if images_fd >= 0:
            os.close(images_fd)
    if imagefolder:
        (images / METADATA_NAME).write_text(_metadata_text(rows), encoding="utf-8")


def _link_at(storage: Storage, blobs_fd: int, source: str, folder_fd: int, folder: Path, name: str) -> None:
    try:
        os.link(source, name, src_dir_fd=blobs_fd, dst_dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC: do not try to copy onto a full disk
            raise
        shutil.copy2(storage.data_dir / "blobs" / source, folder / name)


def update_caption(storage: Storage, dataset: Dataset, sha256: str) -> None:
    """Bring a committed dataset's caption file and metadata.jsonl in step with storage. Blocking."""
    root = storage.dataset_dir(dataset.id)
    if not root.is_dir():
        return
    rows = storage.dataset_layout_rows(dataset.id)
    found = next((row for row in rows if row.sha256 == sha256), None)
    if found is None:
        return
    if found.validation:
        root = root / VALIDATION_DIR
    rows = [row for row in rows if row.validation == found.validation]
    for folder in (root / "kohya").glob("*"):
        if folder.is_dir() and found.ext != ".txt":  # a text file is its own caption file (see _build_layouts)
            _write_text_atomically(folder / f"{sha256}.txt", found.caption)
    imagefolder = root / "imagefolder"
    if imagefolder.is_dir():
        _write_text_atomically(imagefolder / METADATA_NAME, _metadata_text(rows))


def remove_layouts(storage: Storage, dataset_id: str) -> None:
    shutil.rmtree(storage.dataset_dir(dataset_id), ignore_errors=True)
