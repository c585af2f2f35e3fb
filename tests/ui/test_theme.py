"""Looks (issue 15): WCAG AA contrast of every colour pair the app paints, in light and dark; the theme
follows the desktop's scheme live and View › Theme overrides it (remembered); banners and toolbar icons
follow a switch; toolbar actions have icons with text beside them; "…" marks exactly the commands that ask
for more before they act."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import QApplication, QToolBar, QToolButton

from training_studio.contract.models import JobStatus
from training_studio.ui import banner as banner_module
from training_studio.ui.banner import BannerLevel
from training_studio.ui.jobs import format as fmt
from training_studio.ui.settings import AppSettings
from training_studio.ui.theme import (
    DARK_COLOURS,
    LIGHT_COLOURS,
    ThemeChoice,
    ThemeController,
    install_theme_menu,
    palette_is_dark,
    wants_dark,
)

AA_TEXT = 4.5      # WCAG 2.x AA, normal-size text
AA_GRAPHICS = 3.0  # WCAG 2.x AA, user-interface components and graphics (bars, icons)
R = QPalette.ColorRole
TEXT_PAIRS = [(R.Text, R.Base), (R.Text, R.AlternateBase), (R.WindowText, R.Window), (R.ButtonText, R.Button),
              (R.PlaceholderText, R.Base), (R.HighlightedText, R.Highlight), (R.ToolTipText, R.ToolTipBase),
              (R.Link, R.Base)]
PALETTES = {"light": LIGHT_COLOURS, "dark": DARK_COLOURS}


# -- contrast: plain computations over the colour tables ---------------------------------------------------
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("text,background", TEXT_PAIRS, ids=lambda role: role.name)
def test_palette_text_meets_aa(scheme, text, background):
    colours = PALETTES[scheme]
    assert fmt.contrast_ratio(colours[text][0], colours[background][0]) >= AA_TEXT


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("status", list(JobStatus))
def test_badges_and_bars_meet_aa_on_the_themes_rows(scheme, status):
    dark = scheme == "dark"
    colours = PALETTES[scheme]
    badge = fmt.status_colours(status, dark=dark)  # the palette ui/jobs/delegates.py paints with
    assert fmt.contrast_ratio(badge.foreground, badge.background) >= AA_TEXT
    bar = fmt.progress_colours(status, dark=dark)
    assert fmt.contrast_ratio(bar.fill, bar.track) >= AA_GRAPHICS
    for row in (R.Base, R.AlternateBase):  # the bar against the row it is drawn on
        assert fmt.contrast_ratio(bar.fill, colours[row][0]) >= AA_GRAPHICS
    # The delegates choose the dark set from the row colour: our dark base must read as dark, and light as light.
    assert fmt.is_dark_background(colours[R.Base][0]) is dark


@pytest.mark.parametrize("level", list(BannerLevel))
def test_banner_tints_meet_aa(level):
    _, light, dark = banner_module._LEVEL_STYLE[level]
    assert fmt.contrast_ratio("#000000", light) >= AA_TEXT
    assert fmt.contrast_ratio("#ffffff", dark) >= AA_TEXT


def test_the_choice_decides_unless_it_is_system():
    assert wants_dark(ThemeChoice.DARK, Qt.ColorScheme.Light) is True
    assert wants_dark(ThemeChoice.LIGHT, Qt.ColorScheme.Dark) is False
    assert wants_dark(ThemeChoice.SYSTEM, Qt.ColorScheme.Dark) is True
    assert wants_dark(ThemeChoice.SYSTEM, Qt.ColorScheme.Light) is False
    assert wants_dark(ThemeChoice.SYSTEM, Qt.ColorScheme.Unknown) is None


# -- the controller on the real application ------------------------------------------------------------------
@pytest.fixture
def theme(qapp, tmp_path):
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    original = QPalette(qapp.palette())
    controller = ThemeController(qapp, settings)
    yield controller, settings
    qapp.styleHints().colorSchemeChanged.disconnect(controller._on_scheme_changed)
    qapp.setPalette(original)  # other tests in the session see the palette they started with


def test_view_theme_overrides_and_is_remembered_and_system_follows_live(theme, harness, qtbot, qapp, tmp_path):
    controller, settings = theme
    store = harness.store("http://127.0.0.1:9")
    window = harness.window(store)
    menu = install_theme_menu(window, controller)
    assert menu.menuAction() in window.view_menu.actions()
    actions = menu.theme_actions
    assert actions[ThemeChoice.SYSTEM].isChecked()
    window.banner.show_message("Cannot connect.", BannerLevel.WARNING)
    toolbar = window.jobs_panel.toolbar
    cancel = window.jobs_panel.cancel_action
    icon_before = cancel.icon().pixmap(18).toImage()

    actions[ThemeChoice.DARK].trigger()
    assert settings.theme == "dark" and controller.dark
    assert palette_is_dark(qapp.palette())
    qtbot.waitUntil(lambda: palette_is_dark(window.palette()), timeout=5000)
    qtbot.waitUntil(lambda: window.banner.palette().color(QPalette.ColorRole.Window).lightness() < 128,
                    timeout=5000)  # the banner's tint followed
    qtbot.waitUntil(lambda: cancel.icon().pixmap(18).toImage() != icon_before, timeout=5000)  # icons too

    actions[ThemeChoice.LIGHT].trigger()
    assert settings.theme == "light" and not palette_is_dark(qapp.palette())
    qtbot.waitUntil(lambda: window.banner.palette().color(QPalette.ColorRole.Window).lightness() >= 128,
                    timeout=5000)
    assert AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)).theme == "light"

    # System: the desktop's scheme, followed live as the desktop announces it.
    actions[ThemeChoice.SYSTEM].trigger()
    with qtbot.waitSignal(controller.changed, timeout=5000) as changed:
        qapp.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert changed.args == [True] and palette_is_dark(qapp.palette())
    with qtbot.waitSignal(controller.changed, timeout=5000) as changed:
        qapp.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert changed.args == [False] and not palette_is_dark(qapp.palette())
    # An explicit choice is not overridden by the desktop.
    actions[ThemeChoice.DARK].trigger()
    qapp.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert palette_is_dark(qapp.palette())
    assert isinstance(toolbar, QToolBar)


def test_toolbar_actions_have_icons_with_text_beside(harness, qtbot):
    store = harness.store("http://127.0.0.1:9")
    window = harness.window(store)
    toolbar = window.jobs_panel.toolbar
    assert toolbar.toolButtonStyle() is Qt.ToolButtonStyle.ToolButtonTextBesideIcon
    for action in (window.jobs_panel.refresh_action, window.jobs_panel.cancel_action,
                   window.jobs_panel.clear_action):
        assert not action.icon().isNull()
        # Rendered for HiDPI: a 2x pixmap exists for the toolbar's size.
        assert action.icon().pixmap(toolbar.iconSize(), 2.0).width() >= 2 * toolbar.iconSize().width()
        button = toolbar.widgetForAction(action)
        assert isinstance(button, QToolButton) and button.text()


DIALOG_COMMANDS = {"Cancel job", "Delete", "New dataset", "Train", "Restart local server", "Stop local server",
                   "Save checkpoint as", "Settings", "Connect to server", "Export table as CSV"}
# Commands that act at once or only show something (platform guidelines: About shows, it asks nothing).
IMMEDIATE_COMMANDS = {"Refresh", "Quit", "Reconnect", "Copy server URL", "Clear finished", "Show in folder",
                      "About Training Studio", "Next tab", "Previous tab", "Save caption", "Copy job ID"}


def test_an_ellipsis_marks_exactly_the_commands_that_ask_first(harness, qtbot, tmp_path):
    from training_studio.ui.datasets.wiring import install_library_panels

    store = harness.store("http://127.0.0.1:9")
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, data_dir=tmp_path / "data", lazy=False)
    try:
        texts = {action.text().replace("&", "") for action in window.findChildren(QAction) if action.text()}
        assert not [text for text in texts if "..." in text]  # the real ellipsis character only
        present = {text.rstrip("…") for text in texts}
        assert {"Cancel job", "Delete", "New dataset", "Train", "Restart local server", "Stop local server",
                "Save checkpoint as"} <= present
        for command in DIALOG_COMMANDS & present:
            assert f"{command}…" in texts and command not in texts, command
        for command in IMMEDIATE_COMMANDS & {text.rstrip("…") for text in texts}:
            assert command in texts and f"{command}…" not in texts, command
    finally:
        library.shutdown()
        harness.run(library.wait_idle())


def test_palette_is_restored_for_other_tests(qapp):
    assert QApplication.instance() is qapp


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two QColors."""
    def luminance(colour) -> float:
        def channel(value: float) -> float:
            return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4
        return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) + 0.0722 * channel(colour.blueF())
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("kind", ["check box", "radio button"])
def test_unchecked_indicators_are_visible_on_the_dark_palette(qapp, qtbot, kind):
    """Fusion outlines indicators in the window colour darkened: invisible on a dark window. The outline style
    must make the unchecked indicator stand out from the window (WCAG's 3:1 for user interface components)."""
    from PySide6.QtWidgets import QCheckBox, QRadioButton, QStyle, QStyleOptionButton, QWidget

    from training_studio.ui.theme import build_palette, install_indicator_outlines

    if not install_indicator_outlines(qapp):
        pytest.fail(f"the test platform runs style {qapp.style().name()!r}, not Fusion")
    previous = QPalette(qapp.palette())
    qapp.setPalette(build_palette(True))
    try:
        holder = QWidget()
        qtbot.addWidget(holder)
        button = (QCheckBox if kind == "check box" else QRadioButton)("Unchecked", holder)
        holder.resize(160, 40)
        holder.show()
        qtbot.waitExposed(holder)
        option = QStyleOptionButton()
        button.initStyleOption(option)
        element = (QStyle.SubElement.SE_CheckBoxIndicator if kind == "check box"
                   else QStyle.SubElement.SE_RadioButtonIndicator)
        rect = button.style().subElementRect(element, option, button)
        image = button.grab().toImage()
        window = build_palette(True).color(QPalette.ColorRole.Window)
        # The indicator's left edge, at its vertical middle (and one pixel in, for antialiased circles).
        y = rect.center().y()
        best = max(_contrast(image.pixelColor(x, y), window) for x in range(rect.left(), rect.left() + 3))
        assert best >= 3.0, f"{kind}: its outline contrasts {best:.2f}:1 with the window"
    finally:
        qapp.setPalette(previous)
