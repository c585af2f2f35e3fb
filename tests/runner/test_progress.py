"""The progress readers: JSON lines, real tqdm output, arbitrary bytes, and the error-line logic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from training_studio.runner.progress import (
    MAX_ERROR_CHARS,
    ErrorTracker,
    LogLine,
    PhaseContext,
    PhaseUpdate,
    ProgressPoint,
    StreamReader,
    TrainerEvent,
    clean_log_message,
    describe_failure,
    parse_bar,
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
    assert all(isinstance(item, (ProgressPoint, TrainerEvent, LogLine, PhaseUpdate)) for item in items)
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


# --- issue 13: the training bar only, phases, the root cause ------------------------------------------

def read(lines: list[str], **options) -> list:
    reader = StreamReader("tqdm", options.pop("loss_key", "loss"), **options)
    return feed_all(reader, ["\r".join(lines).encode() + b"\n"])


KOHYA_START = [
    "2026-12-04 14:26:21 INFO     loading image sizes.            train_util.py:992",
    "  0%|          | 0/16 [00:00<?, ?it/s]",
    "100%|██████████| 16/16 [00:00<00:00, 439.72it/s]",
    "                    INFO     caching latents...              train_util.py:1170",
    " 45%|████▌     | 9/20 [00:01<00:01, 9.1it/s]",
    "steps:   0%|          | 0/40 [00:00<?, ?it/s]",
    "steps:   2%|▎         | 1/40 [00:00<00:10, 3.9it/s, avr_loss=0.331]",
    "                    INFO     generating sample images at    train_util.py:6394",
    "  7%|▋         | 2/30 [00:00<00:01, 25.1it/s]",
    "steps:   5%|▌         | 2/40 [00:01<00:10, 3.7it/s, avr_loss=0.282]",
]


def test_only_the_named_training_bar_is_progress_and_the_other_bars_are_phases() -> None:
    items = read(KOHYA_START, loss_key="avr_loss", progress_bar="steps", total_steps=40)
    assert items == [
        LogLine(KOHYA_START[0]),
        PhaseUpdate("loading image sizes 0/16"),
        PhaseUpdate("loading image sizes 16/16"),
        LogLine(KOHYA_START[3]),
        PhaseUpdate("caching latents 9/20"),
        PhaseUpdate(None),
        ProgressPoint(step=0, total_steps=40),
        ProgressPoint(step=1, total_steps=40, loss=0.331),
        LogLine(KOHYA_START[7]),
        PhaseUpdate("generating sample images at 2/30"),
        PhaseUpdate(None),
        ProgressPoint(step=2, total_steps=40, loss=0.282),
    ]


def test_without_a_label_only_a_bar_counting_to_the_jobs_total_is_progress() -> None:
    items = read(KOHYA_START, loss_key="avr_loss", total_steps=40)
    assert [p.step for p in items if isinstance(p, ProgressPoint)] == [0, 1, 2]
    # a 16-image bar on a 16-step job is what it is: the job's total decides without a label
    items = read(KOHYA_START[:3], total_steps=16)
    assert [p.step for p in items if isinstance(p, ProgressPoint)] == [0, 16]


def test_a_label_is_matched_whole_so_validation_steps_is_not_steps() -> None:
    lines = ["validation steps:  50%|█████     | 2/4 [00:00<00:00, 9.1it/s, val_avg_loss=0.5]",
             "steps:  10%|█         | 4/40 [00:01<00:09, 3.9it/s, avr_loss=0.2]"]
    items = read(lines, loss_key="avr_loss", progress_bar="steps", total_steps=40)
    assert items == [PhaseUpdate("validation steps 2/4"), PhaseUpdate(None),
                     ProgressPoint(step=4, total_steps=40, loss=0.2)]


def test_diffusers_downloads_and_pipeline_loads_are_phases() -> None:
    lines = ["config.json:   0%|          | 0.00/617 [00:00<?, ?B/s]",
             "config.json: 100%|██████████| 617/617 [00:00<00:00, 2.10MB/s]",
             "diffusion_pytorch_model.safetensors:  45%|████▌     | 1.55G/3.44G [00:10<00:12, 150MB/s]",
             "Steps:  35%|███▌      | 14/40 [00:05<00:09, 2.8it/s, lr=0.0001, step_loss=0.173]",
             "Loading pipeline components...: 100%|██████████| 7/7 [00:00<00:00, 312.5it/s]",
             "Steps:  38%|███▊      | 15/40 [00:06<00:09, 2.8it/s, lr=0.0001, step_loss=0.2]"]
    items = read(lines, loss_key="step_loss", progress_bar="Steps", total_steps=40)
    assert items == [PhaseUpdate("downloading config.json 0%"), PhaseUpdate("downloading config.json 100%"),
                     PhaseUpdate("downloading diffusion_pytorch_model.safetensors 45%"), PhaseUpdate(None),
                     ProgressPoint(step=14, total_steps=40, loss=0.173),
                     PhaseUpdate("Loading pipeline components 7/7"), PhaseUpdate(None),
                     ProgressPoint(step=15, total_steps=40, loss=0.2)]


def test_postfixes_in_both_forms_are_read() -> None:
    ai_toolkit = "my_lora:  10%|█         | 4/40 [00:02<00:18,  1.98it/s, lr: 1.0e-04 loss: 4.123e-01]"
    tqdm_style = "steps:  10%|█         | 4/40 [00:02<00:18, 2it/s, Keys Scaled=3, avr_loss=0.0812]"
    assert parse_bar(ai_toolkit).postfix() == {"lr": "1.0e-04", "loss": "4.123e-01"}
    assert parse_tqdm_line(ai_toolkit, "loss") == ProgressPoint(step=4, total_steps=40, loss=0.4123)
    assert parse_tqdm_line(tqdm_style, "avr_loss") == ProgressPoint(step=4, total_steps=40, loss=0.0812)
    assert read([ai_toolkit], progress_bar="my_lora", total_steps=40) == [
        ProgressPoint(step=4, total_steps=40, loss=0.4123)]


def test_a_bar_without_a_total_is_a_phase() -> None:
    assert read(["Generating: 5it [00:01, 3.21it/s]"], total_steps=40) == [PhaseUpdate("Generating 5it")]


def test_the_readers_of_both_streams_share_the_last_message() -> None:
    context = PhaseContext()
    stdout = StreamReader("tqdm", "avr_loss", progress_bar="steps", total_steps=40, context=context)
    stderr = StreamReader("tqdm", "avr_loss", progress_bar="steps", total_steps=40, context=context)
    assert stdout.feed(b"loading image sizes.\n") == [LogLine("loading image sizes.")]
    assert stderr.feed(b"100%|##########| 16/16 [00:00<00:00, 439.72it/s]\n") == [
        PhaseUpdate("loading image sizes 16/16")]


def test_log_prefixes_are_not_part_of_the_phase() -> None:
    assert clean_log_message("12/04/2026 14:26:47 - INFO - __main__ - Running validation... ") == "Running validation"
    assert clean_log_message("2026-12-04 14:26:21 INFO     caching latents...   train_util.py:1170") == \
        "caching latents"
    assert clean_log_message("[14:26:21] WARNING loading model") == "loading model"
    assert clean_log_message("generating sample images at step / サンプル画像生成 ステップ: 20") == \
        "generating sample images at step: 20"


def run_stand_in(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    import os
    return subprocess.run([sys.executable, str(TRAINERS / "accelerate_launch.py"), "launch", *args],
                          capture_output=True, timeout=120, cwd=cwd, env={**os.environ, **env})


def trackers_of(result: subprocess.CompletedProcess[bytes]) -> list[ErrorTracker]:
    trackers = []
    for data in (result.stderr, result.stdout):
        tracker = ErrorTracker()
        for item in feed_all(StreamReader("tqdm", "avr_loss", progress_bar="steps", total_steps=40), [data]):
            if isinstance(item, LogLine):
                tracker.add(item.text)
        trackers.append(tracker)
    return trackers


def test_a_crash_through_the_launcher_names_the_trainers_exception_and_status(tmp_path: Path) -> None:
    (tmp_path / "data" / "10_cat").mkdir(parents=True)
    for i in range(3):
        (tmp_path / "data" / "10_cat" / f"{i}.png").write_bytes(b"png")
    result = run_stand_in([str(TRAINERS / "kohya" / "train_network.py"), "--pretrained_model_name_or_path=x",
                           "--train_data_dir=data", "--output_dir=out", "--max_train_steps=40"],
                          {"STAND_IN_FAIL_AT_STEP": "3", "STAND_IN_STEP_DELAY": "0"}, tmp_path)
    assert result.returncode == 1
    # the launcher's wrapper is the last thing printed...
    assert b"subprocess.CalledProcessError: Command" in result.stderr.strip().splitlines()[-1]
    error = describe_failure(1, trackers_of(result))
    # ...but the reason is the trainer's own exception, with the child's exit status
    assert error.startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB.")
    assert error.endswith("… (exit status 1)") and len(error) <= MAX_ERROR_CHARS
    # the supervisor's older entry point agrees on the cause
    assert trackers_of(result)[0].last_error_line().startswith("torch.OutOfMemoryError: CUDA out of memory.")


def test_a_child_killed_by_a_signal_is_reported_from_the_launchers_wrapper(tmp_path: Path) -> None:
    script = tmp_path / "dies.py"
    script.write_text("import os, signal\nprint('loading model', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    result = run_stand_in([str(script)], {}, tmp_path)
    assert result.returncode == 1
    assert describe_failure(1, trackers_of(result)) == "the trainer failed (killed by SIGKILL)"


def test_torchrun_summaries_give_way_to_the_trainers_exception() -> None:
    text = """Traceback (most recent call last):
  File "/sd-scripts/train_network.py", line 1200, in train
    loss = self.process_batch(batch)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.
