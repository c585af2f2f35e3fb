"""Puts the History tab into the main window: builds its store on first show (lazy, like the Datasets and
Models tabs), restores the remembered filter and saves every change of it, deletes through the store, and
forwards "Train again…" to whoever opens the Train dialog (`on_train_again`) and "Save as template…" to
whoever asks the name and saves it (`on_save_template`); without a handler the action is hidden."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QWidget

from training_studio.client import ApiClient
from training_studio.ui.history.panel import HistoryPanel
from training_studio.ui.history.query import HistoryQuery
from training_studio.ui.history.store import HistoryStore

__all__ = ["install_history_panel", "HISTORY_TITLE", "SETTINGS_KEY"]

HISTORY_TITLE = "History"
SETTINGS_KEY = "history/query"


def install_history_panel(window: Any, client: ApiClient, job_store: Any, *, settings: Any = None,
                          on_train_again: Callable[[Any], None] | None = None,
                          on_save_template: Callable[[Any], None] | None = None, lazy: bool = True) -> "HistoryTab":
    tab = HistoryTab()

    def build() -> QWidget:
        store = HistoryStore(client, job_model=getattr(job_store, "model", None), parent=window)
        tab.stores.append(store)
        panel = HistoryPanel(store)
        query = _load_query(settings)
        panel.query_saved.connect(lambda changed: _save_query(settings, changed))
        panel.delete_requested.connect(store.delete_jobs)
        if on_train_again is not None:
            panel.train_again_requested.connect(on_train_again)
        else:
            panel.set_train_again_available(False)
        if on_save_template is not None:
            panel.save_template_requested.connect(on_save_template)
            panel.set_save_template_available(True)
        window.closing.connect(store.shutdown)
        deleted = getattr(job_store, "job_deleted", None)
        if deleted is not None:  # deleted by another client (or this one): the row goes
            deleted.connect(lambda job_id: store.forget([job_id]))
        # Reload when the server is (re)connected: the tab may be built before the first connection, and
        # another server has another history.
        for signal_name in ("connection_changed", "connection_restored"):
            signal = getattr(job_store, signal_name, None)
            if signal is not None:
                signal.connect(lambda *args: store.reload())
        store.set_query(query)
        return panel

    window.add_panel(HISTORY_TITLE, build, lazy=lazy)
    return tab


class HistoryTab:
    """What the app stops and waits for at quit: the tab's store, once the tab was built."""

    def __init__(self) -> None:
        self.stores: list[HistoryStore] = []

    def shutdown(self) -> None:
        for store in self.stores:
            store.shutdown()

    async def wait_idle(self) -> None:
        for store in self.stores:
            await store.wait_idle()


def _qsettings(settings: Any) -> Any:
    return getattr(settings, "qsettings", None)


def _load_query(settings: Any) -> HistoryQuery:
    raw = _qsettings(settings).value(SETTINGS_KEY) if _qsettings(settings) is not None else None
    try:
        return HistoryQuery.from_json(json.loads(raw) if isinstance(raw, str) else None)
    except ValueError:
        return HistoryQuery()


def _save_query(settings: Any, query: HistoryQuery) -> None:
    qsettings = _qsettings(settings)
    if qsettings is not None:
        qsettings.setValue(SETTINGS_KEY, json.dumps(query.to_json()))
