"""Uploading a new dataset through the resumable protocol against the real server: create → upload → commit,
the manifest written before the first byte, server rejections per file, cancel, an upload cut by a server
restart and resumed at the next launch sending only what the server lacks, and deleting an unfinished
dataset. Files are real PNGs made with Pillow; the server is a real subprocess."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtWidgets import QFileDialog, QWidget

from training_studio.client import ApiClient
from training_studio.ui.datasets.import_controller import ImportPhase, UnfinishedUploadWatcher
from training_studio.ui.datasets.import_dialog import DatasetImportPanel, import_factory_for
from training_studio.ui.datasets.import_model import FileState, ImportRole, RejectedRole
from training_studio.ui.datasets.uploader import manifest_path
from tests.support.gui import library_window, server_client
from tests.ui.app_fixtures import sync_client

UPLOAD_TIMEOUT_MS = 30_000


def noisy_png(seed: int, size: tuple[int, int] = (96, 96)) -> bytes:
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def long_animation(frames: int = 1001) -> bytes:
    """A tiny GIF with more frames than the server accepts (images.MAX_ANIMATION_FRAMES); frames alternate
    colours so Pillow does not merge them."""
    images = [Image.new("P", (2, 2), index % 2) for index in range(frames)]
    for image in images:
        image.putpalette([0, 0, 0, 255, 255, 255])
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=20, loop=0,
                   optimize=False, disposal=1)
    return buffer.getvalue()


def make_images(folder: Path, count: int, size: tuple[int, int] = (96, 96)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"img{index:03d}.png"
        path.write_bytes(noisy_png(index, size))
        paths.append(path)
    return paths


class Panels:
    """Builds import panels (one per simulated app launch) and shuts each down at the end."""

    def __init__(self, harness, qtbot, data_dir: Path) -> None:
        self.harness, self.qtbot, self.data_dir = harness, qtbot, data_dir
        self.made: list[DatasetImportPanel] = []

    def open(self, server, *, max_in_flight: int | None = None) -> DatasetImportPanel:
        panel = DatasetImportPanel(server_client(server, self.harness), self.data_dir)
        if max_in_flight is not None:
            panel.controller.uploader._max_in_flight = max_in_flight
        self.qtbot.addWidget(panel)
        panel.resize(900, 700)
        panel.show()
        self.made.append(panel)
        return panel

    def close(self, panel: DatasetImportPanel) -> None:
        panel.controller.shutdown()
        self.harness.run(panel.controller.wait_idle())
        panel.close()

    def close_all(self) -> None:
        for panel in self.made:
            panel.controller.shutdown()
            self.harness.run(panel.controller.wait_idle())


@pytest.fixture
def panels(harness, qtbot, tmp_path):
    made = Panels(harness, qtbot, tmp_path / "app-data")
    yield made
    made.close_all()


def add_folder(panel: DatasetImportPanel, monkeypatch, qtbot, folder: Path, name: str) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    panel.name_edit.setText(name)
    panel.add_folder_button.click()
    qtbot.waitUntil(lambda: not panel.controller.is_scanning and panel.upload_button.isEnabled(), timeout=20_000)


def states(panel: DatasetImportPanel) -> dict[str, FileState]:
    model = panel.controller.files
    return {Path(model.index(row).data(ImportRole.PATH)).name: model.index(row).data(ImportRole.STATE)
            for row in range(model.rowCount())}


def server_files(server, dataset_id: str) -> set[str]:
    with sync_client(server.url, server.token) as http:
        response = http.get(f"/api/datasets/{dataset_id}/files")
        response.raise_for_status()
        return {item["sha256"] for item in response.json()}


def server_dataset(server, dataset_id: str) -> dict:
    with sync_client(server.url, server.token) as http:
        response = http.get(f"/api/datasets/{dataset_id}")
        return {"status_code": response.status_code, **response.json()}


# tests -------------------------------------------------------------------------------------------------
def test_create_upload_commit(server, panels, monkeypatch, qtbot, tmp_path, stall_probe, qtmodeltester):
    folder = tmp_path / "cats"
    make_images(folder, 6)
    (folder / "zz copy.png").write_bytes((folder / "img000.png").read_bytes())
    (folder / "cut.png").write_bytes(noisy_png(99, (64, 64))[:600])  # ends early: refused by the local check
    (folder / "long.gif").write_bytes(long_animation())  # fine locally; over the server's frame limit
    panel = panels.open(server)
    qtmodeltester.check(panel.controller.files)
    add_folder(panel, monkeypatch, qtbot, folder, "cats")
    assert len(states(panel)) == 7 and set(states(panel).values()) == {FileState.READY}

    manifest_seen_before_first_file: list[bool] = []

    def on_first_file(_sha: str) -> None:
        if not manifest_seen_before_first_file:
            manifest = panel.controller.manifest
            manifest_seen_before_first_file.append(
                manifest is not None and manifest_path(panels.data_dir, manifest.dataset_id).is_file())

    panel.controller.uploader.file_started.connect(on_first_file)
    # Progress is coalesced (not one signal per chunk), yet the last figure must be exact; the older objects
    # stay out of the collector's full passes only while the upload runs.
    progress: list[tuple[int, int]] = []
    panel.controller.uploader.progress_changed.connect(lambda done, total: progress.append((done, total)))
    frozen_while_sending: list[int] = []
    panel.controller.uploader.file_started.connect(lambda _sha: frozen_while_sending.append(gc.get_freeze_count()))
    panel.upload_button.click()
    qtbot.waitUntil(lambda: panel.controller.phase == ImportPhase.REVIEW, timeout=UPLOAD_TIMEOUT_MS)
    assert manifest_seen_before_first_file == [True]
    total = panel.controller.manifest.total_bytes
    assert progress and progress[-1] == (total, total)
    assert all(done <= total for done, _ in progress)
    assert frozen_while_sending and min(frozen_while_sending) > 0
    assert gc.get_freeze_count() == 0

    manifest = panel.controller.manifest
    saved = json.loads(manifest_path(panels.data_dir, manifest.dataset_id).read_text())
    assert {Path(f["path"]).name for f in saved["files"]} == set(states(panel))
    assert all(set(f) == {"path", "filename", "size", "mtime_ns", "sha256"} for f in saved["files"])

    # Every file has an answer: six stored, the long animation refused by the server, with its reason in
    # plain words; the truncated one never left this computer.
    assert "cut.png" not in states(panel)
    assert states(panel)["long.gif"] == FileState.REJECTED
    assert [s for n, s in states(panel).items() if n != "long.gif"] == [FileState.STORED] * 6
    rejected = panel.controller.rejected
    rows = {Path(rejected.index(r).data(RejectedRole.PATH)).name: r for r in range(rejected.rowCount())}
    assert rejected.index(rows["zz copy.png"]).data(RejectedRole.REASON).startswith("duplicate of img000.png")
    cut = rejected.index(rows["cut.png"])
    assert cut.data(RejectedRole.BY_SERVER) is False
    assert cut.data(RejectedRole.REASON) == "the file ends early: it is damaged or still being copied"
    long = rejected.index(rows["long.gif"])
    assert long.data(RejectedRole.BY_SERVER) is True
    assert long.data(RejectedRole.REASON) == \
        "refused by the server: the animation has more than 1,000 frames"
    assert panel.progress_bar.value() == 1000

    # Not committed yet: the server keeps it `processing`, never `active`.
    assert server_dataset(server, manifest.dataset_id)["status"] == "processing"
    assert len(server_files(server, manifest.dataset_id)) == 6
    assert panel.commit_button.isEnabled()
    with qtbot.waitSignal(panel.dataset_created, timeout=UPLOAD_TIMEOUT_MS) as created:
        panel.commit_button.click()
    assert created.args == [manifest.dataset_id]
    dataset = server_dataset(server, manifest.dataset_id)
    assert (dataset["status"], dataset["image_count"], dataset["name"]) == ("active", 6, "cats")
    assert not manifest_path(panels.data_dir, manifest.dataset_id).exists()
    # Ready for the next dataset.
    assert panel.controller.phase == ImportPhase.EDITING and panel.controller.files.rowCount() == 0
    assert panel.name_edit.text() == "" and panel.name_edit.isEnabled()
    assert "ready with 6 files" in panel.status_label.text()
    assert stall_probe.longest_gap < 1.0


def test_upload_cut_by_server_restart_resumes_at_next_launch(server, panels, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "dogs"
    make_images(folder, 12)
    first = panels.open(server, max_in_flight=1)
    server_url = server.url
    add_folder(first, monkeypatch, qtbot, folder, "dogs")

    stored: list[str] = []

    def kill_after_three(sha: str) -> None:
        stored.append(sha)
        if len(stored) == 3:
            server.kill()  # the server vanishes mid-upload (SIGKILL: no goodbye)

    first.controller.uploader.file_stored.connect(kill_after_three)
    first.upload_button.click()
    qtbot.waitUntil(lambda: first.controller.phase == ImportPhase.INTERRUPTED, timeout=UPLOAD_TIMEOUT_MS)
    dataset_id = first.controller.manifest.dataset_id
    assert first.message_banner.isVisible()
    # Refused on a new connection, or broken on the pooled one: both name the server.
    assert f"the server at {server_url}" in first.message_banner.text
    assert first.message_banner.text.endswith("The upload is paused; resume it when the server is back.")
    assert first.upload_button.text() == "&Resume" and first.upload_button.isEnabled()
    assert list(states(first).values()).count(FileState.STORED) == 3
    panels.close(first)  # the app quits with the upload unfinished
    assert manifest_path(panels.data_dir, dataset_id).is_file()

    server.start()  # same data dir, new port
    before = server_files(server, dataset_id)
    assert before == set(stored) and len(before) == 3
    assert server_dataset(server, dataset_id)["status"] == "processing"
    # One source file changes while the app is closed: it must not be sent as it was recorded.
    changed = folder / "img011.png"
    changed.write_bytes(noisy_png(1234))

    # The next launch: once connected the app learns an upload is waiting, and opens "New dataset…",
    # which builds the import window through the factory the app uses.
    client = server_client(server, panels.harness)
    watcher = UnfinishedUploadWatcher(client, panels.data_dir)
    with qtbot.waitSignal(watcher.found, timeout=10_000) as found:
        watcher.check()
    assert found.args == [1]
    host = QWidget()
    qtbot.addWidget(host)
    host.resize(900, 700)
    host.show()
    second = import_factory_for(client, panels.data_dir)(host)
    panels.made.append(second)
    second.show()
    qtbot.waitUntil(second.resume_banner.isVisible, timeout=10_000)
    assert second.controller.pending_uploads[0].dataset_id == dataset_id
    assert "did not finish" in second.resume_banner.text
    second.resume_banner.button("Resume upload").click()
    qtbot.waitUntil(lambda: second.controller.phase == ImportPhase.REVIEW, timeout=UPLOAD_TIMEOUT_MS)

    after = server_files(server, dataset_id)
    sent = set(second.controller.uploader.sent_files)
    manifest_hashes = {f.sha256 for f in second.controller.manifest.files}
    changed_hash = next(f.sha256 for f in second.controller.manifest.files if f.path == str(changed))
    assert sent == manifest_hashes - before - {changed_hash}  # only what the server lacked, nothing stale
    assert after == manifest_hashes - {changed_hash}
    assert states(second)["img011.png"] == FileState.REJECTED
    reasons = {Path(r.data(RejectedRole.PATH)).name: r.data(RejectedRole.REASON)
               for r in (second.controller.rejected.index(i) for i in range(second.controller.rejected.rowCount()))}
    assert reasons["img011.png"].startswith("the source file changed since it was added")

    with qtbot.waitSignal(second.dataset_created, timeout=UPLOAD_TIMEOUT_MS):
        second.commit_button.click()
    dataset = server_dataset(server, dataset_id)
    assert (dataset["status"], dataset["image_count"]) == ("active", 11)
    assert not manifest_path(panels.data_dir, dataset_id).exists()


def test_cancel_keeps_the_dataset_processing_and_delete_removes_it(server, panels, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "birds"
    make_images(folder, 8)
    panel = panels.open(server, max_in_flight=1)
    add_folder(panel, monkeypatch, qtbot, folder, "birds")

    def cancel_after_two(_sha: str) -> None:
        if panel.controller.files.count_in(FileState.STORED) == 2:
            panel.cancel_button.click()

    panel.controller.uploader.file_stored.connect(cancel_after_two)
    panel.upload_button.click()
    qtbot.waitUntil(lambda: panel.controller.phase == ImportPhase.INTERRUPTED, timeout=UPLOAD_TIMEOUT_MS)
    dataset_id = panel.controller.manifest.dataset_id
    assert "cancelled" in panel.status_label.text()
    assert gc.get_freeze_count() == 0  # a cancelled upload hands the frozen objects back to the collector
    assert server_dataset(server, dataset_id)["status"] == "processing"  # never active half-filled
    assert set(states(panel).values()) <= {FileState.STORED, FileState.INTERRUPTED}
    assert panel.cancel_button.text() == "&Delete dataset"

    panel.cancel_button.click()
    box = panel.discard_box  # non-blocking, "Keep it" by default
    assert "birds" in box.text() and box.defaultButton() is box.keep_button
    box.keep_button.click()
    assert panel.controller.phase == ImportPhase.INTERRUPTED  # keeping it changes nothing

    panel.cancel_button.click()
    with qtbot.waitSignal(panel.controller.dataset_deleted, timeout=10_000):
        panel.discard_box.confirm_button.click()
    assert server_dataset(server, dataset_id)["status_code"] == 404
    assert not manifest_path(panels.data_dir, dataset_id).exists()
    assert panel.controller.phase == ImportPhase.EDITING and panel.controller.files.rowCount() == 0


def test_manifest_for_a_dataset_gone_from_the_server_is_dropped(server, panels, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "fish"
    make_images(folder, 2)
    panel = panels.open(server, max_in_flight=1)
    add_folder(panel, monkeypatch, qtbot, folder, "fish")
    panel.controller.uploader.file_stored.connect(lambda _sha: panel.controller.cancel())
    panel.upload_button.click()
    qtbot.waitUntil(lambda: panel.controller.phase == ImportPhase.INTERRUPTED, timeout=UPLOAD_TIMEOUT_MS)
    dataset_id = panel.controller.manifest.dataset_id
    panels.close(panel)
    with sync_client(server.url, server.token) as http:
        http.delete(f"/api/datasets/{dataset_id}").raise_for_status()

    watcher = UnfinishedUploadWatcher(ApiClient(server.url, server.token, timeout=10.0), panels.data_dir)
    panels.harness.clients.append(watcher.client)
    reports: list[int] = []
    watcher.found.connect(reports.append)
    watcher.check()
    qtbot.waitUntil(lambda: watcher._task.done(), timeout=10_000)
    assert reports == []  # its dataset is gone: nothing to offer

    later = panels.open(server)
    with qtbot.waitSignal(later.controller.resume_available, timeout=10_000) as offer:
        later.controller.check_unfinished()
    assert offer.args == [None]
    assert not later.resume_banner.isVisible()
    assert not manifest_path(panels.data_dir, dataset_id).exists()


def test_upload_refused_when_the_manifest_cannot_be_saved(server, panels, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "owls"
    make_images(folder, 2)
    panels.data_dir.mkdir(parents=True, exist_ok=True)
    (panels.data_dir / "uploads").write_text("a file where the uploads folder should be")
    panel = panels.open(server)
    add_folder(panel, monkeypatch, qtbot, folder, "owls")
    panel.upload_button.click()
    qtbot.waitUntil(lambda: panel.message_banner.isVisible(), timeout=UPLOAD_TIMEOUT_MS)
    assert "Could not save the upload manifest" in panel.message_banner.text
    assert "nothing was sent" in panel.message_banner.text
    assert panel.controller.phase == ImportPhase.EDITING
    with sync_client(server.url, server.token) as http:
        assert [d for d in http.get("/api/datasets").json() if d["name"] == "owls"] == []


def test_odd_names_upload_and_a_dataset_the_server_refuses_entirely(server, panels, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "new\nline ünï 猫.png").write_bytes(noisy_png(40))
    (folder / "  spaced  out .png").write_bytes(noisy_png(41))
    panel = panels.open(server)
    add_folder(panel, monkeypatch, qtbot, folder, "odd names")
    panel.upload_button.click()
    qtbot.waitUntil(lambda: panel.controller.phase == ImportPhase.REVIEW, timeout=UPLOAD_TIMEOUT_MS)
    dataset_id = panel.controller.manifest.dataset_id
    with sync_client(server.url, server.token) as http:
        names = sorted(f["filename"] for f in http.get(f"/api/datasets/{dataset_id}/files").json())
    assert names == ["newline ünï 猫.png", "spaced out .png"]  # the server keeps sanitised display names
    with qtbot.waitSignal(panel.dataset_created, timeout=UPLOAD_TIMEOUT_MS):
        panel.commit_button.click()

    # Every file passes the local checks but none is within the server's limits.
    broken = tmp_path / "broken"
    broken.mkdir()
    for extra in range(2):
        (broken / f"long{extra}.gif").write_bytes(long_animation(1001 + extra))
    add_folder(panel, monkeypatch, qtbot, broken, "broken")
    panel.upload_button.click()
    qtbot.waitUntil(lambda: panel.controller.phase == ImportPhase.REVIEW, timeout=UPLOAD_TIMEOUT_MS)
    assert set(states(panel).values()) == {FileState.REJECTED}
    assert not panel.commit_button.isEnabled()
    assert panel.message_banner.isVisible()
    assert panel.message_banner.text.startswith("The server accepted none of the files")
    broken_id = panel.controller.manifest.dataset_id
    assert server_dataset(server, broken_id)["status"] == "processing"
    assert panel.cancel_button.text() == "&Delete dataset"
    panel.cancel_button.click()
    with qtbot.waitSignal(panel.controller.dataset_deleted, timeout=10_000):
        panel.discard_box.confirm_button.click()
    assert server_dataset(server, broken_id)["status_code"] == 404


def test_manifest_files_are_atomic_named_safely_and_damage_is_reported(tmp_path):
    from training_studio.ui.datasets.uploader import (
        ManifestFile,
        UploadManifest,
        load_manifests,
        remove_manifest,
        save_manifest,
    )

    data_dir = tmp_path / "app"
    plain = UploadManifest("abc123", "cats", "image", "http://127.0.0.1:1",
                           [ManifestFile("/x/a.png", "a.png", 3, 7, "f" * 64)], created_at="2026-01-01T00:00:00.000Z")
    hostile = UploadManifest("../../etc/passwd", "dogs", "image", "", [], created_at="2026-01-02T00:00:00.000Z")
    assert save_manifest(data_dir, plain) == data_dir / "uploads" / "abc123.json"
    hostile_path = save_manifest(data_dir, hostile)
    assert hostile_path.parent == data_dir / "uploads" and hostile_path.name.startswith("id-")
    (data_dir / "uploads" / "broken.json").write_text("{ not json")
    assert sorted(p.name for p in (data_dir / "uploads").iterdir()) == sorted(
        ["abc123.json", "broken.json", hostile_path.name])  # no temp file left behind

    manifests, problems = load_manifests(data_dir)
    assert [m.dataset_id for m in manifests] == ["abc123", "../../etc/passwd"]  # oldest first
    assert manifests[0].files == plain.files
    assert len(problems) == 1 and problems[0].startswith("The upload manifest broken.json cannot be used")
    remove_manifest(data_dir, "../../etc/passwd")
    remove_manifest(data_dir, "never-existed")
    assert [m.dataset_id for m in load_manifests(data_dir)[0]] == ["abc123"]


def test_app_offers_an_unfinished_upload_once_connected(server, harness, qtbot, tmp_path):
    from training_studio.ui.datasets.uploader import ManifestFile, UploadManifest, save_manifest

    # An earlier run created the dataset and wrote its manifest, then the app quit before any file went up.
    image = tmp_path / "left.png"
    image.write_bytes(noisy_png(77))
    with sync_client(server.url, server.token) as http:
        dataset_id = http.post("/api/datasets", json={"name": "left over", "type": "image"}).json()["id"]
    info = image.stat()
    save_manifest(tmp_path / "app-data", UploadManifest(dataset_id, "left over", "image", server.url, [ManifestFile(
        str(image), image.name, info.st_size, info.st_mtime_ns, hashlib.sha256(image.read_bytes()).hexdigest())]))

    library = library_window(server, harness, tmp_path / "app-data")
    datasets = library.datasets
    library.store.start()  # connecting fires connection_changed: the app looks for unfinished uploads
    qtbot.waitUntil(lambda: isinstance(datasets.import_widget, DatasetImportPanel)
                    and datasets.import_widget.resume_banner.isVisible(), timeout=15_000)
    importer = datasets.import_widget
    assert "“left over”" in importer.resume_banner.text
    importer.resume_banner.button("Resume upload").click()
    qtbot.waitUntil(lambda: importer.controller.phase == ImportPhase.REVIEW, timeout=UPLOAD_TIMEOUT_MS)
    assert server_files(server, dataset_id) == {importer.controller.manifest.files[0].sha256}
    with qtbot.waitSignal(importer.dataset_created, timeout=UPLOAD_TIMEOUT_MS):
        importer.commit_button.click()
    assert server_dataset(server, dataset_id)["status"] == "active"
    controller = importer.controller
    controller.shutdown()
    harness.run(controller.wait_idle())
    library.shutdown()
