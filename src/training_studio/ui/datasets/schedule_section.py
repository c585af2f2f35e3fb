"""The Train dialog's collapsed "When to start" section (issue 16): start now, hold in queue, after another job
(optionally only if it succeeds) or not before a date and time.

`ScheduleSection` is a disclosure button whose title says the current choice ("When to start: start now"),
over a body of four radio buttons, each with its control beside it: a combo of the jobs one can wait for
(filled by the dialog from `DatasetStore.request_followable_jobs`, which it asks for through
`jobs_wanted` whenever "After another job" is chosen, so the list is fresh) with an "Only if it succeeds"
box, and a `QDateTimeEdit` in local time. A control is enabled only while its option is chosen, so Tab
walks only what matters. The line under the options says what will happen, or, in the error colour, why
the choice cannot be sent (a start time that has passed is said, never sent nor silently moved); it is
re-read every few seconds while a start time is chosen, as time passes with the dialog open. The logic
(problems, the request fields, the words) is in schedule.py. No HTTP here.
"""

from __future__ import annotations

from datetime import datetime, timezone

from PySide6.QtCore import QDateTime, QEvent, QObject, QTime, QTimer, Qt, Signal
from PySide6.QtGui import QFocusEvent, QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFrame,
    QGridLayout,
    QLabel,
    QRadioButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import TrainingJob
from training_studio.ui.datasets.schedule import (
    ScheduleChoice,
    StartMode,
    followable_order,
    job_choice_label,
    schedule_fields,
    schedule_note,
    schedule_problems,
    summary_of,
)

__all__ = ["ScheduleSection", "DATE_TIME_FORMAT"]

