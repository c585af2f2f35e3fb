"""Creating a dataset from local files, before any upload: the file dialogs, the background checks, every
kind of bad input listed with its reason, duplicates, types other than images, the lazy thumbnail grid and
10,000 files at once — against a real server (for its limits), with real files made by Pillow, and a probe
timer showing the GUI thread never stalls for a second."""

from __future__ import annotations

import io
import os
import random
import struct
import wave
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtWidgets import QFileDialog

from training_studio.ui.datasets.import_controller import ImportPhase
from training_studio.ui.datasets.import_dialog import DatasetImportPanel
from training_studio.ui.datasets.import_model import FileState, ImportRole, RejectedRole
from training_studio.ui.datasets.import_scan import ScanLimits, check_file, walk_paths
from tests.support.gui import open_import_panel, server_client

SCAN_TIMEOUT_MS = 30_000


# real files -------------------------------------------------------------------------------------------------
def png_bytes(seed: int, size: tuple[int, int] = (8, 8)) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    image.putpixel((0, 0), (seed % 256, (seed // 256) % 256, (seed // 65536) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_variants(count: int) -> list[bytes]:
    """`count` distinct small PNGs: one Pillow image, each copy with its own tEXt chunk (cheap, still valid)."""
    base = png_bytes(0, (4, 4))
    end = base.rindex(b"IEND") - 4  # the IEND chunk starts with its 4-byte length

    def text_chunk(index: int) -> bytes:
        body = b"Comment\0" + str(index).encode()
        return struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))

    return [base[:end] + text_chunk(index) + base[end:] for index in range(count)]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def noisy_png(size: tuple[int, int], seed: int = 1) -> bytes:
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def huge_png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width×height, with a tiny (wrong) IDAT: no real pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def wav_bytes(frames: int = 800) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(random.Random(frames).randrange(256) for _ in range(frames * 2)))
    return buffer.getvalue()


# fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture
def panel(server, harness, tmp_path, qtbot):
    yield from open_import_panel(server, harness, qtbot, tmp_path / "app-data", (900, 700))


def wait_scanned(qtbot, panel: DatasetImportPanel) -> None:
    qtbot.waitUntil(lambda: not panel.controller.is_scanning, timeout=SCAN_TIMEOUT_MS)


def accepted_names(panel: DatasetImportPanel) -> list[str]:
    model = panel.controller.files
    return [os.path.basename(model.index(row).data(ImportRole.PATH)) for row in range(model.rowCount())]


def rejected_reasons(panel: DatasetImportPanel) -> dict[str, str]:
    model = panel.controller.rejected
    return {os.path.basename(model.index(row).data(RejectedRole.PATH).rstrip("/")):
            model.index(row).data(RejectedRole.REASON) for row in range(model.rowCount())}


def add_folder(panel: DatasetImportPanel, monkeypatch, folder: Path) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    panel.add_folder_button.click()


def add_files(panel: DatasetImportPanel, monkeypatch, paths: list[Path]) -> None:
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        lambda *args, **kwargs: ([str(p) for p in paths], "Images (*.png)"))
    panel.add_files_button.click()


