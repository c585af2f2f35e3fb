"""Materialised dataset layouts that real trainers read, built from the blob store on commit.

Two views of the same files under `datasets/<id>/`, hard-linked from the blob store (copied when the
filesystem refuses links), with file names derived from the content hash only:
- `kohya/<repeats>_<safe name>/<sha256><ext>` with `<sha256>.txt` (the caption) beside each file, as
  kohya sd-scripts' DreamBooth-style folders expect;
- `imagefolder/<sha256><ext>` plus `metadata.jsonl` lines `{"file_name", "text"}`, the Hugging Face
  `imagefolder` format.
A commit builds both in a hidden temp directory and renames it into place, so a failed build (full
disk) leaves the previous state untouched. Caption edits rewrite the caption file and metadata.jsonl
atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
import uuid
from pathlib import Path

from training_studio.contract import Dataset, DatasetFile
from training_studio.server.atomicfile import write_atomically
from training_studio.server.storage import BlobInfo, Storage

KOHYA_REPEATS = 10
METADATA_NAME = "metadata.jsonl"


def safe_folder_name(name: str) -> str:
    """ASCII letters, digits, '-' and '_' from the dataset name (kohya reads the class token from it)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_-")[:60]
    return cleaned or "dataset"


def kohya_folder_name(dataset: Dataset) -> str:
    return f"{KOHYA_REPEATS}_{safe_folder_name(dataset.name)}"


def layout_file_name(blob: BlobInfo) -> str:
    return f"{blob.sha256}{blob.ext}"


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC: do not try to copy onto a full disk
            raise
        shutil.copy2(source, target)


def _write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, text.encode("utf-8"))


def _metadata_text(entries: list[tuple[DatasetFile, BlobInfo]]) -> str:
    lines = [json.dumps({"file_name": layout_file_name(blob), "text": file.caption or ""}, ensure_ascii=False)
             for file, blob in entries]
    return "".join(line + "\n" for line in lines)


def materialise(storage: Storage, dataset: Dataset) -> None:
    """(Re)build both layouts of `dataset` from its stored files; all or nothing. Blocking."""
    entries = storage.dataset_file_entries(dataset.id)
    final = storage.dataset_dir(dataset.id)
    build = final.parent / f".{dataset.id}.building-{uuid.uuid4().hex[:8]}"
    try:
        kohya = build / "kohya" / kohya_folder_name(dataset)
        imagefolder = build / "imagefolder"
        kohya.mkdir(parents=True)
        imagefolder.mkdir(parents=True)
        for file, blob in entries:
            source = storage.blob_path(blob.sha256)
            name = layout_file_name(blob)
            _link_or_copy(source, kohya / name)
            (kohya / f"{blob.sha256}.txt").write_text(file.caption or "", encoding="utf-8")
            _link_or_copy(source, imagefolder / name)
        _write_text_atomically(imagefolder / METADATA_NAME, _metadata_text(entries))
        previous = final.parent / f".{dataset.id}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            os.replace(final, previous)
        os.replace(build, final)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


def update_caption(storage: Storage, dataset: Dataset, sha256: str) -> None:
    """Bring a committed dataset's caption file and metadata.jsonl in step with storage. Blocking."""
    root = storage.dataset_dir(dataset.id)
    if not root.is_dir():
        return
    entries = storage.dataset_file_entries(dataset.id)
    caption = next((file.caption or "" for file, _blob in entries if file.sha256 == sha256), None)
    if caption is None:
        return
    kohya_root = storage.dataset_layout_dir(dataset.id, "kohya")
    for folder in kohya_root.glob("*"):
        if folder.is_dir():
            _write_text_atomically(folder / f"{sha256}.txt", caption)
    imagefolder = storage.dataset_layout_dir(dataset.id, "imagefolder")
    if imagefolder.is_dir():
        _write_text_atomically(imagefolder / METADATA_NAME, _metadata_text(entries))


def remove_layouts(storage: Storage, dataset_id: str) -> None:
    shutil.rmtree(storage.dataset_dir(dataset_id), ignore_errors=True)
