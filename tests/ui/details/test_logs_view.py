"""LogView's drawing rules, fed through its store's own signals (no server needed for these): an unfinished
line is redrawn in place and completed in place, trims drop exactly the lines asked for at either end, and
older lines added above keep the lines the user looks at in view."""

from __future__ import annotations

from training_studio.client import ApiClient
from training_studio.ui.jobs.details.ansi import Line, Span, Style
from training_studio.ui.jobs.details.log_store import LogState
from training_studio.ui.jobs.details.logs import LogView
from training_studio.ui.jobs.store import JobStore


def _view(qtbot) -> LogView:
    jobs = JobStore(ApiClient(""))  # never started: the view only draws what its store's signals say
    view = LogView(jobs)
    qtbot.addWidget(view)
    view.resize(700, 200)
    view.show()
    view.store.state_changed.emit(LogState.SHOWING.value, "")
    return view


def _lines(*texts: str) -> list[Line]:
    return [Line(text) for text in texts]


def test_the_unfinished_line_is_redrawn_and_completed_in_place(qtbot):
    view = _view(qtbot)
    store = view.store
    store.appended.emit(_lines("one", "two"), Line(" 10%|#"))
    assert view.plain_text() == "one\ntwo\n 10%|#"
    store.appended.emit([], Line(" 50%|#####", (Span(0, 4, Style(fg=2)),)))
    assert view.plain_text() == "one\ntwo\n 50%|#####"
    store.appended.emit([Line("100%|##########|")], None)
    assert view.plain_text() == "one\ntwo\n100%|##########|"
    store.appended.emit(_lines("three"), None)
    assert view.plain_text() == "one\ntwo\n100%|##########|\nthree"
    store.appended.emit([], Line("x"))
    store.appended.emit([], None)  # the unfinished line vanished (backspaced away): no empty line left
    store.appended.emit(_lines("four"), None)
    assert view.plain_text() == "one\ntwo\n100%|##########|\nthree\nfour"


def test_an_unfinished_first_line_and_trims_at_both_ends(qtbot):
    view = _view(qtbot)
    store = view.store
    store.appended.emit([], Line("only pending"))
    store.appended.emit(_lines("done"), Line("next"))
    assert view.plain_text() == "done\nnext"
    store.appended.emit(_lines(*(f"l{n}" for n in range(10))), None)
    # The unfinished "next" became (in the store's words) the first of these complete lines.
    text = ["done", *(f"l{n}" for n in range(10))]
    assert view.plain_text().split("\n") == text
    store.trimmed.emit(2, 0)
    assert view.plain_text().split("\n") == text[2:]
    store.appended.emit([], Line("pending"))
    store.trimmed.emit(0, 4)  # three lines and the unfinished one
    assert view.plain_text().split("\n") == text[2:-3]


def test_older_lines_above_keep_the_view_in_place(qtbot):
    view = _view(qtbot)
    store = view.store
    store.appended.emit(_lines(*(f"new {n}" for n in range(200))), None)
    scroll = view.editor.verticalScrollBar()
    scroll.setValue(50)
    top_before = view.editor.firstVisibleBlock().text()
    store.prepended.emit(_lines(*(f"old {n}" for n in range(100))))
    assert view.plain_text().split("\n")[:2] == ["old 0", "old 1"]
    assert view.plain_text().split("\n")[100] == "new 0"
    assert view.editor.firstVisibleBlock().text() == top_before
    assert not view.following
