"""The models store: the one object that talks to the server for the Models panel.

`ModelStore` owns the trained-model list (`TrainedModelListModel`, refreshed while the panel is shown and
after every change, see `PollingStore`), the samples image of a model (fetched on demand, decoded off the
GUI thread, cached per model until the model changes), deletes, and checkpoint downloads: streamed from
`/checkpoint` into `<target>.part` with every disk write in a worker thread, renamed onto the target only
when complete, and removed on any failure or cancel so no half-written file is left (ui.downloads holds
those helpers). It also lists the intermediate checkpoints of the model the panel shows
(`intermediate_model`, a `CheckpointTableModel` as the job details' Checkpoints tab has, newest step first;
`request_intermediate`) and saves one of them at a time through its `intermediate_saver` (the same `.part`
streaming). Widgets never call HTTP; each event has its own signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from training_studio.client import ApiClient, ApiError, NotFound
from training_studio.contract.models import TrainedModel
from training_studio.ui.datasets.polling import REFRESH_INTERVAL_S, PollingStore
from training_studio.ui.datasets.store import decode_image
from training_studio.ui.downloads import (
    PART_SUFFIX,
    discard_partial,
    finish_download,
    open_for_writing,
    part_path,
)
from training_studio.ui.jobs.details.checkpoints_store import CheckpointSaver, CheckpointTableModel
from training_studio.ui.models.list_model import TrainedModelListModel

__all__ = ["ModelStore", "PART_SUFFIX"]

log = logging.getLogger(__name__)


class ModelStore(PollingStore):
    """Trained models of one server, kept fresh; see the module docstring."""

    models_changed = Signal()
    samples_loaded = Signal(str, QImage)         # model id, image
    samples_missing = Signal(str, str)           # model id, human text (the trainer made none: not an error)
    samples_failed = Signal(str, str)            # model id, human message
    checkpoint_started = Signal(str, str)        # model id, target path
    checkpoint_progress = Signal(str, object, object)  # model id, bytes done, total bytes or None
    checkpoint_saved = Signal(str, str)          # model id, target path
    checkpoint_failed = Signal(str, str)         # model id, human message
    job_name_known = Signal(str, str)            # training job id, its name (for "Job: …" in the details)
    # model id, "" when its intermediate checkpoints are listed in `intermediate_model`, else why there are none
    intermediate_listed = Signal(str, str)

    def __init__(self, client: ApiClient, *, interval: float = REFRESH_INTERVAL_S,
                 parent: QObject | None = None) -> None:
        super().__init__(client, interval=interval, parent=parent)
        self.model = TrainedModelListModel(self)
        # model id -> (updated_at it was fetched for, image): a re-trained/rewritten model refetches.
        self._samples: dict[str, tuple[str, QImage]] = {}
        self._samples_in_flight: set[str] = set()
        self._downloads: dict[str, asyncio.Task[Any]] = {}
        # training job id -> its name ("" while asked, or when the server no longer knows the job)
        self._job_names: dict[str, str] = {}
        self._jobs_not_found: set[str] = set()
        self.intermediate_model = CheckpointTableModel(self)
        self.intermediate_saver = CheckpointSaver(self)
        self.intermediate_for: str | None = None  # the model whose intermediate checkpoints are listed
        self._intermediate_generation = 0

    # queries -------------------------------------------------------------------------------------------
    def trained_model(self, model_id: str) -> TrainedModel | None:
        return self.model.record(model_id)

    def is_downloading(self, model_id: str) -> bool:
        return model_id in self._downloads

    def cached_samples(self, model_id: str) -> QImage | None:
        model = self.model.record(model_id)
        entry = self._samples.get(model_id)
        if model is None or entry is None or entry[0] != model.updated_at:
            return None
        return entry[1]

    def job_name(self, job_id: str) -> str | None:
        """The name of the training job that made a model, if known ("" while unknown); see request_job_name."""
        return self._job_names.get(job_id)

    def job_not_found(self, job_id: str) -> bool:
        return job_id in self._jobs_not_found

    # intents ---------------------------------------------------------------------------------------------
    def request_job_name(self, job_id: str) -> None:
        """Ask the server once for the name of job `job_id`; `job_name_known` tells when it is known."""
        if self._shut_down or job_id in self._job_names:
            return
        self._job_names[job_id] = ""
        self._spawn(self._load_job_name(job_id))

    async def _load_job_name(self, job_id: str) -> None:
        try:
            job = await self.client.job_status(job_id)
        except ApiError as error:  # the job may be gone: the details keep saying so in words
            log.info("the name of job %s is not known: %s", job_id, error.message)
            self._jobs_not_found.add(job_id)
            self.job_name_known.emit(job_id, "")
            return
        self._job_names[job_id] = job.name
        self.job_name_known.emit(job_id, job.name)

    def request_samples(self, model_id: str) -> None:
        """Emit `samples_loaded` (from the cache when fresh), `samples_missing` or `samples_failed`."""
        cached = self.cached_samples(model_id)
        if cached is not None:
            self.samples_loaded.emit(model_id, cached)
            return
        if self._shut_down or model_id in self._samples_in_flight:
            return
        self._spawn(self.load_samples(model_id))

    def request_intermediate(self, model_id: str | None) -> None:
        """List the intermediate checkpoints of `model_id` (None: none) into `intermediate_model`; then
        `intermediate_listed`. They do not change once a model is made, so each model is listed once
        per selection."""
        if model_id == self.intermediate_for or self._shut_down:
            return
        self._intermediate_generation += 1
        self.intermediate_for = model_id
        self.intermediate_model.clear()
        if model_id is not None:
            self._spawn(self._list_intermediate(self._intermediate_generation, model_id))

    def save_intermediate(self, model_id: str, name: str, target: str | os.PathLike[str]) -> bool:
        """Save intermediate checkpoint `name` of `model_id` to `target`; see CheckpointSaver (one at a time)."""
        if self._shut_down:
            return False

        def fetch(write: Any, progress: Any) -> Any:
            return self.client.download_model_checkpoint_file(model_id, name, write, progress)

        return self.intermediate_saver.save(name, Path(target), fetch)

    def save_checkpoint(self, model_id: str, target: str | os.PathLike[str]) -> None:
        """Download the checkpoint to `target` (the view asked where); one download per model at a time."""
        if self._shut_down or model_id in self._downloads:
            return
        task = self._spawn(self.download_checkpoint(model_id, Path(target)))
        self._downloads[model_id] = task
        task.add_done_callback(lambda done: self._download_done(model_id, done))

    def cancel_checkpoint(self, model_id: str) -> None:
        task = self._downloads.get(model_id)
        if task is not None:
            task.cancel()

    def shutdown(self) -> None:
        super().shutdown()
        self.intermediate_saver.shutdown()

    async def wait_idle(self) -> None:
        await super().wait_idle()
        await self.intermediate_saver.wait_idle()

    # operations ------------------------------------------------------------------------------------------
    async def _list_intermediate(self, generation: int, model_id: str) -> None:
        try:
            files = await self.client.model_checkpoints(model_id)
        except NotFound as error:
            if generation == self._intermediate_generation:
                self.intermediate_listed.emit(model_id, "This server does not list intermediate checkpoints."
                                              if error.code != "model_not_found" else
                                              "The server no longer has this model.")
            return
        except ApiError as error:
            if generation == self._intermediate_generation:
                self.intermediate_listed.emit(model_id, f"Could not list the intermediate checkpoints: "
                                                        f"{error.message}")
            return
        if generation != self._intermediate_generation:
            return
        self.intermediate_model.apply_listing(files)
        self.intermediate_listed.emit(model_id, "" if files else
                                      "Its training run saved no intermediate checkpoints.")

    async def _fetch(self) -> None:
        models = await self.client.list_models()
        self.model.apply_snapshot(models)
        live = set(self.model.ids())
        for gone in [m for m in self._samples if m not in live]:
            del self._samples[gone]
        self.models_changed.emit()

    async def load_samples(self, model_id: str) -> QImage | None:
        model = self.model.record(model_id)
        version = model.updated_at if model is not None else ""
        self._samples_in_flight.add(model_id)
        try:
            try:
                data = await self.client.model_samples(model_id)
            except NotFound as error:
                self.samples_missing.emit(model_id, _missing_text(error))
                return None
            except ApiError as error:
                self.samples_failed.emit(model_id, f"Could not load the samples: {error.message}")
                return None
            image = await asyncio.get_running_loop().run_in_executor(None, decode_image, data)
        finally:
            self._samples_in_flight.discard(model_id)
        if image is None:
            self.samples_failed.emit(model_id, "The server's samples file is not an image Qt can read.")
            return None
        self._samples[model_id] = (version, image)
        self.samples_loaded.emit(model_id, image)
        return image

    async def delete_model(self, model_id: str) -> bool:
        return await self.delete_record(model_id)

    async def _delete_on_server(self, model_id: str) -> None:
        await self.client.delete_model(model_id)

    def _forget(self, model_id: str) -> None:
        self._samples.pop(model_id, None)

    def _rows_changed(self) -> None:
        self.models_changed.emit()

    async def download_checkpoint(self, model_id: str, target: Path) -> bool:
        """Stream the checkpoint into target + ".part", then rename; nothing is left behind on failure."""
        loop = asyncio.get_running_loop()
        part = part_path(target)
        handle: BinaryIO | None = None
        self.checkpoint_started.emit(model_id, str(target))
        try:
            handle = await loop.run_in_executor(None, open_for_writing, part)

            async def write(chunk: bytes) -> None:
                await loop.run_in_executor(None, handle.write, chunk)  # type: ignore[union-attr]

            def progress(done: int, total: int | None) -> None:
                self.checkpoint_progress.emit(model_id, done, total)

            await self.client.download_checkpoint(model_id, write, progress)
            await loop.run_in_executor(None, finish_download, handle, part, target)
            handle = None
        except asyncio.CancelledError:
            await discard_partial(loop, handle, part)  # the done-callback reports the cancel
            raise
        except ApiError as error:
            await discard_partial(loop, handle, part)
            self._downloads.pop(model_id, None)
            self.checkpoint_failed.emit(model_id, f"The checkpoint was not saved: {error.message}")
            return False
        except OSError as error:
            await discard_partial(loop, handle, part)
            self._downloads.pop(model_id, None)
            reason = error.strerror or str(error)
            self.checkpoint_failed.emit(model_id, f"The checkpoint was not saved: could not write "
                                                  f"{target}: {reason}.")
            return False
        self._downloads.pop(model_id, None)
        self.checkpoint_saved.emit(model_id, str(target))
        return True

    def _download_done(self, model_id: str, task: asyncio.Task[Any]) -> None:
        # Also runs for a task cancelled before it started, where the coroutine's own cleanup never ran.
        if self._downloads.get(model_id) is task:
            del self._downloads[model_id]
        if task.cancelled() and not self._shut_down:
            self.checkpoint_failed.emit(model_id, "The checkpoint download was cancelled; nothing was saved.")


def _missing_text(error: ApiError) -> str:
    return "This model has no sample images." if error.code in (None, "samples_not_found") else error.message
