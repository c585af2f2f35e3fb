"""Plugs the Datasets and Models panels into the main window, sharing the app's one ApiClient.

`install_library_panels()` owns the glue the app needs and nothing else: it builds the `DatasetStore` and
`ModelStore` on the app's client, adds the "Datasets" and "Models" tabs through `MainWindow.add_panel`
(so a panel that fails to build shows Retry like any other), refreshes both lists when the jobs store
(re)connects and when View › Refresh is used on their tab, and when the Train dialog creates a job it
shows that job selected in the Jobs tab (`show_job_in_monitor`). The returned `LibraryPanels` stops
timers and tasks at quit (`shutdown()`, then `await wait_idle()`), as the jobs store does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QWidget

from training_studio.client import ApiClient
from training_studio.contract.models import TrainingJob
from training_studio.ui.datasets.import_dialog import import_factory_for, install_import_entry_points
from training_studio.ui.datasets.panel import DatasetsPanel
from training_studio.ui.datasets.store import DatasetStore
from training_studio.ui.models.panel import ModelsPanel
from training_studio.ui.models.store import ModelStore

__all__ = ["LibraryPanels", "install_library_panels", "show_job_in_monitor"]

DATASETS_TITLE = "Datasets"
MODELS_TITLE = "Models"


@dataclass
class LibraryPanels:
    window: Any  # MainWindow
    datasets: DatasetStore
    models: ModelStore

    @property
    def datasets_panel(self) -> DatasetsPanel | None:
        panel = self.window.panel(DATASETS_TITLE)
        return panel if isinstance(panel, DatasetsPanel) else None

    @property
    def models_panel(self) -> ModelsPanel | None:
        panel = self.window.panel(MODELS_TITLE)
        return panel if isinstance(panel, ModelsPanel) else None

    def shutdown(self) -> None:
        self.datasets.shutdown()
        self.models.shutdown()
        panel = self.datasets_panel
        controller = getattr(panel.import_widget, "controller", None) if panel is not None else None
        if controller is not None and hasattr(controller, "shutdown"):
            controller.shutdown()  # the import flow's uploads and scans

    async def wait_idle(self) -> None:
        await self.datasets.wait_idle()
        await self.models.wait_idle()


def show_job_in_monitor(window: Any, job_store: Any, job: TrainingJob) -> bool:
    """Put a just-created job in the monitor at once (the next refresh updates it), switch to the Jobs tab
    and select its row. False when the Jobs panel is missing or filters the job out."""
    job_store.model.update_job(job)
    job_store.request_refresh()
    panel = window.jobs_panel
    if panel is None:
        return False
    window.tabs.setCurrentWidget(panel)
    return bool(panel.select_job(job.id))


def install_library_panels(window: Any, client: ApiClient, job_store: Any, *, data_dir: Path | None = None,
                           import_factory: Callable[[QWidget], QWidget] | None = None) -> LibraryPanels:
    """Add the Datasets and Models tabs to `window`; see the module docstring. "New dataset…" opens
    `import_factory`'s widget, by default the import panel keeping its upload state under `data_dir`."""
    if import_factory is None and data_dir is not None:
        import_factory = import_factory_for(client, Path(data_dir))
    datasets = DatasetStore(client, parent=window)
    models = ModelStore(client, parent=window)
    library = LibraryPanels(window, datasets, models)

    window.add_panel(DATASETS_TITLE, lambda: DatasetsPanel(datasets, import_factory=import_factory))
    window.add_panel(MODELS_TITLE, lambda: ModelsPanel(models))

    datasets.job_created.connect(lambda job: show_job_in_monitor(window, job_store, job))
    for signal in (job_store.connection_changed, job_store.connection_restored):
        signal.connect(lambda *args: _refresh_visible(window, library))
    window.refresh_action.triggered.connect(lambda: _refresh_visible(window, library))
    window.closing.connect(library.shutdown)
    if data_dir is not None:
        # Drops anywhere on the window start a new dataset; unfinished uploads are offered once connected.
        entry = install_import_entry_points(
            window, client, Path(data_dir),
            lambda: library.datasets_panel.open_new_dataset() if library.datasets_panel else None,
            job_store.connection_changed)
        window.closing.connect(entry.shutdown)
    return library


def _refresh_visible(window: Any, library: LibraryPanels) -> None:
    current = window.tabs.currentWidget()
    if current is not None and current is library.datasets_panel:
        library.datasets.request_refresh()
    elif current is not None and current is library.models_panel:
        library.models.request_refresh()
