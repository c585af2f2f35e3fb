"""Loads the app's SVG icons from package data and caches what it renders.

This module owns icon lookup and rendering. The SVGs live in `training_studio/resources/icons/`
and are read through `importlib.resources`, so the same code works from a source checkout, an
installed wheel and a frozen (PyInstaller) app. Icons are drawn with `stroke="currentColor"`;
we substitute a concrete colour before rendering, so one file serves every status colour and
theme. Pixmaps are rendered at the device pixel ratio they will be painted at (crisp at 200%) and
cached per (name, colour, size, ratio): painting code calls `pixmap()` freely without building
anything after the first call. A missing or unreadable icon logs once and yields a transparent
pixmap, never an exception in a paint handler. Toolbars get their icons from the same set through
`decorate_toolbar()` (text beside the icon, in the palette's colours, re-rendered when the theme changes).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources

from PySide6.QtCore import QByteArray, QEvent, QObject, QRectF, QSize, Qt
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QToolBar
from PySide6.QtSvg import QSvgRenderer

from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.format import known_status

__all__ = [
    "STATUS_ICON_NAMES",
    "icon_names",
    "svg_bytes",
    "pixmap",
    "icon",
    "status_icon_name",
    "clear_cache",
    "themed_icon",
    "decorate_toolbar",
    "TOOLBAR_ICON_SIZE",
]

_log = logging.getLogger(__name__)

_PACKAGE = "training_studio.resources"
_FOLDER = "icons"

STATUS_ICON_NAMES: dict[JobStatus, str] = {
    JobStatus.PENDING: "clock",
    JobStatus.QUEUED: "clock",
    JobStatus.RUNNING: "zap",
    JobStatus.COMPLETED: "circle-check",
    JobStatus.FAILED: "circle-alert",
    JobStatus.CANCELLED: "circle-x",
    JobStatus.UNKNOWN: "circle-help",
}

_pixmaps: dict[tuple[str, str, int, int], QPixmap] = {}
_icons: dict[tuple[str, str], QIcon] = {}


def status_icon_name(status: JobStatus | str | None) -> str:
    """The icon of a status; anything unrecognised gets the neutral question mark."""
    return STATUS_ICON_NAMES[known_status(status)]


def icon_names() -> list[str]:
    """Names (without `.svg`) of every icon shipped in the package."""
    folder = resources.files(_PACKAGE).joinpath(_FOLDER)
    return sorted(entry.name[:-4] for entry in folder.iterdir() if entry.name.endswith(".svg"))


@lru_cache(maxsize=None)
def svg_bytes(name: str) -> bytes:
    """The SVG markup of icon `name`; raises FileNotFoundError if the package lacks it."""
    return resources.files(_PACKAGE).joinpath(_FOLDER, f"{name}.svg").read_bytes()


_colour_names: dict[str, str] = {}


def _colour_text(colour: QColor | str | None) -> str:
    """A canonical cache key for a colour (#AARRGGBB); string inputs are memoised for paint()."""
    if colour is None:
        return ""
    if isinstance(colour, str):
        name = _colour_names.get(colour)
        if name is None:
            name = _colour_names[colour] = QColor(colour).name(QColor.NameFormat.HexArgb)
        return name
    return colour.name(QColor.NameFormat.HexArgb)


def pixmap(name: str, size: int, device_pixel_ratio: float = 1.0,
           colour: QColor | str | None = None) -> QPixmap:
    """Icon `name` rendered `size` logical pixels square at `device_pixel_ratio`, in `colour`.

    Without a colour, `currentColor` stays as the SVG says (black in Qt's renderer).
    """
    ratio = max(1.0, float(device_pixel_ratio))
    colour_key = _colour_text(colour)
    key = (name, colour_key, int(size), round(ratio * 100))
    cached = _pixmaps.get(key)
    if cached is not None:
        return cached
    device_size = max(1, round(size * ratio))
    result = QPixmap(device_size, device_size)
    result.fill(Qt.GlobalColor.transparent)
    markup = _load_markup(name)
    if markup is not None:
        if colour_key:
            # Qt's renderer takes colour names as #AARRGGBB; SVG wants #RRGGBB plus an opacity.
            argb = QColor(colour_key)
            markup = markup.replace(b"currentColor", argb.name(QColor.NameFormat.HexRgb).encode())
            if argb.alpha() < 255:
                markup = markup.replace(b"<svg ", f'<svg opacity="{argb.alphaF():.3f}" '.encode(), 1)
        renderer = QSvgRenderer(QByteArray(markup))
        if renderer.isValid():
            painter = QPainter(result)
            try:
                painter.setRenderHint(QPainter.RenderHint.Antialiasing)
                renderer.render(painter, QRectF(0, 0, device_size, device_size))
            finally:
                painter.end()
        else:
            _warn_once(name, "is not valid SVG")
    result.setDevicePixelRatio(ratio)
    _pixmaps[key] = result
    return result


def icon(name: str, colour: QColor | str | None = None) -> QIcon:
    """A QIcon of `name` with pixmaps for the usual sizes at 1x and 2x (for buttons and menus)."""
    key = (name, _colour_text(colour))
    cached = _icons.get(key)
    if cached is not None:
        return cached
    result = QIcon()
    for size in (16, 20, 24, 32):
        for ratio in (1.0, 2.0):
            result.addPixmap(pixmap(name, size, ratio, colour))
    _icons[key] = result
    return result


TOOLBAR_ICON_SIZE = 18  # logical pixels; rendered at the screen's ratio (crisp at 200%)


# The sizes menus (16) and toolbars use. Every size at every common ratio, rendered eagerly, was 40 SVG
# renders per icon: about 200 at start for the Jobs toolbar alone, a tenth of the window's construction.
_THEMED_SIZES = (16, TOOLBAR_ICON_SIZE)


def themed_icon(name: str, palette: QPalette, device_pixel_ratio: float = 1.0) -> QIcon:
    """Icon `name` in the palette's button-text colour (normal) and its disabled colour (greyed), rendered for
    menus and toolbars at 1x, 2x and `device_pixel_ratio` (the screen's, so it is crisp at 150 % too)."""
    result = QIcon()
    normal = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText)
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText)
    for ratio in sorted({1.0, 2.0, max(1.0, float(device_pixel_ratio))}):
        for size in _THEMED_SIZES:
            result.addPixmap(pixmap(name, size, ratio, normal), QIcon.Mode.Normal)
            result.addPixmap(pixmap(name, size, ratio, disabled), QIcon.Mode.Disabled)
    return result


