"""Resumable dataset uploads: the local manifest and the `DatasetUploader` that sends what the server lacks.

An upload follows the contract's content-addressed protocol: the dataset is created (`processing`),
each file is PUT under its SHA-256, then the dataset is committed. Before the first byte is sent the
app writes an `UploadManifest` (dataset id, and each file's path, size, mtime and SHA-256) to
`<data dir>/uploads/<dataset id>.json`, atomically (temp file + rename), so an upload cut short by a
closed app or a vanished server can be resumed at the next launch, or its dataset deleted.
`DatasetUploader` owns one run over a manifest: it asks the server which files it already has, checks
that the others are unchanged on disk (same size and mtime), and streams them, a few in flight, in
1 MiB chunks read in an executor (never a whole file in memory). It reports per-file states and overall
bytes as signals, progress at most every PROGRESS_INTERVAL_S (per-chunk signals would repaint the panel
hundreds of times a second on the GUI thread); a server rejection marks that file only, while losing the
server, a conflict or a cancel stops the run and keeps the manifest. Committing is not its business: the
user commits once every file is stored or rejected. The manifest also keeps the captions found beside the
files and a kohya folder's repeats (issue 17), so a resumed upload still sends them before its commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient
from training_studio.client.errors import (
    ApiError,
    AuthFailed,
    CannotConnect,
    Conflict,
    NotFound,
    RequestRejected,
)
from training_studio.contract.models import format_timestamp, utc_now

__all__ = [
    "ManifestFile",
    "UploadManifest",
    "ManifestError",
    "DatasetUploader",
    "manifest_path",
    "save_manifest",
    "load_manifests",
    "remove_manifest",
    "changed_files",
    "MAX_IN_FLIGHT",
]

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MAX_IN_FLIGHT = 4
CHUNK_BYTES = 1 << 20
PUT_ATTEMPTS = 2
RETRY_DELAY_S = 0.5
# Progress reaches the GUI at most this often: per-chunk signals repaint the bar and the grid hundreds of
# times a second for no visible gain. The last figure of a run is always sent.
PROGRESS_INTERVAL_S = 0.08
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class ManifestError(ValueError):
    """A manifest file cannot be read or is not one of ours; the message says which and why."""


@dataclass(frozen=True)
class ManifestFile:
    path: str
    filename: str
    size: int
    mtime_ns: int
    sha256: str
    caption: str | None = None  # found beside the file at import; sent before the commit


@dataclass
class UploadManifest:
    dataset_id: str
    dataset_name: str
    dataset_type: str
    server_url: str
    files: list[ManifestFile] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: format_timestamp(utc_now()))
    repeats: int | None = None  # from a dropped kohya `<repeats>_<name>` folder; set before the commit

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # Optional fields are written only when set, so a manifest without captions reads as before.
        data["files"] = [{key: value for key, value in file.items() if key != "caption" or value is not None}
                         for file in data["files"]]
        if data["repeats"] is None:
            del data["repeats"]
        return {"version": MANIFEST_VERSION, **data}

    @classmethod
    def from_json(cls, data: Any) -> UploadManifest:
        try:
            if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
                raise ManifestError("not an upload manifest of this app version")
            files = [ManifestFile(path=str(item["path"]), filename=str(item["filename"]), size=int(item["size"]),
                                  mtime_ns=int(item["mtime_ns"]), sha256=str(item["sha256"]),
                                  caption=_optional_str(item.get("caption")))
                     for item in data["files"]]
            repeats = data.get("repeats")
            return cls(dataset_id=str(data["dataset_id"]), dataset_name=str(data["dataset_name"]),
                       dataset_type=str(data["dataset_type"]), server_url=str(data.get("server_url", "")),
                       files=files, created_at=str(data.get("created_at", "")),
                       repeats=int(repeats) if repeats is not None else None)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ManifestError):
                raise
            raise ManifestError(f"the manifest is incomplete or damaged ({exc})") from exc


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# manifest files (blocking: run them in an executor) ------------------------------------------------------
def manifest_path(data_dir: Path, dataset_id: str) -> Path:
    # Ids come from the server: only a plain one becomes a file name, anything else is hashed.
    stem = dataset_id if _SAFE_ID.match(dataset_id) and dataset_id not in (".", "..") else \
        "id-" + hashlib.sha256(dataset_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Path(data_dir) / "uploads" / f"{stem}.json"


def save_manifest(data_dir: Path, manifest: UploadManifest) -> Path:
    """Write the manifest atomically: a reader sees the old file or the complete new one, never half."""
    target = manifest_path(data_dir, manifest.dataset_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(manifest.to_json(), handle, ensure_ascii=False, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise
    return target


def load_manifests(data_dir: Path) -> tuple[list[UploadManifest], list[str]]:
    """Every readable manifest (oldest first) and one sentence per unreadable one (those are left in place)."""
    folder = Path(data_dir) / "uploads"
    manifests: list[tuple[str, UploadManifest]] = []
    problems: list[str] = []
    if not folder.is_dir():
        return [], []
    for path in sorted(folder.glob("*.json")):
        try:
            manifest = UploadManifest.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            problems.append(f"The upload manifest {path.name} cannot be used: {exc}.")
            continue
        manifests.append((manifest.created_at, manifest))
    manifests.sort(key=lambda pair: pair[0])
    return [manifest for _, manifest in manifests], problems


def remove_manifest(data_dir: Path, dataset_id: str) -> None:
    try:
        manifest_path(data_dir, dataset_id).unlink()
    except FileNotFoundError:
        pass


def changed_files(files: list[ManifestFile]) -> dict[str, str]:
    """sha256 → why, for files that are gone or differ from what the manifest recorded. Blocking."""
    changed: dict[str, str] = {}
    for file in files:
        try:
            info = os.stat(file.path)
        except FileNotFoundError:
            changed[file.sha256] = "the source file is gone since it was added"
            continue
        except OSError as exc:
            changed[file.sha256] = f"the source file is unreadable now ({exc.strerror or exc})"
            continue
        if info.st_size != file.size or info.st_mtime_ns != file.mtime_ns:
            changed[file.sha256] = "the source file changed since it was added (size or date differ); add it again"
    return changed


class _LocalReadFailed(Exception):
    """Reading the source file failed mid-upload; deliberately not an OSError, so the client cannot
    mistake it for a network failure."""


class _StopRun(Exception):
    """Stops every transfer of the run: the server is gone, refuses the dataset, or the token is wrong."""


class DatasetUploader(QObject):
    """One upload run over a manifest; see the module docstring. Start `run()` as a task and keep it."""

    file_started = Signal(str)               # sha256
    file_progress = Signal(str, float)       # sha256, fraction sent
    file_stored = Signal(str)                # sha256
    file_rejected = Signal(str, str, bool)   # sha256, reason, True when the server refused it
    progress_changed = Signal(object, object)  # bytes done, bytes total (Python ints: may exceed 2**31)
    finished = Signal(int, int)              # stored, rejected: every file has an answer
    interrupted = Signal(str)                # why the run stopped early; the manifest is kept

    def __init__(self, client: ApiClient, executor: Executor | None = None, *, max_in_flight: int = MAX_IN_FLIGHT,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self._executor = executor
        self._max_in_flight = max_in_flight
        self._done = 0
        self._total = 0
        self._counted: dict[str, int] = {}  # bytes of each in-flight file already added to _done
        self._last_progress = 0.0  # time.monotonic() of the last progress signal
        self.sent_files: list[str] = []  # hashes actually PUT in this run (the resume tests read it)

    async def run(self, manifest: UploadManifest) -> bool:
        """Upload what the server lacks; True when every file got an answer (stored or rejected)."""
        loop = asyncio.get_running_loop()
        self._done, self._total = 0, manifest.total_bytes
        self._counted = {}
        self._last_progress = 0.0
        self.sent_files = []
        stored_count = rejected_count = 0
        stop_message: str | None = None
        try:
            try:
                on_server = {file.sha256 for file in await self._client.list_dataset_files(manifest.dataset_id)}
            except NotFound as exc:
                raise _StopRun("The dataset no longer exists on the server; nothing more can be sent.") from exc
            except CannotConnect as exc:
                raise _StopRun(f"{exc.message} The upload is paused; resume it when the server is back.") from exc
            except AuthFailed as exc:
                raise _StopRun(f"{exc.message} The upload is paused; reconnect, then resume it.") from exc
            except ApiError as exc:
                raise _StopRun(f"The upload stopped: {plain_server_message(exc.message)}.") from exc
            todo: list[ManifestFile] = []
            for file in manifest.files:
                if file.sha256 in on_server:
                    stored_count += 1
                    self._advance(file.size)
                    self.file_stored.emit(file.sha256)
                else:
                    todo.append(file)
            changed = await loop.run_in_executor(self._executor, changed_files, todo)
            for file in todo:
                if file.sha256 in changed:
                    rejected_count += 1
                    self._advance(file.size)
                    self.file_rejected.emit(file.sha256, changed[file.sha256], False)
            todo = [file for file in todo if file.sha256 not in changed]
            slots = asyncio.Semaphore(self._max_in_flight)
            results: list[bool] = []
            async with asyncio.TaskGroup() as group:
                for file in todo:
                    group.create_task(self._send_one(manifest.dataset_id, file, slots, results))
            stored_count += sum(results)
            rejected_count += len(results) - sum(results)
        except _StopRun as stop:
            stop_message = str(stop)
        except ExceptionGroup as group:  # from the TaskGroup: one transfer stopped the run
            stops, others = group.split(_StopRun)
            if others is not None:
                raise others
            assert stops is not None
            stop_message = str(_first_leaf(stops))
        except asyncio.CancelledError:
            self._emit_progress()
            self.interrupted.emit("The upload was cancelled. It can be resumed or its dataset deleted.")
            raise
        self._emit_progress()  # the last, exact figure (earlier ones may have been held back)
        if stop_message is not None:
            self.interrupted.emit(stop_message)
            return False
        self.finished.emit(stored_count, rejected_count)
        return True

    def _advance(self, size: int) -> None:
        self._done += size
        if self._done >= self._total or self._progress_due():
            self._emit_progress()

    def _progress_due(self) -> bool:
        return time.monotonic() - self._last_progress >= PROGRESS_INTERVAL_S

    def _emit_progress(self) -> None:
        self._last_progress = time.monotonic()
        self.progress_changed.emit(self._done, self._total)

    async def _send_one(self, dataset_id: str, file: ManifestFile, slots: asyncio.Semaphore,
                        results: list[bool]) -> None:
        async with slots:
            self.file_started.emit(file.sha256)
            self.sent_files.append(file.sha256)
            for attempt in range(1, PUT_ATTEMPTS + 1):
                try:
                    await self._client.upload_file_stream(dataset_id, file.sha256, file.filename,
                                                          self._chunks(file), file.size)
                    break
                except _LocalReadFailed as exc:
                    self._refuse(file, str(exc), by_server=False, results=results)
                    return
                except RequestRejected as exc:  # 400 hash mismatch, 413, 415: this file only
                    self._refuse(file, _server_reason(exc, file.filename), by_server=True, results=results)
                    return
                except CannotConnect as exc:
                    # A PUT is idempotent: one dropped connection is retried before the run pauses.
                    self._rewind(file)
                    if attempt < PUT_ATTEMPTS:
                        await asyncio.sleep(RETRY_DELAY_S)
                        continue
                    raise _StopRun(f"{exc.message} The upload is paused; resume it when the server is "
                                   "back.") from exc
                except NotFound as exc:
                    raise _StopRun("The dataset was deleted on the server; the upload stopped.") from exc
                except Conflict as exc:
                    raise _StopRun("The server no longer takes files for this dataset: "
                                   f"{plain_server_message(exc.message)}.") from exc
                except AuthFailed as exc:
                    raise _StopRun(f"{exc.message} The upload is paused; reconnect, then resume it.") from exc
                except ApiError as exc:  # 5xx (507 disk full…) or a malformed answer
                    raise _StopRun(f"The upload stopped: {plain_server_message(exc.message)}.") from exc
                except BaseException:
                    self._rewind(file)
                    raise
            self._finish_file(file)
            results.append(True)
            self.file_stored.emit(file.sha256)

    def _refuse(self, file: ManifestFile, reason: str, *, by_server: bool, results: list[bool]) -> None:
        self._rewind(file)
        self._advance(file.size)  # an answered file counts as done for the overall bar
        results.append(False)
        self.file_rejected.emit(file.sha256, reason, by_server)

    # progress bookkeeping: bytes of a file in flight count until it fails, then are taken back
    def _rewind(self, file: ManifestFile) -> None:
        counted = self._counted.pop(file.sha256, 0)
        if counted:
            self._done -= counted
            self._emit_progress()

    def _finish_file(self, file: ManifestFile) -> None:
        counted = self._counted.pop(file.sha256, 0)
        self._advance(file.size - counted)
        self.file_progress.emit(file.sha256, 1.0)

    async def _chunks(self, file: ManifestFile) -> AsyncIterator[bytes]:
        """The file's bytes in 1 MiB chunks read off the event loop; exactly `file.size` of them."""
        loop = asyncio.get_running_loop()
        self._counted[file.sha256] = 0
        try:
            handle = await loop.run_in_executor(self._executor, open, file.path, "rb")
        except OSError as exc:
            raise _LocalReadFailed(f"the source file cannot be opened ({exc.strerror or exc})") from exc
        try:
            remaining = file.size
            while remaining > 0:
                try:
                    chunk = await loop.run_in_executor(self._executor, handle.read, min(CHUNK_BYTES, remaining))
                except OSError as exc:
                    raise _LocalReadFailed(f"reading the source file failed ({exc.strerror or exc})") from exc
                if not chunk:
                    raise _LocalReadFailed("the source file got shorter since it was added; add it again")
                remaining -= len(chunk)
                self._counted[file.sha256] += len(chunk)
                # A file's own fraction goes out with the overall figure, not per chunk; its end (1.0)
                # is always reported by _finish_file.
                if remaining and self._progress_due():
                    self.file_progress.emit(file.sha256, (file.size - remaining) / file.size)
                self._advance(len(chunk))
                yield chunk
        finally:
            handle.close()


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _server_reason(error: ApiError, filename: str) -> str:
    """What the server said about one file, as a plain phrase for the Left-out list ("refused by the
    server: the file ends early: …"), not the raw nested message of a client error."""
    return f"refused by the server: {plain_server_message(error.message, filename)}"


_CLIENT_PREFIX = re.compile(r"^The server refused the request \(HTTP \d+\):?\s*")
_TRUNCATED_HINTS = ("truncated", "ends early", "end of file", "premature end")


def plain_server_message(message: str, filename: str | None = None) -> str:
    """A server's refusal as plain text: without our client's "The server refused the request (HTTP n)"
    prefix, a repeat of the file's name, or the decoder's own nested wording in parentheses; a file cut
    short reads as ENDS_EARLY, like the local check says it."""
    from training_studio.ui.datasets.import_scan import ENDS_EARLY

    text = _CLIENT_PREFIX.sub("", message.strip())
    if filename and text.startswith(f"{filename}: "):
        text = text[len(filename) + 2:]
    lowered = text.lower()
    if any(hint in lowered for hint in _TRUNCATED_HINTS):
        return ENDS_EARLY
    # "the image is damaged or truncated (cannot identify image file <_io.BufferedReader …>)": the part in
    # parentheses is the decoder's exception, which helps no one.
    if text.startswith(("the image is damaged", "the image is damaged or truncated")) and " (" in text:
        return "the image is damaged: the server cannot decode it"
    text = text.rstrip(".").strip()
    return text or "no reason given"