# tests ---------------------------------------------------------------------------------------------------
def test_folder_with_every_kind_of_bad_input(panel, monkeypatch, qtbot, tmp_path, stall_probe, qtmodeltester):
    qtmodeltester.check(panel.controller.files)
    qtmodeltester.check(panel.controller.rejected)
    root = tmp_path / "pictures"
    write(root / "good.png", png_bytes(1))
    write(root / "with space.png", png_bytes(2))
    write(root / "ünïcødé 猫.png", png_bytes(3))
    write(root / "new\nline.png", png_bytes(4))
    write(root / "sub" / "deeper" / "nested.jpg", _jpeg(5))
    write(root / "sub" / "copy of good.png", png_bytes(1))
    write(root / "folder.png" / "inside.png", png_bytes(6))  # a folder named like a file is walked
    write(root / "notes.png", b"this is plain text, not a picture\n")
    write(root / "empty.png", b"")
    write(root / "corrupt.jpg", b"\xff\xd8\xff\xe0" + bytes(random.Random(9).randrange(256) for _ in range(300)))
    write(root / "huge.png", huge_png_header(50_000, 50_000))
    write(root / "photo.tiff", _tiff())
    write(root / "truncated.png", noisy_png((64, 64))[:400])  # header intact, pixels cut: refused here (issue 15)
    os.mkfifo(root / "pipe.png")
    os.symlink(root / "missing.png", root / "broken link.png")
    os.symlink("self-loop.png", root / "self-loop.png")
    os.symlink(root, root / "sub" / "loop")  # points back at an ancestor: walked once, not forever

    add_folder(panel, monkeypatch, root)
    wait_scanned(qtbot, panel)

    assert sorted(accepted_names(panel)) == sorted([
        "good.png", "with space.png", "ünïcødé 猫.png", "new\nline.png", "nested.jpg", "inside.png"])
    reasons = rejected_reasons(panel)
    assert reasons["copy of good.png"] == "duplicate of good.png (same content)"
    assert reasons["notes.png"].startswith("not an image")
    assert reasons["empty.png"] == "empty file (0 bytes)"
    assert reasons["huge.png"].startswith("too many pixels: 50,000×50,000 = 2,500,000,000, over the server's limit")
    assert reasons["photo.tiff"].startswith("TIFF images are not accepted")
    assert reasons["pipe.png"].startswith("not a regular file (a named pipe")
    assert reasons["broken link.png"].startswith("broken symbolic link")
    assert reasons["self-loop.png"].startswith("symbolic link loop")
    assert reasons["loop"].startswith("symbolic link loop")
    assert reasons["corrupt.jpg"] == "damaged image: its header gives no usable size"
    assert reasons["truncated.png"] == "the file ends early: it is damaged or still being copied"
    assert len(reasons) == 11
    # The display name never breaks a line; the tooltip keeps the whole path.
    row = accepted_names(panel).index("new\nline.png")
    assert "\n" not in panel.controller.files.index(row).data()
    assert panel.controller.files.index(row).data(ImportRole.STATE) == FileState.READY
    assert panel.rejected_label.text() == "Left out (11)"
    assert stall_probe.longest_gap < 1.0


def test_the_left_out_list_takes_room_only_while_files_are_left_out(panel, monkeypatch, qtbot, tmp_path):
    files_view = panel.file_view
    assert panel.rejected_label.text() == "Left out (none)" and not panel.rejected_view.isVisible()
    room_alone = files_view.height()
    root = tmp_path / "some bad"
    write(root / "good.png", png_bytes(1))
    write(root / "notes.png", b"plain text\n")
    add_folder(panel, monkeypatch, root)
    wait_scanned(qtbot, panel)
    assert panel.rejected_label.text() == "Left out (1)"
    qtbot.waitUntil(lambda: panel.rejected_view.isVisible() and panel.rejected_view.height() > 40, timeout=5_000)
    assert files_view.height() < room_alone
    panel.clear_button.click()
    qtbot.waitUntil(lambda: not panel.rejected_view.isVisible(), timeout=5_000)
    assert panel.rejected_label.text() == "Left out (none)" and files_view.height() == room_alone


