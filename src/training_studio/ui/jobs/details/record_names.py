"""Names of the records a job points at, for the details pane's Overview: its dataset, base model and trained model.

A job carries ids (`dataset_id`, `base_model`, `model_id`); people know those records by their names.
`RecordNames` owns the requests that turn the ids into names, so the Overview (a widget) never calls HTTP:

- a dataset: `GET /api/datasets/{id}`, once per id; a 404 `dataset_not_found` means it was deleted;
- a trained model: the server has no route for one model, so `GET /api/models` (one listing at a time; an id
  asked while a listing is under way waits for the next one, so a model created meanwhile is not missed); an
  id the listing lacks was deleted;
- a base model: `GET /api/training/base-models`, the same way; an id it lacks (a preset since removed) keeps
  showing its id.

Answers are kept for the store's life. The jobs store keeps them current: a dataset or model renamed or
deleted (`dataset_event`, `model_event` from the live stream); a reset stream (`library_resync`) or another
server (`connection_changed` to another URL) forgets them, so they are asked again. A failed request (the
server away, an error) is tried again at a lookup after `RETRY_S`; a server without the route (a plain 404)
is not asked again.

`lookup(kind, id)` answers at once from what is known (a `RecordName`, or None while unknown: the Overview
shows the id meanwhile) and starts the request for an id it has not asked about. `changed(kind, id)` says an
answer arrived or changed; `reset()` says everything was forgotten.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient, ApiError, NotFound
from training_studio.ui.tasks import TaskSet

__all__ = ["RecordNames", "RecordName", "DATASET", "MODEL", "BASE_MODEL", "RETRY_S"]

log = logging.getLogger(__name__)

DATASET = "dataset"
MODEL = "model"
BASE_MODEL = "base_model"
RETRY_S = 30.0  # a failed request is tried again no sooner than this


@dataclass(frozen=True)
class RecordName:
    """What the server said about one record: its name (None: it gave none), or that it no longer exists."""

    name: str | None
    deleted: bool = False


class RecordNames(QObject):
    """See the module docstring. `jobs`: the app's JobStore (its events keep the names current), optional."""

    changed = Signal(str, str)  # kind (DATASET, MODEL, BASE_MODEL), record id
    reset = Signal()            # every name was forgotten (another server, a reset stream)

    def __init__(self, client: ApiClient, *, jobs: Any = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self._known: dict[tuple[str, str], RecordName] = {}
        self._asked: set[tuple[str, str]] = set()         # requested, no answer yet
        self._failed_at: dict[tuple[str, str], float] = {}  # time.monotonic() of a failed request
        self._unsupported: set[str] = set()                # kinds this server has no route for
        self._listing: dict[str, bool] = {}                # kind -> a listing is under way
        self._next_listing: dict[str, set[str]] = {}       # kind -> ids asked while one was under way
        self._generation = 0
        self._shut_down = False
        self._server: str | None = None  # the URL the names came from
        self.requests = 0  # requests made (tests look at it)
        self._tasks = TaskSet("RecordNames", lambda error: None)
        if jobs is not None:
            jobs.dataset_event.connect(self._on_dataset_event)
            jobs.model_event.connect(self._on_model_event)
            jobs.library_resync.connect(self.forget)
            jobs.connection_changed.connect(self._on_connection)

    # the Overview's API --------------------------------------------------------------------------------
    def lookup(self, kind: str, record_id: str | None) -> RecordName | None:
        """What is known of `record_id` now; None while unknown (then it is asked for, once)."""
        if not record_id:
            return None
        key = (kind, record_id)
        known = self._known.get(key)
        if known is not None:
            return known
        if key in self._asked or kind in self._unsupported or self._shut_down:
            return None
        failed = self._failed_at.get(key)
        if failed is not None and time.monotonic() - failed < RETRY_S:
            return None
        self._asked.add(key)
        if kind == DATASET:
            self._tasks.spawn(self._fetch_dataset(self._generation, record_id))
        else:
            self._list(kind, record_id)
        return None

    def forget(self) -> None:
        """Forget every name (they are asked again when looked up)."""
        self._generation += 1
        self._tasks.cancel_all()
        self._known.clear()
        self._asked.clear()
        self._failed_at.clear()
        self._unsupported.clear()
        self._listing.clear()
        self._next_listing.clear()
        self.reset.emit()

    def shutdown(self) -> None:
        self._shut_down = True
        self._generation += 1
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # requests --------------------------------------------------------------------------------------------
    async def _fetch_dataset(self, generation: int, dataset_id: str) -> None:
        key = (DATASET, dataset_id)
        self.requests += 1
        try:
            dataset = await self.client.get_dataset(dataset_id)
        except NotFound as error:
            if generation != self._generation or key in self._known:  # an event said it meanwhile
                return
            self._asked.discard(key)
            if error.code == "dataset_not_found":
                self._set(key, RecordName(None, deleted=True))
            else:  # a server without the route: the id it is
                self._unsupported.add(DATASET)
            return
        except ApiError as error:
            if generation == self._generation:
                self._asked.discard(key)
                self._failed_at[key] = time.monotonic()
                log.info("could not name dataset %s: %s", dataset_id, error)
            return
        if generation == self._generation and key not in self._known:  # else an event said it meanwhile
            self._asked.discard(key)
            self._set(key, RecordName(dataset.name))

    def _list(self, kind: str, record_id: str) -> None:
        if self._listing.get(kind):
            self._next_listing.setdefault(kind, set()).add(record_id)
            return
        self._listing[kind] = True
        self._tasks.spawn(self._fetch_listing(self._generation, kind, {record_id}))

    async def _fetch_listing(self, generation: int, kind: str, wanted: set[str]) -> None:
        self.requests += 1
        names: dict[str, str] | None = None
        try:
            if kind == MODEL:
                names = {model.id: model.name for model in await self.client.list_models()}
            else:
                names = {base.id: base.name for base in await self.client.base_models()}
        except NotFound:
            if generation == self._generation:
                self._unsupported.add(kind)
        except ApiError as error:
            if generation == self._generation:
                now = time.monotonic()
                self._failed_at.update({(kind, record_id): now for record_id in wanted})
                log.info("could not list the %s names: %s", kind, error)
        finally:
            if generation == self._generation:
                self._listing[kind] = False
                for record_id in wanted:
                    self._asked.discard((kind, record_id))
        if generation != self._generation:
            return
        if names is not None:
            for record_id, name in names.items():  # a listing names them all: no request for them later
                self._set((kind, record_id), RecordName(name))
            for record_id in wanted - names.keys():
                # A trained model the listing lacks was deleted; a base model it lacks keeps its id.
                self._set((kind, record_id), RecordName(None, deleted=kind == MODEL))
        waiting = self._next_listing.pop(kind, set())
        if waiting and kind not in self._unsupported:
            self._listing[kind] = True
            self._tasks.spawn(self._fetch_listing(generation, kind, waiting))

    def _on_connection(self, url: str, _version: str = "") -> None:
        if self._server is not None and url != self._server:
            self.forget()  # another server: other records behind the same ids
        self._server = url

    # live events -------------------------------------------------------------------------------------------
    def _on_dataset_event(self, event: Any) -> None:
        dataset = getattr(event, "dataset", None)
        self._on_event(DATASET, event.dataset_id, None if dataset is None else dataset.name)

    def _on_model_event(self, event: Any) -> None:
        model = getattr(event, "model", None)
        self._on_event(MODEL, event.model_id, None if model is None else model.name)

    def _on_event(self, kind: str, record_id: str, name: str | None) -> None:
        key = (kind, record_id)
        if key not in self._known and key not in self._asked:
            return  # nobody asked about it: nothing to keep current
        self._asked.discard(key)  # the event is newer than an answer still on its way
        self._set(key, RecordName(None, deleted=True) if name is None else RecordName(name))

    def _set(self, key: tuple[str, str], value: RecordName) -> None:
        if self._known.get(key) == value:
            return
        self._known[key] = value
        self._failed_at.pop(key, None)
        self.changed.emit(*key)
