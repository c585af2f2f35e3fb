"""Telling the user that a job finished: a desktop notification from a tray icon, or a notice in the window.

`JobFinishWatcher` learns of finished jobs from the jobs store: after every refresh (`jobs_changed`) it
compares each job's status with the one it saw before and reports a job that went from pending, queued
or running to completed or failed (a cancel is the user's own doing and is not announced; jobs already
finished when first seen are not news). It looks only at the rows whose status changed since its last look
(`JobListModel.status_changes_since`), not at all 10,000 on every refresh. `job_notice()` turns such a transition into the words shown.
`Notifier` shows them: where `QSystemTrayIcon.isSystemTrayAvailable()` it owns a tray icon (which also
restores the window) and shows a desktop notification whose click brings up the window with the job
selected — it works while the window is minimised; elsewhere the same notice appears in the window's
`NoticeArea`, and the taskbar entry is flagged for attention. The tray's tooltip renders the app's one
connection state (ui.connection), like the status bar and the Server menu.

Notices come and go (`NoticeArea`, in the status bar, so they never cover or push content): information
goes by itself after `NOTICE_SECONDS`, failures stay until dismissed, and several of a kind are coalesced
("3 jobs completed") instead of piling up. `post_notice(widget, text)` lets any panel post one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QStatusBar,
    QSystemTrayIcon,
    QToolButton,
    QWidget,
)

from training_studio.contract.models import ACTIVE_STATUSES, JobStatus, TrainingJob

__all__ = ["JobNotice", "job_notice", "JobFinishWatcher", "Notifier", "Notice", "NoticeArea", "NoticeGroup",
           "coalesced_text", "notice_area_of", "post_notice", "app_icon", "show_job", "NOTICE_SECONDS"]

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 300
TRAY_MESSAGE_MS = 10_000


@dataclass(frozen=True)
class JobNotice:
    job_id: str
    title: str    # e.g. "Training completed"
    message: str  # names the job; for a failure, gives the reason
    failed: bool


def job_notice(job: TrainingJob) -> JobNotice | None:
    """The notice for a job that just finished; None for states that are not announced."""
    if job.status == JobStatus.COMPLETED:
        steps = f" after {job.total_steps:,} steps" if job.total_steps else ""
        return JobNotice(job.id, "Training completed", f"“{job.name}” completed{steps}.", failed=False)
    if job.status == JobStatus.FAILED:
        reason = " ".join((job.error or "").split()) or "no reason was given by the server"
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        return JobNotice(job.id, "Training failed", f"“{job.name}” failed: {reason}", failed=True)
    return None


class JobFinishWatcher(QObject):
    """Emits `job_finished(JobNotice)` when a job seen active reaches completed or failed."""

    job_finished = Signal(object)

    def __init__(self, store: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._last_status: dict[str, JobStatus] = {}
        # The model and its status journal's cursor at the last scan (None: look at every row next time).
        self._journal: tuple[Any, int] | None = None
        store.jobs_changed.connect(self.scan)

    def scan(self) -> list[JobNotice]:
        """Compare the model's jobs with the last scan; returns (and emits) the new notices."""
        model = self.store.model
        changed: list[str] | None = None
        if hasattr(model, "status_changes_since"):
            cursor, changed = model.status_changes_since(
                self._journal[1] if self._journal is not None and self._journal[0] is model else -1)
            self._journal = (model, cursor)
        notices: list[tuple[int, JobNotice]] = []
        if changed is None:  # the first look (or the journal no longer reaches back): every row
            seen: dict[str, JobStatus] = {}
            for row in range(model.rowCount()):
                job = model.job_at(row)
                if job is None:
                    continue
                seen[job.id] = job.status
                self._note(job, self._last_status.get(job.id), row, notices)
            self._last_status = seen
        else:
            last_status = self._last_status
            for job_id in dict.fromkeys(changed):
                before = last_status.pop(job_id, None)
                row = model.row_of(job_id)
                job = model.job_at(row) if row is not None else None
                if job is not None:
                    last_status[job_id] = job.status
                    self._note(job, before, row, notices)
        notices.sort(key=lambda entry: entry[0])  # in row order, whatever order the changes came in
        for _row, notice in notices:
            self.job_finished.emit(notice)
        return [notice for _row, notice in notices]

    @staticmethod
    def _note(job: TrainingJob, before: JobStatus | None, row: int,
              notices: list[tuple[int, JobNotice]]) -> None:
        if before in ACTIVE_STATUSES and job.status not in ACTIVE_STATUSES:
            notice = job_notice(job)
            if notice is not None:
                notices.append((row, notice))


