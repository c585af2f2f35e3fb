"""What the app remembers between runs, in QSettings: `AppSettings` owns every key the GUI persists.

It keeps the main window's geometry and dock/toolbar state, every splitter's sizes and every table
header's column state (widths, order, sort) found in the window, the last folder used per purpose
(e.g. "import", "download"), the refresh interval, whether desktop notifications are shown, the theme
(View › Theme: system, light or dark), when
"Clear finished" was last used per server (so cleared jobs stay cleared at the next launch), whether the
jobs tab's details pane is open and its height, and the
server profiles (URL, TLS choice; most recently used first, so they double as "recent servers"). Tokens
are NOT here: they live in the OS keyring (`training_studio.ui.secrets`). Values are validated on the
way out, because the settings file is user-editable and may hold anything: a bad value reads back as
the default, never as an exception.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PySide6.QtCore import QByteArray, QObject, QSettings, Qt
from PySide6.QtWidgets import QHeaderView, QMainWindow, QSplitter, QWidget

from training_studio.ui.fitted_table import FittedTableView

__all__ = [
    "AppSettings",
    "ServerProfile",
    "DEFAULT_REFRESH_INTERVAL_S",
    "MIN_REFRESH_INTERVAL_S",
    "MAX_REFRESH_INTERVAL_S",
    "MAX_PROFILES",
    "MAX_CLEARED_SERVERS",
    "THEME_CHOICES",
    "normalise_server_url",
    "widget_path",
    "set_shared_settings",
    "shared_settings",
    "remembered_folder",
    "remember_folder",
]

log = logging.getLogger(__name__)

ORGANIZATION = "training-studio"
APPLICATION = "training-studio"
DEFAULT_REFRESH_INTERVAL_S = 5.0
MIN_REFRESH_INTERVAL_S = 1.0
MAX_REFRESH_INTERVAL_S = 300.0
MAX_PROFILES = 10
THEME_CHOICES = ("system", "light", "dark")
MAX_CLEARED_SERVERS = 50  # servers whose "Clear finished" moment is remembered; the least recent go first


@dataclass(frozen=True)
class ServerProfile:
    """A remote server the user connected to. `ca_file` empty: verify https with the system's certificates."""

    url: str
    name: str = ""
    ca_file: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} — {self.url}" if self.name and self.name != self.url else self.url

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "ServerProfile | None":
        if not isinstance(data, dict):
            return None
        url = data.get("url")
        if not isinstance(url, str):
            return None
        try:
            url = normalise_server_url(url)
        except ValueError:
            return None
        name = data.get("name") if isinstance(data.get("name"), str) else ""
        ca_file = data.get("ca_file") if isinstance(data.get("ca_file"), str) else ""
        return cls(url=url, name=name, ca_file=ca_file)


def normalise_server_url(text: str) -> str:
    """A server's base URL as the app stores it ("http(s)://host[:port][/path]", no trailing slash).

    Raises ValueError with a sentence fit for the user when `text` is not such a URL.
    """
    text = text.strip()
    if not text:
        raise ValueError("Enter the server's address, e.g. https://training.example.com:8765.")
    if "://" not in text:
        raise ValueError(f"“{text}” has no scheme: start it with http:// or https://.")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"“{parts.scheme}” is not supported: use http:// or https://.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"The port in “{text}” is not a number between 0 and 65535.") from None
    if not parts.hostname:
        raise ValueError(f"“{text}” has no host name.")
    if parts.query or parts.fragment:
        raise ValueError("The server address cannot contain “?” or “#”.")
    if parts.username or parts.password:
        raise ValueError("Put the token in the Token field, not in the address.")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def _finite_float(value: Any) -> float | None:
    """`value` as a finite float if it is a JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too big for a float
        return None
    return number if math.isfinite(number) else None


def widget_path(widget: QWidget, root: QWidget) -> str:
    """A stable key for `widget` inside `root`: object names where set, else class and index among
    same-class siblings (panels are built in a fixed order, so the index is stable across runs)."""
    parts: list[str] = []
    current: QObject | None = widget
    while current is not None and current is not root:
        name = current.objectName()
        if not name:
            parent = current.parent()
            siblings = [child for child in parent.children() if type(child) is type(current)] if parent else []
            index = siblings.index(current) if current in siblings else 0
            name = f"{type(current).__name__}{index}"
        parts.append(name)
        current = current.parent()
    return "/".join(reversed(parts))


_shared: "AppSettings | None" = None


def set_shared_settings(settings: "AppSettings | None") -> None:
    """Make `settings` the app's (the GUI bootstrap does this); panels reach it via the helpers below."""
    global _shared
    _shared = settings