def test_add_files_dialog_and_the_same_files_again(panel, monkeypatch, qtbot, tmp_path):
    first = write(tmp_path / "a.png", png_bytes(10))
    second = write(tmp_path / "b.png", png_bytes(11))
    missing = tmp_path / "gone.png"
    add_files(panel, monkeypatch, [first, second, missing])
    wait_scanned(qtbot, panel)
    assert accepted_names(panel) == ["a.png", "b.png"]
    assert rejected_reasons(panel) == {"gone.png": "does not exist"}

    add_files(panel, monkeypatch, [first, second])  # the same paths again: nothing new, nothing reported
    wait_scanned(qtbot, panel)
    assert accepted_names(panel) == ["a.png", "b.png"]
    assert len(rejected_reasons(panel)) == 1

    # Upload needs a name; the button says why it is disabled.
    assert not panel.upload_button.isEnabled()
    assert "name" in panel.upload_button.toolTip()
    qtbot.keyClicks(panel.name_edit, "letters")
    assert panel.upload_button.isEnabled()
    panel.clear_button.click()
    assert accepted_names(panel) == [] and rejected_reasons(panel) == {}
    assert not panel.upload_button.isEnabled()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file anyway; the FIFO and missing-file "
                                              "cases cover unreadable files honestly")
def test_unreadable_file_is_listed(panel, monkeypatch, qtbot, tmp_path):
    locked = write(tmp_path / "locked.png", png_bytes(12))
    locked.chmod(0)
    add_files(panel, monkeypatch, [locked])
    wait_scanned(qtbot, panel)
    assert rejected_reasons(panel)["locked.png"].startswith("unreadable")


def test_server_limits_come_from_health(server_factory, harness, tmp_path, qtbot, monkeypatch):
    small = server_factory("small", extra_args=["--max-upload-bytes", "2000", "--max-pixels", "400"])
    client = server_client(small, harness)
    widget = DatasetImportPanel(client, tmp_path / "app-data")
    qtbot.addWidget(widget)
    try:
        big_file = write(tmp_path / "big.png", noisy_png((40, 40), seed=3))   # > 2000 bytes
        many_pixels = write(tmp_path / "wide.png", png_bytes(13, (30, 20)))   # 600 pixels > 400
        fine = write(tmp_path / "fine.png", png_bytes(14, (10, 10)))
        add_files(widget, monkeypatch, [big_file, many_pixels, fine])
        wait_scanned(qtbot, widget)
        reasons = rejected_reasons(widget)
        assert reasons["big.png"].startswith("too large:") and "limit of 2,000 bytes" in reasons["big.png"]
        assert reasons["wide.png"] == "too many pixels: 30×20 = 600, over the server's limit of 400"
        assert accepted_names(widget) == ["fine.png"]
    finally:
        widget.controller.shutdown()
        harness.run(widget.controller.wait_idle())


