"""The first window's size: three quarters of the screen's available area, within 1,000 × 640 and
1,600 × 1,000, centred on it (plain arithmetic)."""

from __future__ import annotations

from training_studio.ui.first_size import first_window_geometry


def test_a_usual_desktop_gets_three_quarters_of_it_centred():
    # 1920 × 1080 with a 40 px panel at the top.
    assert first_window_geometry((0, 40, 1920, 1040)) == (240, 170, 1440, 780)


def test_a_small_screen_gets_the_minimum_and_a_huge_one_the_maximum():
    assert first_window_geometry((0, 0, 1024, 700)) == (12, 30, 1000, 640)
    assert first_window_geometry((0, 0, 800, 600)) == (0, 0, 1000, 640)  # never placed off the area's start
    assert first_window_geometry((0, 0, 3840, 2160)) == (1120, 580, 1600, 1000)


def test_a_second_monitor_is_measured_from_its_own_corner():
    assert first_window_geometry((1920, 0, 2560, 1440)) == (1920 + 480, 220, 1600, 1000)