def app_icon() -> QIcon:
    """The application icon from package data (all sizes that ship), or an empty icon."""
    icon = QIcon()
    folder = resources.files("training_studio.resources").joinpath("app")
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        entry = folder.joinpath(f"training-studio-{size}.png")
        if isinstance(entry, Path):  # a real file: Qt decodes each size only when it is shown
            if entry.is_file():
                icon.addFile(str(entry), QSize(size, size))
            continue
        try:
            data = entry.read_bytes()
        except OSError:
            continue
        pixmap = QPixmap()
        if pixmap.loadFromData(data, "PNG"):
            icon.addPixmap(pixmap)
    return icon


def show_job(window: Any, job_id: str) -> bool:
    """Bring the window up (from minimised too), switch to the Jobs tab and select the job."""
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()
    panel = getattr(window, "jobs_panel", None)
    if panel is None:
        return False
    window.tabs.setCurrentWidget(panel)
    if panel.select_job(job_id):
        return True
    # The panel's filter may hide the job: clear it and try again.
    panel.filter_edit.clear()
    panel.status_combo.setCurrentIndex(0)
    return bool(panel.select_job(job_id))


NOTICE_SECONDS = 6.0  # how long an information notice stays (failures stay until dismissed)
NOTICE_TEXT_WIDTH = 420  # a notice's text is elided beyond this (the whole text is its tooltip)


@dataclass
class NoticeGroup:
    """What one notice in the status bar stands for: notices of the same `key` are coalesced."""

    key: str
    failed: bool
    messages: list[str]
    job_ids: list[str]
    noun: str = ""  # "completed" / "failed": "3 jobs completed"; "": the newest message replaces the others
    # A button of its own instead of "Show job" (label, what it does), e.g. ("&Undo", …) after Clear finished.
    action: tuple[str, Callable[[], None]] | None = None


def coalesced_text(group: NoticeGroup) -> str:
    """One line for a group: its only message, or "3 jobs completed"."""
    if len(group.messages) == 1 or not group.noun:
        return group.messages[-1]
    return f"{len(group.messages)} jobs {group.noun}"


class _ElidedLabel(QLabel):
    """A one-line label that elides its text to the width it is given (the whole text is its tooltip)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._elide()

    def full_text(self) -> str:
        return self._full

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        hint = super().sizeHint()
        return QSize(min(self.fontMetrics().horizontalAdvance(self._full) + 4, NOTICE_TEXT_WIDTH), hint.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(min(self.sizeHint().width(), 120), super().minimumSizeHint().height())

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(20, self.width())
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width))


class Notice(QFrame):
    """One notice in the status bar: a glyph and words (never colour alone), "Show job", dismiss.

    An information notice dismisses itself after `seconds`; a failure stays until the user dismisses it.
    `dismissed` is emitted when it goes, either way, before it is deleted.
    """

    show_requested = Signal(str)  # job id
    dismissed = Signal()

    def __init__(self, group: NoticeGroup, seconds: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = group
        self.setObjectName("notice")
        self.setFrameShape(QFrame.Shape.NoFrame)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 0, 0)
        layout.setSpacing(4)
        self.message_label = _ElidedLabel(self)
        layout.addWidget(self.message_label)
        self.show_button = QToolButton(self)
        self.show_button.setAutoRaise(True)
        self.show_button.clicked.connect(self._on_show)
        layout.addWidget(self.show_button)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAccessibleName("Dismiss notice")
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.close_button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(max(1, int(seconds * 1000)))
        self._timer.timeout.connect(self.dismiss)
        self._gone = False
        self.refresh()

    @property
    def text(self) -> str:
        return coalesced_text(self.group)

    def refresh(self) -> None:
        """Show the group's current words, and (information only) start the countdown again."""
        group = self.group
        text = coalesced_text(group)
        glyph = "⚠" if group.failed else "✓" if group.noun else "ℹ"
        self.message_label.set_full_text(f"{glyph} {text}")
        self.message_label.setToolTip("\n".join(group.messages[-10:]))
        self.setAccessibleName("Problem" if group.failed else "Notice")
        self.setAccessibleDescription(text)
        if group.action is not None:
            self.show_button.setVisible(True)
            self.show_button.setText(group.action[0])
            self.show_button.setAccessibleName(group.action[0].replace("&", ""))
        else:
            self.show_button.setVisible(bool(group.job_ids))
            self.show_button.setText("Show &jobs" if len(group.job_ids) > 1 else "Show &job")
            self.show_button.setAccessibleName("Show the job" if len(group.job_ids) <= 1 else "Show the newest job")
        if group.failed:
            self._timer.stop()
        else:
            self._timer.start()

    def _on_show(self) -> None:
        if self.group.action is not None:
            callback = self.group.action[1]
            self.dismiss()  # an action is done once
            callback()
            return
        if self.group.job_ids:
            self.show_requested.emit(self.group.job_ids[-1])

    def dismiss(self) -> None:
        if self._gone:
            return
        self._gone = True
        self._timer.stop()
        self.hide()
        self.dismissed.emit()
        self.deleteLater()