def test_audio_video_and_text_datasets_check_extension_and_content(panel, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "mixed"
    write(folder / "voice.wav", wav_bytes())
    write(folder / "fake.wav", b"definitely not RIFF audio at all")
    write(folder / "clip.mp4", b"\x00\x00\x00\x18ftypisom" + bytes(64))
    write(folder / "notes.txt", "héllo wörld\n".encode())
    write(folder / "latin1.txt", "caf\xe9\n".encode("latin-1"))
    write(folder / "binary.txt", b"abc\0def")
    write(folder / "picture.png", png_bytes(20))

    panel.type_combo.setCurrentIndex(panel.type_combo.findData("audio"))
    assert panel.file_view.viewMode() == panel.file_view.ViewMode.ListMode  # type icons, no thumbnails
    add_folder(panel, monkeypatch, folder)
    wait_scanned(qtbot, panel)
    assert accepted_names(panel) == ["voice.wav"]
    reasons = rejected_reasons(panel)
    assert reasons["fake.wav"].startswith("not an audio file: its content")
    assert reasons["clip.mp4"].startswith("not an audio file: “.mp4” files are not accepted")
    assert panel.controller.files.index(0).data(ImportRole.FORMAT) == "WAV"

    # Switching the type checks the same files again for the new type.
    panel.type_combo.setCurrentIndex(panel.type_combo.findData("text"))
    wait_scanned(qtbot, panel)
    assert accepted_names(panel) == ["notes.txt"]
    reasons = rejected_reasons(panel)
    assert reasons["latin1.txt"].startswith("not UTF-8 text")
    assert reasons["binary.txt"] == "not a text file (it contains NUL bytes)"

    panel.type_combo.setCurrentIndex(panel.type_combo.findData("video"))
    wait_scanned(qtbot, panel)
    assert accepted_names(panel) == ["clip.mp4"]

    panel.type_combo.setCurrentIndex(panel.type_combo.findData("image"))
    wait_scanned(qtbot, panel)
    assert accepted_names(panel) == ["picture.png"]
    assert panel.file_view.viewMode() == panel.file_view.ViewMode.IconMode


def test_ten_thousand_files_fill_a_smooth_lazy_grid(panel, monkeypatch, qtbot, tmp_path, stall_probe):
    folder = tmp_path / "many"
    folder.mkdir()
    for index, data in enumerate(png_variants(10_000)):
        (folder / f"img{index:05d}.png").write_bytes(data)
    stall_probe.reset()  # writing the files above blocked the thread on purpose

    qtbot.keyClicks(panel.name_edit, "many")
    add_folder(panel, monkeypatch, folder)
    assert panel.controller.is_scanning
    assert not panel.upload_button.isEnabled()  # not before every file is checked
    wait_scanned(qtbot, panel)
    assert panel.controller.files.rowCount() == 10_000
    assert panel.controller.rejected.rowCount() == 0
    assert panel.upload_button.isEnabled()

    # Only what is visible gets a thumbnail.
    thumbnails = panel.controller.thumbnails
    qtbot.waitUntil(lambda: thumbnails.cached_count > 0 and not thumbnails.busy, timeout=10_000)
    visible = thumbnails.cached_count
    assert 0 < visible < 200
    last = str(folder / "img09999.png")

    def scrolled_and_loaded() -> bool:
        panel.file_view.scrollToBottom()  # again each time: the grid lays out big inserts in slices
        return thumbnails.is_cached(last)

    qtbot.waitUntil(scrolled_and_loaded, timeout=10_000)
    assert thumbnails.cached_count < 2 * visible + 50
    assert stall_probe.longest_gap < 1.0


def test_walk_and_check_work_off_the_gui_thread_on_plain_paths(tmp_path):
    # The blocking layer on its own: a nested loop of links, and a check of an image dimension limit.
    base = tmp_path / "tree"
    write(base / "a" / "one.png", png_bytes(30))
    os.symlink(base, base / "a" / "up")
    os.symlink(base / "a", base / "again")  # the same folder through a second path
    files, rejected = walk_paths([str(base)])
    assert [os.path.basename(f) for f in files] == ["one.png"]
    assert sorted((os.path.basename(r.path), r.reason.split(" (")[0].split(";")[0]) for r in rejected) == [
        ("again", "folder already added through another path"), ("up", "symbolic link loop")]
    result = check_file(str(base / "a" / "one.png"), "image", ScanLimits(max_upload_bytes=10_000, max_pixels=63))
    assert result.reason == "too many pixels: 8×8 = 64, over the server's limit of 63"
    ok = check_file(str(base / "a" / "one.png"), "image")
    assert (ok.width, ok.height, ok.format, len(ok.sha256)) == (8, 8, "PNG", 64)
    assert check_file(str(tmp_path), "image").reason.startswith("not a regular file")


def test_cancel_stops_checking(panel, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "some"
    for index in range(600):
        write(folder / f"f{index:04d}.png", png_bytes(index))
    add_folder(panel, monkeypatch, folder)
    assert panel.cancel_button.isEnabled()
    panel.cancel_button.click()
    wait_scanned(qtbot, panel)
    assert panel.controller.files.rowCount() < 600
    assert panel.controller.phase == ImportPhase.EDITING
    assert "stopped" in panel.status_label.text()


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 9), (seed * 20 % 256, 80, 120)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 5), (1, 2, 3)).save(buffer, format="TIFF")
    return buffer.getvalue()
