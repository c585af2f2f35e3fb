"""Thumbnails for the import grid: loaded lazily in a thread pool, cached, and type icons for non-images.

`ThumbnailCache` owns turning a local path into the small picture a view paints. It never decodes on
the GUI thread: `pixmap_for()` answers at once from the cache (or with a placeholder) and, on a miss,
queues a load that a `QThreadPool` worker does with `QImageReader.setScaledSize` (JPEG decodes straight
to the small size; nothing full-size is kept). Since views ask only for the rows they paint, only
visible files are ever loaded; the queue is last-in-first-out and bounded, so scrolling fast through
10,000 files loads what is on screen now, not what flew past. Finished loads come back to the GUI thread
as a queued signal, become pixmaps there, and `thumbnail_ready(path)` tells the model which row to
repaint. Audio, video and text files get a drawn type icon per format instead, built once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from PySide6.QtCore import QObject, QRectF, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QFont, QImage, QImageReader, QPainter, QPainterPath, QPen, QPixmap

__all__ = ["ThumbnailCache", "THUMBNAIL_SIZE", "type_icon"]

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 96
MAX_CACHED = 3000          # ~3000 × 96×96×4 bytes ≈ 110 MB at most; typical images are smaller
MAX_QUEUED = 400           # older requests are dropped; a view asks again when it repaints them
WORKERS = 2
_KIND_COLOURS = {"image": "#5b8def", "audio": "#b05bd6", "video": "#d6825b", "text": "#4f9d69"}
_type_icons: dict[tuple[str, str, int], QPixmap] = {}


class _Relay(QObject):
    """Lives on the GUI thread; workers emit through it so results arrive as queued signals."""

    loaded = Signal(str, QImage)


def _load_scaled(path: str, size: int) -> QImage:
    """Blocking: read `path` scaled to fit size×size; a null QImage when it cannot be read."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    reader.setDecideFormatFromContent(True)
    full = reader.size()
    if full.isValid() and full.width() > 0 and full.height() > 0:
        # Fit the box both ways: big images decode small, tiny ones (icons, sprites) become visible.
        reader.setScaledSize(full.scaled(QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return image if not image.isNull() else QImage()


class ThumbnailCache(QObject):
    """See the module docstring."""

    thumbnail_ready = Signal(str)  # path

    def __init__(self, size: int = THUMBNAIL_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(WORKERS)
        self._relay = _Relay(self)
        self._relay.loaded.connect(self._on_loaded)
        self._cache: OrderedDict[str, QPixmap] = OrderedDict()
        self._failed: set[str] = set()
        self._queued: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()
        self._closed = False
        self._placeholder = _placeholder(size, loading=True)
        self._broken = _placeholder(size, loading=False)

    # asking --------------------------------------------------------------------------------------------
    def pixmap_for(self, path: str, kind: str, format_name: str) -> QPixmap:
        """What to paint now for `path`; may queue a background load (then `thumbnail_ready` follows)."""
        if kind != "image":
            return type_icon(kind, format_name, self.size)
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            return cached
        if path in self._failed:
            return self._broken
        self._request(path)
        return self._placeholder

    def is_cached(self, path: str) -> bool:
        return path in self._cache

    @property
    def cached_count(self) -> int:
        return len(self._cache)

    @property
    def busy(self) -> bool:
        return bool(self._queued or self._in_flight)

    def clear(self) -> None:
        self._queued.clear()
        self._cache.clear()
        self._failed.clear()

    def shutdown(self) -> None:
        """Drop queued loads and wait briefly for running ones (call before the app quits)."""
        self._closed = True
        self._queued.clear()
        self._pool.clear()
        self._pool.waitForDone(2000)

    # loading --------------------------------------------------------------------------------------------
    def _request(self, path: str) -> None:
        if self._closed or path in self._in_flight:
            return
        self._queued[path] = None
        self._queued.move_to_end(path)
        while len(self._queued) > MAX_QUEUED:
            self._queued.popitem(last=False)
        self._pump()

    def _pump(self) -> None:
        while self._queued and len(self._in_flight) < WORKERS and not self._closed:
            path, _ = self._queued.popitem(last=True)  # newest first: what the user looks at now
            self._in_flight.add(path)
            relay, size = self._relay, self.size

            def work(path: str = path) -> None:
                try:
                    image = _load_scaled(path, size)
                except Exception:  # a worker must always report back, or the slot stays taken
                    log.exception("thumbnail of %r failed", path)
                    image = QImage()
                try:
                    relay.loaded.emit(path, image)
                except RuntimeError:
                    pass  # the cache was deleted while we worked (app quitting)

            self._pool.start(work)

    def _on_loaded(self, path: str, image: QImage) -> None:
        self._in_flight.discard(path)
        if self._closed:
            return
        if image.isNull():
            self._failed.add(path)
        else:
            self._cache[path] = QPixmap.fromImage(image)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        self.thumbnail_ready.emit(path)
        self._pump()


def _placeholder(size: int, *, loading: bool) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(4, 4, size - 8, size - 8)
        painter.setPen(QPen(QColor("#9aa0a6"), 1.5, Qt.PenStyle.DashLine if loading else Qt.PenStyle.SolidLine))
        painter.setBrush(QColor(128, 128, 128, 30))
        painter.drawRoundedRect(rect, 6, 6)
        if not loading:
            painter.setPen(QPen(QColor("#c5221f"), 3))
            inset = rect.adjusted(size * 0.3, size * 0.3, -size * 0.3, -size * 0.3)
            painter.drawLine(inset.topLeft(), inset.bottomRight())
            painter.drawLine(inset.topRight(), inset.bottomLeft())
    finally:
        painter.end()
    return pixmap


def type_icon(kind: str, format_name: str, size: int) -> QPixmap:
    """A drawn document icon with the format's name on it, coloured by kind; built once per key."""
    key = (kind, format_name, size)
    cached = _type_icons.get(key)
    if cached is not None:
        return cached
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(_KIND_COLOURS.get(kind, "#808080"))
        width, height = size * 0.7, size * 0.86
        left, top = (size - width) / 2, (size - height) / 2
        fold = width * 0.3
        outline = QPainterPath()
        outline.moveTo(left, top)
        outline.lineTo(left + width - fold, top)
        outline.lineTo(left + width, top + fold)
        outline.lineTo(left + width, top + height)
        outline.lineTo(left, top + height)
        outline.closeSubpath()
        painter.setPen(QPen(colour.darker(130), max(1.0, size / 48)))
        painter.setBrush(colour.lighter(170))
        painter.drawPath(outline)
        band = QRectF(left - size * 0.06, top + height * 0.52, width + size * 0.12, height * 0.28)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(band, 3, 3)
        font = QFont()
        font.setBold(True)
        font.setPixelSize(max(7, int(band.height() * 0.62)))
        painter.setFont(font)
        painter.setPen(QColor("white"))
        painter.drawText(band, Qt.AlignmentFlag.AlignCenter, (format_name or kind)[:5].upper())
    finally:
        painter.end()
    _type_icons[key] = pixmap
    return pixmap
