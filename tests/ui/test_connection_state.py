"""One truth about the connection (issue 15): the status bar, the banner, the Server menu and the tray
render the same `ConnectionState` snapshot through restart, stop, start and a kill -9 of a real local
server; Restart and Stop ask first, with verbs on the buttons and the safe answer as the default.

Bugs reproduced here before the fix: after Server › Restart the status bar stayed on "Reconnecting…"
(the first refresh after a restart is an empty delta: nothing told the status bar it was connected) while
the menu said Connected; after Stop it read "Reconnecting… — stopped" beside a stale "The local server was
restarted" notice in the Jobs tab and a "Problem" banner.
"""

from __future__ import annotations

import os
import signal

import pytest

from training_studio.client import read_server_info
from training_studio.ui.banner import BannerLevel
from training_studio.ui.confirm import ConfirmBox
from training_studio.ui.connection import (
    ConnectionPhase,
    ConnectionSnapshot,
    banner_for,
    menu_status_text,
    status_bar_text,
    tray_tooltip,
)
from training_studio.ui.notifications import Notifier


class Views:
    """The four places that show the connection, and a check after every change that they agree."""

    def __init__(self, window, notifier) -> None:
        self.window = window
        self.notifier = notifier
        self.disagreements: list[str] = []
        self.seen: list[ConnectionSnapshot] = []
        # Connected after the views' own slots: it sees what they rendered for the same snapshot.
        window.connection.changed.connect(self._check)

    def _check(self, snapshot: ConnectionSnapshot) -> None:
        self.seen.append(snapshot)
        problems = self.compare(snapshot)
        self.disagreements.extend(problems)

    def compare(self, snapshot: ConnectionSnapshot) -> list[str]:
        window = self.window
        problems = []
        if window.server_label.text() != status_bar_text(snapshot):
            problems.append(f"status bar {window.server_label.text()!r} for {snapshot}")
        where = "Local server" if snapshot.is_local else "Server"
        if window.server_menu.status_action.text() != f"{where}: {menu_status_text(snapshot)}":
            problems.append(f"menu {window.server_menu.status_action.text()!r} for {snapshot}")
        if self.notifier.tray.toolTip() != tray_tooltip(snapshot):
            problems.append(f"tray {self.notifier.tray.toolTip()!r} for {snapshot}")
        spec = banner_for(snapshot)
        shown = window.banner.isVisibleTo(window)
        if spec is None and shown or spec is not None and (not shown or window.banner.text != spec.text):
            problems.append(f"banner {shown} {window.banner.text!r} for {snapshot}")
        return problems

    @property
    def phase(self) -> ConnectionPhase:
        return self.window.connection.snapshot.phase

    def all_say(self, phase: ConnectionPhase, url: str | None = None) -> bool:
        snapshot = self.window.connection.snapshot
        return (snapshot.phase is phase and (url is None or snapshot.url == url)
                and not self.compare(snapshot))


def _jobs_tab_says_restarted(window) -> bool:
    panel = window.jobs_panel
    notice = getattr(panel, "notice", None)
    return notice is not None and notice.isVisible() and "restarted" in notice.text


def _answer(box: ConfirmBox | None, confirm: bool) -> None:
    assert isinstance(box, ConfirmBox) and box.isVisible()
    (box.confirm_button if confirm else box.keep_button).click()


@pytest.fixture
def local_app(harness, qtbot, tmp_path):
    data_dir = tmp_path / "data"
    store = harness.store(data_dir=data_dir, refresh_interval=0.3)
    window = harness.window(store)
    notifier = Notifier(window, store, tray_available=True)  # the tray's tooltip is one of the four views
    views = Views(window, notifier)
    yield store, window, views, data_dir
    notifier.shutdown()


