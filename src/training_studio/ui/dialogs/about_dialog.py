"""The About dialog: the app's version and licence, and what it is connected to.

`AboutDialog` only shows what it is given (`AboutInfo`: the connected server's URL and version, or why
it is not connected); it never asks a server anything. `about_info_from_store()` reads those facts from
the jobs store, which already fetched the version when it connected.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from typing import Any

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QGridLayout, QLabel, QVBoxLayout, QWidget

from training_studio import __version__

__all__ = ["AboutDialog", "AboutInfo", "about_info_from_store", "LICENCE_NAME"]

LICENCE_NAME = "MIT License"


@dataclass(frozen=True)
class AboutInfo:
    server_url: str = ""       # "" when not connected
    server_version: str = ""   # "" when unknown
    is_local: bool = False
    status: str = ""           # e.g. "Connected", "Unreachable"
    updates: str = ""          # how changes arrive: "Live", "Reconnecting…", "Refreshed every 5 s…"


def about_info_from_store(store: Any) -> AboutInfo:
    connected = bool(getattr(store, "connected", False))
    url = store.client.base_url if connected else ""
    version = store.server_version if connected else ""
    failure = getattr(store, "last_failure", None)
    if connected and failure is None:
        status = "Connected"
    elif failure is not None:
        status = f"Not connected: {failure[1]}"
    else:
        status = "Connecting…"
    updates = ""
    if connected and hasattr(store, "stream_state"):
        from training_studio.ui.server_menu import updates_text

        updates = updates_text(store)
    return AboutInfo(server_url=url, server_version=version, is_local=bool(store.is_local), status=status,
                     updates=updates)


class AboutDialog(QDialog):
    def __init__(self, info: AboutInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About Training Studio")
        self.info = info
        layout = QVBoxLayout(self)

        title = QLabel(f"Training Studio {__version__}", self)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        title.setFont(font)
        layout.addWidget(title)
        blurb = QLabel("Watch AI training jobs live and build training datasets.", self)
        blurb.setWordWrap(True)
        layout.addWidget(blurb)

        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        where = "Local server" if info.is_local else "Server"
        rows = [
            ("Version", __version__),
            ("Licence", f"{LICENCE_NAME} — free to use, copy, modify and distribute"),
            (where, info.server_url or "not connected"),
            ("Server version", info.server_version or "unknown"),
            ("Status", info.status or "—"),
            ("Updates", info.updates or "—"),
            ("Runtime", f"Python {platform.python_version()}, Qt for Python {pyside_version}, "
                        f"{platform.system() or sys.platform}"),
        ]
        self.values: dict[str, QLabel] = {}
        for row, (name, value) in enumerate(rows):
            key = QLabel(f"{name}:", self)
            key.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            label = QLabel(value, self)
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setAccessibleName(name)
            grid.addWidget(key, row, 0)
            grid.addWidget(label, row, 1)
            self.values[name if name not in ("Local server", "Server") else "Server"] = label
        layout.addLayout(grid)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)

    def value(self, name: str) -> str:
        return self.values[name].text()