def shared_settings() -> "AppSettings | None":
    return _shared


def remembered_folder(purpose: str, fallback: str = "") -> str:
    """The folder last used for `purpose` in the running app; `fallback` when there is no app settings
    object (e.g. a panel under test), so tests never touch the developer's settings."""
    return _shared.last_folder(purpose) if _shared is not None else fallback


def remember_folder(purpose: str, path: str | Path) -> None:
    if _shared is not None and str(path):
        _shared.set_last_folder(purpose, path)


class AppSettings:
    """Typed access to the app's QSettings; see the module docstring.

    Tests pass their own `QSettings(path, QSettings.Format.IniFormat)` so the developer's are untouched.
    """

    def __init__(self, settings: QSettings | None = None) -> None:
        self.qsettings = settings if settings is not None else self._default_qsettings()
        self.skip_layout_save = False  # set by clear_window_layout(): the quit must not save it again

    @staticmethod
    def _default_qsettings() -> QSettings:
        # TRAINING_STUDIO_CONFIG_DIR: an isolated settings file (tests, smoke runs, portable installs).
        override = os.environ.get("TRAINING_STUDIO_CONFIG_DIR")
        if override:
            return QSettings(str(Path(override).expanduser() / "settings.ini"), QSettings.Format.IniFormat)
        return QSettings(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)

    @property
    def file_name(self) -> str:
        return self.qsettings.fileName()

    def sync(self) -> None:
        self.qsettings.sync()

    # raw helpers -------------------------------------------------------------------------------
    def _bytes(self, key: str) -> QByteArray | None:
        value = self.qsettings.value(key)
        if isinstance(value, QByteArray) and not value.isEmpty():
            return value
        if isinstance(value, (bytes, bytearray)) and value:
            return QByteArray(bytes(value))
        return None

    def _str(self, key: str, default: str = "") -> str:
        value = self.qsettings.value(key, default)
        return value if isinstance(value, str) else default

    # window, splitters, headers ----------------------------------------------------------------
    def save_window(self, window: QMainWindow) -> None:
        """Geometry, toolbar/dock state, and every splitter and table header inside the window."""
        if self.skip_layout_save:
            return
        self.qsettings.setValue("window/geometry", window.saveGeometry())
        self.qsettings.setValue("window/state", window.saveState())
        for splitter in window.findChildren(QSplitter):
            self.save_splitter(splitter, widget_path(splitter, window))
        for header in window.findChildren(QHeaderView):
            if header.orientation() == Qt.Orientation.Horizontal:
                self.save_header(header, widget_path(header, window))
        self.qsettings.sync()

    def restore_window(self, window: QMainWindow) -> bool:
        """Put back what `save_window` saved; False when nothing (valid) was saved. Widgets that are not
        there any more, or whose saved state no longer fits (another column count), keep their defaults."""
        restored = False
        geometry = self._bytes("window/geometry")
        if geometry is not None:
            restored = bool(window.restoreGeometry(geometry))
        state = self._bytes("window/state")
        if state is not None:
            window.restoreState(state)
        self.restore_within(window, window)
        return restored

    def restore_within(self, window: QMainWindow, root: QWidget) -> None:
        """Put back the splitters and table headers inside `root`, a part of `window` built after the
        window was restored (a tab built on first show); keys are paths from `window`, as saved."""
        for splitter in root.findChildren(QSplitter):
            self.restore_splitter(splitter, widget_path(splitter, window))
        for header in root.findChildren(QHeaderView):
            if header.orientation() == Qt.Orientation.Horizontal:
                self.restore_header(header, widget_path(header, window))

    def clear_window_layout(self) -> None:
        """Forget geometry, splitters and columns; the window starts with its defaults next time."""
        for group in ("window", "splitters", "headers"):
            self.qsettings.remove(group)
        self.skip_layout_save = True

    def save_splitter(self, splitter: QSplitter, name: str) -> None:
        self.qsettings.setValue(f"splitters/{name}", splitter.saveState())

    def restore_splitter(self, splitter: QSplitter, name: str) -> bool:
        state = self._bytes(f"splitters/{name}")
        return bool(state is not None and splitter.restoreState(state))

    def save_header(self, header: QHeaderView, name: str) -> None:
        view = header.parentWidget()
        # A fitted table saves its columns' preferred widths, not what a narrow window squeezed them to.
        state = view.header_state() if isinstance(view, FittedTableView) else header.saveState()
        self.qsettings.setValue(f"headers/{name}", state)
        self.qsettings.setValue(f"headers/{name}.columns", header.count())

    def restore_header(self, header: QHeaderView, name: str) -> bool:
        state = self._bytes(f"headers/{name}")
        saved_columns = self.qsettings.value(f"headers/{name}.columns")
        # A header saved with another column count would hide or misplace columns: keep the defaults.
        if state is None or str(saved_columns) != str(header.count()):
            return False
        return bool(header.restoreState(state))

    # folders -----------------------------------------------------------------------------------
    def last_folder(self, purpose: str) -> str:
        """The folder last used for `purpose`, if it still exists; else the home folder."""
        folder = self._str(f"folders/{purpose}")
        if folder and Path(folder).is_dir():
            return folder
        return str(Path.home())

    def set_last_folder(self, purpose: str, path: str | Path) -> None:
        """Remember the folder of `path` (a file's parent, or the folder itself)."""
        candidate = Path(path)
        folder = candidate if candidate.is_dir() else candidate.parent
        self.qsettings.setValue(f"folders/{purpose}", str(folder))

    # refresh interval and notifications --------------------------------------------------------
    @property
    def refresh_interval(self) -> float:
        value = self.qsettings.value("refresh/interval_s", DEFAULT_REFRESH_INTERVAL_S)
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            return DEFAULT_REFRESH_INTERVAL_S
        if not MIN_REFRESH_INTERVAL_S <= seconds <= MAX_REFRESH_INTERVAL_S:
            return DEFAULT_REFRESH_INTERVAL_S
        return seconds

    def set_refresh_interval(self, seconds: float) -> None:
        if not MIN_REFRESH_INTERVAL_S <= seconds <= MAX_REFRESH_INTERVAL_S:
            raise ValueError(f"The refresh interval must be between {MIN_REFRESH_INTERVAL_S:g} and "
                             f"{MAX_REFRESH_INTERVAL_S:g} seconds.")
        self.qsettings.setValue("refresh/interval_s", float(seconds))

    @property
    def notifications_enabled(self) -> bool:
        value = self.qsettings.value("notifications/enabled", True)
        if isinstance(value, str):
            return value.lower() not in ("false", "0", "no")
        return bool(value)

    def set_notifications_enabled(self, enabled: bool) -> None:
        self.qsettings.setValue("notifications/enabled", bool(enabled))

    # theme (View › Theme) ----------------------------------------------------------------------
    @property
    def theme(self) -> str:
        """"system" (follow the desktop's light or dark scheme), "light" or "dark"."""
        value = self._str("appearance/theme", "system").lower()
        return value if value in THEME_CHOICES else "system"

    def set_theme(self, choice: str) -> None:
        if choice not in THEME_CHOICES:
            raise ValueError(f"The theme must be one of {', '.join(THEME_CHOICES)}.")
        self.qsettings.setValue("appearance/theme", choice)

    # server profiles ---------------------------------------------------------------------------
    def server_profiles(self) -> list[ServerProfile]:
        """Known remote servers, most recently used first."""
        raw = self._str("servers/profiles", "[]")
        try:
            data = json.loads(raw)
        except ValueError:
            log.warning("ignoring unreadable server profiles in %s", self.file_name)
            return []
        if not isinstance(data, list):
            return []
        profiles: list[ServerProfile] = []
        for item in data:
            profile = ServerProfile.from_json(item)
            if profile is not None and all(p.url != profile.url for p in profiles):
                profiles.append(profile)
        return profiles

    def profile_for(self, url: str) -> ServerProfile | None:
        return next((p for p in self.server_profiles() if p.url == url), None)

    def remember_server(self, profile: ServerProfile) -> None:
        """Put `profile` first (replacing one with the same URL); keeps at most MAX_PROFILES."""
        others = [p for p in self.server_profiles() if p.url != profile.url]
        self._write_profiles([profile, *others][:MAX_PROFILES])

    def forget_server(self, url: str) -> None:
        self._write_profiles([p for p in self.server_profiles() if p.url != url])

    def _write_profiles(self, profiles: Iterable[ServerProfile]) -> None:
        self.qsettings.setValue("servers/profiles", json.dumps([p.to_json() for p in profiles]))

    # "Clear finished" ------------------------------------------------------------------------
    def finished_cleared_through(self, server_key: str) -> float | None:
        """The server-clock moment (epoch seconds) up to which the user cleared finished jobs of
        `server_key`, or None if never; jobs that finished by then are not shown again."""
        value = self._cleared_moments().get(server_key)
        return value if isinstance(value, float) else None

    def set_finished_cleared_through(self, server_key: str, moment: float) -> None:
        if not math.isfinite(moment):
            raise ValueError(f"Not a moment in time: {moment!r}.")
        moments = self._cleared_moments()
        moments.pop(server_key, None)  # re-inserted last: the most recently cleared is kept longest
        moments[server_key] = float(moment)
        kept = dict(list(moments.items())[-MAX_CLEARED_SERVERS:])
        self.qsettings.setValue("jobs/finished_cleared_through", json.dumps(kept))

    def _cleared_moments(self) -> dict[str, float]:
        raw = self._str("jobs/finished_cleared_through", "{}")
        try:
            data = json.loads(raw)
        except ValueError:
            log.warning("ignoring unreadable \"Clear finished\" times in %s", self.file_name)
            return {}
        if not isinstance(data, dict):
            return {}
        moments: dict[str, float] = {}
        for key, value in data.items():
            moment = _finite_float(value)
            if isinstance(key, str) and moment is not None:
                moments[key] = moment
        return moments

    @property
    def active_server(self) -> str:
        """The URL of the remote server in use when the app last quit; "" for the local server."""
        url = self._str("servers/active")
        try:
            return normalise_server_url(url) if url else ""
        except ValueError:
            return ""

    def set_active_server(self, url: str) -> None:
        self.qsettings.setValue("servers/active", url)

    # the jobs tab's details pane (issue 14) ----------------------------------------------------
    @property
    def details_pane_visible(self) -> bool:
        """Whether the job details pane was open (below the jobs table); closed by default."""
        value = self.qsettings.value("jobs/details_visible", False)
        if isinstance(value, str):
            return value.lower() in ("true", "1", "yes")
        return bool(value) if isinstance(value, (bool, int)) else False

    def set_details_pane_visible(self, visible: bool) -> None:
        self.qsettings.setValue("jobs/details_visible", bool(visible))

    @property
    def details_pane_sizes(self) -> list[int] | None:
        """The jobs table's and the details pane's heights when the pane was last open; None if unknown."""
        try:
            sizes = json.loads(self._str("jobs/details_sizes", ""))
        except ValueError:
            return None
        if (isinstance(sizes, list) and len(sizes) == 2
                and all(isinstance(size, int) and not isinstance(size, bool) and 0 < size < 100_000
                        for size in sizes)):
            return sizes
        return None

    def set_details_pane_sizes(self, sizes: list[int]) -> None:
        self.qsettings.setValue("jobs/details_sizes", json.dumps([int(size) for size in sizes]))