DATE_TIME_FORMAT = "ddd d MMM yyyy  HH:mm"  # unambiguous in every locale: the weekday and the month in words
NOTE_REFRESH_MS = 5_000  # "in 4 min" and "has passed" follow the clock while a start time is chosen


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ScheduleSection(QWidget):
    """See the module docstring. `changed` fires whenever the choice or its validity may have changed;
    `expanded_changed(bool)` just before the body is shown or hidden (the dialog refits its height)."""

    changed = Signal()
    expanded_changed = Signal(bool)
    jobs_wanted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scheduleSection")
        self._jobs: dict[str, TrainingJob] = {}
        self._jobs_state = "not loaded"  # "loading", "loaded", or the failure sentence

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        self.toggle = QToolButton(self)
        self.toggle.setObjectName("scheduleToggle")
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        # A disclosure line, not a pressed button: no frame when open, a highlight frame only with focus.
        self.toggle.setStyleSheet("QToolButton#scheduleToggle { border: 1px solid transparent; border-radius: 3px;"
                                  " padding: 2px 4px 2px 0px; }"
                                  "QToolButton#scheduleToggle:focus { border-color: palette(highlight); }")
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAccessibleName("When to start")
        self.toggle.setToolTip("Start now, hold the job in the queue, start it after another job or not before "
                               "a time")
        self.toggle.toggled.connect(self.set_expanded)
        outer.addWidget(self.toggle)

        self.body = QFrame(self)
        self.body.setObjectName("scheduleBody")
        self.body.setAccessibleName("When to start")
        grid = QGridLayout(self.body)
        grid.setContentsMargins(20, 0, 0, 0)  # indented under the disclosure arrow
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        grid.setColumnStretch(1, 1)

        self.now_radio = QRadioButton("Start n&ow", self.body)
        self.now_radio.setToolTip("The job is queued and starts as soon as a slot is free")
        self.held_radio = QRadioButton("&Hold in queue (start when released)", self.body)
        self.held_radio.setToolTip("The job waits in the queue, passed over, until you release it in the Jobs tab")
        self.after_radio = QRadioButton("&After another job:", self.body)
        self.after_radio.setToolTip("The job starts once the chosen job has ended")
        self.not_before_radio = QRadioButton("Not be&fore:", self.body)
        self.not_before_radio.setToolTip("The job starts no earlier than this date and time (your local time)")
        self.group = QButtonGroup(self)
        for mode, radio in self._radios():
            radio.setAccessibleName(radio.text().replace("&", "").rstrip(":"))
            self.group.addButton(radio)
            radio.installEventFilter(self)
        self.now_radio.setChecked(True)

        self.job_combo = QComboBox(self.body)
        self.job_combo.setObjectName("scheduleAfterJob")
        self.job_combo.setAccessibleName("Job to wait for")
        self.job_combo.setToolTip("The job this one waits for: active jobs first, then recently finished ones")
        self.job_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.job_combo.setMinimumContentsLength(18)  # long job names must not widen the dialog
        self.job_combo.setPlaceholderText("Choose a job")
        self.job_combo.currentIndexChanged.connect(self._on_edited)
        self.succeeds_box = QCheckBox("Only if it s&ucceeds", self.body)
        self.succeeds_box.setAccessibleName("Only if it succeeds")
        self.succeeds_box.setToolTip("If the job waited for fails or is cancelled, this job is cancelled "
                                     "instead of starting")
        self.succeeds_box.toggled.connect(self._on_edited)

        self.time_edit = QDateTimeEdit(self.body)
        self.time_edit.setObjectName("scheduleNotBefore")
        self.time_edit.setAccessibleName("Start no earlier than (local time)")
        self.time_edit.setToolTip("Your local time; the server gets the same moment in UTC")
        self.time_edit.setCalendarPopup(True)
        self.time_edit.setDisplayFormat(DATE_TIME_FORMAT)
        self.time_edit.setDateTime(self.default_start_time())
        self.time_edit.dateTimeChanged.connect(self._on_edited)
        self.time_edit.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        self.note = QLabel(self.body)
        self.note.setObjectName("scheduleNote")
        self.note.setAccessibleName("What happens")
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setWordWrap(True)
        self.note.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)

        grid.addWidget(self.now_radio, 0, 0, 1, 2)
        grid.addWidget(self.held_radio, 1, 0, 1, 2)
        grid.addWidget(self.after_radio, 2, 0)
        grid.addWidget(self.job_combo, 2, 1)
        grid.addWidget(self.succeeds_box, 3, 1)
        grid.addWidget(self.not_before_radio, 4, 0)
        grid.addWidget(self.time_edit, 4, 1, Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(self.note, 5, 0, 1, 2)
        grid.setRowMinimumHeight(6, 6)  # air between the last line and the dialog's buttons
        self.body.hide()
        outer.addWidget(self.body)

        self._clock = QTimer(self)
        self._clock.setInterval(NOTE_REFRESH_MS)
        self._clock.timeout.connect(self._on_edited)
        self.group.buttonToggled.connect(self._on_mode_toggled)
        self._sync()

    # state -------------------------------------------------------------------------------------------------
    def _radios(self) -> list[tuple[StartMode, QRadioButton]]:
        return [(StartMode.NOW, self.now_radio), (StartMode.HELD, self.held_radio),
                (StartMode.AFTER, self.after_radio), (StartMode.NOT_BEFORE, self.not_before_radio)]

    @property
    def mode(self) -> StartMode:
        return next((mode for mode, radio in self._radios() if radio.isChecked()), StartMode.NOW)

    def choice(self) -> ScheduleChoice:
        mode = self.mode
        if mode is StartMode.AFTER:
            job = self._jobs.get(self.job_combo.currentData()) if self.job_combo.currentIndex() >= 0 else None
            return ScheduleChoice(mode, after_job=job, only_if_succeeds=self.succeeds_box.isChecked())
        if mode is StartMode.NOT_BEFORE:
            seconds = self.time_edit.dateTime().toSecsSinceEpoch()
            return ScheduleChoice(mode, not_before=datetime.fromtimestamp(seconds, timezone.utc))
        return ScheduleChoice(mode)

    def problems(self) -> list[str]:
        problems = schedule_problems(self.choice(), _now())
        if problems and self.mode is StartMode.AFTER and self.job_combo.count() == 0 \
                and self._jobs_state not in ("loaded", "not loaded", "loading"):
            return [self._jobs_state]  # the list could not be read: say that, not "choose a job"
        return problems

    def request_fields(self) -> dict[str, object]:
        """The scheduling fields for the create-job request (empty: start now)."""
        return schedule_fields(self.choice())

    @property
    def expanded(self) -> bool:
        return self.toggle.isChecked()

    # intents -----------------------------------------------------------------------------------------------
    def set_mode(self, mode: StartMode) -> None:
        dict(self._radios())[mode].setChecked(True)

    def set_expanded(self, expanded: bool) -> None:
        if self.toggle.isChecked() != expanded:
            self.toggle.setChecked(expanded)  # comes back here through toggled
            return
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.expanded_changed.emit(expanded)  # before the change, so the dialog can note its height first
        self.body.setVisible(expanded)

    def set_jobs(self, jobs: list[TrainingJob]) -> None:
        """The jobs one can wait for (as the store read them); the chosen one stays chosen if still there."""
        chosen = self.job_combo.currentData() if self.job_combo.currentIndex() >= 0 else None
        ordered = followable_order(jobs)
        self._jobs = {job.id: job for job in ordered}
        self._jobs_state = "loaded"
        self.job_combo.blockSignals(True)
        self.job_combo.clear()
        for job in ordered:
            self.job_combo.addItem(job_choice_label(job), job.id)
            self.job_combo.setItemData(self.job_combo.count() - 1, job_choice_label(job),
                                       Qt.ItemDataRole.ToolTipRole)
        self.job_combo.setCurrentIndex(self.job_combo.findData(chosen) if chosen else -1)
        self.job_combo.setPlaceholderText("Choose a job" if ordered else "No jobs on this server yet")
        self.job_combo.blockSignals(False)
        self._sync()

    def set_jobs_failed(self, message: str) -> None:
        self._jobs_state = message
        if self.job_combo.count() == 0:
            self.job_combo.setPlaceholderText("The jobs could not be loaded")
        self._sync()

    @staticmethod
    def default_start_time() -> QDateTime:
        """The next full hour at least 30 minutes away, local time: a plausible "tonight" to edit from."""
        moment = QDateTime.currentDateTime().addSecs(30 * 60)
        moment.setTime(QTime(moment.time().hour(), 0))
        return moment.addSecs(3600)

    # reactions ---------------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        # Qt lets Tab enter the options at the first one, whichever is chosen; desktop convention (and screen
        # readers) wants the chosen one, then the arrows move between them.
        if event.type() == QEvent.Type.FocusIn and isinstance(watched, QRadioButton) \
                and not watched.isChecked() and isinstance(event, QFocusEvent) \
                and event.reason() in (Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason):
            checked = self.group.checkedButton()
            if checked is not None and checked.isVisible():
                checked.setFocus(event.reason())
                return True
        return super().eventFilter(watched, event)

    def _on_mode_toggled(self, button: QRadioButton, checked: bool) -> None:
        if not checked:
            return
        if button is self.after_radio:
            if self._jobs_state != "loaded":
                self._jobs_state = "loading"
                self.job_combo.setPlaceholderText("Loading jobs…")
            self.jobs_wanted.emit()  # read again every time it is chosen: jobs come and go
        if button is self.not_before_radio and self.time_edit.dateTime() <= QDateTime.currentDateTime():
            self.time_edit.setDateTime(self.default_start_time())  # a stale default, never a user's choice
        self._sync()

    def _on_edited(self, *args: object) -> None:
        self._sync()

    def _sync(self) -> None:
        mode = self.mode
        self.job_combo.setEnabled(mode is StartMode.AFTER)
        self.succeeds_box.setEnabled(mode is StartMode.AFTER)
        self.time_edit.setEnabled(mode is StartMode.NOT_BEFORE)
        if mode is StartMode.NOT_BEFORE:
            if not self._clock.isActive():
                self._clock.start()
        else:
            self._clock.stop()
        choice = self.choice()
        problems = self.problems()
        self.note.setText(problems[0] if problems else schedule_note(choice, _now()))
        colour = self._error_colour() if problems else ""
        self.note.setStyleSheet(f"color: {colour};" if colour else "")
        self.note.setVisible(mode is not StartMode.NOW)
        title = summary_of(choice)
        self.toggle.setText(f"&When to start: {title}")
        self.toggle.setAccessibleDescription(self.note.text() if mode is not StartMode.NOW else "Start now")
        self.changed.emit()

    def _error_colour(self) -> str:
        # the same reds as the parameter errors: at least 4.5:1 on the light and on the dark window colour
        return "#fca5a5" if self.palette().color(QPalette.ColorRole.Window).lightness() < 128 else "#b91c1c"

