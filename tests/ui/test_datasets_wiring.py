"""The Datasets and Models tabs inside the real MainWindow: a job created from the Train dialog shows up
selected in the Jobs tab, a broken panel does not take the window down, and quitting stops everything."""

from __future__ import annotations

from training_studio.ui.datasets.panel import DatasetsPanel
from training_studio.ui.datasets.wiring import install_library_panels
from training_studio.ui.main_window import FailedPanel
from training_studio.ui.models.panel import ModelsPanel
from tests.ui.datasets_fixtures import http, make_dataset, wait_status  # noqa: F401  (fixtures)


def test_train_dialog_job_appears_selected_in_the_monitor(harness, server, http, qtbot):
    dataset_id = make_dataset(http, "wired", images=4)
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store)
    store.start()
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Jobs", "Datasets", "Models"]
    assert isinstance(library.datasets_panel, DatasetsPanel) and isinstance(library.models_panel, ModelsPanel)

    window.tabs.setCurrentWidget(library.datasets_panel)
    qtbot.waitUntil(lambda: library.datasets.model.row_of(dataset_id) is not None, timeout=10_000)
    panel = library.datasets_panel
    panel.select_dataset(dataset_id)
    dialog = panel.open_train_dialog()
    qtbot.waitUntil(lambda: dialog.current_base_model() is not None, timeout=10_000)
    dialog.steps_spin.setValue(4)
    dialog.params_form.fields["resolution"].editor.setValue(8)
    dialog.params_form.fields["batch_size"].editor.setValue(4)
    with qtbot.waitSignal(panel.job_created, timeout=10_000) as created:
        dialog.create_button.click()
    job_id = created.args[0]

    jobs_panel = window.jobs_panel
    assert window.tabs.currentWidget() is jobs_panel
    selected = jobs_panel.selected_job()
    assert selected is not None and selected.id == job_id
    assert wait_status(http, job_id, {"completed", "failed"}, timeout=60)["status"] == "completed"

    # The trained model shows up in the Models tab once it is opened.
    window.tabs.setCurrentWidget(library.models_panel)
    qtbot.waitUntil(lambda: library.models.model.rowCount() == 1, timeout=15_000)
    assert library.models.model.record_at(0).training_job_id == job_id

    window.close()
    assert not library.datasets.auto_refresh and not library.models.auto_refresh
    harness.run(library.wait_idle())


def test_show_dataset_brings_the_datasets_tab_forward_with_it_selected(harness, server, http, qtbot):
    dataset_id = make_dataset(http, "wanted", images=1)
    make_dataset(http, "newer", images=1)  # a first list opens on the newest: not the one asked for
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, lazy=True)
    store.start()
    window.show_panel("Jobs")
    panel = library.datasets_panel  # built, not listed yet: selected once the list comes
    panel.show_dataset(dataset_id)
    assert window.current_title() == "Datasets"
    qtbot.waitUntil(lambda: (selected := panel.selected_dataset()) is not None and selected.id == dataset_id,
                    timeout=10_000)
    window.close()
    harness.run(library.wait_idle())


def test_a_panel_that_fails_to_build_shows_retry_and_the_rest_works(harness, server, qtbot, monkeypatch):
    store = harness.store(server.url, server.token)
    window = harness.window(store)

    def broken(*args, **kwargs):
        raise RuntimeError("models panel exploded")

    monkeypatch.setattr("training_studio.ui.datasets.wiring.ModelsPanel", broken)
    library = install_library_panels(window, store.client, store)
    failed = window.panel("Models")
    assert isinstance(failed, FailedPanel) and "models panel exploded" in failed.message.text()
    assert isinstance(library.datasets_panel, DatasetsPanel)
    monkeypatch.undo()
    assert isinstance(window.retry_panel("Models"), ModelsPanel)
    window.close()
    harness.run(library.wait_idle())


