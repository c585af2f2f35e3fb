"""SidePanelSplitter: the side panel folds away in a narrow splitter and comes back when there is room, unless
the user hid it; the user's hiding and showing (the action, or dragging the handle) wins over the width; a
state restored from the settings is read the same way."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

from training_studio.ui.side_panel_splitter import SidePanelSplitter

MAIN_WIDTH = 400
SIDE_MINIMUM = 200


def _splitter(qtbot, width: int = 1000) -> SidePanelSplitter:
    main = QLabel("files")
    side = QWidget()
    side.setMinimumWidth(SIDE_MINIMUM)
    splitter = SidePanelSplitter(main, side, main_width=MAIN_WIDTH, toggle_text="Settings")
    qtbot.addWidget(splitter)
    splitter.resize(width, 300)
    splitter.show()
    qtbot.waitExposed(splitter)
    return splitter


def _resize(qtbot, splitter: SidePanelSplitter, width: int) -> None:
    splitter.resize(width, 300)
    qtbot.waitUntil(lambda: splitter.width() == width, timeout=5_000)


def test_the_side_panel_folds_in_a_narrow_splitter_and_comes_back_at_its_width(qtbot):
    splitter = _splitter(qtbot)
    assert splitter.fold_below() == MAIN_WIDTH + SIDE_MINIMUM + splitter.handleWidth()
    assert splitter.side_shown() and splitter.toggle_action.isChecked()

    _resize(qtbot, splitter, splitter.fold_below() - 1)
    assert not splitter.side_shown() and splitter.folded_for_width and not splitter.hidden_by_user
    assert not splitter.toggle_action.isChecked()
    assert splitter.sizes()[0] == splitter.width() - splitter.handleWidth()  # the main area has it all

    _resize(qtbot, splitter, splitter.fold_below())  # just room enough
    assert splitter.side_shown() and splitter.toggle_action.isChecked() and not splitter.folded_for_width
    assert splitter.sizes()[0] >= MAIN_WIDTH  # it comes back narrower rather than squeeze the main area
    _resize(qtbot, splitter, 1000)
    assert splitter.side_shown()
    # A width the user dragged it to is the one it comes back at, not what a shrinking window left of it.
    splitter.moveSplitter(1000 - 350, 1)
    dragged = splitter.sizes()[1]
    for width in range(950, 450, -50):
        _resize(qtbot, splitter, width)
    assert not splitter.side_shown()
    _resize(qtbot, splitter, 1000)
    assert abs(splitter.sizes()[1] - dragged) <= 1


def test_a_panel_the_user_hid_stays_hidden_when_the_window_widens_again(qtbot):
    splitter = _splitter(qtbot)
    splitter.toggle_action.trigger()
    assert not splitter.side_shown() and splitter.hidden_by_user
    _resize(qtbot, splitter, 500)
    _resize(qtbot, splitter, 1000)
    assert not splitter.side_shown() and not splitter.toggle_action.isChecked()
    splitter.toggle_action.trigger()
    assert splitter.side_shown() and not splitter.hidden_by_user
    assert splitter.sizes()[1] >= SIDE_MINIMUM


def test_a_panel_the_user_showed_in_a_narrow_splitter_stays_until_the_next_narrowing(qtbot):
    splitter = _splitter(qtbot, width=500)
    assert not splitter.side_shown() and splitter.folded_for_width
    splitter.toggle_action.trigger()  # the user wants it anyway
    assert splitter.side_shown() and splitter.sizes()[1] >= SIDE_MINIMUM
    _resize(qtbot, splitter, 520)
    assert splitter.side_shown()
    _resize(qtbot, splitter, 1000)  # room: the next narrowing folds it again
    _resize(qtbot, splitter, 500)
    assert not splitter.side_shown() and splitter.folded_for_width


def test_dragging_the_handle_to_the_edge_hides_it_and_back_out_shows_it(qtbot):
    splitter = _splitter(qtbot)
    splitter.moveSplitter(splitter.width(), 1)
    assert not splitter.side_shown() and splitter.hidden_by_user and not splitter.toggle_action.isChecked()
    _resize(qtbot, splitter, 500)
    _resize(qtbot, splitter, 1000)
    assert not splitter.side_shown()  # hidden by the user: the width does not bring it back
    splitter.moveSplitter(600, 1)
    assert splitter.side_shown() and not splitter.hidden_by_user and splitter.toggle_action.isChecked()


def test_a_panel_the_user_hid_is_restored_hidden_at_any_width(qtbot):
    source = _splitter(qtbot)
    source.toggle_action.trigger()
    hidden_state = source.saveState()

    for width in (1000, 500):
        restored = _splitter(qtbot, width=width)
        assert restored.restoreState(hidden_state)
        assert not restored.side_shown() and restored.hidden_by_user and not restored.toggle_action.isChecked()
        _resize(qtbot, restored, 1100)
        assert not restored.side_shown()

    # Restored before it is shown (a tab built on first show): the same.
    main, side = QLabel("files"), QWidget()
    side.setMinimumWidth(SIDE_MINIMUM)
    unshown = SidePanelSplitter(main, side, main_width=MAIN_WIDTH, toggle_text="Settings")
    qtbot.addWidget(unshown)
    assert unshown.restoreState(hidden_state)
    unshown.resize(1000, 300)
    unshown.show()
    qtbot.waitExposed(unshown)
    assert unshown.hidden_by_user and not unshown.side_shown() and not unshown.toggle_action.isChecked()


def test_a_panel_folded_for_the_width_is_saved_as_shown(qtbot):
    source = _splitter(qtbot)
    source.moveSplitter(1000 - 320, 1)
    width = source.sizes()[1]
    _resize(qtbot, source, 500)
    assert source.folded_for_width
    on_screen = source.sizes()
    state = source.saveState()
    assert source.sizes() == on_screen and source.folded_for_width  # saving changed nothing on screen

    # The bug this prevents: restored into a wide window, the panel stayed hidden as if the user had hid it.
    wide = _splitter(qtbot, width=1000)
    assert wide.restoreState(state)
    assert wide.side_shown() and not wide.hidden_by_user and wide.toggle_action.isChecked()
    assert wide.sizes()[0] >= MAIN_WIDTH and wide.sizes()[1] >= width  # a wider splitter: both grew

    narrow = _splitter(qtbot, width=500)
    assert narrow.restoreState(state)
    assert not narrow.side_shown() and narrow.folded_for_width
    _resize(qtbot, narrow, 1000)
    assert narrow.side_shown() and narrow.toggle_action.isChecked()