class NoticeArea(QWidget):
    """The notices of the window, in its status bar: a fixed place that covers and pushes nothing.

    `post()` adds a notice or coalesces it with the visible one of the same group ("3 jobs completed");
    information notices go after `seconds`, failures stay until dismissed. Temporary status-bar messages
    (`QStatusBar.showMessage`, used across the app) become information notices too, so they neither
    hide the notices nor linger.
    """

    show_requested = Signal(str)  # job id
    posted = Signal(object)  # the Notice shown or updated

    def __init__(self, status_bar: QStatusBar, *, seconds: float = NOTICE_SECONDS) -> None:
        super().__init__(status_bar)
        self.setObjectName("noticeArea")
        self.setAccessibleName("Notices")
        self.seconds = seconds
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(8)
        self._layout.addStretch(1)
        self.notices: list[Notice] = []
        status_bar.addWidget(self, 1)
        # The status bar keeps the height a notice needs, so one appearing never moves the content above.
        probe = QToolButton()
        probe.setAutoRaise(True)
        probe.setText("Show job")
        status_bar.setMinimumHeight(max(status_bar.minimumHeight(), probe.sizeHint().height() + 4))
        probe.deleteLater()
        self._status_bar = status_bar
        status_bar.messageChanged.connect(self._on_status_message)

    def post(self, message: str, *, failed: bool = False, key: str | None = None, noun: str = "",
             job_id: str | None = None, action: tuple[str, Callable[[], None]] | None = None) -> Notice:
        """Show `message`; notices of the same `key` coalesce (with `noun`: "N jobs <noun>")."""
        key = key or ("failure" if failed else "info")
        notice = next((n for n in self.notices if n.group.key == key), None)
        if notice is None:
            group = NoticeGroup(key, failed, [message], [job_id] if job_id else [], noun, action)
            notice = Notice(group, self.seconds, self)
            notice.show_requested.connect(self.show_requested)
            notice.dismissed.connect(lambda: self._forget(notice))
            # Failures first (they stay), then the rest, newest last; the stretch stays at the end.
            failures = sum(1 for other in self.notices if other.group.failed)
            self._layout.insertWidget(failures if failed else self._layout.count() - 1, notice)
            self.notices.append(notice)
        else:
            group = notice.group
            if noun:
                group.messages.append(message)
            else:
                group.messages[:] = [message]
            if job_id:
                group.job_ids.append(job_id)
            group.action = action
            notice.refresh()
        notice.show()
        self.posted.emit(notice)
        return notice

    def post_job(self, notice: JobNotice) -> Notice:
        noun = "failed" if notice.failed else "completed"
        return self.post(notice.message, failed=notice.failed, key=f"jobs {noun}", noun=noun,
                         job_id=notice.job_id)

    def _forget(self, notice: Notice) -> None:
        if notice in self.notices:
            self.notices.remove(notice)
            self._layout.removeWidget(notice)

    def _on_status_message(self, text: str) -> None:
        if text:
            self._status_bar.clearMessage()
            self.post(text, key="status")