Traceback (most recent call last):
  File "/venv/bin/accelerate", line 8, in <module>
    sys.exit(main())
torch.distributed.elastic.multiprocessing.errors.ChildFailedError: 
============================================================
train_network.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-04_14:26:21
  host      : gpu-box
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 4242)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""
    tracker = ErrorTracker()
    for line in text.splitlines():
        tracker.add(line)
    assert describe_failure(1, [tracker]) == \
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. (exit status 1)"


def test_without_an_exception_the_last_error_line_and_the_status_are_the_reason() -> None:
    tracker = ErrorTracker()
    for line in ["loading", "error: the dataset folder is empty", "bye"]:
        tracker.add(line)
    assert describe_failure(2, [tracker]) == "error: the dataset folder is empty (exit status 2)"
    assert describe_failure(-9, [ErrorTracker()]) == "the trainer was killed by SIGKILL"
    assert describe_failure(3, [ErrorTracker()]) == "the trainer failed (exit status 3)"


# ---- other series besides the loss (issue 14) -------------------------------------------------------

def test_json_progress_lines_carry_their_other_numeric_keys_as_series(caplog) -> None:
    reader = StreamReader("jsonl", name="job-1")
    lines = [
        {"step": 1, "loss": 0.5, "lr": 1e-4, "grad_norm": 3, "message": "hi"},
        {"step": 2, "flag": True, "text": "0.5", "nested": {"a": 1}, "none": None, "big": 10 ** 400,
         "bad name": 1.0, "x" * 65: 2.0, "ok/name-1.x_y": -2.5},
        {"step": 3, "loss": 0.25},
    ]
    payload = "\n".join(json.dumps(line) for line in lines).replace('"none": null', '"inf": Infinity') + "\n"
    with caplog.at_level("INFO", logger="training_studio.runner.progress"):
        points = [item for item in feed_all(reader, [payload.encode()]) if isinstance(item, ProgressPoint)]
    assert [p.scalars for p in points] == [{"lr": 1e-4, "grad_norm": 3.0}, {"ok/name-1.x_y": -2.5}, None]
    assert points[0].loss == 0.5 and points[0].message == "hi"
    said = [r.getMessage() for r in caplog.records if "ignoring series" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("job job-1: ") and "'bad name'" in said[0]


def test_at_most_sixteen_series_per_point_are_kept_in_the_line_s_order() -> None:
    line = {"step": 7, **{f"s{index:02d}": float(index) for index in range(20)}}
    [point] = StreamReader("jsonl").feed((json.dumps(line) + "\n").encode())
    assert point.scalars == {f"s{index:02d}": float(index) for index in range(16)}


def test_tqdm_postfix_keys_the_preset_names_are_series_the_loss_key_never() -> None:
    reader = StreamReader("tqdm", "avr_loss", progress_bar="steps", series=["lr", "lr/*", "avr_loss", "grad?"])
    bar = "steps:  10%|#   | 5/50 [00:01<00:09, 5.00it/s, avr_loss=0.3, lr=1e-4, lr/unet=2e-4, gradx=7, other=3]\r"
    [point] = reader.feed(bar.encode())
    assert point == ProgressPoint(step=5, total_steps=50, loss=0.3,
                                  scalars={"lr": 1e-4, "lr/unet": 2e-4, "gradx": 7.0})
    # ai-toolkit's `key: value` form, and a postfix value that is no number
    reader = StreamReader("tqdm", "loss", series=["lr"], total_steps=40)
    [point] = reader.feed(b"my_lora:  10%|#   | 4/40 [00:02<00:18, 2.00it/s, lr: 1.0e-04 loss: 4.1e-01]\r")
    assert point.loss == 0.41 and point.scalars == {"lr": 1e-4}
    [point] = StreamReader("tqdm", "loss", series=["lr"], total_steps=40).feed(
        b" 5/40 [00:02<00:18, 2.00it/s, loss=0.4, lr=n/a]\r")
    assert point.scalars is None
    # without `series` a tqdm point has none, as before
    [point] = StreamReader("tqdm", "avr_loss", progress_bar="steps").feed(bar.encode())
    assert point.scalars is None
