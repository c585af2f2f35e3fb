"""Property tests of the trainer-output readers (runner/progress.py), with Hypothesis.

A trainer's stdout/stderr is untrusted bytes arriving in arbitrary chunks. Whatever comes, the reader
must not raise, must not depend on where the chunks were cut, and must still recognise a valid JSON
progress line, an event line or a tqdm update wherever it sits in the stream.
"""

from __future__ import annotations

import json
import math
import re

from hypothesis import given
from hypothesis import strategies as st

from training_studio.runner.progress import (
    MAX_ERROR_CHARS,
    ErrorTracker,
    LogLine,
    PhaseUpdate,
    ProgressPoint,
    StreamReader,
    TrainerEvent,
    parse_json_line,
    parse_tqdm_line,
)

FORMATS = st.sampled_from(["jsonl", "tqdm"])
LOSS_KEYS = st.sampled_from([None, "loss", "avr_loss", "step_loss"])
SEPARATORS = st.sampled_from([b"\n", b"\r", b"\r\n"])
# Bytes that look like trainer output often enough to matter: separators, braces, UTF-8 fragments.
NOISY_BYTE = st.one_of(st.binary(min_size=1, max_size=1),
                       st.sampled_from([b"\n", b"\r", b"{", b"}", b'"step": 1', b"\xe2\x82", b"\xac",
                                        b"\xf0\x9f\x98", b"\x80", b"12/100 [", b"loss=0.1]", b"\x00"]))
GARBAGE = st.lists(NOISY_BYTE, max_size=200).map(b"".join)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """`data` split at the given offsets (any offsets, duplicates and out-of-range ones included)."""
    offsets = sorted({min(max(0, p), len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(offsets, offsets[1:])] or [b""]


def read_all(data: bytes, points: list[int], progress_format: str = "jsonl", loss_key: str | None = None) -> list:
    reader = StreamReader(progress_format, loss_key)  # type: ignore[arg-type]
    items = []
    for chunk in cut(data, points):
        items.extend(reader.feed(chunk))
    items.extend(reader.close())
    return items


CUTS = st.lists(st.integers(min_value=0, max_value=5000), max_size=40)


@given(data=st.binary(max_size=4000), points=CUTS, progress_format=FORMATS, loss_key=LOSS_KEYS)
def test_arbitrary_bytes_in_arbitrary_chunks_never_raise(data, points, progress_format, loss_key) -> None:
    items = read_all(data, points, progress_format, loss_key)
    for item in items:
        assert isinstance(item, (ProgressPoint, TrainerEvent, LogLine, PhaseUpdate))
        if isinstance(item, LogLine):
            assert item.text and "\n" not in item.text and "\r" not in item.text
        if isinstance(item, ProgressPoint):
            assert item.step >= 0
            assert item.total_steps is None or item.total_steps > 0
            assert item.loss is None or math.isfinite(item.loss)


@given(data=st.one_of(st.binary(max_size=3000), GARBAGE), points=CUTS, progress_format=FORMATS, loss_key=LOSS_KEYS)
def test_where_the_chunks_are_cut_does_not_matter(data, points, progress_format, loss_key) -> None:
    assert read_all(data, points, progress_format, loss_key) == read_all(data, [], progress_format, loss_key)


def expected_scalars(extra: dict) -> dict[str, float] | None:
    """Other numeric keys of a progress line are series (issue 14): finite numbers under names of
    [A-Za-z0-9_./-], 1-64 characters; anything else stays out."""
    kept = {}
    for name, value in extra.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        try:
            number = float(value)
        except OverflowError:
            continue
        if math.isfinite(number) and re.fullmatch(r"[A-Za-z0-9_./-]{1,64}", name):
            kept[name] = number
    return kept or None


def progress_lines():
    """A valid JSON progress line (as a trainer writes it) and the point it must give."""
    return st.builds(
        lambda step, total, loss, message, extra, ascii_only: (
            # Raw UTF-8 (what Python prints with ensure_ascii=False) puts multi-byte characters in the
            # stream, which the chunk cuts can split; lone surrogates cannot be raw UTF-8.
            json.dumps({"step": step, "total_steps": total, "loss": loss, "message": message, **extra},
                       ensure_ascii=ascii_only or any(0xD800 <= ord(ch) <= 0xDFFF for ch in message)
                       ).encode("utf-8", "backslashreplace"),
            ProgressPoint(step=step, total_steps=total if total > 0 else None,
                          loss=loss if loss is not None and math.isfinite(loss) else None,
                          message=message[:MAX_ERROR_CHARS], scalars=expected_scalars(extra)),
        ),
        st.integers(min_value=0, max_value=2**53),
        st.integers(min_value=-5, max_value=2**40),
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        st.text(max_size=600),
        st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("step", "total_steps", "loss", "message", "event")),
                        st.one_of(st.integers(), st.text(max_size=20), st.none()), max_size=3),
        st.booleans(),
    )


