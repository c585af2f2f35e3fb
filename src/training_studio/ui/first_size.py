"""The main window's size at its very first start (no saved layout yet): plain arithmetic, no Qt.

1,000 × 640 is the smallest size every tab is laid out for; on a usual desktop that is a small window in a
corner of the screen, with a squeezed Datasets tab. So the first window takes three quarters of the
screen's available area, never less than that minimum (a screen smaller than it gets the minimum and the
window manager's say) and never more than 1,600 × 1,000 (a wide monitor's full width is no help to a
table), centred on that area. Later starts restore whatever the user made of it.
"""

from __future__ import annotations

__all__ = ["first_window_geometry", "MIN_FIRST_SIZE", "MAX_FIRST_SIZE", "SCREEN_SHARE"]

MIN_FIRST_SIZE = (1000, 640)
MAX_FIRST_SIZE = (1600, 1000)
SCREEN_SHARE = 0.75


def first_window_geometry(available: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(x, y, width, height) for the first window, given the screen's available (x, y, width, height)."""
    left, top, avail_width, avail_height = available
    width = _share(avail_width, MIN_FIRST_SIZE[0], MAX_FIRST_SIZE[0])
    height = _share(avail_height, MIN_FIRST_SIZE[1], MAX_FIRST_SIZE[1])
    x = left + max(0, (avail_width - width) // 2)
    y = top + max(0, (avail_height - height) // 2)
    return x, y, width, height


def _share(available: int, smallest: int, largest: int) -> int:
    return max(smallest, min(int(available * SCREEN_SHARE), largest))