class _ToolbarIcons(QObject):
    """Keeps a toolbar's action icons in the current palette's colours and at its screen's pixel ratio
    (re-rendered on a theme change, or when the window moves to a screen of another ratio)."""

    def __init__(self, toolbar: QToolBar, names: dict[QAction, str]) -> None:
        super().__init__(toolbar)
        self.toolbar = toolbar
        self.names = names
        self.apply()
        toolbar.installEventFilter(self)

    def apply(self) -> None:
        palette = self.toolbar.palette()
        ratio = self.toolbar.devicePixelRatioF()
        for action, name in self.names.items():
            action.setIcon(themed_icon(name, palette, ratio))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if watched is self.toolbar and event.type() in (QEvent.Type.PaletteChange,
                                                        QEvent.Type.DevicePixelRatioChange):
            self.apply()
        return False


def decorate_toolbar(toolbar: QToolBar, names: dict[QAction, str]) -> None:
    """Give a toolbar's actions icons from this set (`names`: action -> icon name), with the text beside
    them, sized for HiDPI, in the palette's colours (light or dark, following theme changes)."""
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.setIconSize(QSize(TOOLBAR_ICON_SIZE, TOOLBAR_ICON_SIZE))
    _ToolbarIcons(toolbar, names)


def clear_cache() -> None:
    """Forget rendered pixmaps (e.g. after a palette change made many colours obsolete)."""
    _pixmaps.clear()
    _icons.clear()


_warned: set[str] = set()


def _warn_once(name: str, problem: str) -> None:
    if name not in _warned:
        _warned.add(name)
        _log.warning("icon %r %s; drawing nothing in its place", name, problem)


def _load_markup(name: str) -> bytes | None:
    try:
        return svg_bytes(name)
    except (FileNotFoundError, OSError, ModuleNotFoundError) as error:
        _warn_once(name, f"could not be read ({error})")
        return None
