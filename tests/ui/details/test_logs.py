"""The Logs view of the job details pane against a real server and real trainers: it follows the tail only
while scrolled to the bottom, highlights search matches, never shows raw escape codes, opens a long log at
its end and loads older parts on scroll to the top with its memory bounded, and shows an empty state for a
server without logs (a labelled stand-in on a real socket) and for a job that wrote nothing."""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QTextCursor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from training_studio.ui.jobs.details.log_store import MAX_HELD_BYTES, OLDER_STEP_BYTES, LogState
from training_studio.ui.jobs.details.logs import LogView
from tests.support.faulty_server import FaultyServer, Reply, job_json
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status

WAIT_MS = 60_000
CHATTY = Path(__file__).parent / "trainers" / "chatty.py"
CHATTY_PRESET = "chatty"


def _presets(control_dir: Path) -> str:
    command = json.dumps([sys.executable, str(CHATTY), str(control_dir), "{params.gate}", "{params.interval}"])
    return (f'[[preset]]\nid = "{CHATTY_PRESET}"\nname = "Chatty test trainer"\ncommand = {command}\n'
            f'progress = "jsonl"\nloss_key = "loss"\n'
            f'[[preset.params]]\nname = "gate"\ntype = "str"\ndefault = "stop"\ndescription = "gate"\n'
            f'[[preset.params]]\nname = "interval"\ntype = "str"\ndefault = "0.2"\ndescription = "interval"\n')


@pytest.fixture
def chatty_server(server_factory, tmp_path):
    control = tmp_path / "control"
    control.mkdir()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(_presets(control))
    srv = server_factory("data", extra_args=["--cancel-grace", "1"])
    with srv.client() as http:
        yield srv, http, control


