"""Keyboard use (issue 15): tables are one Tab stop, Ctrl+1/2/3 and Ctrl+Tab switch tabs from anywhere,
Delete acts on the job Train… just selected (focus follows), destructive confirmations default to the
safe answer with verbs on the buttons, and Ctrl+S saves a caption."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractItemView, QApplication

from training_studio.contract.models import JobStatus, TrainingJob
from training_studio.ui.confirm import ConfirmBox
from training_studio.ui.datasets.panel import DatasetsPanel
from training_studio.ui.datasets.wiring import install_library_panels, show_job_in_monitor
from tests.ui.datasets_fixtures import api_client, dataset_store, http, make_dataset  # noqa: F401 (fixtures)


def _job(job_id: str, name: str, status: JobStatus = JobStatus.RUNNING) -> TrainingJob:
    return TrainingJob(id=job_id, name=name, status=status, created_at="2026-01-01T00:00:00Z", total_steps=10)


@pytest.fixture
def window(harness, qtbot, tmp_path):
    store = harness.store("http://127.0.0.1:9")  # never started: jobs are put in the model directly
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, data_dir=tmp_path / "data", lazy=True)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    yield window
    library.shutdown()
    harness.run(library.wait_idle())


def _closed(dialog) -> bool:
    try:
        return not dialog.isVisible()
    except RuntimeError:  # deleted on close
        return True


def _press(qtbot, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    target = QApplication.focusWidget()
    assert target is not None
    QTest.keyClick(target, key, modifiers)


def test_tab_leaves_every_table_in_one_stop(window, qtbot):
    for title in ("Jobs", "Datasets", "Models"):
        window.panel(title)  # build the lazy tabs too
    views = window.findChildren(QAbstractItemView)
    assert views and all(not view.tabKeyNavigation() for view in views), \
        [view.objectName() for view in views if view.tabKeyNavigation()]

    store = window.store
    for index in range(3):
        store.model.update_job(_job(f"j{index}", f"run {index}"))
    panel = window.jobs_panel
    window.show_panel("Jobs")
    panel.select_job("j0")
    panel.table.setFocus()
    qtbot.waitUntil(panel.table.hasFocus, timeout=5000)
    _press(qtbot, Qt.Key.Key_Down)  # arrows move within the table...
    assert panel.table.hasFocus() and panel.selected_job().id == "j1"
    _press(qtbot, Qt.Key.Key_Tab)  # ...Tab leaves it
    qtbot.waitUntil(lambda: not panel.table.hasFocus(), timeout=5000)
    assert QApplication.focusWidget() is not panel.table


def test_ctrl_number_and_ctrl_tab_switch_tabs_from_anywhere(window, qtbot):
    panel = window.jobs_panel
    panel.filter_edit.setFocus()  # typing in a text field
    qtbot.waitUntil(panel.filter_edit.hasFocus, timeout=5000)
    _press(qtbot, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.current_title() == "Datasets", timeout=5000)
    datasets = window.panel("Datasets")
    assert datasets is not None
    window.tabs.tabBar().setFocus()  # an empty tab has no table to focus: the tab bar, then
    qtbot.waitUntil(window.tabs.tabBar().hasFocus, timeout=5000)
    _press(qtbot, Qt.Key.Key_Tab, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.current_title() == "Models", timeout=5000)
    _press(qtbot, Qt.Key.Key_Tab, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.current_title() == "Datasets", timeout=5000)
    _press(qtbot, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.current_title() == "Models", timeout=5000)
    _press(qtbot, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.current_title() == "Jobs", timeout=5000)
    _press(qtbot, Qt.Key.Key_Tab, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.current_title() == "Models", timeout=5000)  # wraps around


def test_delete_acts_on_the_job_train_just_selected(window, qtbot):
    window.show_panel("Datasets")
    window.panel("Datasets").table.setFocus()
    created = _job("new", "fresh from Train…", JobStatus.QUEUED)
    assert show_job_in_monitor(window, window.store, created)
    panel = window.jobs_panel
    assert window.current_title() == "Jobs" and panel.selected_job().id == "new"
    qtbot.waitUntil(panel.table.hasFocus, timeout=5000)  # focus followed the selection
    with qtbot.waitSignal(panel.cancel_action.triggered, timeout=5000):
        _press(qtbot, Qt.Key.Key_Delete)
    for widget in QApplication.topLevelWidgets():  # whatever the jobs panel asked, leave it unanswered
        if widget.isVisible() and widget is not window and widget.isModal():
            widget.close()


def test_destructive_confirmations_default_to_the_safe_answer(window, qtbot):
    # The Server menu's Stop (this window's store is remote, but the question is the same one).
    box = window.server_menu.confirm_stop()
    assert isinstance(box, ConfirmBox) and box.defaultButton() is box.keep_button
    assert box.escapeButton() is box.keep_button
    assert [box.confirm_button.text(), box.keep_button.text()] == ["&Stop server", "&Keep it running"]
    box.keep_button.click()

    datasets = window.panel("Datasets")
    assert isinstance(datasets, DatasetsPanel)
    deleted: list[str] = []
    datasets.delete_requested.connect(deleted.append)
    box = datasets._confirm_delete("d1", "Delete dataset", "Delete the dataset “x”?\n\nIts files go.")
    assert box.defaultButton() is box.keep_button
    assert [box.confirm_button.text(), box.keep_button.text()] == ["&Delete dataset", "&Keep it"]
    qtbot.waitUntil(box.isVisible, timeout=5000)
    with qtbot.waitSignal(box.finished, timeout=5000):
        QTest.keyClick(box, Qt.Key.Key_Return)  # Enter takes the default: nothing is deleted
    assert deleted == [] and not box.confirmed

    box = datasets._confirm_delete("d1", "Delete dataset", "Delete the dataset “x”?\n\nIts files go.")
    with qtbot.waitSignal(box.finished, timeout=5000):
        QTest.keyClick(box, Qt.Key.Key_Escape)
    assert deleted == []


def test_ctrl_s_saves_the_caption(dataset_store, http, qtbot):
    dataset_id = make_dataset(http, "captions by keyboard", images=2)
    panel = DatasetsPanel(dataset_store)
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=10_000)
    panel.select_dataset(dataset_id)
    viewer = panel.viewer
    qtbot.waitUntil(lambda: viewer.selected_file() is not None, timeout=10_000)
    chosen = viewer.selected_file()
    panel.activateWindow()
    viewer.caption_edit.setFocus()
    qtbot.waitUntil(viewer.caption_edit.hasFocus, timeout=5000)
    QTest.keyClicks(viewer.caption_edit, "typed then saved")
    with qtbot.waitSignal(dataset_store.caption_saved, timeout=10_000) as saved:
        QTest.keyClick(viewer.caption_edit, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert saved.args == [dataset_id, chosen.sha256]
    files = {f["sha256"]: f for f in http.get(f"/api/datasets/{dataset_id}/files").json()}
    assert files[chosen.sha256]["caption"] == "typed then saved"


def test_after_train_the_new_job_has_focus_and_delete_acts_on_it(harness, qtbot, server, tmp_path):
    from tests.ui.app_fixtures import sync_client
    from tests.ui.jobs_helpers import make_dataset as make_http_dataset

    with sync_client(server.url, server.token) as http_client:
        dataset_id = make_http_dataset(http_client, "keyboard data", images=2)
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, data_dir=tmp_path / "data", lazy=True)
    try:
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
        store.start()
        window.show_panel("Datasets")
        datasets = window.panel("Datasets")
        qtbot.waitUntil(lambda: datasets.select_dataset(dataset_id), timeout=15_000)
        datasets.table.setFocus()
        datasets.train_action.trigger()
        dialog = datasets.train_dialog
        qtbot.waitUntil(lambda: dialog.current_base_model() is not None, timeout=15_000)
        dialog.name_edit.setText("keyboard run")
        with qtbot.waitSignal(datasets.job_created, timeout=15_000) as created:
            dialog.create_button.click()
        job_id = created.args[0]
        panel = window.jobs_panel
        qtbot.waitUntil(lambda: window.current_title() == "Jobs" and panel.selected_job() is not None
                        and panel.selected_job().id == job_id, timeout=10_000)
        qtbot.waitUntil(lambda: _closed(dialog), timeout=10_000)
        # The window manager gives the window back its activation when the dialog closes (offscreen has
        # none: the test does it); focus then lands where it followed the selection.
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window and panel.table.hasFocus(), timeout=10_000)
        with qtbot.waitSignal(panel.cancel_action.triggered, timeout=5000):
            QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Delete)
        for widget in QApplication.topLevelWidgets():  # leave the jobs panel's question unanswered
            if widget.isVisible() and widget is not window and widget.isModal():
                widget.close()
        store.request_cancel(job_id)
    finally:
        library.shutdown()
        harness.run(library.wait_idle())
