"""The app icon: the committed PNGs exist at every hicolor size and match a fresh render of the SVG."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage
from PySide6.QtSvg import QSvgRenderer

REPO = Path(__file__).resolve().parents[2]
APP_ICON_DIR = REPO / "src" / "training_studio" / "resources" / "app"


def load_render_icons():
    spec = importlib.util.spec_from_file_location("render_icons", REPO / "packaging" / "render_icons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_icons"] = module
    spec.loader.exec_module(module)
    return module


render_icons = load_render_icons()


def test_svg_parses_and_is_square():
    renderer = QSvgRenderer(str(APP_ICON_DIR / "training-studio.svg"))
    assert renderer.isValid()
    box = renderer.viewBoxF()
    assert box.width() == box.height() > 0


@pytest.mark.parametrize("size", render_icons.ICON_SIZES)
def test_committed_png_matches_a_fresh_render(qapp, size):
    committed = QImage(str(APP_ICON_DIR / render_icons.png_name(size)))
    assert not committed.isNull(), f"missing or unreadable {render_icons.png_name(size)}"
    assert (committed.width(), committed.height()) == (size, size)
    assert committed.hasAlphaChannel()

    fresh = QImage.fromData(render_icons.render_png(QSvgRenderer(str(APP_ICON_DIR / "training-studio.svg")), size))
    committed = committed.convertToFormat(QImage.Format.Format_ARGB32)
    fresh = fresh.convertToFormat(QImage.Format.Format_ARGB32)
    # A tolerance rather than byte equality: another Qt release may antialias edges slightly
    # differently, but an SVG edited without re-running render_icons.py changes whole shapes.
    total = 0
    for y in range(size):
        for x in range(size):
            a, b = committed.pixel(x, y), fresh.pixel(x, y)
            total += sum(abs(((a >> s) & 0xFF) - ((b >> s) & 0xFF)) for s in (0, 8, 16, 24))
    mean = total / (size * size * 4)
    assert mean < 2.0, f"{render_icons.png_name(size)} differs from the SVG (mean channel diff {mean:.2f}): " \
                       "run packaging/render_icons.py"


def test_icon_is_a_tile_with_transparent_corners(qapp):
    image = QImage(str(APP_ICON_DIR / render_icons.png_name(256)))
    assert image.pixelColor(0, 0).alpha() == 0  # the rounded corner lets the desktop show through
    assert image.pixelColor(128, 128).alpha() == 255
    colours = {image.pixel(x, y) for x in range(0, 256, 4) for y in range(0, 256, 4)}
    assert len(colours) > 50  # drawn artwork, not a flat square