def _start_chatty(http, gate: str = "stop", interval: float = 0.2) -> str:
    dataset = make_dataset(http, images=1)
    response = http.post("/api/training/jobs", json={"name": "chatty", "dataset_id": dataset,
                                                     "base_model": CHATTY_PRESET, "total_steps": 100000,
                                                     "params": {"gate": gate, "interval": str(interval)}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _view(harness, qtbot, srv) -> tuple[LogView, object]:
    store = harness.store(srv.url, srv.token)
    view = LogView(store)
    view.store.interval = 0.2
    qtbot.addWidget(view)
    view.resize(900, 300)
    view.show()
    return view, store


def _numbered_lines(view: LogView) -> list[int]:
    return [int(n) for n in re.findall(r"line (\d{5})", view.plain_text())]


def _at_bottom(view: LogView) -> bool:
    scroll = view.editor.verticalScrollBar()
    return scroll.value() >= scroll.maximum() - 2


def test_the_log_follows_the_tail_stops_when_scrolled_up_and_resumes_at_the_bottom(harness, qtbot, chatty_server):
    srv, http, control = chatty_server
    job_id = _start_chatty(http)
    view, _store = _view(harness, qtbot, srv)
    view.show_job(job_id)
    try:
        # Enough lines to scroll (the view is 300 px high).
        qtbot.waitUntil(lambda: view.editor.verticalScrollBar().maximum() > 10, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: _at_bottom(view) and view.following, timeout=WAIT_MS)
        seen = max(_numbered_lines(view))
        qtbot.waitUntil(lambda: max(_numbered_lines(view)) > seen + 2, timeout=WAIT_MS)
        assert _at_bottom(view) and view.following

        # The user scrolls up: new lines keep arriving below, the view stays where the user put it.
        scroll = view.editor.verticalScrollBar()
        scroll.setValue(scroll.maximum() // 2)
        parked = scroll.value()
        assert not view.following
        assert view.end_button.isVisible()
        seen = max(_numbered_lines(view))
        qtbot.waitUntil(lambda: max(_numbered_lines(view)) > seen + 2, timeout=WAIT_MS)
        assert scroll.value() == parked
        assert scroll.maximum() > parked + 2

        # Back at the bottom: following again.
        scroll.setValue(scroll.maximum())
        assert view.following
        seen = max(_numbered_lines(view))
        qtbot.waitUntil(lambda: max(_numbered_lines(view)) > seen + 2, timeout=WAIT_MS)
        assert _at_bottom(view)

        # "Jump to end" does the same after scrolling away.
        scroll.setValue(0)
        assert not view.following
        view.end_button.click()
        assert view.following and _at_bottom(view)
    finally:
        (control / "stop").touch()
    wait_status(http, job_id, {"completed", "failed", "cancelled"})
    # Once the job ended, every line it wrote is shown, in order, each once.
    full = http.get(f"/api/training/jobs/{job_id}/logs", params={"offset": -1048576}).json()["text"]
    last = max(int(n) for n in re.findall(r"line (\d{5})", full))
    qtbot.waitUntil(lambda: max(_numbered_lines(view)) == last, timeout=WAIT_MS)
    numbers = _numbered_lines(view)
    assert numbers == list(range(numbers[0], last + 1))


def test_colours_are_rendered_and_escape_codes_never_shown_raw(harness, qtbot, chatty_server):
    srv, http, control = chatty_server
    job_id = _start_chatty(http, interval=0.05)
    view, _store = _view(harness, qtbot, srv)
    view.show_job(job_id)
    try:
        qtbot.waitUntil(lambda: len(_numbered_lines(view)) >= 5, timeout=WAIT_MS)
    finally:
        (control / "stop").touch()
    text = view.plain_text()
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "[32m" not in text and "]0;title" not in text
    # A tqdm bar redrawn with "\r" keeps only its last state.
    bars = re.findall(r"^bar \d+:.*$", text, flags=re.MULTILINE)
    assert bars and all(bar.endswith("100%|##########|") for bar in bars[:-1])
    assert re.search(r"^INFO line \d{5} epoch \d warning-red done$", text, flags=re.MULTILINE)
    # Copy is the editor's own and copies the text as shown.
    view.editor.selectAll()
    view.editor.copy()
    assert QApplication.clipboard().text() == view.plain_text()
    # The colour survived as a character format: "INFO" green, "warning-red" bold red.
    block = view.editor.document().firstBlock()
    while block.isValid() and not block.text().startswith("INFO line"):
        block = block.next()
    assert block.isValid()
    cursor = QTextCursor(block)
    cursor.setPosition(block.position() + 1)  # the format of the character before the position
    green = cursor.charFormat().foreground().color()
    assert green.green() > green.red() and green.green() > green.blue()
    cursor.setPosition(block.position() + block.text().index("warning-red") + 1)
    red = cursor.charFormat()
    assert red.foreground().color().red() > red.foreground().color().green()
    assert red.fontWeight() > 400


def test_search_highlights_every_match_and_steps_through_them(harness, qtbot, chatty_server):
    srv, http, control = chatty_server
    job_id = _start_chatty(http, interval=0.02)
    view, _store = _view(harness, qtbot, srv)
    view.show_job(job_id)
    try:
        qtbot.waitUntil(lambda: len(_numbered_lines(view)) >= 30, timeout=WAIT_MS)
    finally:
        (control / "stop").touch()
    wait_status(http, job_id, {"completed", "failed", "cancelled"})
    qtbot.waitUntil(lambda: view.store.state == LogState.SHOWING and view.store._loop_task is not None
                    and view.store._loop_task.done(), timeout=WAIT_MS)

    QTest.keyClick(view.editor, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert view.search.hasFocus()
    QTest.keyClicks(view.search, "EPOCH 3")  # case-insensitive
    expected = view.plain_text().lower().count("epoch 3")
    assert expected >= 2
    qtbot.waitUntil(lambda: view.match_count() == expected, timeout=WAIT_MS)
    selections = view.editor.extraSelections()
    assert len(selections) == expected
    assert all(s.cursor.selectedText().lower() == "epoch 3" for s in selections)
    assert view.match_label.text() == f"{expected} matches"

    QTest.keyClick(view.search, Qt.Key.Key_F3)
    first = view.editor.textCursor().selectionStart()
    assert view.editor.textCursor().selectedText().lower() == "epoch 3"
    assert view.match_label.text() == f"1 of {expected}"
    QTest.keyClick(view.search, Qt.Key.Key_F3)
    second = view.editor.textCursor().selectionStart()
    assert second > first and view.match_label.text() == f"2 of {expected}"
    QTest.keyClick(view.search, Qt.Key.Key_F3, Qt.KeyboardModifier.ShiftModifier)
    assert view.editor.textCursor().selectionStart() == first
    QTest.keyClick(view.search, Qt.Key.Key_F3, Qt.KeyboardModifier.ShiftModifier)  # wraps to the last
    assert view.match_label.text() == f"{expected} of {expected}"

    view.search.clear()
    qtbot.waitUntil(lambda: view.editor.extraSelections() == [] or len(view.editor.extraSelections()) == 0,
                    timeout=WAIT_MS)
    assert view.match_label.text() == ""


def _seed_long_log(server_data_dir: Path, job_id: str, lines: int) -> Path:
    """Seeding: replace a finished job's log with `lines` numbered lines (some coloured)."""
    path = server_data_dir / "logs" / f"{job_id}.log"
    with open(path, "w", encoding="utf-8") as handle:
        for number in range(lines):
            colour = "\x1b[33m" if number % 10 == 0 else ""
            handle.write(f"{colour}seeded line {number:07d}\x1b[0m padding to make the line longer "
                         f"{'x' * 40}\n")
    return path


def _seeded_numbers(view: LogView) -> list[int]:
    return [int(n) for n in re.findall(r"seeded line (\d{7})", view.plain_text())]


@pytest.mark.timeout(300)
def test_a_long_log_opens_at_its_end_loads_older_parts_on_scroll_to_top_and_stays_bounded(
        harness, qtbot, server):
    http = sync_client(server.url, server.token)
    job = make_job(http, make_dataset(http, images=2), "long log", 5, sample_every=0)
    wait_status(http, job["id"], {"completed"})
    total = 60_000  # about 6 MB: more than the view holds
    _seed_long_log(server.data_dir, job["id"], total)

    view, _store = _view(harness, qtbot, server)
    view.show_job(job["id"])
    qtbot.waitUntil(lambda: view.store.state == LogState.SHOWING and bool(_seeded_numbers(view)), timeout=WAIT_MS)
    numbers = _seeded_numbers(view)
    assert numbers[-1] == total - 1, "opens at the end"
    assert numbers[0] > total - 2000, "reads only the end"
    assert numbers == list(range(numbers[0], total))
    assert _at_bottom(view)
    assert "\x1b" not in view.plain_text()
    assert view.store.has_older and "scroll up" in view.window_label.text()

    # Scrolling to the top loads the part before, in order, and keeps the lines the user looks at in view.
    scroll = view.editor.verticalScrollBar()
    first_before = numbers[0]
    scroll.setValue(0)
    qtbot.waitUntil(lambda: _seeded_numbers(view)[0] < first_before, timeout=WAIT_MS)
    numbers = _seeded_numbers(view)
    assert numbers == list(range(numbers[0], total))
    assert scroll.value() > 0
    top_line = view.editor.cursorForPosition(view.editor.viewport().rect().topLeft()).block().text()
    assert f"seeded line {first_before:07d}" in top_line

    # Keep going to the very beginning: memory stays bounded, the far end (the bottom) is dropped.
    while view.store.has_older:
        start = view.store.start
        scroll.setValue(0)
        qtbot.waitUntil(lambda: view.store.start < start, timeout=WAIT_MS)
        assert view.store.held_bytes <= MAX_HELD_BYTES + OLDER_STEP_BYTES
        assert len(view.plain_text()) <= MAX_HELD_BYTES + OLDER_STEP_BYTES
    numbers = _seeded_numbers(view)
    assert numbers[0] == 0 and numbers == list(range(0, numbers[-1] + 1))
    assert numbers[-1] < total - 1 and not view.store.at_live_end

    # Back down: "Jump to end" reads the newer parts again until the end.
    view.jump_to_end()
    for _ in range(200):
        if view.store.at_live_end:
            break
        end = view.store.end
        view.jump_to_end()
        qtbot.waitUntil(lambda: view.store.end > end or view.store.at_live_end, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: _seeded_numbers(view)[-1] == total - 1, timeout=WAIT_MS)
    numbers = _seeded_numbers(view)
    assert numbers == list(range(numbers[0], total))
    assert view.store.held_bytes <= MAX_HELD_BYTES + OLDER_STEP_BYTES


def test_a_server_without_logs_and_a_job_without_output_show_empty_states(harness, qtbot, server):
    # Stand-in for a server that predates the logs endpoint (labelled fault injection on a real socket): it
    # knows the job but answers 404 without a code for /logs.
    old = FaultyServer()
    old.routes[("GET", "/api/training/status")] = Reply(200, job_json("j1", status="completed"))
    old.start()
    try:
        store = harness.store(old.url, "token")
        view = LogView(store)
        qtbot.addWidget(view)
        view.show()
        view.show_job("j1")
        qtbot.waitUntil(lambda: view.store.state == LogState.UNAVAILABLE, timeout=WAIT_MS)
        assert view.stack.currentWidget() is view.state_label
        assert view.state_label.text() == "This server does not serve job logs."
        assert not view.error_label.isVisible()
    finally:
        old.stop()

    # A real server: a job it does not know; then a finished job whose log is empty.
    view, _store = _view(harness, qtbot, server)
    view.show_job("no-such-job")
    qtbot.waitUntil(lambda: view.store.state == LogState.UNAVAILABLE, timeout=WAIT_MS)
    assert view.state_label.text() == "The server no longer knows this job."
    http = sync_client(server.url, server.token)
    job = make_job(http, make_dataset(http, images=2), "quiet", 3, sample_every=0)
    wait_status(http, job["id"], {"completed"})
    (server.data_dir / "logs" / f"{job['id']}.log").write_text("")  # seeding: a job that wrote nothing
    view.show_job(job["id"])
    qtbot.waitUntil(lambda: view.store.state == LogState.EMPTY, timeout=WAIT_MS)
    assert view.state_label.text() == "This job wrote no log."
    view.show_job(None)
    assert view.state_label.text() == "Select a job to see its log."
    assert not view.open_button.isVisible()  # a remote store: nothing to open on this machine


class _UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_open_log_file_opens_the_local_servers_log(harness, qtbot, tmp_path):
    store = harness.store(data_dir=tmp_path / "local")
    store.start()
    qtbot.waitUntil(lambda: store.connected, timeout=WAIT_MS)
    http = sync_client(store.client.base_url, store.client.token)
    job = make_job(http, make_dataset(http, images=2), "local", 3, sample_every=0)
    wait_status(http, job["id"], {"completed"})
    view = LogView(store)
    qtbot.addWidget(view)
    view.show()
    view.show_job(job["id"])
    qtbot.waitUntil(lambda: view.store.state == LogState.SHOWING, timeout=WAIT_MS)
    assert view.open_button.isVisible() and view.open_button.isEnabled()
    catcher = _UrlCatcher()
    # Qt's own hook for "open this URL" (the desktop is not ours to drive in a test).
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        view.open_button.click()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    expected = tmp_path / "local" / "logs" / f"{job['id']}.log"
    assert [Path(url.toLocalFile()) for url in catcher.urls] == [expected]


class OldLogsServer:
    """A stand-in (fault injection, labelled) for a server from before log ranges, on a real socket: it
    knows one finished job "j1" and serves its log by the old contract only: forward reads of at most
    64 KiB from `offset` >= 0, never ending inside a UTF-8 character, answers without `start`, 422 for a
    negative offset. `before` is unknown to it (ignored, as FastAPI ignores unknown query parameters)."""

    def __init__(self, log: bytes) -> None:
        owner = self
        self.log = log
        self.offsets: list[int] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path == "/api/training/status":
                    self._send(200, job_json("j1", status="completed"))
                elif parts.path == "/api/training/jobs/j1/logs":
                    offset = int(query.get("offset", ["0"])[0])
                    owner.offsets.append(offset)
                    if offset < 0:
                        self._send(422, {"error": {"code": "validation_error",
                                                   "message": "offset must be at least 0"}})
                        return
                    size = len(owner.log)
                    end = min(size, offset + 65536)
                    while offset < end < size and (owner.log[end] & 0xC0) == 0x80:
                        end -= 1  # never end inside a character: the next read starts at its lead byte
                    data = owner.log[offset:end] if offset < size else b""
                    self._send(200, {"text": data.decode("utf-8", errors="replace"),
                                     "next_offset": max(offset, end) if offset < size else size, "size": size})
                else:
                    self._send(404, {"error": {"code": "not_found", "message": "no such route"}})

            def _send(self, status: int, body: object) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def test_a_server_without_log_ranges_still_opens_at_the_end_and_stitches_older_parts_exactly(harness, qtbot):
    lines = [f"old line {n:06d} é 日本 \x1b[31mred\x1b[0m {'y' * (n % 50)}" for n in range(12_000)]
    old = OldLogsServer(("\n".join(lines) + "\n").encode("utf-8"))
    try:
        store = harness.store(old.url, "token")
        view = LogView(store)
        qtbot.addWidget(view)
        view.resize(900, 300)
        view.show()
        view.show_job("j1")
        qtbot.waitUntil(lambda: view.store.state == LogState.SHOWING, timeout=WAIT_MS)
        shown = view.plain_text().split("\n")
        assert shown[-1] == lines[-1].replace("\x1b[31m", "").replace("\x1b[0m", "")
        assert len(shown) < len(lines) // 2, "only the end was read"
        assert any(offset < 0 for offset in old.offsets)  # it tried the ranged read first
        scroll = view.editor.verticalScrollBar()
        while view.store.has_older:
            start = view.store.start
            scroll.setValue(0)
            qtbot.waitUntil(lambda: view.store.start < start, timeout=WAIT_MS)
        assert view.plain_text().split("\n") == [
            line.replace("\x1b[31m", "").replace("\x1b[0m", "") for line in lines]
    finally:
        old.stop()
