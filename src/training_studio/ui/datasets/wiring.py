"""Plugs the Datasets and Models panels into the main window, sharing the app's one ApiClient.

`install_library_panels()` owns the glue the app needs and nothing else: it builds the `DatasetStore` and
`ModelStore` on the app's client, adds the "Datasets" and "Models" tabs through `MainWindow.add_panel`
(so a panel that fails to build shows Retry like any other), refreshes both lists when the jobs store
(re)connects and when View › Refresh is used on their tab, and when the Train dialog creates a job it
shows that job selected in the Jobs tab (`show_job_in_monitor`). The returned `LibraryPanels` stops
timers and tasks at quit (`shutdown()`, then `await wait_idle()`), as the jobs store does. The jobs store
follows the server's event stream; its `dataset` and `model` events go to these stores
(`apply_record_event`), so both tabs update live, and a stream reset makes them refetch.

Start-up pays only for what the first screen shows: with `lazy=True` (what the app uses) both tabs are
built when first shown, their stores and modules (and the import flow's: thumbnails, hashing, uploads)
are loaded then, and the window-wide import entry points (drop files anywhere, resume unfinished uploads) are
installed by `LibraryPanels.install_entry_points()`, which the app calls once the first screen is up.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from training_studio.client import ApiClient
from training_studio.contract.models import TrainingJob

if TYPE_CHECKING:
    from training_studio.ui.datasets.panel import DatasetsPanel
    from training_studio.ui.datasets.store import DatasetStore
    from training_studio.ui.datasets.template_store import TemplateStore
    from training_studio.ui.models.panel import ModelsPanel
    from training_studio.ui.models.store import ModelStore

__all__ = ["LibraryPanels", "install_library_panels", "show_job_in_monitor"]

DATASETS_TITLE = "Datasets"
MODELS_TITLE = "Models"

# The panel classes are imported when a tab is first built; looked up through the module so that a
# replacement set on it (tests break a panel on purpose) is what gets built.
_PANEL_MODULES = {
    "DatasetsPanel": "training_studio.ui.datasets.panel",
    "ModelsPanel": "training_studio.ui.models.panel",
}


def __getattr__(name: str) -> Any:
    if name in _PANEL_MODULES:
        import importlib

        value = getattr(importlib.import_module(_PANEL_MODULES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _panel_class(name: str) -> Any:
    return getattr(sys.modules[__name__], name)


class LibraryPanels:
    """The Datasets and Models tabs' stores and panels; each store is made when first needed (its tab is
    built, or code asks for it), so a start-up that only shows the Jobs tab does not load them."""

    def __init__(self, window: Any, client: ApiClient, job_store: Any, data_dir: Path | None = None) -> None:
        self.window = window  # MainWindow
        self.client = client
        self.job_store = job_store
        self.data_dir = data_dir
        self.entry_points: Any = None  # ui.datasets.import_dialog.ImportEntryPoints, once installed
        self._datasets: DatasetStore | None = None
        self._models: ModelStore | None = None
        self._templates: TemplateStore | None = None
        self._closed = False

    @property
    def datasets(self) -> DatasetStore:
        if self._datasets is None:
            from training_studio.ui.datasets.store import DatasetStore

            self._datasets = DatasetStore(self.client, parent=self.window)
            window, job_store = self.window, self.job_store
            self._datasets.job_created.connect(lambda job: show_job_in_monitor(window, job_store, job))
            if self._closed:
                self._datasets.shutdown()
        return self._datasets

    @property
    def templates(self) -> TemplateStore:
        """The server's job templates (issue 16), for the Train dialog and the History tab."""
        if self._templates is None:
            from training_studio.ui.datasets.template_store import TemplateStore

            self._templates = TemplateStore(self.client, parent=self.window)
            if self._closed:
                self._templates.shutdown()
        return self._templates

    @property
    def models(self) -> ModelStore:
        if self._models is None:
            from training_studio.ui.models.store import ModelStore

            self._models = ModelStore(self.client, parent=self.window)
            if self._closed:
                self._models.shutdown()
        return self._models

    @property
    def datasets_panel(self) -> DatasetsPanel | None:
        """The Datasets panel, built now if its tab was not shown yet; None if it failed to build."""
        panel = self.window.panel(DATASETS_TITLE)
        return panel if isinstance(panel, _panel_class("DatasetsPanel")) else None

    @property
    def models_panel(self) -> ModelsPanel | None:
        panel = self.window.panel(MODELS_TITLE)
        return panel if isinstance(panel, _panel_class("ModelsPanel")) else None

    def install_entry_points(self) -> None:
        """Drops anywhere on the window start a new dataset; unfinished uploads are offered once connected
        (at once if the jobs store already is). Needs `data_dir`; does nothing twice or after quit."""
        if self.entry_points is not None or self._closed or self.data_dir is None or self.client is None:
            return
        from training_studio.ui.datasets.import_dialog import install_import_entry_points

        library = self
        self.entry_points = install_import_entry_points(
            self.window, self.client, Path(self.data_dir),
            lambda: library.datasets_panel.open_new_dataset() if library.datasets_panel else None,
            self.job_store.connection_changed)
        if getattr(self.job_store, "connected", False):
            self.entry_points.watcher.check()  # the connection came first: the offer must not wait for the next

    def shutdown(self) -> None:
        self._closed = True
        for store in (self._datasets, self._models, self._templates):
            if store is not None:
                store.shutdown()
        panel = self.window.built_panel(DATASETS_TITLE)  # a panel never shown has nothing to stop
        controller = getattr(getattr(panel, "import_widget", None), "controller", None)
        if controller is not None and hasattr(controller, "shutdown"):
            controller.shutdown()  # the import flow's uploads and scans
        workbench_store = getattr(panel, "workbench_store", None)
        if workbench_store is not None:
            workbench_store.shutdown()  # issue 17: an export in flight removes its .part file
        caption_ops = getattr(getattr(panel, "viewer", None), "caption_ops", None)
        if caption_ops is not None:
            caption_ops.shutdown()  # issue 17: bulk caption edits and their undo/redo requests
        if self.entry_points is not None:
            self.entry_points.shutdown()

    async def wait_idle(self) -> None:
        for store in (self._datasets, self._models, self._templates):
            if store is not None:
                await store.wait_idle()
        workbench_store = getattr(self.window.built_panel(DATASETS_TITLE), "workbench_store", None)
        if workbench_store is not None:
            await workbench_store.wait_idle()
        caption_ops = getattr(getattr(self.window.built_panel(DATASETS_TITLE), "viewer", None), "caption_ops", None)
        if caption_ops is not None:
            await caption_ops.wait_idle()

    # live updates (from the jobs store's event stream); a store not made yet loads fresh when it is
    def on_dataset_event(self, event: Any) -> None:
        if self._datasets is not None:
            self._datasets.apply_record_event(event.dataset_id, event.dataset, event.revision)

    def on_model_event(self, event: Any) -> None:
        if self._models is not None:
            self._models.apply_record_event(event.model_id, event.model, event.revision)

    def on_resync(self) -> None:
        for store in (self._datasets, self._models):
            if store is not None and store.loaded_once:
                store.request_refresh()


