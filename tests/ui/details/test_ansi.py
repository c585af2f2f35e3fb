"""ansi.py: terminal output to display lines — colours kept as spans, every other escape dropped, a line
redrawn with carriage returns kept in its last state, chunks split anywhere decoding the same as whole."""

from __future__ import annotations

import random

from training_studio.ui.jobs.details.ansi import AnsiDecoder, Line, Span, Style, decode_lines, rgb_of, strip_ansi

RED_BOLD = Style(fg=1, bold=True)


def test_sgr_colours_become_spans_and_never_stay_in_the_text():
    lines = decode_lines("\x1b[1;31mERROR\x1b[0m: disk \x1b[4munderlined\x1b[24m done\n")
    assert lines == [Line("ERROR: disk underlined done",
                          (Span(0, 5, RED_BOLD), Span(12, 10, Style(underline=True))))]


def test_extended_colours_reset_codes_and_bright_colours():
    [line] = decode_lines("\x1b[38;5;208ma\x1b[39mb\x1b[48;2;1;2;3mc\x1b[49;92md\x1b[22;7me\x1b[m")
    assert line.text == "abcde"
    assert [s.style for s in line.spans] == [Style(fg=208), Style(bg=(1, 2, 3)), Style(fg=10),
                                             Style(fg=10, inverse=True)]
    assert rgb_of(208, dark=False) == (255, 135, 0)
    assert rgb_of(232, dark=True) == (8, 8, 8)
    assert rgb_of((1, 2, 3), dark=True) == (1, 2, 3)
    assert rgb_of(1, dark=True) != rgb_of(1, dark=False)  # the basic colours suit the background


def test_other_escapes_and_control_characters_are_dropped():
    text = ("\x1b]0;window title\x07a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b[2K\x1b[1A\x1b(Bb\x07\x00c"
            "\x1bPdevice\x1b\\d\x9b31me\x1b\n")
    assert strip_ansi(text) == "alink bcde"


def test_carriage_return_keeps_only_the_last_state_of_a_line():
    text = "start\n 10%|#    |\r 50%|##   |\r100%|#####|\nafter\r\nwindows\r\n"
    assert strip_ansi(text) == "start\n100%|#####|\nafter\nwindows"


def test_the_unfinished_line_is_reported_as_it_stands_and_replaced_later():
    decoder = AnsiDecoder()
    assert decoder.feed("epoch 1\n 10%|") == ([Line("epoch 1")], Line(" 10%|"))
    assert decoder.feed("#") == ([], Line(" 10%|#"))
    assert decoder.feed("\r 90%|##") == ([], Line(" 90%|##"))
    # "\r" at the end of a chunk: it may be "\r\n" (a line break) or an overwrite; the next chunk decides.
    assert decoder.feed("\r") == ([], Line(" 90%|##"))
    assert decoder.feed("\n") == ([Line(" 90%|##")], None)


def test_a_chunk_may_end_inside_an_escape_sequence():
    decoder = AnsiDecoder()
    assert decoder.feed("plain \x1b[3") == ([], Line("plain "))
    assert decoder.feed("1mred\x1b") == ([], Line("plain red", (Span(6, 3, Style(fg=1)),)))
    lines, pending = decoder.feed("[0m!\n")
    assert lines == [Line("plain red!", (Span(6, 3, Style(fg=1)),))] and pending is None


def test_any_split_decodes_like_the_whole_text():
    text = ("\x1b[32mINFO\x1b[0m step 1 \x1b]0;t\x07ok\r\nbar 10%\rbar 100%\n\x1b[1;38;5;9mbold\x1b[0m tail\r\n"
            "x\x08y\n") * 20
    whole = decode_lines(text)
    chooser = random.Random(14)
    for _ in range(50):
        decoder = AnsiDecoder()
        lines: list[Line] = []
        position = 0
        while position < len(text):
            size = chooser.randint(1, 9)
            got, _pending = decoder.feed(text[position:position + size])
            lines.extend(got)
            position += size
        last = decoder.finish()
        if last is not None:
            lines.append(last)
        assert lines == whole


def test_backspace_and_style_runs_merge():
    [line] = decode_lines("ab\x08c \x1b[31mr\x1b[31me\x1b[1md")
    assert line.text == "ac red"
    assert line.spans == (Span(3, 2, Style(fg=1)), Span(5, 1, Style(fg=1, bold=True)))


def test_an_escape_that_never_ends_is_not_held_forever():
    decoder = AnsiDecoder()
    decoder.feed("\x1b]0;" + "t" * 10_000)
    lines, pending = decoder.feed("\nnext\n")
    assert lines[-1] == Line("next")
    assert all("\x1b" not in line.text for line in lines)