def test_restart_stop_start_and_kill_render_the_same_state_in_all_four_places(local_app, qtbot):
    store, window, views, data_dir = local_app
    menu = window.server_menu
    store.start()
    assert window.server_label.text() == "Starting local server…"
    assert menu.status_action.text() == "Local server: Starting local server…"
    first = None
    qtbot.waitUntil(lambda: read_server_info(data_dir) is not None, timeout=30_000)
    first = read_server_info(data_dir)
    qtbot.waitUntil(lambda: views.all_say(ConnectionPhase.CONNECTED, first.url)
                    and window.server_label.text().endswith("— live updates"), timeout=30_000)
    assert "Connected (live updates)" in views.notifier.tray.toolTip()

    # Restart asks first, saying what happens to running jobs; the safe answer is the default.
    box = menu.confirm_restart()
    assert box.defaultButton() is box.keep_button and box.escapeButton() is box.keep_button
    assert box.confirm_button.text().replace("&", "") == "Restart server"
    assert box.keep_button.text().replace("&", "") == "Keep it running"
    assert "keep running" in box.informativeText() and "re-attached" in box.informativeText()
    _answer(box, confirm=False)
    assert read_server_info(data_dir).pid == first.pid and views.phase is ConnectionPhase.CONNECTED

    menu.restart_action.trigger()
    _answer(menu.pending_question, confirm=True)
    assert views.all_say(ConnectionPhase.CONNECTING)
    assert window.server_label.text() == "Restarting local server…"
    qtbot.waitUntil(lambda: (read_server_info(data_dir) or first).pid != first.pid, timeout=30_000)
    second = read_server_info(data_dir)
    # The bug: the status bar stayed on "Reconnecting…" for 30 s while the menu said Connected.
    qtbot.waitUntil(lambda: views.all_say(ConnectionPhase.CONNECTED, second.url), timeout=15_000)
    assert window.server_label.text().startswith(f"Local server: {second.url}")
    assert "Reconnecting" not in window.server_label.text()
    # The remark about the restart is in the one connection banner (info), not a second banner elsewhere.
    assert window.banner.isVisible() and window.banner.level is BannerLevel.INFO
    assert "restarted" in window.banner.text and "re-attached" in window.banner.text
    assert not _jobs_tab_says_restarted(window)

    # Stop: asked first too; then "stopped" everywhere, and the restart remark is replaced, not kept beside.
    menu.stop_action.trigger()
    box = menu.pending_question
    assert box.defaultButton() is box.keep_button
    assert box.confirm_button.text().replace("&", "") == "Stop server"
    assert "keep running" in box.informativeText() and "re-attached" in box.informativeText()
    _answer(box, confirm=True)
    qtbot.waitUntil(lambda: views.all_say(ConnectionPhase.STOPPED), timeout=30_000)
    assert window.server_label.text() == "Local server: stopped"
    assert menu.status_action.text() == "Local server: Stopped"
    assert "Local server: Stopped" in views.notifier.tray.toolTip()
    assert window.banner.isVisible() and "stopped" in window.banner.text
    assert "restarted" not in window.banner.text
    assert not _jobs_tab_says_restarted(window)
    qtbot.waitUntil(lambda: not store.local._pid_alive(second.pid), timeout=20_000)

    # Start again from the banner (no question: nothing runs to be interrupted).
    seen_before_start = len(views.seen)
    window.banner.button("Start local server").click()
    assert window.server_label.text() == "Starting local server…"
    qtbot.waitUntil(lambda: read_server_info(data_dir) is not None
                    and read_server_info(data_dir).pid not in (first.pid, second.pid), timeout=30_000)
    third = read_server_info(data_dir)
    # A start is not called a restart.
    qtbot.waitUntil(lambda: views.all_say(ConnectionPhase.CONNECTED, third.url)
                    and any("running again" in s.note for s in views.seen[seen_before_start:]), timeout=15_000)
    assert not any("restarted" in s.note for s in views.seen[seen_before_start:])
    assert not any("Restarting" in s.activity for s in views.seen[seen_before_start:])

    # kill -9: the app notices, starts the server again, says so, and all four say connected to the new one.
    # The bug: when the app's first request after the kill was its reconnect after the start (rather than
    # a refresh), the server was started again in silence.
    seen_before_kill = len(views.seen)
    os.kill(third.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: read_server_info(data_dir) is not None
                    and read_server_info(data_dir).pid != third.pid, timeout=30_000)
    fourth = read_server_info(data_dir)
    qtbot.waitUntil(lambda: views.all_say(ConnectionPhase.CONNECTED, fourth.url)
                    and any("started again" in s.note for s in views.seen[seen_before_kill:]), timeout=15_000)

    assert views.disagreements == []
    phases = [s.phase for s in views.seen]
    assert ConnectionPhase.STOPPED in phases and ConnectionPhase.CONNECTING in phases


def test_a_remark_about_the_server_goes_by_itself(local_app, qtbot):
    store, window, views, _ = local_app
    window.connection._note_timer.setInterval(200)  # the test's short setting instead of 10 s
    store.start()
    qtbot.waitUntil(lambda: views.phase is ConnectionPhase.CONNECTED, timeout=30_000)
    window.connection.show_note("The local server was restarted.")
    assert window.banner.isVisible() and window.banner.level is BannerLevel.INFO
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=10_000)
    assert views.disagreements == []


def test_renderers_agree_for_every_phase():
    base = ConnectionSnapshot(phase=ConnectionPhase.CONNECTED, is_local=True, url="http://127.0.0.1:5",
                              version="1.0", stream="live", failure="Cannot connect.", age_s=4)
    for phase in ConnectionPhase:
        snapshot = ConnectionSnapshot(**{**base.__dict__, "phase": phase, "activity": "Restarting local server…"})
        words = menu_status_text(snapshot)
        assert words in tray_tooltip(snapshot)
        status = status_bar_text(snapshot)
        spec = banner_for(snapshot)
        if phase is ConnectionPhase.CONNECTED:
            assert status.endswith("— live updates") and spec is None
        elif phase is ConnectionPhase.CONNECTING:
            assert status == words == "Restarting local server…" and spec is None
        else:
            assert words.lower() in status.lower() or phase is ConnectionPhase.FAILING
            assert spec is not None and spec.actions
    stopped = ConnectionSnapshot(**{**base.__dict__, "phase": ConnectionPhase.STOPPED})
    assert status_bar_text(stopped) == "Local server: stopped"
    assert "re-attached" in banner_for(stopped).text