def test_new_dataset_opens_the_import_panel_in_its_own_window_and_keeps_it(harness, server, qtbot, tmp_path):
    from training_studio.ui.datasets.import_dialog import DatasetImportPanel

    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, data_dir=tmp_path / "gui-data")
    panel = library.datasets_panel
    window.tabs.setCurrentWidget(panel)
    assert panel.new_action.isEnabled()
    panel.new_action.trigger()
    first = panel.import_widget
    assert isinstance(first, DatasetImportPanel) and first.isVisible() and first.isWindow()
    first.name_edit.setText("half typed")
    first.close()  # closing hides it: what was typed (or uploading) survives
    panel.new_action.trigger()
    assert panel.import_widget is first and first.isVisible()
    assert first.name_edit.text() == "half typed"
    first.close()
    window.close()
    harness.run(library.wait_idle())


def test_lazy_tabs_are_built_when_first_shown_and_keep_retry(harness, server, qtbot, monkeypatch):
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    built = []
    window.panel_built.connect(lambda title, panel: built.append((title, type(panel).__name__)))

    def broken(*args, **kwargs):
        raise RuntimeError("models panel exploded")

    monkeypatch.setattr("training_studio.ui.datasets.wiring.ModelsPanel", broken)
    library = install_library_panels(window, store.client, store, lazy=True)
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Jobs", "Datasets", "Models"]
    assert window.built_panel("Datasets") is None and window.built_panel("Models") is None
    assert window.tabs.currentWidget() is window.jobs_panel and built == []

    window.tabs.setCurrentIndex(1)  # the user opens Datasets: built now, in place, and on screen
    panel = window.built_panel("Datasets")
    assert isinstance(panel, DatasetsPanel) and library.datasets_panel is panel
    assert window.tabs.currentWidget() is panel and window.tabs.indexOf(panel) == 1
    assert window.built_panel("Models") is None and built == [("Datasets", "DatasetsPanel")]
    qtbot.waitUntil(lambda: library.datasets.auto_refresh, timeout=5000)

    window.tabs.setCurrentIndex(2)  # a lazy panel that fails still says so and offers Retry
    failed = window.built_panel("Models")
    assert isinstance(failed, FailedPanel) and "models panel exploded" in failed.message.text()
    assert window.tabs.currentWidget() is failed
    monkeypatch.undo()
    failed.retry_button.click()
    assert isinstance(window.panel("Models"), ModelsPanel) and window.tabs.currentIndex() == 2
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Jobs", "Datasets", "Models"]
    window.close()
    harness.run(library.wait_idle())


def test_a_lazy_tab_is_built_when_asked_for_and_not_by_refreshes(harness, server, qtbot, tmp_path):
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, data_dir=tmp_path / "gui-data", lazy=True,
                                     defer_entry_points=True)
    store.start()
    qtbot.waitUntil(lambda: store.connected, timeout=10_000)
    window.refresh_action.trigger()  # refreshes what is on screen: the Jobs tab
    assert window.built_panel("Datasets") is None and window.built_panel("Models") is None
    assert library.entry_points is None

    library.install_entry_points()  # what the app does once its first screen is up
    entry = library.entry_points
    assert entry is not None and entry.drop_target.widget is window
    library.install_entry_points()
    assert library.entry_points is entry  # once

    models = library.models_panel  # code that needs a panel gets it built
    assert isinstance(models, ModelsPanel) and window.tabs.currentWidget() is window.jobs_panel
    assert window.built_panel("Datasets") is None
    window.close()
    assert library.entry_points is entry and not library.datasets.auto_refresh
    harness.run(library.wait_idle())


def test_show_panel_opens_a_lazy_tab_by_title_as_tab_does(harness, server, qtbot):
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, lazy=True)
    assert window.built_panel("Models") is None
    assert window.show_panel("Models") is True  # what `--tab models` does before the window shows
    assert isinstance(window.built_panel("Models"), ModelsPanel) and window.current_title() == "Models"
    assert window.show_panel("Nope") is False and window.current_title() == "Models"
    window.close()
    harness.run(library.wait_idle())
