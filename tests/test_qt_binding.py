"""Guards against a Qt binding that leaks references to None on void calls.

PySide6 6.12.0 on Python 3.11 drops a reference to None on every void call (QLabel.setText,
QPainter.fillRect, beginInsertRows…); a ticking monitor makes thousands of such calls a minute and
dies with "Fatal Python error: none_dealloc". The check runs in a subprocess so that a broken binding
kills that process, not the test session.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect
    from PySide6.QtGui import QColor, QImage, QPainter
    from PySide6.QtWidgets import QApplication, QLabel

    class Rows(QAbstractListModel):
        n = 0
        def rowCount(self, parent=QModelIndex()):
            return 0 if parent.isValid() else self.n
        def data(self, index, role=0):
            return None

    app = QApplication([])
    label = QLabel()
    model = Rows()
    image = QImage(16, 16, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    color = QColor("red")
    rect = QRect(0, 0, 8, 8)
    for i in range(50):  # warm up caches that may legitimately hold None
        label.setText(str(i)); painter.fillRect(rect, color)
    before = sys.getrefcount(None)
    for i in range(1000):
        label.setText(str(i))
        painter.fillRect(rect, color)
        model.beginInsertRows(QModelIndex(), model.n, model.n)
        model.n += 1
        model.endInsertRows()
    after = sys.getrefcount(None)
    painter.end()
    print(before, after)
    """
)


@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="None is immortal from Python 3.12 (PEP 683): its refcount cannot fall, so the leak "
                           "cannot kill the process and cannot be observed this way")
def test_void_qt_calls_do_not_drop_references_to_none():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"probe crashed (a none_dealloc binding?):\n{result.stderr[-2000:]}"
    before, after = (int(x) for x in result.stdout.split()[-2:])
    # 3,000 void calls: a binding that drops one reference per call loses thousands.
    assert after >= before - 50, f"refcount of None fell from {before} to {after} over 3,000 void Qt calls"
