"""The Datasets panel and its store against a real server process: listing, refresh diffs, delete (asked,
refused while in use), the thumbnail grid and caption editing, and errors shown rather than swallowed."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QToolBar

from training_studio.contract.models import Dataset, DatasetStatus, DatasetType
from training_studio.ui.banner import BannerLevel
from training_studio.ui.datasets.files_model import FileRole
from training_studio.ui.datasets.keyed_model import RecordRole
from training_studio.ui.datasets.list_model import DatasetColumn, DatasetListModel
from training_studio.ui.datasets.panel import DatasetsPanel
from tests.ui.datasets_fixtures import (  # noqa: F401  (fixtures)
    api_client,
    dataset_store,
    dataset_store_on_request,
    http,
    make_dataset,
    make_job,
    wait_status,
)


@pytest.fixture
def panel(dataset_store, qtbot):
    widget = DatasetsPanel(dataset_store)
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    return widget


def ids_in_view(panel: DatasetsPanel) -> list[str]:
    return [panel.proxy.index(row, 0).data(RecordRole.ID) for row in range(panel.proxy.rowCount())]


def row_texts(model: DatasetListModel, dataset_id: str) -> list[str]:
    row = model.row_of(dataset_id)
    assert row is not None
    return [model.index(row, column).data() for column in range(model.columnCount())]


def test_list_shows_datasets_created_through_the_api(panel, dataset_store, http, qtbot, qtmodeltester):
    cats = make_dataset(http, "cats", images=3)
    draft = http.post("/api/datasets", json={"name": "draft", "type": "image"}).json()["id"]
    qtmodeltester.check(dataset_store.model)
    panel.show()  # visible: auto-refresh starts
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 2, timeout=10_000)

    assert row_texts(dataset_store.model, cats)[:4] == ["cats", "Images", "3", "Active"]
    assert row_texts(dataset_store.model, draft)[:4] == ["draft", "Images", "0", "Processing"]
    assert ids_in_view(panel) == [draft, cats]  # newest first
    created = row_texts(dataset_store.model, cats)[DatasetColumn.CREATED]
    assert created[:2] == "20" and len(created) == len("2026-01-01 00:00")
    assert panel.table_stack.currentWidget() is panel.table

    # A routine refresh with a new dataset: an insert, no reset, and the selection stays on "cats".
    assert panel.select_dataset(cats)
    resets: list[bool] = []
    dataset_store.model.modelReset.connect(lambda: resets.append(True))
    dogs = make_dataset(http, "dogs", images=2)
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 3, timeout=10_000)
    assert resets == []
    assert panel.selected_dataset().id == cats
    assert ids_in_view(panel)[0] == dogs


def test_panel_refreshes_only_while_visible(panel, dataset_store, api_client, http, harness, qtbot):
    from training_studio.ui.datasets.store import DatasetStore

    panel.show()
    qtbot.waitUntil(lambda: dataset_store.loaded_once and not dataset_store.is_refreshing, timeout=30_000)
    panel.hide()
    assert not dataset_store.auto_refresh
    polls: list[bool] = []
    dataset_store.refreshing_changed.connect(lambda refreshing: refreshing and polls.append(refreshing))
    make_dataset(http, "while hidden", images=1)
    # A store left auto-refreshing at the same interval sees the new dataset and refreshes three more
    # times: the hidden panel's store had as many chances to poll, and took none.
    control = DatasetStore(api_client, interval=dataset_store.interval)
    control_polls: list[bool] = []
    control.refresh_succeeded.connect(lambda: control_polls.append(True))
    try:
        control.set_auto_refresh(True)
        qtbot.waitUntil(lambda: control.model.rowCount() == 1, timeout=30_000)
        seen_at = len(control_polls)
        qtbot.waitUntil(lambda: len(control_polls) >= seen_at + 3, timeout=30_000)
    finally:
        control.shutdown()
        harness.run(control.wait_idle())
    assert polls == [] and dataset_store.model.rowCount() == 0
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=30_000)


def test_delete_answered_no_keeps_and_yes_deletes(panel, dataset_store, http, qtbot, monkeypatch):
    keep = make_dataset(http, "keep me", images=2)
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=10_000)
    panel.select_dataset(keep)

    deletes: list[str] = []
    dataset_store.delete_started.connect(deletes.append)
    panel.delete_action.trigger()
    box = panel.pending_question  # non-blocking, verbs on the buttons, the safe one the default
    assert box is not None and box.isVisible() and box.defaultButton() is box.keep_button
    assert box.confirm_button.text() == "&Delete dataset" and box.keep_button.text() == "&Keep it"
    assert "“keep me”" in box.text() and "2 files" in box.text()
    box.keep_button.click()
    assert not dataset_store.is_deleting(keep)
    # A whole refresh round trip started after the answer has ended: a delete task started by it would
    # have begun (and said so) before that.
    qtbot.waitUntil(lambda: not dataset_store.is_refreshing, timeout=30_000)
    with qtbot.waitSignal(dataset_store.refresh_succeeded, timeout=30_000):
        dataset_store.request_refresh()
    assert deletes == []
    assert http.get(f"/api/datasets/{keep}").status_code == 200
    assert dataset_store.model.row_of(keep) is not None

    panel.delete_action.trigger()
    assert "“keep me”" in panel.pending_question.text()
    with qtbot.waitSignal(dataset_store.delete_succeeded, timeout=10_000) as done:
        panel.pending_question.confirm_button.click()
    assert done.args == [keep, "keep me"]
    assert http.get(f"/api/datasets/{keep}").status_code == 404
    assert dataset_store.model.row_of(keep) is None
    assert panel.notice.isVisible() and "Deleted the dataset “keep me”" in panel.notice.text


def test_delete_is_refused_with_the_servers_reason_while_a_job_uses_it(panel, dataset_store, http, qtbot,
                                                                       monkeypatch):
    busy = make_dataset(http, "busy", images=4)
    job = make_job(http, busy, "long run", 5_000_000, resolution=8, batch_size=4)
    try:
        panel.show()
        qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=10_000)
        panel.select_dataset(busy)
        panel.delete_action.trigger()
        with qtbot.waitSignal(dataset_store.delete_failed, timeout=10_000) as refused:
            panel.pending_question.confirm_button.click()
        server_reason = http.delete(f"/api/datasets/{busy}").json()["error"]["message"]
        assert refused.args[0] == busy
        assert server_reason in refused.args[1] and "“busy”" in refused.args[1]
        assert panel.notice.isVisible() and panel.notice.level is BannerLevel.ERROR
        assert server_reason in panel.notice.text
        assert dataset_store.model.row_of(busy) is not None
        assert panel.delete_action.isEnabled()  # the user can try again after the job ends
    finally:
        http.post(f"/api/training/jobs/{job['id']}/cancel")
        wait_status(http, job["id"], {"cancelled", "completed", "failed"})


def test_viewer_shows_thumbnails_and_saves_a_caption_read_back_via_files(panel, dataset_store, http, qtbot,
                                                                         qtmodeltester):
    dataset_id = make_dataset(http, "captioned", images=3)
    files_model = dataset_store.files_model
    qtmodeltester.check(files_model)
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=10_000)
    panel.select_dataset(dataset_id)
    qtbot.waitUntil(lambda: files_model.rowCount() == 3, timeout=10_000)
    viewer = panel.viewer
    assert viewer.stack.currentWidget() is viewer.grid
    assert "captioned" in viewer.title.text()
    # The grid paints, so thumbnails are asked for and arrive from the server's thumbnail endpoint.
    qtbot.waitUntil(lambda: all(files_model.index(r, 0).data(FileRole.THUMBNAIL) is not None for r in range(3)),
                    timeout=10_000)
    pixmap = files_model.index(0, 0).data(FileRole.THUMBNAIL)
    assert pixmap.width() == 16 and pixmap.height() == 16  # the 16×16 PNGs fit the thumbnail box as they are

    qtbot.waitUntil(lambda: viewer.selected_file() is not None, timeout=5_000)
    chosen = viewer.selected_file()
    assert not viewer.save_button.isEnabled()
    viewer.caption_edit.setPlainText("a red square, slightly noisy\nsecond line")
    assert viewer.save_button.isEnabled()
    with qtbot.waitSignal(dataset_store.caption_saved, timeout=10_000) as saved:
        viewer.save_button.click()
    assert saved.args == [dataset_id, chosen.sha256]
    on_server = {f["sha256"]: f for f in http.get(f"/api/datasets/{dataset_id}/files").json()}
    assert on_server[chosen.sha256]["caption"] == "a red square, slightly noisy\nsecond line"
    row = files_model.row_of(chosen.sha256)
    assert files_model.index(row, 0).data(FileRole.CAPTION) == "a red square, slightly noisy\nsecond line"
    assert viewer.caption_status.text() == "Caption saved."
    assert not viewer.save_button.isEnabled()


def test_caption_refused_by_the_server_is_shown_and_the_text_kept(panel, dataset_store, http, qtbot):
    dataset_id = make_dataset(http, "long captions", images=1)
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=10_000)
    panel.select_dataset(dataset_id)
    viewer = panel.viewer
    qtbot.waitUntil(lambda: viewer.selected_file() is not None, timeout=10_000)
    too_long = "x" * 10_001  # over the contract's 10,000 characters: the server answers 422
    viewer.caption_edit.setPlainText(too_long)
    with qtbot.waitSignal(dataset_store.caption_failed, timeout=10_000) as failed:
        viewer.save_caption()
    assert "The caption was not saved" in failed.args[2] and "422" in failed.args[2]
    assert viewer.banner.isVisible() and "422" in viewer.banner.text
    assert viewer.caption_edit.toPlainText() == too_long  # nothing the user typed is lost
    assert viewer.save_button.isEnabled()
    assert http.get(f"/api/datasets/{dataset_id}/files").json()[0]["caption"] in (None, "")


def test_train_is_offered_only_for_an_active_dataset(panel, dataset_store, http, qtbot):
    active = make_dataset(http, "ready", images=1)
    draft = http.post("/api/datasets", json={"name": "draft", "type": "image"}).json()["id"]
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 2, timeout=10_000)
    panel.select_dataset(draft)
    assert not panel.train_action.isEnabled()
    assert "processing" in panel.train_action.toolTip()
    assert panel.open_train_dialog() is None
    panel.select_dataset(active)
    assert panel.train_action.isEnabled()


def test_refresh_failure_is_shown_and_the_last_rows_kept(panel, dataset_store, server, http, qtbot):
    make_dataset(http, "survivor", images=1)
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=10_000)
    server.stop()
    with qtbot.waitSignal(dataset_store.refresh_failed, timeout=15_000) as failed:
        dataset_store.request_refresh()
    assert "Cannot connect" in failed.args[0] or "did not answer" in failed.args[0]
    assert panel.notice.isVisible() and panel.notice.level is BannerLevel.WARNING
    assert "Could not refresh the datasets" in panel.notice.text
    assert dataset_store.model.rowCount() == 1  # the last good list stays
    assert panel.notice.button("Retry now") is not None


def test_new_dataset_opens_the_import_flow_and_selects_what_it_created(dataset_store, http, qtbot):
    from PySide6.QtCore import Signal
    from PySide6.QtWidgets import QDialog

    class FakeImport(QDialog):  # stands in for IMPORT's widget: only its contract (the signal) matters here
        dataset_created = Signal(str)

    opened: list[FakeImport] = []

    def factory(parent):
        opened.append(FakeImport(parent))
        return opened[-1]

    panel = DatasetsPanel(dataset_store, import_factory=factory)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.loaded_once, timeout=10_000)
    assert panel.new_action.isEnabled()
    panel.new_action.trigger()
    assert len(opened) == 1 and opened[0].isVisible()
    new_id = make_dataset(http, "imported", images=2)
    opened[0].dataset_created.emit(new_id)
    qtbot.waitUntil(lambda: panel.selected_dataset() is not None, timeout=10_000)
    assert panel.selected_dataset().id == new_id


def test_new_dataset_without_an_import_flow_is_disabled_and_says_why(panel):
    assert not panel.new_action.isEnabled()
    assert "not available" in panel.new_action.toolTip()


def test_a_narrow_panel_folds_the_settings_away_and_the_toolbar_brings_them_back(panel, qtbot):
    panel.show()
    qtbot.waitExposed(panel)
    split = panel.files_and_settings
    toggle = panel.settings_panel_action
    assert toggle in panel.findChild(QToolBar).actions() and toggle.isChecked()
    assert panel.workbench.width() > 0 and panel.workbench.isVisibleTo(panel)
    # The bug: below about 650 px the file grid was squeezed to about 70 px beside the settings.
    panel.resize(700, 700)
    qtbot.waitUntil(lambda: not split.side_shown(), timeout=5_000)
    assert not toggle.isChecked()
    assert panel.viewer.width() == split.width() - split.handleWidth()
    toggle.trigger()
    assert split.side_shown() and panel.workbench.width() >= panel.workbench.minimumWidth()
    toggle.trigger()
    panel.resize(1200, 700)
    qtbot.waitUntil(lambda: split.width() > split.fold_below(), timeout=5_000)
    assert not split.side_shown()  # hidden by the user: widening does not bring it back


# -- the list model alone: diffs ---------------------------------------------------------------------------------


def dataset(dataset_id: str, created: str, name: str | None = None, count: int = 1,
            status: str = "active") -> Dataset:
    return Dataset(id=dataset_id, name=name or dataset_id, type=DatasetType.IMAGE, image_count=count,
                   status=DatasetStatus(status), created_at=created, updated_at=created)


def test_snapshot_diffs_use_narrow_signals(qtmodeltester):
    model = DatasetListModel()
    qtmodeltester.check(model)
    events: list[tuple] = []
    model.rowsInserted.connect(lambda parent, first, last: events.append(("insert", first, last)))
    model.rowsRemoved.connect(lambda parent, first, last: events.append(("remove", first, last)))
    model.dataChanged.connect(lambda a, b, roles=(): events.append(("changed", a.row(), b.row())))
    model.modelReset.connect(lambda: events.append(("reset",)))
    model.layoutChanged.connect(lambda *args: events.append(("layout",)))

    a, b, c = (dataset("a", "2026-01-01T00:00:01.000Z"), dataset("b", "2026-01-01T00:00:02.000Z"),
               dataset("c", "2026-01-01T00:00:03.000Z"))
    model.apply_snapshot([a, b, c])
    assert model.ids() == ["c", "b", "a"] and events == [("insert", 0, 2)]

    events.clear()
    model.apply_snapshot([a, b, c])  # equal values in the same objects: nothing
    model.apply_snapshot([dataset("a", a.created_at), dataset("b", b.created_at), dataset("c", c.created_at)])
    assert events == []

    model.apply_snapshot([a, dataset("b", b.created_at, count=7), c])  # one changed row
    assert events == [("changed", 1, 1)]
    assert model.index(1, DatasetColumn.FILES).data() == "7"

    events.clear()
    d = dataset("d", "2026-01-01T00:00:04.000Z")
    e = dataset("e", "2026-01-01T00:00:00.500Z")
    model.apply_snapshot([a, c, d, e])  # b gone, d newest, e oldest
    assert model.ids() == ["d", "c", "a", "e"]
    assert events == [("remove", 1, 1), ("insert", 0, 0), ("insert", 3, 3)]

    events.clear()
    model.apply_snapshot([])
    assert model.rowCount() == 0 and events == [("remove", 0, 3)]


def test_unknown_status_and_type_read_unknown(qtmodeltester):
    model = DatasetListModel()
    qtmodeltester.check(model)
    model.apply_snapshot([Dataset.model_validate({"id": "x", "name": "future", "type": "point-cloud",
                                                  "status": "archived", "created_at": "2026-01-01T00:00:00Z",
                                                  "updated_at": "2026-01-01T00:00:00Z", "image_count": 2})])
    assert model.index(0, DatasetColumn.TYPE).data() == "Unknown"
    assert model.index(0, DatasetColumn.STATUS).data() == "Unknown"
    assert model.index(0, DatasetColumn.STATUS).data(RecordRole.STATUS) == "unknown"


def test_a_big_grid_loads_its_thumbnails_without_stalling_the_gui(panel, dataset_store, http, qtbot, stall_probe):
    dataset_id = make_dataset(http, "many", images=40)
    stall_probe.longest_gap = 0.0  # measure the GUI from here on, not the test's own setup over HTTP
    stall_probe.start()
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=10_000)
    panel.select_dataset(dataset_id)
    files_model = dataset_store.files_model
    qtbot.waitUntil(lambda: files_model.rowCount() == 40, timeout=10_000)
    grid = panel.viewer.grid
    proxy = panel.viewer.proxy  # the grid shows the files through its filter
    visible = [r for r in range(40)
               if grid.visualRect(proxy.mapFromSource(files_model.index(r, 0))).intersects(grid.viewport().rect())]
    assert 0 < len(visible) < 40
    qtbot.waitUntil(lambda: all(files_model.index(r, 0).data(FileRole.THUMBNAIL) is not None for r in visible),
                    timeout=15_000)
    last_sha = files_model.index(39, 0).data(FileRole.SHA256)
    assert not files_model.thumbnail_requested(last_sha)  # only what is on screen is fetched
    grid.scrollToBottom()
    qtbot.waitUntil(lambda: files_model.index(39, 0).data(FileRole.THUMBNAIL) is not None, timeout=15_000)
    assert stall_probe.longest_gap < 1.0


def test_thumbnails_scrolled_away_are_dropped_decoded_and_come_back_from_the_compressed_cache(
        panel, dataset_store, server, http, qtbot):
    # Issue 19: the model keeps only the recently painted pixmaps; the store keeps what the server sent.
    dataset_id = make_dataset(http, "scrolled", images=40)
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 1, timeout=10_000)
    panel.select_dataset(dataset_id)
    files_model = dataset_store.files_model
    qtbot.waitUntil(lambda: files_model.rowCount() == 40, timeout=10_000)
    grid = panel.viewer.grid
    proxy = panel.viewer.proxy

    def visible_rows() -> list[int]:
        return [r for r in range(40)
                if grid.visualRect(proxy.mapFromSource(files_model.index(r, 0))).intersects(grid.viewport().rect())]

    top = visible_rows()
    assert 0 < len(top) < 20
    files_model.decoded_limit = len(top) + 4  # one screen and a bit, well under the 40 files
    qtbot.waitUntil(lambda: all(files_model.index(r, 0).data(FileRole.THUMBNAIL) is not None for r in top),
                    timeout=15_000)
    first_sha = files_model.index(top[0], 0).data(FileRole.SHA256)
    assert dataset_store.has_thumbnail_data(first_sha)
    grid.scrollToBottom()
    qtbot.waitUntil(lambda: files_model.index(39, 0).data(FileRole.THUMBNAIL) is not None, timeout=15_000)
    bottom = visible_rows()
    qtbot.waitUntil(lambda: all(files_model.index(r, 0).data(FileRole.THUMBNAIL) is not None for r in bottom),
                    timeout=15_000)
    assert not set(top) & set(bottom)
    assert files_model.decoded_thumbnails() <= files_model.decoded_limit
    assert not files_model.thumbnail_requested(first_sha)  # its pixmap was dropped...
    assert dataset_store.has_thumbnail_data(first_sha)  # ...its compressed bytes were not
    server.stop()  # so what comes back on screen comes from the store's cache, not from the server
    grid.scrollToTop()
    qtbot.waitUntil(lambda: all(files_model.index(r, 0).data(FileRole.THUMBNAIL) is not None for r in top),
                    timeout=15_000)
    assert not any(files_model.index(r, 0).data(FileRole.THUMBNAIL_FAILED) for r in top)


def test_a_record_whose_created_at_changed_moves_without_a_reset_and_keeps_persistent_indexes(qtmodeltester):
    from PySide6.QtCore import QPersistentModelIndex

    model = DatasetListModel()
    qtmodeltester.check(model)
    model.apply_snapshot([dataset("a", "2026-01-01T00:00:01.000Z"), dataset("b", "2026-01-01T00:00:02.000Z")])
    kept = QPersistentModelIndex(model.index(model.row_of("a"), 0))
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    model.apply_snapshot([dataset("a", "2026-01-01T00:00:09.000Z"), dataset("b", "2026-01-01T00:00:02.000Z"),
                          dataset("c", "2026-01-01T00:00:05.000Z")])
    assert model.ids() == ["a", "c", "b"]
    assert resets == []
    assert kept.isValid() and kept.data(RecordRole.ID) == "a" and kept.row() == 0


def test_before_the_app_knows_its_server_the_store_waits_quietly_then_loads(server, http, harness, qtbot):
    from training_studio.client import ApiClient
    from training_studio.ui.datasets.store import DatasetStore

    make_dataset(http, "later", images=1)
    client = ApiClient("", None)  # the local server is still starting: no URL yet
    harness.clients.append(client)
    store = DatasetStore(client, interval=0.3)
    failures: list[str] = []
    store.refresh_failed.connect(failures.append)
    waits: list[bool] = []
    store._timer.timeout.connect(lambda: waits.append(True))
    try:
        store.set_auto_refresh(True)
        qtbot.waitUntil(lambda: len(waits) >= 2, timeout=30_000)  # it looked twice, and waits on
        assert failures == [] and not store.loaded_once
        client.set_connection(server.url, server.token)
        qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=10_000)
        assert failures == []
    finally:
        store.shutdown()
        harness.run(store.wait_idle())


def test_the_first_list_opens_on_the_newest_dataset_and_later_refreshes_keep_the_choice(
        panel, dataset_store, http, qtbot):
    older = make_dataset(http, "older", images=1)
    newest = make_dataset(http, "newest", images=1)
    panel.show()
    qtbot.waitUntil(lambda: panel.selected_dataset() is not None, timeout=10_000)
    assert panel.selected_dataset().id == newest  # the details pane is not left empty

    assert panel.select_dataset(older)
    make_dataset(http, "newer still", images=1)
    dataset_store.request_refresh()
    qtbot.waitUntil(lambda: dataset_store.model.rowCount() == 3, timeout=10_000)
    assert panel.selected_dataset().id == older  # the user's choice survives


def test_an_empty_first_list_says_none_yet_without_waiting_for_the_next_refresh(dataset_store_on_request, qtbot):
    """The first answer of a server with no datasets (a new user's first look) replaces "Loading datasets…"
    with "No datasets yet" at once, not one refresh interval later: the store announces its rows before it
    counts the list as loaded, so the panel must look again when the refresh succeeds."""
    store = dataset_store_on_request  # no second refresh during the test
    widget = DatasetsPanel(store)
    qtbot.addWidget(widget)
    assert widget.empty_label.text() == "Loading datasets…"
    with qtbot.waitSignal(store.refresh_succeeded, timeout=10_000):
        widget.show()  # visible: the first refresh starts
    assert widget.table_stack.currentWidget() is widget.empty_label
    assert widget.empty_label.text().startswith("No datasets yet.")


def test_a_cleared_selection_stays_cleared_across_refreshes(dataset_store_on_request, http, qtbot):
    """The first list opens on its newest dataset (so the details are not empty); once the user clears the
    selection, later refreshes leave it cleared instead of selecting the first row again."""
    store = dataset_store_on_request  # refreshes only when asked
    cats = make_dataset(http, "cats", images=1)
    widget = DatasetsPanel(store)
    qtbot.addWidget(widget)
    with qtbot.waitSignal(store.refresh_succeeded, timeout=10_000):
        widget.show()
    assert widget.selected_dataset() is not None and widget.selected_dataset().id == cats
    widget.table.clearSelection()
    assert widget.selected_dataset() is None
    for _ in range(2):
        with qtbot.waitSignal(store.refresh_succeeded, timeout=10_000):
            store.request_refresh()
        assert not widget.table.selectionModel().hasSelection()