@given(before=GARBAGE, after=GARBAGE, line=progress_lines(), sep1=SEPARATORS, sep2=SEPARATORS, points=CUTS,
       progress_format=FORMATS)
def test_a_json_progress_line_is_recognised_anywhere_in_the_stream(before, after, line, sep1, sep2, points,
                                                                    progress_format) -> None:
    data_line, expected = line
    items = read_all(before + sep1 + data_line + sep2 + after, points, progress_format, "loss")
    assert expected in items


@given(before=GARBAGE, after=GARBAGE, name=st.text(min_size=1, max_size=30), state=st.text(max_size=30),
       sep=SEPARATORS, points=CUTS)
def test_an_event_line_is_recognised_anywhere_in_the_stream(before, after, name, state, sep, points) -> None:
    line = json.dumps({"event": name, "state": state}).encode()
    items = read_all(before + sep + line + sep + after, points)
    assert TrainerEvent(name=name, data={"event": name, "state": state}) in items


def tqdm_updates():
    """One tqdm bar update as tqdm draws it, and the point it must give (loss from the named postfix key)."""
    return st.builds(
        lambda desc, step, total, loss, key: (
            f"{desc}: {min(100, 100 * step // total)}%|{'█' * (10 * step // total):<10}| {step}/{total} "
            f"[00:01<00:10, 9.87it/s, lr=0.0001, {key}={loss:.6g}]",
            ProgressPoint(step=step, total_steps=total, loss=float(f"{loss:.6g}")),
            key,
        ),
        # A description is whatever the trainer names its bar; it cannot hold a line break.
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30),
        st.integers(min_value=0, max_value=10**6),
        st.integers(min_value=1, max_value=10**6),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
        st.sampled_from(["loss", "avr_loss", "step_loss"]),
    ).filter(lambda update: update[1].step <= update[1].total_steps)


@given(before=GARBAGE, after=GARBAGE, update=tqdm_updates(), points=CUTS)
def test_a_tqdm_update_is_recognised_anywhere_in_the_stream(before, after, update, points) -> None:
    text, expected, key = update
    # tqdm redraws its bar after a carriage return; the garbage around it is whatever else the trainer wrote.
    data = before + b"\r" + text.encode() + b"\r" + after
    items = read_all(data, points, "tqdm", key)
    assert expected in items


@given(text=st.text(max_size=2000), loss_key=LOSS_KEYS)
def test_single_line_parsers_never_raise(text, loss_key) -> None:
    parse_json_line(text)
    parse_tqdm_line(text, loss_key)
    tracker = ErrorTracker(keep=8)
    for line in text.splitlines():
        tracker.add(line)
    last = tracker.last_error_line()
    assert last is None or len(last) <= MAX_ERROR_CHARS


def test_deeply_nested_json_line_is_log_text_not_a_crash() -> None:
    nested = '{"step": ' + "[" * 30_000 + "]" * 30_000 + "}"
    items = read_all(nested.encode() + b"\n" + b'{"step": 3}\n', [7, 40_000])
    assert items[-1] == ProgressPoint(step=3)
    assert all(isinstance(item, LogLine) for item in items[:-1])


def test_a_line_without_end_is_cut_into_bounded_pieces_and_the_next_line_still_counts() -> None:
    endless = b"x" * 300_000
    items = read_all(endless + b'\n{"step": 9, "total_steps": 10}\n', list(range(0, 300_000, 65_000)))
    assert items[-1] == ProgressPoint(step=9, total_steps=10)
    assert sum(len(item.text) for item in items[:-1]) == 300_000