def show_job_in_monitor(window: Any, job_store: Any, job: TrainingJob) -> bool:
    """Put a just-created job in the monitor at once (the next refresh updates it), switch to the Jobs tab
    and select its row. False when the Jobs panel is missing or filters the job out."""
    job_store.model.update_job(job)
    job_store.request_refresh()
    panel = window.jobs_panel
    if panel is None:
        return False
    window.tabs.setCurrentWidget(panel)
    if not panel.select_job(job.id):
        return False
    # Focus follows the selection, so Delete cancels this job at once (issue 15); set while the Train
    # dialog is still closing, it is where focus lands when the window is active again.
    panel.table.setFocus(Qt.FocusReason.OtherFocusReason)
    return True


def install_library_panels(window: Any, client: ApiClient, job_store: Any, *, data_dir: Path | None = None,
                           import_factory: Callable[[QWidget], QWidget] | None = None, lazy: bool = False,
                           defer_entry_points: bool = False) -> LibraryPanels:
    """Add the Datasets and Models tabs to `window`; see the module docstring. "New dataset…" opens
    `import_factory`'s widget, by default the import panel keeping its upload state under `data_dir`.
    `lazy`: build each tab when first shown. `defer_entry_points`: the caller installs the window-wide
    import entry points later with `install_entry_points()`."""
    library = LibraryPanels(window, client, job_store, Path(data_dir) if data_dir is not None else None)
    window.library_panels = library  # for ui.datasets.train_again (Train again / Save as template from any tab)

    def build_datasets_panel() -> QWidget:
        factory = import_factory
        if factory is None and data_dir is not None:
            from training_studio.ui.datasets.import_dialog import import_factory_for

            factory = import_factory_for(client, Path(data_dir))
        panel = _panel_class("DatasetsPanel")(library.datasets, import_factory=factory)
        panel.taken_job_names = lambda: _job_names(job_store)  # the Train dialog's default name avoids them
        panel.template_store = library.templates
        panel.show_requested.connect(lambda: window.show_panel(DATASETS_TITLE))
        return panel

    window.add_panel(DATASETS_TITLE, build_datasets_panel, lazy=lazy)
    window.add_panel(MODELS_TITLE, lambda: _panel_class("ModelsPanel")(library.models), lazy=lazy)

    for signal in (job_store.connection_changed, job_store.connection_restored):
        signal.connect(lambda *args: _refresh_visible(window, library))
    job_store.dataset_event.connect(library.on_dataset_event)
    job_store.model_event.connect(library.on_model_event)
    job_store.library_resync.connect(library.on_resync)
    window.refresh_action.triggered.connect(lambda: _refresh_visible(window, library))
    window.closing.connect(library.shutdown)
    if not defer_entry_points:
        library.install_entry_points()
    return library


def _job_names(job_store: Any) -> list[str]:
    model = job_store.model
    return [job.name for job in (model.job(job_id) for job_id in model.job_ids()) if job is not None]


def _refresh_visible(window: Any, library: LibraryPanels) -> None:
    # Only the tab on screen (hence already built) is refreshed; a tab's first show refreshes it anyway.
    title = window.current_title()
    if title == DATASETS_TITLE and library.datasets_panel is not None:
        library.datasets.request_refresh()
    elif title == MODELS_TITLE and library.models_panel is not None:
        library.models.request_refresh()
