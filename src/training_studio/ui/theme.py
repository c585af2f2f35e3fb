"""Light and dark: the app follows the desktop's colour scheme live, or the user's View › Theme choice.

This module owns the app's two palettes (`LIGHT_COLOURS`, `DARK_COLOURS`: chosen so text, placeholder
and selected text meet WCAG AA on their backgrounds, checked by a plain test), the choice (`ThemeChoice`:
system, light or dark; remembered in `AppSettings.theme`) and `ThemeController`, which applies it: "system"
uses the palette matching `QStyleHints.colorScheme()` and re-applies on `colorSchemeChanged` (live, while
the app runs); where the desktop does not say (an unknown scheme) it keeps the platform's own palette.
Widgets that paint with their own colours (badges, bars, banners, toolbar icons) read the palette when they
paint or on their PaletteChange event, so a switch needs no restart. `install_theme_menu()` adds
View › Theme (System / Light / Dark) to a window.

Fusion (the style on Linux and offscreen) outlines check boxes and radio buttons in the window colour made
40 % darker: on a dark window that outline vanishes and an unchecked box cannot be seen.
`install_indicator_outlines()` gives every check box and radio button (and only them: a Python style hook on
every widget would cost each table repaint about 2 ms) a proxy style that adds an outline in the text colour
when the palette is dark.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QGuiApplication, QPainter, QPalette, QPen
from PySide6.QtWidgets import QCheckBox, QMenu, QProxyStyle, QRadioButton, QStyle, QStyleFactory

__all__ = ["ThemeChoice", "ThemeController", "LIGHT_COLOURS", "DARK_COLOURS", "build_palette", "wants_dark",
           "palette_is_dark", "install_theme_menu", "install_indicator_outlines"]

log = logging.getLogger(__name__)


class ThemeChoice(str, enum.Enum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


_Role = QPalette.ColorRole

# role -> (active/inactive colour, disabled colour or None for the same)
LIGHT_COLOURS: dict[QPalette.ColorRole, tuple[str, str | None]] = {
    _Role.Window: ("#f3f4f6", None),
    _Role.WindowText: ("#1f2328", "#8c959f"),
    _Role.Base: ("#ffffff", "#f3f4f6"),
    _Role.AlternateBase: ("#f6f8fa", None),
    _Role.Text: ("#1f2328", "#8c959f"),
    _Role.PlaceholderText: ("#656d76", None),
    _Role.Button: ("#f6f8fa", None),
    _Role.ButtonText: ("#1f2328", "#8c959f"),
    _Role.BrightText: ("#ffffff", None),
    _Role.Highlight: ("#2563eb", "#d0d7de"),
    _Role.HighlightedText: ("#ffffff", "#1f2328"),
    _Role.ToolTipBase: ("#ffffff", None),
    _Role.ToolTipText: ("#1f2328", None),
    _Role.Link: ("#0b57d0", None),
    _Role.LinkVisited: ("#6f42c1", None),
    _Role.Light: ("#ffffff", None),
    _Role.Midlight: ("#eaeef2", None),
    _Role.Mid: ("#c4c9cf", None),
    _Role.Dark: ("#8c959f", None),
    _Role.Shadow: ("#6e7781", None),
}
DARK_COLOURS: dict[QPalette.ColorRole, tuple[str, str | None]] = {
    _Role.Window: ("#202124", None),
    _Role.WindowText: ("#e8eaed", "#80868b"),
    _Role.Base: ("#1b1b1d", "#202124"),
    _Role.AlternateBase: ("#242528", None),
    _Role.Text: ("#e8eaed", "#80868b"),
    _Role.PlaceholderText: ("#9aa0a6", None),
    _Role.Button: ("#2d2e31", None),
    _Role.ButtonText: ("#e8eaed", "#80868b"),
    _Role.BrightText: ("#ffffff", None),
    _Role.Highlight: ("#2563eb", "#3c4043"),
    _Role.HighlightedText: ("#ffffff", "#e8eaed"),
    _Role.ToolTipBase: ("#2d2e31", None),
    _Role.ToolTipText: ("#e8eaed", None),
    _Role.Link: ("#8ab4f8", None),
    _Role.LinkVisited: ("#c58af9", None),
    _Role.Light: ("#3c4043", None),
    _Role.Midlight: ("#303134", None),
    _Role.Mid: ("#4a4d51", None),
    _Role.Dark: ("#151516", None),
    _Role.Shadow: ("#000000", None),
}


def build_palette(dark: bool) -> QPalette:
    """The app's light or dark palette."""
    palette = QPalette()
    for role, (normal, disabled) in (DARK_COLOURS if dark else LIGHT_COLOURS).items():
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            palette.setColor(group, role, QColor(normal))
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled or normal))
    return palette


def palette_is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def wants_dark(choice: ThemeChoice, scheme: Qt.ColorScheme) -> bool | None:
    """Dark (True), light (False), or None: the desktop did not say, keep the platform's palette."""
    if choice is ThemeChoice.DARK:
        return True
    if choice is ThemeChoice.LIGHT:
        return False
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return None


_INDICATORS = (QStyle.PrimitiveElement.PE_IndicatorCheckBox, QStyle.PrimitiveElement.PE_IndicatorRadioButton)


