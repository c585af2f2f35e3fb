"""Drag-and-drop of files and folders through real QDragEnterEvent / QDropEvent with URL mime data: onto the
import panel, and onto the whole main window through the installable drop target, with the overlay that
shows where to drop; links that are not local files are listed with a reason, never lost."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import shiboken6
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from training_studio.ui.datasets.import_dialog import DatasetImportPanel
from training_studio.ui.datasets.import_model import ImportRole, RejectedRole
from training_studio.ui.drop import install_drop_target, paths_from_mime
from tests.support.gui import library_window, open_import_panel, server_client


def png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), colour).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def url_mime(*urls: QUrl) -> QMimeData:
    mime = QMimeData()
    mime.setUrls(list(urls))
    return mime


class Drag:
    """Sends the events a real drag sends; holds the mime data until every event is handled."""

    def __init__(self, target: QWidget, mime: QMimeData) -> None:
        self.target, self.mime = target, mime
        self.point = QPoint(target.width() // 2, target.height() // 2)
        self.actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def enter(self) -> QDragEnterEvent:
        event = QDragEnterEvent(self.point, self.actions, self.mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(self.target, event)
        return event

    def move(self) -> QDragMoveEvent:
        event = QDragMoveEvent(self.point, self.actions, self.mime, Qt.MouseButton.LeftButton,
                               Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(self.target, event)
        return event

    def leave(self) -> None:
        QApplication.sendEvent(self.target, QDragLeaveEvent())

    def drop(self) -> QDropEvent:
        event = QDropEvent(QPointF(self.point), self.actions, self.mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(self.target, event)
        return event


def drop_on(target: QWidget, mime: QMimeData) -> None:
    """A whole drag: Qt delivers a drop only to a widget that accepted the drag's enter event."""
    drag = Drag(target, mime)
    assert drag.enter().isAccepted()
    assert drag.drop().isAccepted()


@pytest.fixture
def panel(server, harness, tmp_path, qtbot):
    yield from open_import_panel(server, harness, qtbot, tmp_path / "app-data", (800, 600))


def accepted(panel: DatasetImportPanel) -> list[str]:
    model = panel.controller.files
    return sorted(Path(model.index(r).data(ImportRole.PATH)).name for r in range(model.rowCount()))


def rejected(panel: DatasetImportPanel) -> dict[str, str]:
    model = panel.controller.rejected
    return {model.index(r).data(RejectedRole.PATH): model.index(r).data(RejectedRole.REASON)
            for r in range(model.rowCount())}


def test_drop_files_folders_and_a_web_link_on_the_panel(panel, qtbot, tmp_path):
    loose = png(tmp_path / "loose one.png", (200, 0, 0))
    folder = tmp_path / "album"
    png(folder / "a.png", (0, 200, 0))
    png(folder / "inner" / "b.png", (0, 0, 200))
    drag = Drag(panel, url_mime(QUrl.fromLocalFile(str(loose)), QUrl.fromLocalFile(str(folder)),
                                QUrl("https://example.com/cat.png")))

    entered = drag.enter()
    assert entered.isAccepted() and entered.dropAction() == Qt.DropAction.CopyAction
    overlay = panel.drop_target.overlay
    assert overlay.isVisible() and overlay.geometry() == panel.rect()
    assert drag.move().isAccepted()
    dropped = drag.drop()
    assert dropped.isAccepted()
    assert not overlay.isVisible()

    qtbot.waitUntil(lambda: not panel.controller.is_scanning and panel.controller.files.rowCount() == 3,
                    timeout=20_000)
    assert accepted(panel) == ["a.png", "b.png", "loose one.png"]
    assert rejected(panel) == {"https://example.com/cat.png": "not a local file: only files and folders on this "
                                                              "computer can be added"}


