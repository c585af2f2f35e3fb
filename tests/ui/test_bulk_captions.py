"""Bulk caption edits in the dataset viewer's grid (issue 17, item 2) against a real server process:
multi-select + add prefix or suffix, set a caption, find-and-replace (plain text or a regular expression)
with the server's preview count,
undo/redo through the server, a refused request that changes nothing, and the caption editor's saves
undoable too. Results are read back over HTTP (GET files)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt

from training_studio.ui.datasets.files_model import FileRole
from training_studio.ui.datasets.viewer import DatasetViewer
from tests.ui.datasets_fixtures import (  # noqa: F401  (fixtures)
    api_client,
    dataset_store,
    http,
    make_dataset,
)

WAIT_MS = 15_000
CAPTIONS = ["a photo of cat 1", "a photo of dog 2", "a red square", "a photo of cat 3", "blue"]


@pytest.fixture
def viewer(dataset_store, qtbot, harness):
    widget = DatasetViewer(dataset_store)
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    yield widget
    widget.caption_ops.shutdown()
    harness.run(widget.caption_ops.wait_idle())


@pytest.fixture
def dataset(http, viewer, qtbot):
    """Five files with known captions, shown in the viewer; returns (dataset id, sha256 in grid order)."""
    dataset_id = make_dataset(http, "bulk", images=5)
    files = http.get(f"/api/datasets/{dataset_id}/files").json()
    for file, caption in zip(files, CAPTIONS, strict=True):
        http.put(f"/api/datasets/{dataset_id}/files/{file['sha256']}/caption",
                 json={"caption": caption}).raise_for_status()
    viewer.show_dataset(dataset_id)
    model = viewer.model
    qtbot.waitUntil(lambda: model.rowCount() == 5 and model.index(4, 0).data(FileRole.CAPTION) == CAPTIONS[4],
                    timeout=WAIT_MS)
    return dataset_id, [model.index(row, 0).data(FileRole.SHA256) for row in range(5)]


def server_captions(http, dataset_id: str) -> dict[str, str]:
    return {f["sha256"]: f["caption"] or "" for f in http.get(f"/api/datasets/{dataset_id}/files").json()}


def model_captions(viewer: DatasetViewer) -> dict[str, str]:
    return viewer.model.captions_of()


def select_rows(viewer: DatasetViewer, rows: list[int]) -> None:
    selection = QItemSelection()
    for row in rows:
        index = viewer.proxy.mapFromSource(viewer.model.index(row, 0))  # the grid shows the filter proxy
        selection.select(index, index)
    viewer.grid.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)


def test_prefix_on_three_of_five_then_undo_and_redo(viewer, dataset, http, qtbot, qtmodeltester):
    dataset_id, shas = dataset
    qtmodeltester.check(viewer.model)
    original = server_captions(http, dataset_id)
    select_rows(viewer, [0, 2, 4])
    assert viewer.bulk_selection() == [shas[0], shas[2], shas[4]]
    assert viewer.bulk_actions["prefix"].isEnabled()

    dialog = viewer.open_bulk_dialog("prefix")
    assert dialog is not None and dialog.isVisible()  # open(): the event loop keeps running
    dialog.text_edit.setText("sks ")
    qtbot.waitUntil(lambda: dialog.preview_label.text().startswith("Preview: 3 of 3 captions change."),
                    timeout=WAIT_MS)
    assert server_captions(http, dataset_id) == original  # the preview was a dry run
    with qtbot.waitSignal(dialog.finished, timeout=WAIT_MS):
        dialog.apply_button.click()

    expected = dict(original)
    for row in (0, 2, 4):
        expected[shas[row]] = "sks " + CAPTIONS[row]
    assert server_captions(http, dataset_id) == expected
    assert model_captions(viewer) == expected
    assert viewer.undo_action.isEnabled() and "Add prefix (3 captions)" in viewer.undo_action.toolTip()
    qtmodeltester.check(viewer.model)

    viewer.undo_action.trigger()
    qtbot.waitUntil(lambda: server_captions(http, dataset_id) == original, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: model_captions(viewer) == original, timeout=WAIT_MS)
    qtbot.waitUntil(viewer.redo_action.isEnabled, timeout=WAIT_MS)
    assert not viewer.undo_action.isEnabled()

    viewer.redo_action.trigger()
    qtbot.waitUntil(lambda: server_captions(http, dataset_id) == expected, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: model_captions(viewer) == expected, timeout=WAIT_MS)
    qtbot.waitUntil(viewer.undo_action.isEnabled, timeout=WAIT_MS)


def test_regex_find_and_replace_on_everything_previews_the_count(viewer, dataset, http, qtbot):
    dataset_id, shas = dataset
    viewer.grid.selectAll()
    assert viewer.bulk_selection() == "all"  # the request names no files at all

    dialog = viewer.open_bulk_dialog("replace")
    assert dialog is not None and "all files" in dialog.scope_label.text()
    dialog.regex_check.setChecked(True)
    dialog.find_edit.setText(r"(cat|dog) (\d)")
    dialog.replace_edit.setText(r"\2 \1")
    qtbot.waitUntil(lambda: dialog.preview_label.text().startswith("Preview: 3 of 5 captions change."),
                    timeout=WAIT_MS)
    assert "“a photo of cat 1” → “a photo of 1 cat”" in dialog.preview_label.text()
    with qtbot.waitSignal(dialog.finished, timeout=WAIT_MS):
        dialog.apply_button.click()

    after = server_captions(http, dataset_id)
    assert [after[sha] for sha in shas] == ["a photo of 1 cat", "a photo of 2 dog", "a red square",
                                            "a photo of 3 cat", "blue"]
    assert model_captions(viewer) == after

    viewer.undo_action.trigger()
    qtbot.waitUntil(lambda: [server_captions(http, dataset_id)[sha] for sha in shas] == CAPTIONS,
                    timeout=WAIT_MS)


def test_a_bad_regular_expression_changes_nothing_and_says_why(viewer, dataset, http, qtbot):
    dataset_id, shas = dataset
    original = server_captions(http, dataset_id)
    select_rows(viewer, [0, 1])
    dialog = viewer.open_bulk_dialog("replace")
    assert dialog is not None
    dialog.regex_check.setChecked(True)
    dialog.find_edit.setText("(unclosed")
    dialog.replace_edit.setText("x")
    qtbot.waitUntil(lambda: dialog.preview_label.text().startswith("No preview:"), timeout=WAIT_MS)

    dialog.apply_button.click()
    qtbot.waitUntil(lambda: dialog.error_label.isVisible(), timeout=WAIT_MS)
    message = dialog.error_label.text()
    assert message.startswith("The captions were not changed: ") and "regular expression" in message, message
    assert dialog.isVisible()  # still open: the user can fix the expression
    assert not viewer.banner.isHidden() and viewer.banner.text == message
    assert server_captions(http, dataset_id) == original
    assert model_captions(viewer) == original
    assert viewer.caption_ops.undo_stack.count() == 0 and not viewer.undo_action.isEnabled()
    qtbot.waitUntil(dialog.apply_button.isEnabled, timeout=WAIT_MS)


def test_an_edit_in_the_caption_editor_is_undoable(viewer, dataset, http, qtbot, dataset_store):
    dataset_id, shas = dataset
    select_rows(viewer, [1])
    viewer.grid.setCurrentIndex(viewer.proxy.mapFromSource(viewer.model.index(1, 0)))
    viewer.caption_edit.setPlainText("a golden retriever")
    with qtbot.waitSignal(dataset_store.caption_saved, timeout=WAIT_MS):
        viewer.save_caption()
    assert server_captions(http, dataset_id)[shas[1]] == "a golden retriever"
    assert viewer.undo_action.isEnabled()

    viewer.undo_action.trigger()
    qtbot.waitUntil(lambda: server_captions(http, dataset_id)[shas[1]] == CAPTIONS[1], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: viewer.caption_edit.toPlainText() == CAPTIONS[1], timeout=WAIT_MS)


def test_showing_another_dataset_closes_the_history(viewer, dataset, http, qtbot):
    dataset_id, shas = dataset
    select_rows(viewer, [0])
    dialog = viewer.open_bulk_dialog("clear")
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.preview_label.text().startswith("Preview: 1 of 1 caption changes."),
                    timeout=WAIT_MS)
    with qtbot.waitSignal(dialog.finished, timeout=WAIT_MS):
        dialog.apply_button.click()
    assert server_captions(http, dataset_id)[shas[0]] == ""
    assert viewer.undo_action.isEnabled()
    other = make_dataset(http, "other", images=1)
    viewer.show_dataset(other)
    qtbot.waitUntil(lambda: viewer.model.dataset_id == other and viewer.model.rowCount() == 1, timeout=WAIT_MS)
    assert viewer.caption_ops.undo_stack.count() == 0 and not viewer.undo_action.isEnabled()


def test_f2_edits_a_caption_in_place_and_undo_restores_it(viewer, dataset, http, qtbot):
    from PySide6.QtWidgets import QLineEdit
    dataset_id, shas = dataset
    viewer.show()
    index = viewer.model.index(2, 0)
    viewer.grid.setCurrentIndex(viewer.proxy.mapFromSource(index))
    viewer.grid.setFocus()
    qtbot.keyClick(viewer.grid, Qt.Key.Key_F2)
    editor = viewer.grid.findChild(QLineEdit)
    assert editor is not None and editor.text() == CAPTIONS[2]
    editor.setText("sks a red square")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: server_captions(http, dataset_id)[shas[2]] == "sks a red square", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: index.data(FileRole.CAPTION) == "sks a red square", timeout=WAIT_MS)
    qtbot.waitUntil(viewer.undo_action.isEnabled, timeout=WAIT_MS)
    viewer.undo_action.trigger()
    qtbot.waitUntil(lambda: server_captions(http, dataset_id)[shas[2]] == CAPTIONS[2], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: index.data(FileRole.CAPTION) == CAPTIONS[2], timeout=WAIT_MS)


def test_the_filter_finds_files_by_caption_or_name_and_uncaptioned_only(viewer, dataset, http, qtbot):
    dataset_id, shas = dataset
    viewer.filter_edit.setText("CAT")
    assert shown(viewer) == [shas[0], shas[3]]
    viewer.filter_edit.setText("img4")
    assert shown(viewer) == [shas[4]]
    viewer.filter_edit.clear()
    viewer.uncaptioned_check.setChecked(True)
    assert shown(viewer) == []
    # A bulk edit acts on what is selected and shown: clear two captions, they appear under "uncaptioned".
    viewer.uncaptioned_check.setChecked(False)
    viewer.filter_edit.setText("dog")
    viewer.grid.selectAll()
    assert viewer.bulk_selection() == [shas[1]]  # not "all": the filter hides the others
    dialog = viewer.open_bulk_dialog("clear")
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.preview_label.text().startswith("Preview: 1 of 1"), timeout=WAIT_MS)
    with qtbot.waitSignal(dialog.finished, timeout=WAIT_MS):
        dialog.apply_button.click()
    assert server_captions(http, dataset_id)[shas[1]] == ""
    viewer.filter_edit.clear()
    viewer.uncaptioned_check.setChecked(True)
    assert shown(viewer) == [shas[1]]


def shown(viewer: DatasetViewer) -> list[str]:
    return [viewer.proxy.index(row, 0).data(FileRole.SHA256) for row in range(viewer.proxy.rowCount())]


@pytest.mark.parametrize("mode, rows, fill, preview, result", [
    ("suffix", [1, 3], {"text_edit": ", best quality"}, "Preview: 2 of 2 captions change.",
     ["a photo of cat 1", "a photo of dog 2, best quality", "a red square", "a photo of cat 3, best quality",
      "blue"]),
    ("set", [0, 4], {"text_edit": "a photo of sks"}, "Preview: 2 of 2 captions change.",
     ["a photo of sks", "a photo of dog 2", "a red square", "a photo of cat 3", "a photo of sks"]),
    # Plain find and replace: "." and "(" are literal text, not a pattern.
    ("replace", [0, 1, 2, 3, 4], {"find_edit": "photo of", "replace_edit": "picture (of)."},
     "Preview: 3 of 5 captions change.",
     ["a picture (of). cat 1", "a picture (of). dog 2", "a red square", "a picture (of). cat 3", "blue"]),
])
def test_suffix_set_and_plain_replace_through_the_dialog(viewer, dataset, http, qtbot, mode, rows, fill, preview,
                                                         result):
    """The window's other bulk operations, each previewed (a dry run that changes nothing), then applied on the
    server and shown in the grid, and undone."""
    dataset_id, shas = dataset
    original = server_captions(http, dataset_id)
    select_rows(viewer, rows)
    dialog = viewer.open_bulk_dialog(mode)
    assert dialog is not None and dialog.isVisible()
    for name, text in fill.items():
        getattr(dialog, name).setText(text)
    qtbot.waitUntil(lambda: dialog.preview_label.text().startswith(preview), timeout=WAIT_MS)
    assert server_captions(http, dataset_id) == original
    with qtbot.waitSignal(dialog.finished, timeout=WAIT_MS):
        dialog.apply_button.click()
    expected = dict(zip(shas, result, strict=True))
    assert server_captions(http, dataset_id) == expected
    qtbot.waitUntil(lambda: model_captions(viewer) == expected, timeout=WAIT_MS)
    viewer.undo_action.trigger()
    qtbot.waitUntil(lambda: server_captions(http, dataset_id) == original, timeout=WAIT_MS)
