"""Terminal output to display text: ANSI colour codes become colour spans, everything else a terminal would
act on is removed, and a line rewritten with carriage returns (tqdm) keeps only its last state.

Trainer logs are what the trainer wrote to a terminal-less pipe, yet many trainers colour their output
(rich, loguru, colorama) and draw progress bars that redraw themselves with `\\r`. A log viewer must never
show those bytes raw. `AnsiDecoder` is fed the log text chunk by chunk, in order (a chunk may end inside
an escape sequence or between `\\r` and `\\n`), and returns complete `Line`s plus the current state of the
unfinished last line. SGR (`ESC [ … m`) sets the style of what follows: the 16 basic colours, the 256-colour
cube and 24-bit colours, bold, faint, italic, underline, inverse; every other CSI sequence (cursor moves,
erase line), OSC sequences (window titles, hyperlinks), other escapes and control characters are dropped.
`rgb_of()` turns a `Colour` into RGB for a light or dark background. Plain Python: no Qt here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import NamedTuple

__all__ = ["AnsiDecoder", "Colour", "Line", "Span", "Style", "decode_lines", "rgb_of", "strip_ansi"]

# A colour as the terminal names it: an index 0-255 (0-15 the basic and bright colours) or 24-bit (r, g, b).
Colour = int | tuple[int, int, int]

# An escape sequence longer than this that never ends is garbage, not a sequence still arriving.
MAX_CARRY = 4096

_TOKEN = re.compile(
    r"(?=[\x00-\x08\x0a-\x1f\x7f-\x9f])(?:"  # (a cheap first test at each position, for speed)
    r"\x1b\[[0-?]*[ -/]*[@-~]"           # CSI … final byte (SGR when the final byte is "m")
    r"|\x9b[0-?]*[ -/]*[@-~]"            # the same with the one-character C1 introducer
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC … BEL or ST (titles, hyperlinks)
    r"|\x1b[PX^_][^\x1b]*\x1b\\"        # DCS, SOS, PM, APC … ST
    r"|\x1b[ -/]*[0-~]"                  # any other escape (charset selection, keypad modes)
    r"|\r\n|\r|\n|\x08"
    r"|[\x00-\x07\x0b-\x1f\x7f\x80-\x9f]"  # other control characters (a lone ESC too): dropped
    r")"
)
_TOKEN_SPLIT = re.compile(f"({_TOKEN.pattern})")
# The start of an escape sequence that the chunk cut off: kept for the next chunk.
_UNFINISHED = re.compile(r"(?:\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*|\][^\x07]*\x1b|[PX^_][^\x1b]*\x1b?|[ -/]*)?"
                         r"|\x9b[0-?]*[ -/]*)\Z")
# Anything that is not plain text: escapes, "\r", backspace, other control characters; and the same
# without the two that most logs have (ESC and "\r"), which a plain substring test finds faster.
_SPECIAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_RARE_SPECIAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9a\x9c-\x9f]")


@dataclass(frozen=True)
class Style:
    fg: Colour | None = None
    bg: Colour | None = None
    bold: bool = False
    faint: bool = False
    italic: bool = False
    underline: bool = False
    inverse: bool = False

    @property
    def is_plain(self) -> bool:
        return self == _PLAIN


_PLAIN = Style()


class Span(NamedTuple):
    """`length` characters of a line from `start` on are drawn in `style`."""

    start: int
    length: int
    style: Style


class Line(NamedTuple):
    """One line of display text (no line break in it) and the styled parts of it (plain text elsewhere).
    (Tuples: a log has many lines, and tuples are the cheapest to make.)"""

    text: str
    spans: tuple[Span, ...] = ()


class AnsiDecoder:
    """Stateful: the style and an unfinished escape carry over from one `feed()` to the next."""

    def __init__(self) -> None:
        self.style = _PLAIN
        self._carry = ""
        self._parts: list[tuple[str, Style]] = []  # the unfinished line so far
        self._after_cr = False  # a "\r" ended the last piece: the next text overwrites the line

    def feed(self, text: str) -> tuple[list[Line], Line | None]:
        """The lines `text` completes, and the unfinished last line as it stands (None when empty)."""
        if self._carry:
            text = self._carry + text
            self._carry = ""
        unfinished = _UNFINISHED.search(text, max(0, len(text) - MAX_CARRY))
        if unfinished is not None and unfinished.start() < len(text):
            self._carry = text[unfinished.start():]
            text = text[:unfinished.start()]
        lines: list[Line] = []
        pieces = text.split("\n")
        last = len(pieces) - 1
        rare = _RARE_SPECIAL.search(text) is not None
        for index, piece in enumerate(pieces):
            # Fast path, most lines of most logs: nothing to interpret and nothing carried over.
            if not self._parts and not self._after_cr and self.style is _PLAIN and (
                    _SPECIAL.search(piece) is None if rare else
                    "\x1b" not in piece and "\r" not in piece and "\x9b" not in piece):
                if index < last:
                    lines.append(Line(piece))
                elif piece:
                    self._parts = [(piece, _PLAIN)]
                continue
            self._interpret(piece)
            if index < last:  # the piece ended at a line break ("\r\n" too: the "\r" overwrote nothing)
                self._after_cr = False
                lines.append(self._take_line())
        return lines, self._current()

    def _interpret(self, text: str) -> None:
        """Text without line breaks, escapes and all, onto the unfinished line."""
        # split() with a group alternates text, token, text, …: the loop runs per token, not per character.
        parts = _TOKEN_SPLIT.split(text)
        if parts[0]:
            self._add_text(parts[0])
        for index in range(1, len(parts), 2):
            token = parts[index]
            if token[-1] == "m" and (token[0] == "\x9b" or token[1] == "["):
                params = token[1:-1] if token[0] == "\x9b" else token[2:-1]
                if not params.strip("0123456789;:"):
                    self.style = apply_sgr(self.style, params)
            elif token == "\r":
                self._after_cr = True
            elif token == "\x08":
                self._backspace()
            # anything else: a cursor move, erase, title, control character: nothing to show
            following = parts[index + 1]
            if following:
                self._add_text(following)

    def finish(self) -> Line | None:
        """The unfinished line, taken as complete (the log ended without a line break)."""
        line = self._current()
        self._parts = []
        self._after_cr = False
        self._carry = ""
        return line

    def _add_text(self, text: str) -> None:
        if self._after_cr:
            # "\r" then text: the terminal would overwrite the line; tqdm redraws whole lines, so the
            # last state is what matters. ("\r" then "\n" is a plain line break, handled above.)
            self._parts = []
            self._after_cr = False
        if self._parts and self._parts[-1][1] == self.style:
            self._parts[-1] = (self._parts[-1][0] + text, self.style)
        else:
            self._parts.append((text, self.style))

    def _backspace(self) -> None:
        while self._parts:
            text, style = self._parts[-1]
            if text:
                self._parts[-1] = (text[:-1], style)
                return
            self._parts.pop()

    def _take_line(self) -> Line:
        line = _line_of(self._parts)
        self._parts = []
        return line

    def _current(self) -> Line | None:
        if not self._parts:
            return None
        line = _line_of(self._parts)
        return line if line.text else None


def _line_of(parts: list[tuple[str, Style]]) -> Line:
    if len(parts) == 1 and parts[0][1] is _PLAIN:
        return Line(parts[0][0])
    text: list[str] = []
    spans: list[Span] = []
    at = 0
    for piece, style in parts:
        if not piece:
            continue
        if not style.is_plain:
            spans.append(Span(at, len(piece), style))
        text.append(piece)
        at += len(piece)
    return Line("".join(text), tuple(spans))


_SGR_CACHE: dict[tuple[Style, str], Style] = {}
_SGR_CACHE_LIMIT = 4096


def apply_sgr(style: Style, params: str) -> Style:
    """The style after one SGR sequence with these parameters ("1;31", "38;5;208", "" = reset)."""
    if params == "0" or not params:
        return _PLAIN  # the most common sequence by far
    # Logs repeat the same few sequences on every line: remember their effect.
    key = (style, params)
    cached = _SGR_CACHE.get(key)
    if cached is None:
        if len(_SGR_CACHE) >= _SGR_CACHE_LIMIT:
            _SGR_CACHE.clear()
        cached = _SGR_CACHE[key] = _apply_sgr(style, params)
    return cached


def _apply_sgr(style: Style, params: str) -> Style:
    codes = [int(p) if p.isdigit() else 0 for p in re.split(r"[;:]", params)] if params else [0]
    index = 0
    while index < len(codes):
        code = codes[index]
        index += 1
        if code == 0:
            style = _PLAIN
        elif code == 1:
            style = replace(style, bold=True)
        elif code == 2:
            style = replace(style, faint=True)
        elif code == 3:
            style = replace(style, italic=True)
        elif code in (4, 21):
            style = replace(style, underline=True)
        elif code == 7:
            style = replace(style, inverse=True)
        elif code == 22:
            style = replace(style, bold=False, faint=False)
        elif code == 23:
            style = replace(style, italic=False)
        elif code == 24:
            style = replace(style, underline=False)
        elif code == 27:
            style = replace(style, inverse=False)
        elif 30 <= code <= 37:
            style = replace(style, fg=code - 30)
        elif 40 <= code <= 47:
            style = replace(style, bg=code - 40)
        elif 90 <= code <= 97:
            style = replace(style, fg=code - 90 + 8)
        elif 100 <= code <= 107:
            style = replace(style, bg=code - 100 + 8)
        elif code == 39:
            style = replace(style, fg=None)
        elif code == 49:
            style = replace(style, bg=None)
        elif code in (38, 48):
            colour, index = _extended_colour(codes, index)
            if colour is not None:
                style = replace(style, fg=colour) if code == 38 else replace(style, bg=colour)
        # other codes (blink, conceal, fonts…): ignored
    return style


def _extended_colour(codes: list[int], index: int) -> tuple[Colour | None, int]:
    if index < len(codes) and codes[index] == 5 and index + 1 < len(codes):
        return max(0, min(255, codes[index + 1])), index + 2
    if index < len(codes) and codes[index] == 2 and index + 3 < len(codes):
        r, g, b = (max(0, min(255, c)) for c in codes[index + 1:index + 4])
        return (r, g, b), index + 4
    return None, len(codes)  # malformed: the rest of the sequence means nothing we can trust


# The 16 basic colours, readable on a light and on a dark background (terminal defaults are often not).
_BASIC_LIGHT = [(0, 0, 0), (187, 0, 0), (0, 135, 0), (150, 110, 0), (0, 60, 200), (160, 0, 160), (0, 130, 140),
                (120, 120, 120), (85, 85, 85), (215, 40, 40), (30, 160, 30), (170, 130, 0), (40, 90, 230),
                (190, 40, 190), (0, 150, 160), (60, 60, 60)]
_BASIC_DARK = [(110, 110, 110), (240, 90, 90), (110, 210, 110), (230, 200, 90), (110, 150, 255), (220, 120, 220),
               (90, 210, 220), (200, 200, 200), (140, 140, 140), (255, 120, 120), (140, 240, 140), (255, 230, 120),
               (150, 180, 255), (250, 150, 250), (130, 240, 250), (250, 250, 250)]
_CUBE = (0, 95, 135, 175, 215, 255)


def rgb_of(colour: Colour, *, dark: bool) -> tuple[int, int, int]:
    if isinstance(colour, tuple):
        return colour
    if colour < 16:
        return (_BASIC_DARK if dark else _BASIC_LIGHT)[colour]
    if colour < 232:
        cube = colour - 16
        return _CUBE[cube // 36], _CUBE[cube // 6 % 6], _CUBE[cube % 6]
    grey = 8 + (colour - 232) * 10
    return grey, grey, grey


def decode_lines(text: str) -> list[Line]:
    """All lines of a complete text (the unfinished last one included)."""
    decoder = AnsiDecoder()
    lines, _ = decoder.feed(text)
    last = decoder.finish()
    if last is not None:
        lines.append(last)
    return lines


def strip_ansi(text: str) -> str:
    """`text` as plain lines, joined with "\\n"."""
    return "\n".join(line.text for line in decode_lines(text))
