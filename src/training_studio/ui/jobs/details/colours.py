"""The colours of compared runs: one colour per job, the same in the chart's curve and the table's swatch.

No Qt here. `compare_colour(index, dark=...)` is the palette (Okabe–Ito-like hues, chosen to stay apart for the
common colour-vision deficiencies, each with at least 3:1 contrast against the light or dark view background,
the WCAG minimum for graphical objects); `assign_colours()` gives the jobs of a compare set their palette
slots, keeping the slot a job already had, so that a curve does not change colour when another run joins or
leaves the comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


__all__ = ["LIGHT_COLOURS", "DARK_COLOURS", "LIGHT_BACKGROUND", "DARK_BACKGROUND", "compare_colour",
           "assign_colours"]

LIGHT_BACKGROUND = "#ffffff"
DARK_BACKGROUND = "#1e1e1e"

# Same hue order in both themes: slot N reads as "the blue one" whichever theme the user runs.
LIGHT_COLOURS = (
    "#0060b0",  # blue
    "#d55e00",  # vermilion
    "#007a5e",  # bluish green
    "#b8008a",  # reddish purple
    "#8a6d00",  # ochre
    "#4d4d4d",  # dark grey
    "#2f8fd8",  # sky blue
    "#a8324a",  # wine
)
DARK_COLOURS = (
    "#56a8f5",
    "#ff8c42",
    "#3ccfa0",
    "#f27ad6",
    "#f0c419",
    "#c8c8c8",
    "#9fd3ff",
    "#ff7a93",
)


def compare_colour(index: int, *, dark: bool) -> str:
    """The colour of palette slot `index` ("#rrggbb"); slots beyond the palette wrap around."""
    palette = DARK_COLOURS if dark else LIGHT_COLOURS
    return palette[index % len(palette)]


def assign_colours(job_ids: Iterable[str], previous: Mapping[str, int] | None = None) -> dict[str, int]:
    """Palette slots for `job_ids` (in order): a job keeps the slot it had in `previous`; the others take
    the lowest free slots. With more jobs than colours, slots repeat (wrapping), lowest first."""
    previous = previous or {}
    ids = list(dict.fromkeys(job_ids))
    slots: dict[str, int] = {}
    taken: set[int] = set()
    for job_id in ids:
        slot = previous.get(job_id)
        if slot is not None and slot not in taken:
            slots[job_id] = slot
            taken.add(slot)
    free = (slot for slot in range(len(ids) + len(taken) + 1) if slot not in taken)
    for job_id in ids:
        if job_id not in slots:
            slots[job_id] = next(free)
    return {job_id: slots[job_id] for job_id in ids}

