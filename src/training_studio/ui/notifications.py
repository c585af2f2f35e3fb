"""Telling the user that a job finished: a desktop notification from a tray icon, or a notice in the window.

`JobFinishWatcher` learns of finished jobs from the jobs store: after every refresh (`jobs_changed`) it
compares each job's status with the one it saw before and reports a job that went from pending, queued
or running to completed or failed (a cancel is the user's own doing and is not announced; jobs already
finished when first seen are not news). `job_notice()` turns such a transition into the words shown.
`Notifier` shows them: where `QSystemTrayIcon.isSystemTrayAvailable()` it owns a tray icon (which also
restores the window) and shows a desktop notification whose click brings up the window with the job
selected — it works while the window is minimised; elsewhere the same notice appears inside the window
as a non-modal toast with a "Show job" button, and the taskbar entry is flagged for attention.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSystemTrayIcon,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import ACTIVE_STATUSES, JobStatus, TrainingJob

__all__ = ["JobNotice", "job_notice", "JobFinishWatcher", "Notifier", "ToastArea", "app_icon", "show_job"]

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 300
MAX_TOASTS = 4
TRAY_MESSAGE_MS = 10_000
TOAST_WIDTH = 380


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
        store.jobs_changed.connect(self.scan)

    def scan(self) -> list[JobNotice]:
        """Compare the model's jobs with the last scan; returns (and emits) the new notices."""
        model = self.store.model
        seen: dict[str, JobStatus] = {}
        notices: list[JobNotice] = []
        for row in range(model.rowCount()):
            job = model.job_at(row)
            if job is None:
                continue
            seen[job.id] = job.status
            before = self._last_status.get(job.id)
            if before in ACTIVE_STATUSES and job.status not in ACTIVE_STATUSES:
                notice = job_notice(job)
                if notice is not None:
                    notices.append(notice)
        self._last_status = seen
        for notice in notices:
            self.job_finished.emit(notice)
        return notices


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


class Toast(QFrame):
    """One in-window notice: text, "Show job" and dismiss."""

    show_requested = Signal(str)
    dismissed = Signal()

    def __init__(self, notice: JobNotice, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.notice = notice
        self.setObjectName("jobToast")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setAccessibleName(notice.title)
        self.setAccessibleDescription(notice.message)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 8, 6, 8)
        texts = QVBoxLayout()
        self.title_label = QLabel(("✕ " if notice.failed else "✓ ") + notice.title, self)
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.message_label = QLabel(notice.message, self)
        self.message_label.setTextFormat(Qt.TextFormat.PlainText)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        texts.addWidget(self.title_label)
        texts.addWidget(self.message_label)
        layout.addLayout(texts, 1)
        self.show_button = QPushButton("Show &job", self)
        self.show_button.setAccessibleName(f"Show job {notice.job_id}")
        self.show_button.clicked.connect(lambda: self.show_requested.emit(notice.job_id))
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAccessibleName("Dismiss notice")
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.show_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.setFixedWidth(TOAST_WIDTH)
        accent = "#b91c1c" if notice.failed else "#15803d"
        # The accent is backed by the ✓/✕ glyph and the title's words: colour is never the only signal.
        self.setStyleSheet(f"#jobToast {{ background: palette(base); border: 1px solid palette(mid); "
                           f"border-left: 4px solid {accent}; border-radius: 4px; }}")

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
        self.deleteLater()


class ToastArea(QWidget):
    """A column of toasts floating over the bottom-right corner of `host`; keeps itself placed on resize.

    Toasts stay until dismissed (the user may be away or the window minimised); the oldest go when more
    than MAX_TOASTS pile up.
    """

    show_requested = Signal(str)

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.setObjectName("toastArea")
        self.host = host
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self.toasts: list[Toast] = []
        host.installEventFilter(self)
        self.hide()

    def add(self, notice: JobNotice) -> Toast:
        toast = Toast(notice, self)
        toast.show_requested.connect(self._on_show)
        toast.dismissed.connect(lambda: self._forget(toast))
        self.toasts.append(toast)
        self._layout.addWidget(toast)
        while len(self.toasts) > MAX_TOASTS:
            self.toasts[0].dismiss()
        self.show()
        self.raise_()
        self._place()
        return toast

    def _on_show(self, job_id: str) -> None:
        self.show_requested.emit(job_id)

    def _forget(self, toast: Toast) -> None:
        if toast in self.toasts:
            self.toasts.remove(toast)
            self._layout.removeWidget(toast)
        if not self.toasts:
            self.hide()
        else:
            self._place()

    def _place(self) -> None:
        # Word-wrapped labels only know their height for a given width: ask the layout for that width.
        width = TOAST_WIDTH
        heights = [max(toast.heightForWidth(width), toast.minimumSizeHint().height()) for toast in self.toasts]
        for toast, toast_height in zip(self.toasts, heights):
            toast.setFixedHeight(toast_height)
        height = sum(heights) + self._layout.spacing() * max(0, len(heights) - 1)
        margin = 12
        x = max(0, self.host.width() - width - margin)
        y = max(0, self.host.height() - height - margin)
        self.setGeometry(x, y, width, height)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if watched is self.host and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False


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
        self.toasts: ToastArea | None = None
        self.last_notice: JobNotice | None = None
        if self.uses_tray:
            self._build_tray()
        else:
            self.toasts = ToastArea(window.centralWidget() or window)
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
        self.tray.show()

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
            self.toasts.add(notice)
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
