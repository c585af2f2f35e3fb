"""The progress readers: JSON lines, real tqdm output, arbitrary bytes, and the error-line logic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from training_studio.runner.progress import (
    ErrorTracker,
    LogLine,
    ProgressPoint,
    StreamReader,
    TrainerEvent,
    parse_tqdm_line,
)

TRAINERS = Path(__file__).parent / "trainers"


def feed_all(reader: StreamReader, chunks: list[bytes]) -> list:
    items = []
    for chunk in chunks:
        items.extend(reader.feed(chunk))
    items.extend(reader.close())
    return items


def test_json_lines_are_progress_events_or_log() -> None:
    data = (
        b'{"step": 1, "total_steps": 10, "loss": 0.5, "message": "warming up"}\n'
        b"plain log text\n"
        b'{"event": "checkpoint", "state": "writing"}\n'
        b'{"step": "two"}\n'
        b'{"not": "progress"}\n'
        b'{"step": 2, "total_steps": 10, "loss": NaN}\n'
        b'[1, 2]\n'
        b'{"step": 3, "total_steps": 10, "loss": 0.25}'  # no trailing newline: flushed by close()
    )
    items = feed_all(StreamReader(), [data])
    assert items[0] == ProgressPoint(step=1, total_steps=10, loss=0.5, message="warming up")
    assert items[1] == LogLine("plain log text")
    assert isinstance(items[2], TrainerEvent) and items[2].name == "checkpoint"
    assert items[2].data["state"] == "writing"
    assert items[3] == LogLine('{"step": "two"}')
    assert items[4] == LogLine('{"not": "progress"}')
    assert items[5] == ProgressPoint(step=2, total_steps=10, loss=None)  # NaN is no loss
    assert items[6] == LogLine("[1, 2]")
    assert items[7] == ProgressPoint(step=3, total_steps=10, loss=0.25)


def test_chunks_split_anywhere_even_inside_a_character() -> None:
    text = '{"step": 7, "total_steps": 9, "loss": 0.125, "message": "é→😀"}\nlöss ünits\n'
    data = text.encode()
    whole = feed_all(StreamReader(), [data])
    for size in (1, 2, 3, 5):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert feed_all(StreamReader(), chunks) == whole
    assert whole == [ProgressPoint(step=7, total_steps=9, loss=0.125, message="é→😀"), LogLine("löss ünits")]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    items = feed_all(StreamReader(), [b"bad \xff\xfe bytes\n"])
    assert items == [LogLine("bad \ufffd\ufffd bytes")]


def test_an_endless_line_is_cut_into_bounded_pieces() -> None:
    reader = StreamReader()
    items = []
    for _ in range(40):
        items.extend(reader.feed(b"x" * 10_000))
    assert items and all(isinstance(item, LogLine) and len(item.text) <= 64 * 1024 for item in items)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20), st.sampled_from(["jsonl", "tqdm"]))
def test_arbitrary_bytes_never_raise(chunks: list[bytes], mode: str) -> None:
    reader = StreamReader(mode, "loss")  # type: ignore[arg-type]
    items = feed_all(reader, chunks)
    assert all(isinstance(item, (ProgressPoint, TrainerEvent, LogLine)) for item in items)
    tracker = ErrorTracker()
    for item in items:
        if isinstance(item, LogLine):
            tracker.add(item.text)
    tracker.last_error_line()


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=10**6),
       st.floats(allow_nan=False, allow_infinity=False, width=32), st.data())
def test_json_progress_survives_any_chunking(step: int, total: int, loss: float, data) -> None:
    line = (json.dumps({"step": step, "total_steps": total, "loss": loss}) + "\n").encode()
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(line)), max_size=5)))
    chunks = [line[a:b] for a, b in zip([0, *cuts], [*cuts, len(line)])]
    assert feed_all(StreamReader(), chunks) == [ProgressPoint(step=step, total_steps=total, loss=loss)]


def run_real_tqdm(total: int, key: str) -> bytes:
    result = subprocess.run([sys.executable, str(TRAINERS / "uses_tqdm.py"), str(total), key],
                            capture_output=True, timeout=60, check=True)
    return result.stderr


def test_real_tqdm_output_is_read_with_the_presets_loss_key() -> None:
    stderr = run_real_tqdm(40, "avr_loss")
    assert b"\r" in stderr  # tqdm's default: carriage-return updates
    reader = StreamReader("tqdm", "avr_loss")
    items = feed_all(reader, [stderr[i:i + 7] for i in range(0, len(stderr), 7)])
    points = [item for item in items if isinstance(item, ProgressPoint)]
    assert points[-1].step == 40 and points[-1].total_steps == 40
    assert points[-1].loss is not None and abs(points[-1].loss - 2.0 / 41) < 1e-3
    assert all(p.total_steps == 40 for p in points)
    assert [p.step for p in points] == sorted(p.step for p in points)


def test_tqdm_bar_without_the_key_still_gives_the_step() -> None:
    stderr = run_real_tqdm(10, "step_loss")
    points = [item for item in feed_all(StreamReader("tqdm", "loss"), [stderr]) if isinstance(item, ProgressPoint)]
    assert points[-1].step == 10 and points[-1].loss is None


def test_tqdm_lines_seen_by_kohya_and_diffusers() -> None:
    kohya = "steps:  10%|█         | 100/1000 [00:30<04:30,  3.33it/s, avr_loss=0.0812]"
    diffusers = "Steps:  50%|█████     | 5/10 [00:01<00:01,  4.1it/s, lr=0.0001, step_loss=0.173]"
    assert parse_tqdm_line(kohya, "avr_loss") == ProgressPoint(step=100, total_steps=1000, loss=0.0812)
    assert parse_tqdm_line(diffusers, "step_loss") == ProgressPoint(step=5, total_steps=10, loss=0.173)
    assert parse_tqdm_line("loading 3 files", "loss") is None


def test_tqdm_mode_still_reads_json_progress_lines() -> None:
    items = feed_all(StreamReader("tqdm", "loss"), [b'{"step": 4, "total_steps": 8, "loss": 0.5}\n'])
    assert items == [ProgressPoint(step=4, total_steps=8, loss=0.5)]


def test_last_error_line_prefers_the_exception_over_traceback_frames() -> None:
    result = subprocess.run([sys.executable, str(TRAINERS / "fails_with_error.py")], capture_output=True, timeout=60)
    assert result.returncode == 1
    tracker = ErrorTracker()
    for item in feed_all(StreamReader(), [result.stderr]):
        if isinstance(item, LogLine):
            tracker.add(item.text)
    assert tracker.last_error_line() == "ValueError: boom at step 3"


def test_last_error_line_skips_bars_and_blank_lines_and_falls_back_to_the_last_line() -> None:
    tracker = ErrorTracker()
    for line in ["loading", "RuntimeError: CUDA out of memory", "  ", "steps:  10%|█ | 1/10 [00:01<00:09]",
                 "cleaning up"]:
        tracker.add(line)
    assert tracker.last_error_line() == "RuntimeError: CUDA out of memory"
    plain = ErrorTracker()
    for line in ["first", "", "could not open the dataset", "steps: 5/10 [00:01<00:01, 3it/s]"]:
        plain.add(line)
    assert plain.last_error_line() == "could not open the dataset"
    assert ErrorTracker().last_error_line() is None
