"""The create-dataset store: scans local files, uploads them resumably, commits, and resumes old uploads.

`DatasetImportController` is the one object behind the import panel that does work: widgets forward
intent (`add_paths`, `set_dataset_type`, `start_upload`, `cancel`, `commit`, `resume`, `discard`) and
display what its signals report. It owns the two item models (accepted files, rejected files), the
thumbnail cache, a small thread pool for the blocking checks (walks, header reads, hashing, manifest
writes), the server's limits read from /api/health, the `DatasetUploader` of the current run, and every
asyncio task it starts (kept in a set, so none is lost and all can be cancelled at shutdown).

The flow: EDITING (files are added and checked in the background, in batches that append to the grid)
→ UPLOADING (dataset created `processing`, manifest written, files streamed) → REVIEW (every file is
stored or rejected; the user commits) → committed, `dataset_created(id)`, back to an empty EDITING.
A folder that starts an import with no name of the user's names it (a kohya `<repeats>_<name>` folder by its
<name>; the scan looks whether the path is a folder, off the GUI thread); a name the user types is never
replaced, and Clear forgets a folder's name with its files.
An upload that stops early (cancel, server gone) goes to INTERRUPTED with the manifest kept; so does one
found at start-up from an earlier run: both offer Resume (send only what the server lacks) or Delete.
For image datasets the scan also pairs caption files with their images (import_captions.py, in the worker
thread) and reads a kohya `<repeats>_<name>` folder's repeats; both go into the manifest and are sent just
before the commit (PATCH repeats, then the captions as batch `restore` requests under the body limit), so
the commit materialises the layouts once, with them. Kohya folders with other repeats than the first one
found are set aside (`next_datasets`) and offered one by one, each as its own dataset, after a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import json
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from training_studio.ui.tasks import TaskSet
from training_studio.client import ApiClient
from training_studio.client.errors import ApiError, CannotConnect, Conflict, NotFound
from training_studio.contract.models import DatasetStatus
from training_studio.ui.datasets.import_captions import (
    ORDER_TEXT,
    CaptionConflict,
    folder_dataset_name,
    split_captions,
)
from training_studio.ui.datasets.import_model import FileState, ImportFileModel, RejectedFileModel
from training_studio.ui.datasets.import_scan import (
    DEFAULT_LIMITS,
    AcceptedFile,
    RejectedFile,
    ScanLimits,
    check_files,
    display_name,
    walk_paths,
)
from training_studio.ui.datasets.import_thumbnails import ThumbnailCache
from training_studio.ui.datasets.uploader import (
    DatasetUploader,
    ManifestFile,
    UploadManifest,
    load_manifests,
    remove_manifest,
    save_manifest,
)

__all__ = ["DatasetImportController", "ImportPhase", "UnfinishedUploadWatcher", "DATASET_TYPES", "SCAN_BATCH",
           "uploads_in_progress"]

log = logging.getLogger(__name__)

DATASET_TYPES = ("image", "audio", "video", "text")
SCAN_BATCH = 64  # files per executor hop: small enough to show progress, large enough to be cheap
SCAN_IN_FLIGHT = 2  # batches checked at once: one per worker of the import's thread pool
FLUSH_INTERVAL_S = 0.3
# Captions go to the server as batch `restore` requests of at most this much JSON (the body limit is 1 MiB).
CAPTION_CHUNK_BYTES = 512 * 1024
CONFLICTS_SHOWN = 5       # conflicts spelled out in the caption line; all of them are in its tooltip
CONFLICTS_IN_TOOLTIP = 200


_gc_holds = 0  # scans and uploads (of any controller) under way that keep the older objects frozen


@contextlib.contextmanager
def _young_gc_only() -> Iterator[None]:
    """Keep the collector off the objects that existed when a scan or upload began, until the last one ends.

    A full (oldest-generation) collection walks every tracked object of the process: Qt wrappers, modules,
    the file models, some 10^5 to 10^6 objects, 20-50 ms on the GUI thread, measured as the longest event-loop
    stall of a 2,000-photo upload. Frozen objects are skipped, so those collections shrink to what the
    import itself allocates; unfreezing afterwards hands them back, so no cyclic garbage is kept for good.
    The freeze is process-wide: nothing else in the app may rely on gc.freeze() staying in force.
    """
    global _gc_holds
    if _gc_holds == 0:
        gc.freeze()
    _gc_holds += 1
    try:
        yield
    finally:
        _gc_holds -= 1
        if _gc_holds == 0:
            gc.unfreeze()


class ImportPhase(str, enum.Enum):
    EDITING = "editing"
    UPLOADING = "uploading"
    INTERRUPTED = "interrupted"   # an upload stopped early; resume or delete
    REVIEW = "review"             # every file has an answer; commit when ready
    COMMITTING = "committing"


_LIVE_CONTROLLERS: weakref.WeakSet[DatasetImportController] = weakref.WeakSet()


def uploads_in_progress() -> list[str]:
    """The names of the datasets being uploaded now in this process (for the app's "quit during an
    upload?" question), from the moment Upload is pressed until the commit is answered."""
    return [controller.manifest.dataset_name if controller.manifest is not None else controller.name.strip()
            for controller in list(_LIVE_CONTROLLERS)
            if not controller._closed and controller.phase in (ImportPhase.UPLOADING, ImportPhase.COMMITTING)]


class DatasetImportController(QObject):
    """See the module docstring."""

    phase_changed = Signal(str)              # ImportPhase value
    scanning_changed = Signal(bool)
    scan_progress = Signal(int, int)         # files checked, files found so far
    upload_progress = Signal(object, object)  # bytes done, bytes total
    status_message = Signal(str)             # one line for the status label
    error_occurred = Signal(str)             # something failed; one human sentence
    dataset_created = Signal(str)            # dataset id, after a successful commit
    dataset_deleted = Signal(str)            # an unfinished dataset was deleted on request
    resume_available = Signal(object)        # UploadManifest of an unfinished upload, or None
    form_changed = Signal(str, str)          # name, type: the controller changed them (resume)
    captions_changed = Signal(str, str)      # one line about captions/repeats ("" = none), its tooltip

    def __init__(self, client: ApiClient, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.data_dir = Path(data_dir)
        self.thumbnails = ThumbnailCache(parent=self)
        self.files = ImportFileModel(self.thumbnails, self)
        self.rejected = RejectedFileModel(self)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dataset-import")
        self._tasks = TaskSet("dataset import", self._report_task_failure)
        self._scan_tasks: set[asyncio.Task[Any]] = set()
        self._scan_stopped = False           # the user cancelled checking: do not report "N ready" over it
        self._upload_task: asyncio.Task[Any] | None = None
        self._generation = 0                 # bumped on clear/type change: stale scan results are dropped
        self._roots: list[str] = []          # what the user added, to re-check after a type change
        self._checked = 0
        self._found = 0
        self._limits: ScanLimits | None = None
        self._name = ""
        self._proposed_name = ""  # the name this controller put in (from a folder), not one the user typed
        self._type = "image"
        self._phase = ImportPhase.EDITING
        self._manifest: UploadManifest | None = None
        self._pending: list[UploadManifest] = []
        self._closed = False
        self.uploader = DatasetUploader(client, self._executor, parent=self)
        self.uploader.file_started.connect(lambda sha: self.files.set_state(sha, FileState.UPLOADING))
        self.uploader.file_progress.connect(
            lambda sha, fraction: self.files.set_state(sha, FileState.UPLOADING, progress=fraction))
        self.uploader.file_stored.connect(lambda sha: self.files.set_state(sha, FileState.STORED, progress=1.0))
        self.uploader.file_rejected.connect(self._on_file_rejected)
        self.uploader.progress_changed.connect(self.upload_progress)
        self.uploader.interrupted.connect(self._on_interrupted)
        self._stop_reason = ""
        self._removed: set[str] = set()     # paths the user took out: a re-check (type change) skips them
        self._captions: dict[str, str] = {}  # image path -> caption found beside it
        self._caption_conflicts: list[CaptionConflict] = []
        self._kohya_folders: list[tuple[str, int]] = []  # (folder, repeats) of dropped kohya folders
        self.files.use_captions(self._captions)  # the same dict: tooltips follow it
        self._next_folders: list[tuple[str, int]] = []  # kohya folders with other repeats: datasets to come
        _LIVE_CONTROLLERS.add(self)

    # state ---------------------------------------------------------------------------------------------
    @property
    def phase(self) -> ImportPhase:
        return self._phase

    @property
    def dataset_type(self) -> str:
        return self._type

    @property
    def name(self) -> str:
        return self._name

    @property
    def is_scanning(self) -> bool:
        return bool(self._scan_tasks)

    @property
    def manifest(self) -> UploadManifest | None:
        return self._manifest

    @property
    def pending_uploads(self) -> list[UploadManifest]:
        return list(self._pending)

    @property
    def captions(self) -> dict[str, str]:
        """Image path -> the caption that will be sent with it."""
        return dict(self._captions)

    @property
    def caption_conflicts(self) -> list[CaptionConflict]:
        return list(self._caption_conflicts)

    @property
    def repeats(self) -> int | None:
        """The dataset's repeats from the first kohya `<repeats>_<name>` folder added, or None (server default)."""
        return self._kohya_folders[0][1] if self._kohya_folders else None

    @property
    def next_datasets(self) -> list[tuple[str, int]]:
        """Kohya folders (path, repeats) set aside to be offered as their own datasets after this commit."""
        return list(self._next_folders)

    def caption_summary(self) -> tuple[str, str]:
        """The caption/repeats line of the window and its tooltip (every conflict, with the one chosen)."""
        parts: list[str] = []
        if self._captions:
            count = len(self._captions)
            parts.append(f"{count:,} caption{'s' if count != 1 else ''} found beside the images.")
        conflicts = self._caption_conflicts
        if conflicts:
            shown = "; ".join(conflict.describe() for conflict in conflicts[:CONFLICTS_SHOWN])
            more = f"; and {len(conflicts) - CONFLICTS_SHOWN:,} more" if len(conflicts) > CONFLICTS_SHOWN else ""
            parts.append(f"{len(conflicts):,} with several captions ({ORDER_TEXT}): {shown}{more}.")
        if self._kohya_folders:
            folder, repeats = self._kohya_folders[0]
            parts.append(f"Repeats {repeats:,} from the folder {display_name(folder)}.")
        if self._next_folders:
            others = ", ".join(f"{display_name(f)} (repeats {r:,})" for f, r in self._next_folders[:3])
            more = f" and {len(self._next_folders) - 3:,} more" if len(self._next_folders) > 3 else ""
            parts.append(f"Offered next, each as its own dataset after this one is committed: {others}{more}.")
        details = "\n".join(conflict.describe() for conflict in conflicts[:CONFLICTS_IN_TOOLTIP])
        if len(conflicts) > CONFLICTS_IN_TOOLTIP:
            details += f"\n…and {len(conflicts) - CONFLICTS_IN_TOOLTIP:,} more"
        return " ".join(parts), details

    def _emit_captions(self) -> None:
        self.captions_changed.emit(*self.caption_summary())

    @property
    def limits(self) -> ScanLimits:
        return self._limits or DEFAULT_LIMITS

    def can_upload(self) -> bool:
        return (self._phase == ImportPhase.EDITING and not self.is_scanning and bool(self._name.strip())
                and self.files.count_in(FileState.READY) > 0)

    def can_commit(self) -> bool:
        return self._phase == ImportPhase.REVIEW and self.files.count_in(FileState.STORED) > 0

    def upload_blocker(self) -> str:
        """Why Upload is disabled, as a hint for the button's tooltip ("" when it is enabled)."""
        if self._phase != ImportPhase.EDITING:
            return "An upload is already under way."
        if not self._name.strip():
            return "Give the dataset a name first."
        if self.is_scanning:
            return "Wait until every file is checked."
        if self.files.count_in(FileState.READY) == 0:
            return "Add at least one acceptable file."
        return ""

    def _set_phase(self, phase: ImportPhase) -> None:
        if phase != self._phase:
            self._phase = phase
            self.phase_changed.emit(phase.value)

    # editing -------------------------------------------------------------------------------------------
    def set_name(self, name: str) -> None:
        if name != self._name:
            self._name = name
            self.phase_changed.emit(self._phase.value)  # buttons depend on it

    def set_dataset_type(self, kind: str) -> None:
        """Switch the type; files already added are checked again for the new type."""
        if kind not in DATASET_TYPES or kind == self._type or self._phase != ImportPhase.EDITING:
            return
        self._type = kind
        roots, removed = list(self._roots), set(self._removed)
        self._forget_files()  # a folder's name stays with them: they are checked again
        self._removed = removed  # what the user took out stays out
        self.phase_changed.emit(self._phase.value)
        if roots:
            self._scan_roots(roots)

    def add_paths(self, paths: list[str], refused_urls: list[str] | None = None) -> None:
        """Add files and folders (checked in the background); URLs that are not local files are listed."""
        if refused_urls:
            self.rejected.add([RejectedFile(url, "not a local file: only files and folders on this computer "
                                                 "can be added") for url in refused_urls])
        if not paths:
            return
        if self._phase != ImportPhase.EDITING:
            self.error_occurred.emit("Files cannot be added to a dataset that is being uploaded; "
                                     "commit or delete it first.")
            return
        # One path to start an import with no name of the user's: if it is a folder (the scan looks, off the
        # GUI thread), its name becomes the dataset's.
        name_from = os.path.abspath(paths[0]) if len(paths) == 1 and not self._roots and self._name_is_ours() \
            else None
        # Adding a file (or its folder) again brings back what the user had removed.
        added = [os.path.abspath(path).rstrip(os.sep) for path in paths]
        self._removed = {path for path in self._removed
                         if not any(path == root or path.startswith(root + os.sep) for root in added)}
        self._scan_roots(paths, name_from)

    def _name_is_ours(self) -> bool:
        """Whether the name field holds nothing the user typed: empty, or the name a folder gave it."""
        return not self._name.strip() or self._name == self._proposed_name

    def _propose_name(self, name: str) -> None:
        self._name = self._proposed_name = name
        self.form_changed.emit(self._name, self._type)

    def _scan_roots(self, paths: list[str], name_from: str | None = None) -> None:
        self._roots.extend(paths)
        self._scan_stopped = False
        task = self._tasks.spawn(self._scan(list(paths), self._generation, name_from))
        self._scan_tasks.add(task)
        task.add_done_callback(self._scan_done)
        if len(self._scan_tasks) == 1:
            self.scanning_changed.emit(True)

    def remove_files(self, paths: list[str]) -> int:
        """Take files out of the import (only while editing); how many were removed."""
        if self._phase != ImportPhase.EDITING or not paths:
            return 0
        removed = self.files.remove_paths(paths)
        self._removed.update(file.path for file in removed)
        if removed:
            count = len(removed)
            ready = self.files.count_in(FileState.READY)
            self.status_message.emit(f"{count:,} file{'s' if count != 1 else ''} removed; {ready:,} ready.")
            self.phase_changed.emit(self._phase.value)  # Upload depends on what is left
        return len(removed)

    def clear(self) -> None:
        """Forget every file (only while editing), and the name a folder gave the import with them."""
        if self._phase != ImportPhase.EDITING:
            return
        self._forget_files()
        if self._proposed_name and self._name == self._proposed_name:
            self._name = self._proposed_name = ""
            self.form_changed.emit("", self._type)
        self.phase_changed.emit(self._phase.value)

    def _forget_files(self) -> None:
        self._removed.clear()
        self._generation += 1
        for task in list(self._scan_tasks):
            task.cancel()
        self._roots.clear()
        self._checked = self._found = 0
        self._captions.clear()
        self._caption_conflicts.clear()
        self._kohya_folders.clear()
        self._next_folders.clear()
        self._emit_captions()
        self.files.clear()
        self.rejected.clear()
        self.thumbnails.clear()
        self.scan_progress.emit(0, 0)

    def _scan_done(self, task: asyncio.Task[Any]) -> None:
        self._scan_tasks.discard(task)
        if not self._scan_tasks and not self._closed:
            self.scanning_changed.emit(False)
            self.phase_changed.emit(self._phase.value)
            if self._scan_stopped:
                return
            ready = self.files.count_in(FileState.READY)
            left_out = self.rejected.rowCount()
            self.status_message.emit(f"{ready:,} file{'s' if ready != 1 else ''} ready"
                                     + (f", {left_out:,} left out (see the list for why)." if left_out else "."))

    async def _scan(self, paths: list[str], generation: int, name_from: str | None = None) -> None:
        with _young_gc_only():
            await self._scan_frozen(paths, generation, name_from)

    async def _scan_frozen(self, paths: list[str], generation: int, name_from: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        limits = await self._fetch_limits()
        kind = self._type
        self.status_message.emit("Looking for files…")
        candidates, rejected = await loop.run_in_executor(self._executor, walk_paths, paths)
        if generation != self._generation:
            return
        if name_from is not None and await loop.run_in_executor(self._executor, os.path.isdir, name_from):
            name = folder_dataset_name(name_from)
            if name and generation == self._generation and self._name_is_ours() and name != self._name:
                self._propose_name(name)
        self.rejected.add(rejected)
        if kind == "image":
            # Caption files are read here, off the GUI thread; they are not checked as images.
            captions = await loop.run_in_executor(self._executor, split_captions, candidates)
            if generation != self._generation:
                return
            # Folders set aside for datasets to come contribute nothing (not even notes) to this one.
            self._take_kohya_folders(captions.kohya_folders)
            candidates = [path for path in captions.media if not self._set_aside(path)]
            self.rejected.add([note for note in captions.notes if not self._set_aside(note.path)])
            for path, caption in captions.captions.items():
                if not self._set_aside(path):
                    self._captions.setdefault(path, caption)
            known = {conflict.image for conflict in self._caption_conflicts}
            self._caption_conflicts.extend(c for c in captions.conflicts
                                           if c.image not in known and not self._set_aside(c.image))
            self._emit_captions()
        candidates = [path for path in candidates if not self.files.has_path(path) and path not in self._removed]
        self._found += len(candidates)
        self.scan_progress.emit(self._checked, self._found)
        # Results reach the models at most every FLUSH_INTERVAL_S: each insert makes the grid lay out again,
        # so a few big inserts keep 10,000 files smooth where hundreds of small ones would not.
        buffered: list[AcceptedFile | RejectedFile] = []
        last_flush = time.monotonic()
        # Batches are checked SCAN_IN_FLIGHT at a time (hashing releases the GIL, so both cores hash) and their
        # results taken in order, so the grid fills in the order the files were found.
        batches = [candidates[start:start + SCAN_BATCH] for start in range(0, len(candidates), SCAN_BATCH)]
        in_flight: deque[asyncio.Future[list[AcceptedFile | RejectedFile]]] = deque()
        submitted = 0
        for index, batch in enumerate(batches):
            while submitted < len(batches) and len(in_flight) < SCAN_IN_FLIGHT:
                in_flight.append(loop.run_in_executor(self._executor, check_files, batches[submitted], kind, limits))
                submitted += 1
            results = await in_flight.popleft()
            if generation != self._generation:
                return  # a batch still running finishes unseen: its results are dropped like these
            buffered.extend(results)
            self._checked += len(batch)
            if time.monotonic() - last_flush >= FLUSH_INTERVAL_S or index == len(batches) - 1:
                self._apply_results(buffered)
                buffered = []
                last_flush = time.monotonic()
                self.scan_progress.emit(self._checked, self._found)
                self.status_message.emit(f"Checking files… {self._checked:,} of {self._found:,}")

    def _apply_results(self, results: list[AcceptedFile | RejectedFile]) -> None:
        accepted = [result for result in results if isinstance(result, AcceptedFile)]
        refused = [result for result in results if isinstance(result, RejectedFile)]
        for duplicate, earlier in self.files.add_files(accepted):
            refused.append(RejectedFile(duplicate.path, f"duplicate of {display_name(earlier)} (same content)"))
        self.rejected.add(refused)

    def _take_kohya_folders(self, found: list[tuple[str, int]]) -> None:
        """The first repeats found is this dataset's; folders with other repeats become datasets to come."""
        seen = {folder for folder, _ in self._kohya_folders + self._next_folders}
        for folder, repeats in found:
            if folder in seen:
                continue
            seen.add(folder)
            if not self._kohya_folders or repeats == self._kohya_folders[0][1]:
                self._kohya_folders.append((folder, repeats))
            else:
                self._next_folders.append((folder, repeats))

    def _set_aside(self, path: str) -> bool:
        return any(path.startswith(folder + os.sep) for folder, _ in self._next_folders)

    def _offer_next_dataset(self, folders: list[tuple[str, int]]) -> None:
        """After a commit: the next kohya folder set aside becomes the new import, named after it."""
        if not folders:
            return
        (folder, repeats), rest = folders[0], folders[1:]
        self._next_folders = list(rest)
        self._propose_name(folder_dataset_name(folder))
        self.add_paths([folder])
        self.status_message.emit(f"Next: the folder {display_name(folder)} (repeats {repeats:,}) as its own "
                                 "dataset; check it, then upload.")

    async def _fetch_limits(self) -> ScanLimits:
        if self._limits is None:
            try:
                health = await self.client.health()
            except ApiError:
                return DEFAULT_LIMITS  # the server decides anyway; do not hold up the local checks
            self._limits = ScanLimits(max_upload_bytes=health.max_upload_bytes or DEFAULT_LIMITS.max_upload_bytes,
                                      max_pixels=health.max_pixels or DEFAULT_LIMITS.max_pixels)
        return self._limits

    # uploading -----------------------------------------------------------------------------------------
    def start_upload(self) -> None:
        blocker = self.upload_blocker()
        if blocker:
            self.error_occurred.emit(blocker)
            return
        self._set_phase(ImportPhase.UPLOADING)
        self._upload_task = self._tasks.spawn(self._create_and_upload())

    async def _create_and_upload(self) -> None:
        loop = asyncio.get_running_loop()
        name, kind = self._name.strip(), self._type
        entries = [entry for entry in self.files.entries() if entry.state == FileState.READY]
        self.status_message.emit(f"Creating dataset “{name}”…")
        try:
            dataset = await self.client.create_dataset(name, kind)
        except ApiError as exc:
            self._set_phase(ImportPhase.EDITING)
            self.error_occurred.emit(f"The dataset could not be created: {exc.message}")
            return
        manifest = UploadManifest(
            dataset_id=dataset.id, dataset_name=dataset.name, dataset_type=kind, server_url=self.client.base_url,
            files=[ManifestFile(path=e.file.path, filename=os.path.basename(e.file.path), size=e.file.size,
                                mtime_ns=e.file.mtime_ns, sha256=e.file.sha256,
                                caption=self._captions.get(e.file.path)) for e in entries],
            repeats=self.repeats if kind == "image" else None)
        try:
            await loop.run_in_executor(self._executor, save_manifest, self.data_dir, manifest)
        except OSError as exc:
            # Without a manifest an interrupted upload could not be resumed: send nothing, leave nothing.
            try:
                await self.client.delete_dataset(dataset.id)
            except ApiError:
                log.warning("could not delete the empty dataset %s after the manifest failed", dataset.id)
            self._set_phase(ImportPhase.EDITING)
            self.error_occurred.emit(f"Could not save the upload manifest in {self.data_dir} "
                                     f"({exc.strerror or exc}); nothing was sent.")
            return
        self._manifest = manifest
        await self._run_upload(manifest)

    async def _run_upload(self, manifest: UploadManifest) -> None:
        self._set_phase(ImportPhase.UPLOADING)
        self.files.set_all_states(FileState.QUEUED, only=(FileState.READY, FileState.INTERRUPTED,
                                                          FileState.QUEUED, FileState.UPLOADING))
        self.status_message.emit(f"Uploading {len(manifest.files):,} files to “{manifest.dataset_name}”…")
        try:
            with _young_gc_only():
                complete = await self.uploader.run(manifest)
        except asyncio.CancelledError:
            self._after_stop("The upload was cancelled; resume it or delete the unfinished dataset.")
            raise
        except Exception as exc:  # a bug must not leave the panel stuck in "uploading"
            log.exception("upload of dataset %s failed", manifest.dataset_id)
            self._after_stop(f"The upload stopped unexpectedly: {exc}")
            return
        if complete:
            stored = self.files.count_in(FileState.STORED)
            refused = self.files.count_in(FileState.REJECTED)
            self._set_phase(ImportPhase.REVIEW)
            if stored:
                self.status_message.emit(f"{stored:,} file{'s' if stored != 1 else ''} uploaded"
                                         + (f", {refused:,} refused by the server" if refused else "")
                                         + ". Commit to make the dataset usable.")
            else:
                self.error_occurred.emit("The server accepted none of the files; there is nothing to commit. "
                                         "Delete the empty dataset and try other files.")
        else:
            self._after_stop(self._stop_reason)
            self.error_occurred.emit(self._stop_reason)

    def _on_interrupted(self, reason: str) -> None:
        self._stop_reason = reason

    def _after_stop(self, message: str | None) -> None:
        self.files.set_all_states(FileState.INTERRUPTED, only=(FileState.QUEUED, FileState.UPLOADING))
        self._set_phase(ImportPhase.INTERRUPTED)
        if message:
            self.status_message.emit(message)

    def _on_file_rejected(self, sha256: str, reason: str, by_server: bool) -> None:
        self.files.set_state(sha256, FileState.REJECTED, reason, progress=0.0)
        path = self.files.first_path_of(sha256)
        if path is not None:
            self.rejected.add([RejectedFile(path, reason)], by_server=by_server)

    def cancel(self) -> None:
        """Stop the running scan or upload (an upload can then be resumed or deleted)."""
        if self._phase == ImportPhase.UPLOADING and self._upload_task is not None:
            self._upload_task.cancel()
        elif self._scan_tasks:
            self._generation += 1
            for task in list(self._scan_tasks):
                task.cancel()
            self._scan_stopped = True
            self.status_message.emit("Checking stopped; files not yet checked were left out.")

    def resume(self, manifest: UploadManifest | None = None) -> None:
        """Continue an interrupted upload (this session's, or one found at start-up)."""
        manifest = manifest or self._manifest
        if manifest is None or self._phase in (ImportPhase.UPLOADING, ImportPhase.COMMITTING):
            return
        if manifest is not self._manifest:
            self._load_manifest(manifest)
        self._pending = [m for m in self._pending if m.dataset_id != manifest.dataset_id]
        self._upload_task = self._tasks.spawn(self._run_upload(manifest))

    def _load_manifest(self, manifest: UploadManifest) -> None:
        self._set_phase(ImportPhase.EDITING)
        self.clear()
        self._manifest = manifest
        self._type = manifest.dataset_type
        self._name = manifest.dataset_name
        self.form_changed.emit(self._name, self._type)
        self.files.add_files([
            AcceptedFile(path=file.path, size=file.size, mtime_ns=file.mtime_ns, sha256=file.sha256,
                         kind=manifest.dataset_type,
                         format=(os.path.splitext(file.path)[1].lstrip(".").upper() or manifest.dataset_type))
            for file in manifest.files])
        self._captions.update({file.path: file.caption for file in manifest.files if file.caption})
        if manifest.repeats is not None:
            self._kohya_folders = [(os.path.dirname(manifest.files[0].path) if manifest.files else "",
                                    manifest.repeats)]
        self._emit_captions()
        self._set_phase(ImportPhase.INTERRUPTED)

    def discard(self, manifest: UploadManifest | None = None) -> None:
        """Delete the unfinished dataset on the server and forget its manifest."""
        manifest = manifest or self._manifest
        if manifest is None or self._phase in (ImportPhase.UPLOADING, ImportPhase.COMMITTING):
            return
        self._tasks.spawn(self._discard(manifest))

    async def _discard(self, manifest: UploadManifest) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self.client.delete_dataset(manifest.dataset_id)
        except NotFound:
            pass  # already gone: forgetting the manifest is all that is left
        except ApiError as exc:
            self.error_occurred.emit(f"The unfinished dataset “{manifest.dataset_name}” could not be deleted: "
                                     f"{exc.message}")
            return
        try:
            await loop.run_in_executor(self._executor, remove_manifest, self.data_dir, manifest.dataset_id)
        except OSError as exc:
            log.warning("could not remove the manifest of %s: %s", manifest.dataset_id, exc)
        self._pending = [m for m in self._pending if m.dataset_id != manifest.dataset_id]
        if self._manifest is not None and self._manifest.dataset_id == manifest.dataset_id:
            self._reset_after(f"The unfinished dataset “{manifest.dataset_name}” was deleted.")
        self.dataset_deleted.emit(manifest.dataset_id)
        self.resume_available.emit(self._pending[0] if self._pending else None)

    def _reset_after(self, message: str) -> None:
        self._manifest = None
        self._set_phase(ImportPhase.EDITING)
        self.clear()
        self._name = self._proposed_name = ""
        self.form_changed.emit("", self._type)
        self.upload_progress.emit(0, 0)
        self.status_message.emit(message)

    # committing ----------------------------------------------------------------------------------------
    def commit(self) -> None:
        if not self.can_commit() or self._manifest is None:
            return
        self._set_phase(ImportPhase.COMMITTING)
        self._tasks.spawn(self._commit(self._manifest))

    async def _send_settings(self, manifest: UploadManifest) -> None:
        """Repeats and the captions of the stored files, before the commit (retried by committing again)."""
        if manifest.repeats is not None:
            await self.client.update_dataset(manifest.dataset_id, repeats=manifest.repeats)
        stored = {entry.file.sha256 for entry in self.files.entries() if entry.state == FileState.STORED}
        chunk: dict[str, str] = {}
        chunk_bytes = 0
        for file in manifest.files:
            if not file.caption or file.sha256 not in stored:
                continue
            # Escaped ASCII is the longest the client's JSON can be (\uXXXX per character at worst).
            size = len(json.dumps(file.caption)) + 72  # + the quoted sha256 key and separators
            if chunk and chunk_bytes + size > CAPTION_CHUNK_BYTES:
                await self.client.batch_captions(manifest.dataset_id, "restore", captions=chunk)
                chunk, chunk_bytes = {}, 0
            chunk[file.sha256] = file.caption
            chunk_bytes += size
        if chunk:
            await self.client.batch_captions(manifest.dataset_id, "restore", captions=chunk)

    async def _commit(self, manifest: UploadManifest) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._send_settings(manifest)
        except ApiError as exc:
            self._set_phase(ImportPhase.REVIEW)
            self.error_occurred.emit(f"The captions and repeats could not be saved: {exc.message} "
                                     "Commit again to retry.")
            return
        try:
            dataset = await self.client.commit_dataset(manifest.dataset_id)
        except Conflict as exc:
            self._set_phase(ImportPhase.REVIEW)
            self.error_occurred.emit(f"The dataset could not be committed: {exc.message}")
            return
        except ApiError as exc:
            self._set_phase(ImportPhase.REVIEW)
            self.error_occurred.emit(f"The dataset could not be committed: {exc.message} Try again.")
            return
        if dataset.status != DatasetStatus.ACTIVE:
            self._set_phase(ImportPhase.REVIEW)
            self.error_occurred.emit(f"The server could not finish the dataset (status {dataset.status.value}"
                                     + (f": {dataset.error}" if dataset.error else "") + ").")
            return
        try:
            await loop.run_in_executor(self._executor, remove_manifest, self.data_dir, manifest.dataset_id)
        except OSError as exc:
            log.warning("could not remove the manifest of %s: %s", manifest.dataset_id, exc)
        count = dataset.image_count
        next_folders = list(self._next_folders)
        self._reset_after(f"Dataset “{dataset.name}” is ready with {count:,} file{'s' if count != 1 else ''}.")
        self.dataset_created.emit(dataset.id)
        self._offer_next_dataset(next_folders)

    # unfinished uploads from earlier runs -----------------------------------------------------------------
    def check_unfinished(self) -> None:
        """Look for manifests of uploads that never committed; `resume_available` reports the first."""
        self._tasks.spawn(self._check_unfinished())

    async def _check_unfinished(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            manifests, problems = await loop.run_in_executor(self._executor, load_manifests, self.data_dir)
        except OSError as exc:
            self.error_occurred.emit(f"Unfinished uploads could not be listed: {exc}")
            return
        for problem in problems:
            log.warning(problem)
        pending: list[UploadManifest] = []
        for manifest in manifests:
            try:
                dataset = await self.client.get_dataset(manifest.dataset_id)
            except NotFound:
                await loop.run_in_executor(self._executor, remove_manifest, self.data_dir, manifest.dataset_id)
                continue
            except CannotConnect:
                return  # not connected yet: the panel asks again when the connection is up
            except ApiError as exc:
                log.warning("cannot check unfinished upload %s: %s", manifest.dataset_id, exc)
                continue
            if dataset.status == DatasetStatus.ACTIVE:
                await loop.run_in_executor(self._executor, remove_manifest, self.data_dir, manifest.dataset_id)
                continue
            pending.append(manifest)
        current = self._manifest.dataset_id if self._manifest is not None else None
        self._pending = [m for m in pending if m.dataset_id != current]
        self.resume_available.emit(self._pending[0] if self._pending else None)

    # lifecycle ---------------------------------------------------------------------------------------------
    def _report_task_failure(self, error: BaseException) -> None:
        if not self._closed:
            self.error_occurred.emit(f"Unexpected error: {error}")

    def shutdown(self) -> None:
        """Cancel every task and drop queued thumbnail loads (the manifest stays for the next launch)."""
        if self._closed:
            return
        self._closed = True
        self._tasks.cancel_all()
        self.thumbnails.shutdown()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()


class UnfinishedUploadWatcher(QObject):
    """Tells the app, once connected, whether an earlier upload is waiting to be resumed or deleted.

    The app calls `check()` when its connection comes up (e.g. from the job store's `connection_changed`);
    `found(count)` reports uploads whose dataset is still `processing` on this server, and the app opens
    the import window, whose banner then offers Resume or Delete. Manifests of datasets that are gone or
    already active are left for the import window to clean up.
    """

    found = Signal(int)

    def __init__(self, client: ApiClient, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.data_dir = Path(data_dir)
        self._task: asyncio.Task[Any] | None = None
        self._reported = False

    def check(self) -> None:
        if self._reported or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_event_loop().create_task(self._check())

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            manifests, _problems = await loop.run_in_executor(None, load_manifests, self.data_dir)
        except OSError as exc:
            log.warning("cannot list unfinished uploads: %s", exc)
            return
        waiting = 0
        for manifest in manifests:
            try:
                dataset = await self.client.get_dataset(manifest.dataset_id)
            except CannotConnect:
                return  # try again at the next connection
            except ApiError:
                continue
            if dataset.status == DatasetStatus.PROCESSING:
                waiting += 1
        self._reported = True
        if waiting:
            self.found.emit(waiting)

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