class _IndicatorOutlineStyle(QProxyStyle):
    """Fusion, plus a visible outline around check box and radio indicators on a dark palette."""

    def drawPrimitive(self, element, option, painter, widget=None) -> None:  # noqa: N802 (Qt name)
        super().drawPrimitive(element, option, painter, widget)
        if element not in _INDICATORS or not palette_is_dark(option.palette):
            return
        enabled = bool(option.state & QStyle.StateFlag.State_Enabled)
        colour = QColor(option.palette.color(QPalette.ColorRole.Text))
        colour.setAlpha(150 if enabled else 70)
        painter.save()
        painter.setPen(QPen(colour, 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if element == QStyle.PrimitiveElement.PE_IndicatorRadioButton:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.drawEllipse(QRectF(option.rect).adjusted(1.5, 1.5, -1.5, -1.5))
        else:
            painter.drawRect(QRectF(option.rect).adjusted(0.5, 0.5, -1.5, -1.5))
        painter.restore()


class _IndicatorPolisher(QProxyStyle):
    """The application's style: Fusion itself for every widget, except that it hands check boxes and radio
    buttons the outline style when it polishes them (polish runs once per widget, never per paint)."""

    def __init__(self, outlines: QProxyStyle) -> None:
        super().__init__(QStyleFactory.create("Fusion"))
        self._outlines = outlines

    def polish(self, target):  # noqa: D102 (Qt's overloads: a widget, the application or a palette)
        result = super().polish(target)
        if isinstance(target, (QCheckBox, QRadioButton)) and target.style() is not self._outlines:
            target.setStyle(self._outlines)
        return result


_installed: list[QProxyStyle] = []  # the styles stay alive as long as the application (widgets do not own them)


def install_indicator_outlines(app: Any) -> bool:
    """Where the app runs on Fusion, make check boxes and radio buttons visible on dark palettes (see the
    module docstring); True when installed. Any other style (Windows, macOS) is left alone."""
    if _installed:
        return True
    if app.style().name().casefold() != "fusion":
        return False
    outlines = _IndicatorOutlineStyle(QStyleFactory.create("Fusion"))
    polisher = _IndicatorPolisher(outlines)
    _installed.extend((outlines, polisher))
    app.setStyle(polisher)
    return True


class ThemeController(QObject):
    """Applies the theme choice to the application and follows the desktop's scheme; see the docstring."""

    changed = Signal(bool)  # dark, after the palette was applied

    def __init__(self, app: Any, settings: Any = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.settings = settings
        self._platform_palette = QPalette(QGuiApplication.palette())
        try:
            self.choice = ThemeChoice(settings.theme) if settings is not None else ThemeChoice.SYSTEM
        except ValueError:
            self.choice = ThemeChoice.SYSTEM
        self.dark = palette_is_dark(self._platform_palette)
        self.scheme = app.styleHints().colorScheme()  # the desktop's, as last announced
        self._overridden = False  # our palette is set (else the platform's is in use)
        app.styleHints().colorSchemeChanged.connect(self._on_scheme_changed)

    def set_choice(self, choice: ThemeChoice | str) -> None:
        """Use `choice` from now on (remembered in the settings) and apply it at once."""
        self.choice = ThemeChoice(choice)
        if self.settings is not None:
            self.settings.set_theme(self.choice.value)
        self.apply()

    def apply(self) -> bool:
        """Apply the current choice; returns whether the app is now dark."""
        dark = wants_dark(self.choice, self.scheme)
        if dark is None:
            # The desktop does not say: its own palette, untouched unless ours was set before.
            dark = palette_is_dark(self._platform_palette)
            if self._overridden:
                self.app.setPalette(QPalette(self._platform_palette))
                self._overridden = False
        else:
            self.app.setPalette(build_palette(dark))
            self._overridden = True
        self.dark = dark
        log.info("theme: %s (%s)", self.choice.value, "dark" if dark else "light")
        self.changed.emit(dark)
        return dark

    def _on_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        self.scheme = scheme
        if self.choice is ThemeChoice.SYSTEM:
            self.apply()

    def restore_platform_palette(self) -> None:
        """Give the application back the palette it started with (tests, shutdown)."""
        self.app.setPalette(QPalette(self._platform_palette))


_LABELS = {ThemeChoice.SYSTEM: "&System", ThemeChoice.LIGHT: "&Light", ThemeChoice.DARK: "&Dark"}


def install_theme_menu(window: Any, controller: ThemeController) -> QMenu:
    """View › Theme: System / Light / Dark, one checked; choosing one applies and remembers it."""
    view_menu = getattr(window, "view_menu", None)
    menu = QMenu("&Theme", window)
    group = QActionGroup(menu)
    group.setExclusive(True)
    actions: dict[ThemeChoice, QAction] = {}
    for choice in ThemeChoice:
        action = QAction(_LABELS[choice], menu)
        action.setCheckable(True)
        action.setChecked(choice is controller.choice)
        action.setToolTip("Follow the desktop's light or dark setting" if choice is ThemeChoice.SYSTEM
                          else f"Always use the {choice.value} colours")
        action.triggered.connect(lambda _checked=False, choice=choice: controller.set_choice(choice))
        group.addAction(action)
        menu.addAction(action)
        actions[choice] = action
    menu.theme_actions = actions  # type: ignore[attr-defined]
    if view_menu is not None:
        view_menu.addSeparator()
        view_menu.addMenu(menu)
    return menu