def test_drag_without_urls_is_refused_and_leaving_hides_the_overlay(panel, tmp_path):
    text_only = QMimeData()
    text_only.setText("just words")
    refused = Drag(panel, text_only).enter()
    assert not refused.isAccepted()
    assert not panel.drop_target.overlay.isVisible()

    drag = Drag(panel, url_mime(QUrl.fromLocalFile(str(png(tmp_path / "x.png", (1, 1, 1))))))
    assert drag.enter().isAccepted()
    assert panel.drop_target.overlay.isVisible()
    drag.leave()
    assert not panel.drop_target.overlay.isVisible()
    assert panel.controller.files.rowCount() == 0  # leaving is not dropping


def test_window_wide_drop_target_shows_where_to_drop(server, harness, qtbot, tmp_path):
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    client = server_client(server, harness)
    panel = window.add_panel("New dataset", lambda: DatasetImportPanel(client, tmp_path / "app-data"))
    assert isinstance(panel, DatasetImportPanel)
    received: list[tuple[list[str], list[str]]] = []

    def on_paths(paths: list[str], refused: list[str]) -> None:
        received.append((paths, refused))
        window.tabs.setCurrentWidget(panel)
        panel.add_dropped(paths, refused)

    target = install_drop_target(window, on_paths)
    image = png(tmp_path / "über café.png", (9, 9, 9))
    drag = Drag(window, url_mime(QUrl.fromLocalFile(str(image)), QUrl("ftp://files.example/a.png")))
    assert drag.enter().isAccepted()
    assert target.overlay.isVisible() and target.overlay.geometry() == window.rect()
    window.grab().save(str(tmp_path / "drop-overlay.png"))
    drag.drop()
    assert not target.overlay.isVisible()
    assert received == [([str(image)], ["ftp://files.example/a.png"])]
    assert window.tabs.currentWidget() is panel
    qtbot.waitUntil(lambda: panel.controller.files.rowCount() == 1, timeout=20_000)
    assert accepted(panel) == ["über café.png"]
    panel.controller.shutdown()
    harness.run(panel.controller.wait_idle())


def test_paths_from_mime_keeps_order_and_separates_remote_links(tmp_path):
    mime = url_mime(QUrl.fromLocalFile(str(tmp_path / "b")), QUrl("http://x.test/"),
                    QUrl.fromLocalFile(str(tmp_path / "a")),
                    QUrl("file:///"))
    paths, refused = paths_from_mime(mime)
    assert paths == [str(tmp_path / "b"), str(tmp_path / "a"), "/"]
    assert refused == ["http://x.test/"]


def test_drop_on_the_window_opens_new_dataset_from_the_datasets_panel(server, harness, qtbot, tmp_path):
    # The wiring the app uses: the Datasets panel builds the import window with import_factory_for, and the
    # window-wide entry points open it (or reuse the open one) with the dropped paths.
    from training_studio.ui.datasets.panel import DatasetsPanel

    library = library_window(server, harness, tmp_path / "app-data")
    window, datasets = library.window, library.datasets
    assert isinstance(datasets, DatasetsPanel)
    assert library.entry.drop_target.widget is window
    first = png(tmp_path / "one.png", (5, 50, 5))
    second = png(tmp_path / "two.png", (50, 5, 5))
    drop_on(window, url_mime(QUrl.fromLocalFile(str(first))))
    importer = datasets.import_widget
    assert isinstance(importer, DatasetImportPanel) and importer.isVisible()
    drop_on(window, url_mime(QUrl.fromLocalFile(str(second))))
    assert datasets.import_widget is importer  # the open import window is reused
    qtbot.waitUntil(lambda: importer.controller.files.rowCount() == 2, timeout=20_000)
    assert accepted(importer) == ["one.png", "two.png"]
    controller = importer.controller
    importer.close()
    shiboken6.delete(importer)  # what deleteLater does once the app's loop runs (WA_DeleteOnClose)
    assert controller._closed  # the controller shut down with its window
    harness.run(controller.wait_idle())
    library.shutdown()
