"""Puts the machine's summary in the main window's status bar: a `SystemStore` refreshed with the jobs (its
`jobs_changed` and `ticked` signals, paced by the store to every few seconds) and asked again when the
server changes."""

from __future__ import annotations

from typing import Any

from training_studio.client import ApiClient
from training_studio.ui.system.store import SystemStore
from training_studio.ui.system.widgets import SystemStatusButton

__all__ = ["install_system_status"]


def install_system_status(window: Any, client: ApiClient, job_store: Any) -> SystemStore:
    store = SystemStore(client, parent=window)
    button = SystemStatusButton(store, window.statusBar())
    window.statusBar().addPermanentWidget(button)
    job_store.ticked.connect(store.request_refresh)
    job_store.connection_changed.connect(lambda *args: store.server_changed())
    window.closing.connect(store.shutdown)
    window.system_status = button  # tests and screenshots reach it here
    return store