def notice_area_of(widget: QWidget) -> NoticeArea | None:
    """The notice area of the window `widget` is in, if it has one."""
    window = widget.window()
    area = getattr(window, "notices", None)
    return area if isinstance(area, NoticeArea) else None


def post_notice(widget: QWidget, message: str, *, failed: bool = False, key: str | None = None,
                action: tuple[str, Callable[[], None]] | None = None) -> bool:
    """Post `message` in the notice area of `widget`'s window (with an optional button of its own);
    False when there is none."""
    area = notice_area_of(widget)
    if area is None:
        return False
    area.post(message, failed=failed, key=key, action=action)
    return True


class Notifier(QObject):
    """Shows each `JobNotice` as a tray notification, or in the window where there is no tray.

    `tray_available` defaults to `QSystemTrayIcon.isSystemTrayAvailable()`; `enabled` (from the settings)
    switches notices off without dropping the watcher.
    """

    shown = Signal(object)  # JobNotice, after it was shown either way

    def __init__(self, window: Any, store: Any, *, tray_available: bool | None = None,
                 enabled: bool = True, parent: QObject | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.window = window
        self.enabled = enabled
        self.watcher = JobFinishWatcher(store, self)
        self.watcher.job_finished.connect(self.notify)
        self.uses_tray = QSystemTrayIcon.isSystemTrayAvailable() if tray_available is None else tray_available
        self.tray: QSystemTrayIcon | None = None
        self.toasts: NoticeArea | None = None  # the window's notice area, where there is no tray
        self.last_notice: JobNotice | None = None
        if self.uses_tray:
            self._build_tray()
        else:
            area = getattr(window, "notices", None)
            self.toasts = area if isinstance(area, NoticeArea) else NoticeArea(window.statusBar())
            self.toasts.show_requested.connect(self.show_job)

    def _build_tray(self) -> None:
        self.tray = QSystemTrayIcon(app_icon(), self)
        self.tray.setToolTip("Training Studio")
        menu = QMenu()
        self._tray_menu = menu  # QSystemTrayIcon does not own its menu
        show_action = QAction("&Show Training Studio", menu)
        show_action.triggered.connect(self.show_window)
        quit_action = QAction("&Quit", menu)
        quit_action.triggered.connect(self.window.close)
        menu.addAction(show_action)
        menu.addSeparator()
        menu.addAction(quit_action)
        self.tray.setContextMenu(menu)
        self.tray.activated.connect(self._on_tray_activated)
        self.tray.messageClicked.connect(self._on_message_clicked)
        # The tray says what the status bar, the banner and the Server menu say: one connection state.
        connection = getattr(self.window, "connection", None)
        if connection is not None:
            from training_studio.ui.connection import tray_tooltip

            self.tray.setToolTip(tray_tooltip(connection.snapshot))
            connection.changed.connect(self._on_connection_changed)
        self.tray.show()

    def _on_connection_changed(self, snapshot: Any) -> None:
        from training_studio.ui.connection import tray_tooltip

        if self.tray is not None:
            self.tray.setToolTip(tray_tooltip(snapshot))

    def notify(self, notice: JobNotice) -> None:
        if not self.enabled:
            return
        self.last_notice = notice
        log.info("%s: %s", notice.title, notice.message)
        if self.tray is not None:
            icon = (QSystemTrayIcon.MessageIcon.Critical if notice.failed
                    else QSystemTrayIcon.MessageIcon.Information)
            self.tray.showMessage(notice.title, notice.message, icon, TRAY_MESSAGE_MS)
        elif self.toasts is not None:
            self.toasts.post_job(notice)
            if not self.window.isActiveWindow():
                QApplication.alert(self.window)  # flag the taskbar entry of a minimised/background window
        self.shown.emit(notice)

    def show_window(self) -> None:
        if self.window.isMinimized():
            self.window.showNormal()
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()

    def show_job(self, job_id: str) -> bool:
        return show_job(self.window, job_id)

    def _on_message_clicked(self) -> None:
        # A tray message's click carries no id: it is the one shown last.
        if self.last_notice is not None:
            self.show_job(self.last_notice.job_id)
        else:
            self.show_window()

    def _on_tray_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_window()

    def shutdown(self) -> None:
        if self.tray is not None:
            self.tray.hide()
            self.tray.deleteLater()
            self.tray = None
