"""Caption edits of the viewed dataset, in bulk or one at a time, with undo/redo (issue 17, item 2).

`CaptionOps` is the controller the dataset viewer and the bulk-caption dialog talk to; it owns the client
calls for caption edits and the `QUndoStack` of the dataset being viewed (cleared when another dataset is
shown, i.e. "until the dataset is closed"). Widgets never call HTTP.

A bulk edit is one `POST /captions/batch` carrying the operation and the selection ("all" when every file
is selected), never the captions themselves; the server applies it all or none. Its answer lists each
changed caption's before/after text: undo sends op "restore" with the before texts, redo with the after
texts. When the server cut that list short (`changes_complete` false) undo uses the captions the files
model held before the edit and redo re-sends the operation on the changed files. A restore body over the
server's 1 MiB limit is sent in chunks (each chunk atomic on its own).

Undo/redo talk to the server first and move the `QUndoStack` only once the server agreed, so the stack
always says what the server holds; the commands' own undo()/redo() only update the files model. A failed
request changes nothing in the view and is reported through `failed` with the server's sentence.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from training_studio.client import ApiError
from training_studio.contract import CaptionBatchResult
from training_studio.ui.datasets.store import DatasetStore
from training_studio.ui.tasks import TaskSet

__all__ = ["CaptionEdit", "CaptionOps", "RESTORE_CHUNK_BYTES"]

log = logging.getLogger(__name__)

RESTORE_CHUNK_BYTES = 900_000  # below the server's 1 MiB body limit, with room for the JSON around it

OP_NAMES = {"prefix": "Add prefix", "suffix": "Add suffix", "replace": "Find and replace",
            "regex_replace": "Find and replace", "set": "Set caption", "clear": "Clear captions"}


@dataclass(frozen=True)
class CaptionEdit:
    """One bulk operation as the batch endpoint takes it; `files` is a list of sha256 or "all"."""
    op: str
    files: list[str] | str = "all"
    text: str | None = None
    find: str | None = None
    replace: str | None = None
    ignore_case: bool = False

    def request(self) -> dict[str, Any]:
        return {"op": self.op, "files": self.files, "text": self.text, "find": self.find,
                "replace": self.replace, "ignore_case": self.ignore_case}

    def describe(self, count: int) -> str:
        files = f"{count:,} caption" + ("" if count == 1 else "s")
        return f"{OP_NAMES.get(self.op, self.op)} ({files})"


@dataclass
class _Change:
    dataset_id: str
    before: dict[str, str]                         # sha256 -> caption before the edit
    after: dict[str, str] | None                   # sha256 -> caption after, None when not known in full
    redo_edit: CaptionEdit | None = None           # how to redo when `after` is not known
    files: list[str] = field(default_factory=list)


class _CaptionCommand(QUndoCommand):
    """An applied caption edit on the stack. Its undo()/redo() only show the captions; CaptionOps has
    already made the server agree before it moves the stack."""

    def __init__(self, ops: CaptionOps, text: str, change: _Change) -> None:
        super().__init__(text)
        self.ops = ops
        self.change = change
        self._first_redo = True

    def undo(self) -> None:
        self.ops._show(self.change.dataset_id, self.change.before)

    def redo(self) -> None:
        if self._first_redo:  # push() calls redo(); the edit is already shown
            self._first_redo = False
            return
        if self.change.after is not None:
            self.ops._show(self.change.dataset_id, self.change.after)
        else:
            self.ops._reload(self.change.dataset_id)


class CaptionOps(QObject):
    """See the module docstring."""

    preview_ready = Signal(int, object)   # request token, CaptionBatchResult of a dry run
    preview_failed = Signal(int, str)     # request token, human message
    applied = Signal(int, object)         # request token, CaptionBatchResult
    failed = Signal(int, str)             # request token (0 for undo/redo), human message
    busy_changed = Signal(bool)

    def __init__(self, store: DatasetStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.client = store.client
        self.files_model = store.files_model
        self.undo_stack = QUndoStack(self)
        self._stack_dataset: str | None = None
        self._tasks = TaskSet(type(self).__name__, lambda error: self.failed.emit(
            0, f"Unexpected error: {error} (details in the log)."))
        self._busy = False
        self._token = 0
        self._shut_down = False
        self.files_model.modelReset.connect(self._on_files_reset)

    # state -----------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _next_token(self) -> int:
        self._token += 1
        return self._token

    # intents ---------------------------------------------------------------------------------------------
    def preview(self, edit: CaptionEdit) -> int:
        """A dry run: `preview_ready(token, result)` says how many captions would change."""
        token = self._next_token()
        dataset_id = self.files_model.dataset_id
        if dataset_id is not None and not self._shut_down:
            self._tasks.spawn(self._preview(token, dataset_id, edit))
        return token

    def apply(self, edit: CaptionEdit) -> int:
        """Apply on the server (all or none); on success the edit goes on the undo stack."""
        token = self._next_token()
        dataset_id = self.files_model.dataset_id
        if dataset_id is None or self._shut_down:
            return token
        if self._busy:
            self.failed.emit(token, "Another caption change is still being saved; try again in a moment.")
            return token
        self._set_busy(True)
        self._tasks.spawn(self._apply(token, dataset_id, edit))
        return token

    def edit_caption(self, dataset_id: str, sha256: str, caption: str) -> None:
        """One caption from the caption editor, undoable. Reports through the store's caption_saved /
        caption_failed signals (the editor's existing contract)."""
        if not self._shut_down:
            self._tasks.spawn(self._edit_caption(dataset_id, sha256, caption))

    def undo(self) -> None:
        command = self._command_at(self.undo_stack.index() - 1)
        if command is None or self._busy or self._shut_down:
            return
        self._set_busy(True)
        self._tasks.spawn(self._undo(command))

    def redo(self) -> None:
        command = self._command_at(self.undo_stack.index())
        if command is None or self._busy or self._shut_down:
            return
        self._set_busy(True)
        self._tasks.spawn(self._redo(command))

    def shutdown(self) -> None:
        self._shut_down = True
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # operations ----------------------------------------------------------------------------------------------
    async def _preview(self, token: int, dataset_id: str, edit: CaptionEdit) -> None:
        try:
            result = await self.client.batch_captions(dataset_id, dry_run=True, **edit.request())
        except ApiError as error:
            self.preview_failed.emit(token, error.message)
            return
        self.preview_ready.emit(token, result)

    async def _apply(self, token: int, dataset_id: str, edit: CaptionEdit) -> None:
        own_copy = self._captions_now(edit.files)  # for undo when the server's list is cut short
        try:
            try:
                result: CaptionBatchResult = await self.client.batch_captions(dataset_id, **edit.request())
            except ApiError as error:
                self.failed.emit(token, f"The captions were not changed: {error.message}")
                return
        finally:
            self._set_busy(False)
        if result.changed:
            if result.changes_complete:
                before = {c.sha256: c.before for c in result.changes}
                after: dict[str, str] | None = {c.sha256: c.after for c in result.changes}
            else:
                before = {sha: own_copy.get(sha, "") for sha in result.files}
                after = None
            change = _Change(dataset_id, before, after, CaptionEdit(**{**edit.request(), "files": result.files}),
                             result.files)
            if after is not None:
                self._show(dataset_id, after)
            else:
                self._reload(dataset_id)
            self._push(edit.describe(result.changed), change)
        self.applied.emit(token, result)

    async def _edit_caption(self, dataset_id: str, sha256: str, caption: str) -> None:
        before = self._captions_now([sha256]).get(sha256, "")
        try:
            await self.client.set_caption(dataset_id, sha256, caption)
        except ApiError as error:
            self.store.caption_failed.emit(dataset_id, sha256, f"The caption was not saved: {error.message}")
            return
        if self.files_model.dataset_id == dataset_id:
            self.files_model.set_caption(sha256, caption)
            if before != caption:
                self._push("Edit caption", _Change(dataset_id, {sha256: before}, {sha256: caption}, files=[sha256]))
        self.store.caption_saved.emit(dataset_id, sha256)

    async def _undo(self, command: _CaptionCommand) -> None:
        try:
            try:
                await self._restore(command.change.dataset_id, command.change.before)
            except ApiError as error:
                self.failed.emit(0, f"Could not undo “{command.text()}”: {error.message}")
                return
        finally:
            self._set_busy(False)
        if self._command_at(self.undo_stack.index() - 1) is command:
            self.undo_stack.undo()

    async def _redo(self, command: _CaptionCommand) -> None:
        change = command.change
        try:
            try:
                if change.after is not None:
                    await self._restore(change.dataset_id, change.after)
                elif change.redo_edit is not None:
                    await self.client.batch_captions(change.dataset_id, **change.redo_edit.request())
            except ApiError as error:
                self.failed.emit(0, f"Could not redo “{command.text()}”: {error.message}")
                return
        finally:
            self._set_busy(False)
        if self._command_at(self.undo_stack.index()) is command:
            self.undo_stack.redo()

    async def _restore(self, dataset_id: str, captions: dict[str, str]) -> None:
        """Op "restore" in as few requests as the body limit allows."""
        chunk: dict[str, str] = {}
        size = 0
        for sha, caption in captions.items():
            entry = len(json.dumps(caption)) + len(sha) + 8
            if chunk and size + entry > RESTORE_CHUNK_BYTES:
                await self.client.batch_captions(dataset_id, "restore", captions=chunk)
                chunk, size = {}, 0
            chunk[sha] = caption
            size += entry
        if chunk:
            await self.client.batch_captions(dataset_id, "restore", captions=chunk)

    # helpers ------------------------------------------------------------------------------------------------
    def _command_at(self, index: int) -> _CaptionCommand | None:
        if not 0 <= index < self.undo_stack.count():
            return None
        command = self.undo_stack.command(index)
        return command if isinstance(command, _CaptionCommand) else None

    def _push(self, text: str, change: _Change) -> None:
        if self._stack_dataset != change.dataset_id:
            self.undo_stack.clear()
            self._stack_dataset = change.dataset_id
        self.undo_stack.push(_CaptionCommand(self, text, change))

    def _captions_now(self, files: list[str] | str) -> dict[str, str]:
        return self.files_model.captions_of(None if files == "all" else list(files))

    def _show(self, dataset_id: str, captions: dict[str, str]) -> None:
        if self.files_model.dataset_id == dataset_id:
            self.files_model.set_captions(captions)

    def _reload(self, dataset_id: str) -> None:
        if self.files_model.dataset_id == dataset_id:
            self.store.open_dataset(dataset_id)

    def _on_files_reset(self) -> None:
        if self.files_model.dataset_id != self._stack_dataset:  # another dataset: its history is closed
            self.undo_stack.clear()
            self._stack_dataset = self.files_model.dataset_id

