"""The refresh machinery shared by the Datasets and Models stores: a list kept fresh while it is shown.

`PollingStore` owns one single-shot refresh timer, the set of asyncio tasks its subclass starts, and the
rules: refresh every `interval` seconds only while auto-refresh is on (a panel turns it on when shown and
off when hidden), never two refreshes at once (the timer is re-armed only when the previous one ended),
a refresh after every change (`request_refresh()`), errors reported through `refresh_failed` and never
swallowed, and nothing at all before the app knows which server to talk to (the client has no URL yet:
we wait quietly, the jobs store reports connection trouble). Subclasses implement `_fetch()`.

It also owns deleting one record of the list, the same for every kind: one delete per record at a time,
"already gone" counted as done, the server's reason reported as "Could not delete “name”: …", the row
removed at once and the list refreshed after. Subclasses give the list model as `self.model` (a keyed
model: `record`, `remove`) and implement `_delete_on_server()` and `_rows_changed()`, and `_forget()`
for their own caches.

Live updates: `apply_record_event()` takes a `dataset`/`model` event from the server's event stream (which
the jobs store follows and passes on) and puts the record's new state in the list at once, or removes it,
unless the list holds a newer revision of it. An event that arrives during a refresh also makes the list
refresh again right after, as that refresh's answer may predate the event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from training_studio.ui.tasks import TaskSet
from training_studio.client import ApiClient, ApiError, NotFound
from training_studio.ui.datasets.keyed_model import KeyedTableModel

__all__ = ["PollingStore", "REFRESH_INTERVAL_S", "WAITING_RETRY_S"]

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 5.0
WAITING_RETRY_S = 0.5  # how soon to look again while the app is still connecting


class PollingStore(QObject):
    """Base of the list stores; see the module docstring."""

    refreshing_changed = Signal(bool)
    refresh_failed = Signal(str)      # human message; the last good rows stay
    refresh_succeeded = Signal()
    unexpected_error = Signal(str)    # a bug in a task: said, logged, never a traceback in the GUI
    delete_started = Signal(str)      # record id
    delete_succeeded = Signal(str, str)  # record id, name
    delete_failed = Signal(str, str)     # record id, human message (the server's reason)

    model: KeyedTableModel[Any]  # set by the subclass: the list it keeps fresh

    def __init__(self, client: ApiClient, *, interval: float = REFRESH_INTERVAL_S,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.interval = interval
        self.last_error: str | None = None
        self.loaded_once = False
        self._auto = False
        self._shut_down = False
        self._tasks = TaskSet(type(self).__name__,
                              lambda error: self.unexpected_error.emit(
                                  f"Unexpected error: {error} (details in the log)."),
                              on_done=self._forget_refresh_task)
        self._refresh_task: asyncio.Task[Any] | None = None
        self._deleting: set[str] = set()
        self._refresh_again = False  # an event came during the refresh in flight
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.request_refresh)

    # public API ----------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        """False until the app has a server URL (the local server may still be starting)."""
        return bool(self.client.base_url)

    @property
    def is_refreshing(self) -> bool:
        return self._refresh_task is not None and not self._refresh_task.done()

    @property
    def auto_refresh(self) -> bool:
        return self._auto

    def set_auto_refresh(self, on: bool) -> None:
        """Refresh now and then every `interval` while on (the panel is visible); stop when off."""
        self._auto = on
        if not on:
            self._timer.stop()
        elif not self.is_refreshing:
            self.request_refresh()

    def request_refresh(self) -> None:
        """Refresh now unless one is in flight (then its end re-arms the timer anyway)."""
        if self._shut_down or self.is_refreshing:
            return
        self._timer.stop()
        self._refresh_task = self._spawn(self._refresh_cycle())

    def is_deleting(self, record_id: str) -> bool:
        return record_id in self._deleting

    def request_delete(self, record_id: str) -> None:
        """Delete (the view has already asked the user); ignored while that delete is in flight."""
        if self._shut_down or record_id in self._deleting:
            return
        self._spawn(self.delete_record(record_id))

    async def delete_record(self, record_id: str) -> bool:
        name = self._name_of(record_id)
        self._deleting.add(record_id)
        self.delete_started.emit(record_id)
        try:
            await self._delete_on_server(record_id)
        except NotFound:
            pass  # already gone: that is what the user wanted
        except ApiError as error:
            self._deleting.discard(record_id)  # before the signal: views re-enable Delete on it
            self.delete_failed.emit(record_id, f"Could not delete “{name}”: {error.message}")
            return False
        finally:
            self._deleting.discard(record_id)
        self.model.remove(record_id)
        self._forget(record_id)
        self.delete_succeeded.emit(record_id, name)
        self._rows_changed()
        self.request_refresh()
        return True

    def apply_record_event(self, record_id: str, record: Any | None, revision: int | None) -> bool:
        """A live event's record (None: deleted) into the list; see the module docstring. Returns whether
        the list changed. Before the first load the event is left to that load."""
        if self._shut_down:
            return False
        if self.is_refreshing:
            self._refresh_again = True
        if not self.loaded_once:
            return False
        held = self.model.record(record_id)
        held_revision = getattr(held, "revision", None)
        if held is not None and revision is not None and held_revision is not None and revision < held_revision:
            return False
        if record is None:
            if held is None:
                return False
            self.model.remove(record_id)
            self._forget(record_id)
        else:
            self.model.update(record)
        self._record_event_applied(record_id, record)
        self._rows_changed()
        return True

    def shutdown(self) -> None:
        self._shut_down = True
        self._auto = False
        self._timer.stop()
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # for subclasses ----------------------------------------------------------------------------------------
    async def _fetch(self) -> None:
        raise NotImplementedError

    async def _delete_on_server(self, record_id: str) -> None:
        raise NotImplementedError

    def _forget(self, record_id: str) -> None:
        """Drop what the store keeps about a deleted record besides its row."""

    def _record_event_applied(self, record_id: str, record: Any | None) -> None:
        """A live event changed this record's row (None: removed); subclasses refresh what depends on it."""

    def _rows_changed(self) -> None:
        """Tell the views the rows changed (each store has its own signal for that)."""
        raise NotImplementedError

    def _name_of(self, record_id: str) -> str:
        record = self.model.record(record_id)
        return record.name if record is not None else record_id

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro)  # subclasses start their own tasks through this

    # internals -----------------------------------------------------------------------------------------------
    async def _refresh_cycle(self) -> None:
        delay = self.interval
        if not self.is_connected:
            delay = WAITING_RETRY_S
        else:
            self.refreshing_changed.emit(True)
            try:
                await self._fetch()
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                self.last_error = error.message
                self.refresh_failed.emit(error.message)
            except Exception as error:  # a bug: say so, keep refreshing, keep the last good rows
                log.exception("refresh of %s failed", type(self).__name__)
                self.last_error = f"Unexpected error while refreshing ({type(error).__name__}: {error})."
                self.refresh_failed.emit(self.last_error)
            else:
                self.loaded_once = True
                self.last_error = None
                self.refresh_succeeded.emit()
            finally:
                self.refreshing_changed.emit(False)
        if self._refresh_again and not self._shut_down:
            self._refresh_again = False
            self._timer.start(0)  # (this task is still "in flight" until it returns)
            return
        if self._auto and not self._shut_down:
            self._timer.start(int(delay * 1000))

    def _forget_refresh_task(self, task: asyncio.Task[Any]) -> None:
        if task is self._refresh_task:
            self._refresh_task = None
