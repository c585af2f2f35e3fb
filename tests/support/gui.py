"""GUI test helpers shared by the dataset tests: the import
panel on a real server, and the app's library wiring (a main window with the Datasets panel whose
"New dataset…" and window-wide drop open the import window).

Everything here is real: a real `ApiClient` to the server subprocess, the real panels and stores. Clients
go to the `harness` (tests/ui/app_fixtures.py), which closes them at the end of the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training_studio.client import ApiClient
from training_studio.ui.datasets.import_dialog import (
    DatasetImportPanel,
    ImportEntryPoints,
    import_factory_for,
    install_import_entry_points,
)
from training_studio.ui.datasets.panel import DatasetsPanel
from training_studio.ui.datasets.store import DatasetStore


def server_client(server: Any, harness: Any) -> ApiClient:
    """An `ApiClient` to the test server, closed by the harness at the end of the test."""
    client = ApiClient(server.url, server.token, timeout=10.0)
    harness.clients.append(client)
    return client


def open_import_panel(server: Any, harness: Any, qtbot: Any, app_data: Path,
                      size: tuple[int, int]) -> Iterator[DatasetImportPanel]:
    """Body of a fixture: a shown import panel on the server; its controller is shut down and drained after."""
    widget = DatasetImportPanel(server_client(server, harness), app_data)
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    yield widget
    widget.controller.shutdown()
    harness.run(widget.controller.wait_idle())


@dataclass
class Library:
    """The app's wiring of the Datasets panel into a main window; `shutdown()` stops what it started."""

    harness: Any
    store: Any  # the window's JobStore (its connection_changed drives the unfinished-upload check)
    window: Any
    dataset_store: DatasetStore
    datasets: DatasetsPanel
    entry: ImportEntryPoints

    def shutdown(self) -> None:
        self.entry.shutdown()
        self.dataset_store.shutdown()
        self.harness.run(self.dataset_store.wait_idle())


def library_window(server: Any, harness: Any, app_data: Path) -> Library:
    """A main window with the Datasets panel built as the app builds it (import window, drop entry points)."""
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    client = server_client(server, harness)
    dataset_store = DatasetStore(client, interval=0.3)
    datasets = window.add_panel("Datasets", lambda: DatasetsPanel(
        dataset_store, import_factory=import_factory_for(client, app_data)))
    entry = install_import_entry_points(window, client, app_data, datasets.open_new_dataset,
                                        store.connection_changed)
    return Library(harness, store, window, dataset_store, datasets, entry)
