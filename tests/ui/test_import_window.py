"""The import window as a new user meets it (issue 15), against a real server: a truncated JPEG is refused
by the local check with a plain reason; a server's refusal reads as plain text; files can be taken out
(Delete, context menu); the window opens centred over the main window; after a commit it closes and the main
window says what was made (or, on its own, shows the summary, with no progress bar left at 0%); and
quitting during an upload asks first, with the safe answer as default, saying it resumes next time."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QMenu

from training_studio.ui.datasets.import_controller import ImportPhase
from training_studio.ui.datasets.import_dialog import DatasetImportPanel
from training_studio.ui.datasets.import_model import FileState, ImportRole, RejectedRole
from training_studio.ui.datasets.import_scan import ENDS_EARLY, check_file
from training_studio.ui.datasets.uploader import ManifestFile, UploadManifest, manifest_path, plain_server_message
from training_studio.ui.notifications import notice_area_of
from tests.support.gui import library_window, open_import_panel
from tests.ui.app_fixtures import sync_client

TIMEOUT_MS = 30_000


def photo(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """A real JPEG with detail in it (so its entropy-coded data is long enough to cut)."""
    image = Image.effect_noise(size, 40 + seed).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def noisy_png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((48, 48), 30 + seed).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def panel(server, harness, tmp_path, qtbot):
    yield from open_import_panel(server, harness, qtbot, tmp_path / "app-data", (900, 700))


def add_folder(panel: DatasetImportPanel, monkeypatch, qtbot, folder: Path, name: str = "set") -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    panel.name_edit.setText(name)
    panel.add_folder_button.click()
    qtbot.waitUntil(lambda: not panel.controller.is_scanning and panel.controller.files.rowCount() > 0,
                    timeout=TIMEOUT_MS)


def names(panel: DatasetImportPanel) -> list[str]:
    model = panel.controller.files
    return sorted(Path(model.index(row).data(ImportRole.PATH)).name for row in range(model.rowCount()))


def reasons(panel: DatasetImportPanel) -> dict[str, str]:
    model = panel.controller.rejected
    return {Path(model.index(row).data(RejectedRole.PATH)).name: model.index(row).data(RejectedRole.REASON)
            for row in range(model.rowCount())}


def select(panel: DatasetImportPanel, name: str) -> None:
    model = panel.controller.files
    row = next(r for r in range(model.rowCount()) if Path(model.index(r).data(ImportRole.PATH)).name == name)
    panel.file_view.selectionModel().select(model.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect)


# truncation and plain reasons ---------------------------------------------------------------------------------
def test_a_truncated_jpeg_is_refused_locally_with_a_plain_reason(panel, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    whole = photo(1)
    (folder / "whole.jpg").write_bytes(whole)
    (folder / "half.jpg").write_bytes(whole[: len(whole) // 2])  # header intact, the rest not yet copied
    (folder / "no end.jpg").write_bytes(photo(2)[:-40])
    add_folder(panel, monkeypatch, qtbot, folder)
    qtbot.waitUntil(lambda: panel.controller.rejected.rowCount() == 2, timeout=TIMEOUT_MS)
    assert names(panel) == ["whole.jpg"]
    assert reasons(panel) == {"half.jpg": ENDS_EARLY, "no end.jpg": ENDS_EARLY}
    assert ENDS_EARLY == "the file ends early: it is damaged or still being copied"
    assert "1 file ready, 2 left out" in panel.status_label.text()


def test_truncation_is_caught_in_every_accepted_format(tmp_path):
    image = Image.effect_noise((64, 64), 50).convert("RGB")
    for format_name, suffix in (("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"), ("BMP", "bmp")):
        buffer = io.BytesIO()
        image.save(buffer, format=format_name)
        data = buffer.getvalue()
        whole = tmp_path / f"whole.{suffix}"
        whole.write_bytes(data)
        cut = tmp_path / f"cut.{suffix}"
        cut.write_bytes(data[: len(data) * 2 // 3])
        assert check_file(str(whole), "image").__class__.__name__ == "AcceptedFile", format_name
        refused = check_file(str(cut), "image")
        assert getattr(refused, "reason", None) == ENDS_EARLY, (format_name, refused)


def test_a_jpeg_is_whole_when_it_ends_with_its_end_marker(tmp_path):
    # The cheap check (issue 19): a JPEG ending in FF D9 is whole without a decode; one with bytes after the
    # marker (some cameras write a trailer) is decoded as before and accepted; one cut short is refused.
    whole = photo(5)
    assert whole.endswith(b"\xff\xd9")
    cases = {"whole.jpg": whole, "trailer.jpg": whole + b"SEFT" * 64, "cut.jpg": whole[: len(whole) * 3 // 4],
             "cut then marker.jpg": whole[: len(whole) * 3 // 4] + b"\xff\xd9"}
    verdicts = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        result = check_file(str(tmp_path / name), "image")
        verdicts[name] = getattr(result, "reason", "accepted")
    # A file damaged in its middle that still ends with the marker passes here: the server's full decode
    # refuses it (test_a_server_refusal_reads_as_plain_text shows that refusal in the window).
    assert verdicts == {"whole.jpg": "accepted", "trailer.jpg": "accepted", "cut.jpg": ENDS_EARLY,
                        "cut then marker.jpg": "accepted"}


def test_a_server_refusal_reads_as_plain_text(server, panel, qtbot, tmp_path):
    # A manifest from an earlier run names a file that was cut after it was checked: the server refuses it.
    whole = photo(3)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    good = tmp_path / "good.jpg"
    good.write_bytes(photo(4))
    with sync_client(server.url, server.token) as http:
        dataset_id = http.post("/api/datasets", json={"name": "resumed", "type": "image"}).json()["id"]
    files = [ManifestFile(str(p), p.name, p.stat().st_size, p.stat().st_mtime_ns,
                          hashlib.sha256(p.read_bytes()).hexdigest()) for p in (good, cut)]
    panel.controller.resume(UploadManifest(dataset_id, "resumed", "image", server.url, files))
    qtbot.waitUntil(lambda: panel.controller.phase == ImportPhase.REVIEW, timeout=TIMEOUT_MS)
    assert reasons(panel) == {"cut.jpg": f"refused by the server: {ENDS_EARLY}"}
    assert panel.controller.rejected.index(0).data(RejectedRole.BY_SERVER) is True
    # and the client's wrapping of other refusals is taken off too
    assert plain_server_message("The server refused the request (HTTP 415): a.gif: the animation has more "
                                "than 1,000 frames.", "a.gif") == "the animation has more than 1,000 frames"
    assert plain_server_message("The server refused the request (HTTP 422): the image is damaged or truncated "
                                "(cannot identify image file <_io.BufferedReader name=3>).") == \
        "the file ends early: it is damaged or still being copied"
    assert plain_server_message("The server refused the request (HTTP 422): the image is damaged (broken PNG "
                                "file (chunk b'\\x00\\x00')).") == "the image is damaged: the server cannot decode it"


# removing files ---------------------------------------------------------------------------------------------
def test_files_can_be_removed_with_delete_and_the_context_menu(panel, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for index in range(4):
        (folder / f"p{index}.png").write_bytes(noisy_png(index))
    add_folder(panel, monkeypatch, qtbot, folder)
    qtbot.waitUntil(lambda: len(names(panel)) == 4, timeout=TIMEOUT_MS)
    assert not panel.remove_action.isEnabled()  # nothing selected

    select(panel, "p1.png")
    assert panel.remove_action.isEnabled()
    panel.file_view.setFocus()
    QTest.keyClick(panel.file_view, Qt.Key.Key_Delete)
    assert names(panel) == ["p0.png", "p2.png", "p3.png"]
    assert "1 file removed; 3 ready." in panel.status_label.text()

    select(panel, "p2.png")
    rect = panel.file_view.visualRect(panel.file_view.selectionModel().selectedIndexes()[0])
    panel.file_view.customContextMenuRequested.emit(rect.center())
    menu = panel.file_menu
    assert isinstance(menu, QMenu) and [a.text() for a in menu.actions()] == ["&Remove from this dataset"]
    menu.actions()[0].trigger()
    menu.close()
    assert names(panel) == ["p0.png", "p3.png"]
    assert panel.controller.files.count_in(FileState.READY) == 2

    # a type change re-checks what was added, without what was removed; adding a file again brings it back
    panel.type_combo.setCurrentIndex(panel.type_combo.findData("text"))
    panel.type_combo.setCurrentIndex(panel.type_combo.findData("image"))
    qtbot.waitUntil(lambda: not panel.controller.is_scanning and len(names(panel)) == 2, timeout=TIMEOUT_MS)
    assert names(panel) == ["p0.png", "p3.png"]
    panel.controller.add_paths([str(folder / "p1.png")])
    qtbot.waitUntil(lambda: names(panel) == ["p0.png", "p1.png", "p3.png"], timeout=TIMEOUT_MS)
    assert panel.upload_button.isEnabled()


# placement, commit and quitting ---------------------------------------------------------------------------------
@pytest.fixture
def library(server, harness, tmp_path):
    made = library_window(server, harness, tmp_path / "app-data")
    made.window.resize(1000, 700)
    made.window.move(300, 200)
    made.window.show()
    yield made
    # pytest-qt has closed and deleted the window by now: the harness must not close it again.
    harness.windows.remove(made.window)
    widget = made.datasets.import_widget
    if isinstance(widget, DatasetImportPanel):
        widget.controller.shutdown()
        harness.run(widget.controller.wait_idle())
    made.shutdown()


def open_importer(library, qtbot) -> DatasetImportPanel:
    widget = library.datasets.open_new_dataset()
    assert isinstance(widget, DatasetImportPanel)
    qtbot.waitUntil(widget.isVisible, timeout=5_000)
    return widget


def test_the_window_opens_centred_over_the_main_window(library, qtbot):
    importer = open_importer(library, qtbot)
    centre, host = importer.frameGeometry().center(), library.window.frameGeometry().center()
    assert abs(centre.x() - host.x()) <= 2 and abs(centre.y() - host.y()) <= 2, (centre, host)
    # closed, the main window moved, opened again: centred again
    importer.close()
    library.window.move(120, 80)
    importer = open_importer(library, qtbot)
    centre, host = importer.frameGeometry().center(), library.window.frameGeometry().center()
    assert abs(centre.x() - host.x()) <= 2 and abs(centre.y() - host.y()) <= 2, (centre, host)
    assert not importer.progress_bar.isVisible()  # an empty form: no bar at 0%


def test_after_commit_the_window_closes_and_the_main_window_says_what_was_made(library, monkeypatch, qtbot,
                                                                                tmp_path, server):
    folder = tmp_path / "few"
    folder.mkdir()
    for index in range(3):
        (folder / f"f{index}.png").write_bytes(noisy_png(10 + index))
    importer = open_importer(library, qtbot)
    add_folder(importer, monkeypatch, qtbot, folder, "three")
    importer.upload_button.click()
    qtbot.waitUntil(lambda: importer.controller.phase == ImportPhase.REVIEW, timeout=TIMEOUT_MS)
    assert notice_area_of(library.datasets) is not None, "the main window has a notice area"
    with qtbot.waitSignal(importer.dataset_created, timeout=TIMEOUT_MS):
        importer.commit_button.click()
    qtbot.waitUntil(lambda: not importer.isVisible(), timeout=5_000)
    texts = " ".join(label.text() for label in library.window.findChildren(type(importer.status_label))
                     if label.isVisible())
    assert "Dataset “three” is ready with 3 files." in texts
    # The notice takes the user to it (they may have dropped the files on another tab).
    notice = next(n for n in library.window.notices.notices if "three" in n.text)
    assert notice.show_button.isVisible() and notice.show_button.text().replace("&", "") == "Show dataset"
    with qtbot.waitSignal(library.datasets.show_requested, timeout=5_000):
        notice.show_button.click()
    qtbot.waitUntil(lambda: (selected := library.datasets.selected_dataset()) is not None
                    and selected.name == "three", timeout=TIMEOUT_MS)


def test_after_commit_a_window_on_its_own_shows_the_summary(panel, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "solo"
    folder.mkdir()
    (folder / "one.png").write_bytes(noisy_png(20))
    add_folder(panel, monkeypatch, qtbot, folder, "solo")
    assert panel.progress_bar.isVisible()
    panel.upload_button.click()
    qtbot.waitUntil(lambda: panel.controller.phase == ImportPhase.REVIEW, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(panel.dataset_created, timeout=TIMEOUT_MS):
        panel.commit_button.click()
    assert panel.isVisible()
    assert panel.message_banner.isVisible() and panel.message_banner.text == "Dataset “solo” is ready with 1 file."
    assert not panel.progress_bar.isVisible()


def test_quitting_during_an_upload_asks_first_and_says_it_resumes(library, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(3):
        (folder / f"m{index}.png").write_bytes(noisy_png(40 + index))
    importer = open_importer(library, qtbot)
    add_folder(importer, monkeypatch, qtbot, folder, "busy")
    closing: list[bool] = []
    library.window.closing.connect(lambda: closing.append(True))

    importer.upload_button.click()  # the upload is under way from this moment
    assert importer.controller.phase == ImportPhase.UPLOADING
    library.window.close()
    guard = library.entry.quit_guard
    prompt = guard.prompt
    assert prompt is not None and prompt.isVisible()
    assert library.window.isVisible() and closing == []
    assert "“busy”" in prompt.text()
    assert "resumes the next time you open Training Studio" in prompt.informativeText()
    assert sorted(b.text() for b in prompt.buttons()) == ["&Keep uploading", "&Quit and resume later"]
    keep = next(b for b in prompt.buttons() if b.text() == "&Keep uploading")
    assert prompt.defaultButton() is keep and prompt.escapeButton() is keep  # the safe answer
    # Everything up to the second answer runs without the event loop: the upload cannot finish meanwhile.
    keep.click()
    assert guard.prompt is None and library.window.isVisible() and closing == []
    assert importer.controller.phase == ImportPhase.UPLOADING

    library.window.close()
    prompt = guard.prompt
    assert prompt is not None and closing == []
    next(b for b in prompt.buttons() if b.text() == "&Quit and resume later").click()
    assert closing == [True] and not library.window.isVisible()
    # The app's shutdown then stops the upload; its manifest stays for the next start's resume offer.
    qtbot.waitUntil(lambda: importer.controller.manifest is not None, timeout=TIMEOUT_MS)
    manifest = importer.controller.manifest
    assert manifest_path(tmp_path / "app-data", manifest.dataset_id).is_file()


# a folder names the dataset ---------------------------------------------------------------------------------
def test_a_folder_that_starts_a_nameless_import_names_the_dataset(panel, monkeypatch, qtbot, tmp_path):
    """Adding a folder to an import with no name yet fills the name in from the folder (a kohya
    `<repeats>_<name>` folder by its name), so Upload is ready at once. Switching the type keeps it; Clear
    forgets it with the files, so the next folder names the import again; a name the user typed is never
    replaced; files added one by one suggest nothing."""
    def folder(name: str, seed: int) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / f"{seed}.png").write_bytes(noisy_png(seed))
        return path

    def added(count: int) -> None:
        qtbot.waitUntil(lambda: not panel.controller.is_scanning and panel.controller.files.rowCount() == count,
                        timeout=TIMEOUT_MS)

    kohya, dogs, birds = folder("10_grandma's cats", 1), folder("dogs", 2), folder("birds", 3)
    assert panel.name_edit.text() == ""
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(kohya))
    panel.add_folder_button.click()
    added(1)
    qtbot.waitUntil(lambda: panel.name_edit.text() == "grandma's cats", timeout=TIMEOUT_MS)
    assert panel.upload_button.isEnabled()

    # A second folder does not rename it.
    panel.controller.add_paths([str(dogs)])
    added(2)
    assert panel.name_edit.text() == "grandma's cats"
    # Another type and back: the files are checked again, the folder's name stays.
    for kind in ("text", "image"):
        panel.type_combo.setCurrentIndex(panel.type_combo.findData(kind))
        qtbot.waitUntil(lambda: not panel.controller.is_scanning, timeout=TIMEOUT_MS)
    added(2)
    assert panel.name_edit.text() == "grandma's cats"

    # Clear forgets the folder's name with its files; the next folder names the import.
    panel.clear_button.click()
    assert panel.name_edit.text() == ""
    panel.controller.add_paths([str(birds)])
    added(1)
    qtbot.waitUntil(lambda: panel.name_edit.text() == "birds", timeout=TIMEOUT_MS)

    # A name the user typed stays, through Clear and a new folder.
    panel.name_edit.setText("my own name")
    panel.clear_button.click()
    assert panel.name_edit.text() == "my own name"
    panel.controller.add_paths([str(dogs)])
    added(1)
    assert panel.name_edit.text() == "my own name"

    # Files alone suggest nothing.
    panel.name_edit.setText("")
    panel.clear_button.click()
    panel.controller.add_paths([str(birds / "3.png")])
    added(1)
    assert panel.name_edit.text() == ""
    assert not panel.upload_button.isEnabled()
