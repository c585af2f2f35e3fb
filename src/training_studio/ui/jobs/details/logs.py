"""The Logs view of the job details pane: one job's log, live, searchable, in colour, never raw escapes.

`LogView` draws what its `LogStore` reads (it never calls HTTP) into a read-only `QPlainTextEdit` without
line wrapping, one block per log line, at most `MAX_BLOCKS` blocks. It owns the user-facing rules:
- Follow the tail only while scrolled to the bottom: scrolling up stops following (new lines are added
  below without moving the view); scrolling back to the bottom resumes it. "Jump to end" does the same.
- Scrolling to the top (or turning the wheel up when there is nothing to scroll) asks the store for the
  older part of the log; the view keeps its place while lines are added above it. Scrolling to the bottom
  of a window that no longer reaches the end asks for the newer part.
- Search (Ctrl+F focuses it): every match highlighted (`QTextEdit.ExtraSelection`, at most
  `MAX_HIGHLIGHTS`), the current one stronger; Enter / F3 next, Shift+Enter / Shift+F3 previous,
  wrapping around; highlights follow the text as lines arrive.
- ANSI colours come as spans from `ansi.py` and are drawn as character formats readable on the current
  light or dark palette; an unfinished last line (a tqdm bar redrawing itself) is replaced in place.
- Copy is the editor's own (selection, Ctrl+C, context menu). "Open log file" opens the log in the
  system's viewer; only for the embedded local server, whose data folder is on this machine.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QFontDatabase,
    QKeySequence,
    QPalette,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from training_studio.ui.datasets.format import format_bytes
from training_studio.ui.jobs.details.ansi import Line, Style, rgb_of
from training_studio.ui.jobs.details.log_store import LogState, LogStore
from training_studio.ui.jobs.details.state_labels import error_line, show_error, show_state, state_page

__all__ = ["LogView", "MAX_BLOCKS", "MAX_HIGHLIGHTS"]

MAX_BLOCKS = 250_000      # a hard cap under the store's own bound (it drops whole reads first)
MAX_HIGHLIGHTS = 2_000    # more matches than this are counted as "2000+" and not all painted
SEARCH_DELAY_MS = 150
BOTTOM_SLACK = 2          # lines from the bottom that still count as "at the bottom"


class LogView(QWidget):
    """See the module docstring. `jobs` is the app's JobStore (client, job states, local or remote)."""

    def __init__(self, jobs: Any, parent: QWidget | None = None, *, store: LogStore | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.store = store if store is not None else LogStore(jobs.client, jobs=jobs, parent=self)
        self.setObjectName("logView")
        self.setAccessibleName("Job log")
        self.job_id: str | None = None
        self._follow = True
        self._updating = False  # our own edits move the scroll bar: not the user's intent
        self._has_lines = False
        self._pending_shown = False
        self._formats: dict[Style, QTextCharFormat] = {}
        self._matches: list[QTextCursor] = []
        self._match_starts: list[int] = []
        self._current_match = -1
        self._match_overflow = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        self.search = QLineEdit(self)
        self.search.setObjectName("logSearch")
        self.search.setPlaceholderText("Search (Ctrl+F)")
        self.search.setAccessibleName("Search the log")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(320)
        self.previous_button = QToolButton(self)
        self.previous_button.setText("Previous")
        self.previous_button.setToolTip("Previous match (Shift+F3)")
        self.next_button = QToolButton(self)
        self.next_button.setText("Next")
        self.next_button.setToolTip("Next match (F3)")
        self.match_label = QLabel(self)
        self.match_label.setObjectName("logMatches")
        self.window_label = QLabel(self)
        self.window_label.setObjectName("logWindow")
        self.window_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.window_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.end_button = QToolButton(self)
        self.end_button.setText("Jump to end")
        self.end_button.setToolTip("Scroll to the newest lines and follow them")
        self.end_button.hide()
        self.open_button = QPushButton("Open log file", self)
        self.open_button.setObjectName("openLogFile")
        for widget in (self.search, self.previous_button, self.next_button, self.match_label):
            bar.addWidget(widget)
        bar.addWidget(self.window_label, 1)
        bar.addWidget(self.end_button)
        bar.addWidget(self.open_button)
        layout.addLayout(bar)

        self.error_label = error_line(self, "logError")
        layout.addWidget(self.error_label)

        self.stack = QStackedWidget(self)
        self.editor = QPlainTextEdit(self.stack)
        self.editor.setObjectName("logText")
        self.editor.setAccessibleName("Log text")
        self.editor.setReadOnly(True)
        self.editor.setUndoRedoEnabled(False)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setMaximumBlockCount(MAX_BLOCKS)
        self.editor.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                            | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.state_label = state_page(self.stack, "logState")
        self.stack.addWidget(self.editor)
        self.stack.addWidget(self.state_label)
        layout.addWidget(self.stack, 1)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._refresh_matches)

        scroll = self.editor.verticalScrollBar()
        scroll.valueChanged.connect(self._on_scrolled)
        self.editor.viewport().installEventFilter(self)
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.search.returnPressed.connect(self.find_next)
        self.next_button.clicked.connect(self.find_next)
        self.previous_button.clicked.connect(self.find_previous)
        self.end_button.clicked.connect(self.jump_to_end)
        self.open_button.clicked.connect(self.open_log_file)
        for keys, slot in ((QKeySequence(QKeySequence.StandardKey.Find), self.focus_search),
                           (QKeySequence("F3"), self.find_next), (QKeySequence("Shift+F3"), self.find_previous),
                           (QKeySequence("Shift+Return"), self._previous_from_search)):
            shortcut = QShortcut(keys, self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        self.store.reset.connect(self._on_reset)
        self.store.appended.connect(self._on_appended)
        self.store.prepended.connect(self._on_prepended)
        self.store.trimmed.connect(self._on_trimmed)
        self.store.state_changed.connect(self._on_state)
        self.store.error.connect(self._on_error)
        self.store.window_changed.connect(self._update_window_label)
        self._on_state(self.store.state.value, "Select a job to see its log.")
        self._update_buttons()

    # public API ---------------------------------------------------------------------------------------
    def show_job(self, job_id: str | None) -> None:
        if job_id == self.job_id:
            return
        self.job_id = job_id
        self._follow = True
        self.store.show_job(job_id)
        self._update_buttons()

    def shutdown(self) -> None:
        self.store.shutdown()

    @property
    def following(self) -> bool:
        return self._follow

    def log_path(self) -> Path | None:
        """The log file on this machine (local server only)."""
        local = getattr(self.jobs, "local", None)
        if self.job_id is None or not getattr(self.jobs, "is_local", False) or local is None:
            return None
        return Path(local.data_dir) / "logs" / f"{self.job_id}.log"

    def open_log_file(self) -> None:
        path = self.log_path()
        if path is None:
            return
        if not path.is_file():
            self._on_error(f"The log file {path} does not exist (yet).")
            return
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            self._on_error(f"Could not open {path}: no application is set up to open it.")

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def find_next(self) -> None:
        self._step_match(forward=True)

    def find_previous(self) -> None:
        self._step_match(forward=False)

    def jump_to_end(self) -> None:
        if not self.store.at_live_end:
            self.store.request_newer()
        self._follow = True
        scroll = self.editor.verticalScrollBar()
        scroll.setValue(scroll.maximum())
        self._update_buttons()

    def match_count(self) -> int:
        return len(self._matches)

    def plain_text(self) -> str:
        return self.editor.toPlainText()

    # store signals ----------------------------------------------------------------------------------------
    def _on_reset(self) -> None:
        self._updating = True
        try:
            self.editor.clear()
        finally:
            self._updating = False
        self._has_lines = False
        self._pending_shown = False
        self._follow = True
        self._matches = []
        self._match_starts = []
        self._current_match = -1
        self.editor.setExtraSelections([])
        self._update_match_label()
        self._update_buttons()

    def _on_appended(self, lines: list[Line], pending: Line | None) -> None:
        scroll = self.editor.verticalScrollBar()
        value = scroll.value()
        self._updating = True
        try:
            document = self.editor.document()
            cursor = QTextCursor(document)
            cursor.beginEditBlock()
            if self._pending_shown:  # the unfinished line goes; its new state (or the completed line) follows
                last = document.lastBlock()
                if last.previous().isValid():
                    cursor.setPosition(last.previous().position() + last.previous().length() - 1)
                else:
                    cursor.setPosition(0)
                    self._has_lines = False
                cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
            cursor.movePosition(QTextCursor.MoveOperation.End)
            shown = list(lines) + ([pending] if pending is not None else [])
            self._insert_lines(cursor, shown, first_in_current_block=not self._has_lines)
            cursor.endEditBlock()
            if shown:
                self._has_lines = True
            self._pending_shown = pending is not None
            if self._follow:
                scroll.setValue(scroll.maximum())
            else:
                scroll.setValue(value)
        finally:
            self._updating = False
        self._after_change()

    def _on_prepended(self, lines: list[Line]) -> None:
        if not lines:
            return
        scroll = self.editor.verticalScrollBar()
        value = scroll.value()
        self._updating = True
        try:
            cursor = QTextCursor(self.editor.document())
            cursor.beginEditBlock()
            cursor.movePosition(QTextCursor.MoveOperation.Start)
            had_lines = self._has_lines
            self._insert_lines(cursor, lines, first_in_current_block=True)
            if had_lines:
                cursor.insertBlock()
            cursor.endEditBlock()
            self._has_lines = True
            # Keep the lines the user looks at where they are: everything moved down by len(lines).
            scroll.setValue(value + len(lines))
        finally:
            self._updating = False
        self._after_change()

    def _on_trimmed(self, top: int, bottom: int) -> None:
        document = self.editor.document()
        scroll = self.editor.verticalScrollBar()
        value = scroll.value()
        self._updating = True
        try:
            cursor = QTextCursor(document)
            cursor.beginEditBlock()
            if top:
                cursor.movePosition(QTextCursor.MoveOperation.Start)
                cursor.movePosition(QTextCursor.MoveOperation.NextBlock, QTextCursor.MoveMode.KeepAnchor, top)
                if cursor.atEnd() or top >= document.blockCount():
                    cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
            if bottom:
                keep = document.blockCount() - bottom
                if keep <= 0:
                    cursor.select(QTextCursor.SelectionType.Document)
                    cursor.removeSelectedText()
                    self._has_lines = False
                else:
                    cursor = QTextCursor(document.findBlockByNumber(keep - 1))
                    cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
                    cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
                    cursor.removeSelectedText()
                self._pending_shown = False
            cursor.endEditBlock()
            if self._follow:
                scroll.setValue(scroll.maximum())
            else:
                scroll.setValue(max(0, value - top))
        finally:
            self._updating = False
        self._after_change()

    def _on_state(self, state: str, text: str) -> None:
        show_state(self.stack, self.editor, self.state_label, state == LogState.SHOWING.value, text)
        self._update_buttons()

    def _on_error(self, text: str) -> None:
        show_error(self.error_label, text)

    def _update_window_label(self) -> None:
        store = self.store
        if store.size <= 0 or store.state != LogState.SHOWING:
            self.window_label.setText("")
            return
        if store.start <= 0 and store.at_live_end:
            self.window_label.setText(f"{format_bytes(store.size)}")
        else:
            self.window_label.setText(f"Showing {format_bytes(max(0, store.end - store.start))} of "
                                      f"{format_bytes(store.size)}; scroll up for older lines"
                                      if store.start > 0 else
                                      f"Showing {format_bytes(store.end - store.start)} of {format_bytes(store.size)}")

    # drawing ------------------------------------------------------------------------------------------------
    def _insert_lines(self, cursor: QTextCursor, lines: list[Line], *, first_in_current_block: bool) -> None:
        plain = QTextCharFormat()
        run: list[str] = []  # consecutive plain lines go in with one call (newlines become blocks)
        first = first_in_current_block

        def flush() -> None:
            nonlocal first
            if run:
                text = "\n".join(run)
                cursor.insertText(text if first else "\n" + text, plain)
                run.clear()
                first = False

        for line in lines:
            if not line.spans:
                run.append(line.text)
                continue
            flush()
            if not first:
                cursor.insertText("\n", plain)
            first = False
            at = 0
            for span in line.spans:
                if span.start > at:
                    cursor.insertText(line.text[at:span.start], plain)
                cursor.insertText(line.text[span.start:span.start + span.length], self._format_of(span.style))
                at = span.start + span.length
            if at < len(line.text):
                cursor.insertText(line.text[at:], plain)
        flush()

    def _format_of(self, style: Style) -> QTextCharFormat:
        fmt = self._formats.get(style)
        if fmt is not None:
            return fmt
        dark = self._is_dark()
        fmt = QTextCharFormat()
        fg, bg = (style.bg, style.fg) if style.inverse else (style.fg, style.bg)
        if style.inverse and fg is None:
            fmt.setForeground(self.editor.palette().color(QPalette.ColorRole.Base))
        elif fg is not None:
            fmt.setForeground(QColor(*rgb_of(fg, dark=dark)))
        if style.inverse and bg is None:
            fmt.setBackground(self.editor.palette().color(QPalette.ColorRole.Text))
        elif bg is not None:
            fmt.setBackground(QColor(*rgb_of(bg, dark=dark)))
        if style.bold:
            fmt.setFontWeight(QFont.Weight.Bold)
        if style.italic:
            fmt.setFontItalic(True)
        if style.underline:
            fmt.setFontUnderline(True)
        if style.faint and fmt.foreground().style() == Qt.BrushStyle.NoBrush:
            colour = QColor(self.editor.palette().color(QPalette.ColorRole.Text))
            colour.setAlphaF(0.6)
            fmt.setForeground(colour)
        self._formats[style] = fmt
        return fmt

    def _is_dark(self) -> bool:
        return self.editor.palette().color(QPalette.ColorRole.Base).lightness() < 128

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._formats.clear()  # new lines get colours for the new background
            if self._matches:
                self._paint_matches()
        super().changeEvent(event)

    # following and loading on scroll ----------------------------------------------------------------------
    def _on_scrolled(self, value: int) -> None:
        if self._updating:
            return
        scroll = self.editor.verticalScrollBar()
        at_bottom = value >= scroll.maximum() - BOTTOM_SLACK
        self._follow = at_bottom and self.store.at_live_end
        if value <= 0 and self.store.has_older:
            self.store.request_older()
        if at_bottom and not self.store.at_live_end:
            self.store.request_newer()
        self._update_buttons()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and watched is self.editor.viewport():
            scroll = self.editor.verticalScrollBar()
            if event.angleDelta().y() > 0 and scroll.value() <= 0 and self.store.has_older:
                self.store.request_older()
        return super().eventFilter(watched, event)

    def _after_change(self) -> None:
        scroll = self.editor.verticalScrollBar()
        if scroll.maximum() == 0 and self.store.has_older:
            self.store.request_older()  # nothing to scroll yet: the user could never ask
        if self.search.text():
            self._search_timer.start()
        self._update_buttons()

    def _update_buttons(self) -> None:
        path = self.log_path()
        self.open_button.setVisible(bool(getattr(self.jobs, "is_local", False)))
        self.open_button.setEnabled(path is not None)
        self.open_button.setToolTip(str(path) if path is not None else "Only for the local server")
        self.end_button.setVisible(self.store.state == LogState.SHOWING and not self._follow)

    # search ---------------------------------------------------------------------------------------------------
    def _refresh_matches(self) -> None:
        needle = self.search.text()
        self._matches = []
        self._match_starts = []
        self._match_overflow = False
        if needle:
            document = self.editor.document()
            cursor = QTextCursor(document)
            while len(self._matches) < MAX_HIGHLIGHTS:
                cursor = document.find(needle, cursor, QTextDocument.FindFlag(0))
                if cursor.isNull():
                    break
                self._matches.append(QTextCursor(cursor))
            else:
                self._match_overflow = True
            self._match_starts = [c.selectionStart() for c in self._matches]
        if self._current_match >= len(self._matches):
            self._current_match = -1
        self._paint_matches()

    def _paint_matches(self) -> None:
        dark = self._is_dark()
        every = QTextCharFormat()
        every.setBackground(QColor("#6b5a00") if dark else QColor("#fff0a0"))
        current = QTextCharFormat()
        current.setBackground(QColor("#c06000") if dark else QColor("#ffa040"))
        selections = []
        for index, match in enumerate(self._matches):
            selection = QTextEdit.ExtraSelection()
            selection.cursor = match
            selection.format = current if index == self._current_match else every
            selections.append(selection)
        self.editor.setExtraSelections(selections)
        self._update_match_label()

    def _update_match_label(self) -> None:
        if not self.search.text():
            self.match_label.setText("")
        elif not self._matches:
            self.match_label.setText("No matches")
        else:
            total = f"{len(self._matches)}+" if self._match_overflow else str(len(self._matches))
            where = f"{self._current_match + 1} of " if self._current_match >= 0 else ""
            self.match_label.setText(f"{where}{total} matches" if not where else f"{where}{total}")

    def _step_match(self, *, forward: bool) -> None:
        if self._search_timer.isActive() or not self._matches and self.search.text():
            self._search_timer.stop()
            self._refresh_matches()
        if not self._matches:
            return
        position = self.editor.textCursor().selectionStart() if self._current_match < 0 else \
            self._match_starts[self._current_match]
        if forward:
            index = bisect.bisect_right(self._match_starts, position) if self._current_match >= 0 else \
                bisect.bisect_left(self._match_starts, position)
            index %= len(self._matches)
        else:
            index = (bisect.bisect_left(self._match_starts, position) - 1) % len(self._matches)
        self._current_match = index
        match = self._matches[index]
        self.editor.setTextCursor(match)
        self.editor.ensureCursorVisible()
        self._paint_matches()

    def _previous_from_search(self) -> None:
        if self.search.hasFocus():
            self.find_previous()

    # visibility ------------------------------------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.store.set_active(True)

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.store.set_active(False)
