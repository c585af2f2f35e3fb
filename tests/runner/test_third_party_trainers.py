"""The shipped presets for kohya sd-scripts, diffusers and ai-toolkit, run against stand-ins that print
through the real tqdm what the real scripts print (tests/runner/trainers/{kohya,diffusers,ai_toolkit}),
through the stand-in `accelerate launch` where the real preset uses accelerate. Their output is read as
the server reads it (progress.StreamReader with the preset's bar label and the job's total, one shared
PhaseContext, an ErrorTracker per stream) and recorded in a real Storage, in batches.

Checked for each: the stored step only rises and ends at the total, the total is the job's, the loss in
the metrics is the one the trainer displayed at every step, the phase shows before training, the
intermediate checkpoints and samples are written, and a crash gives the trainer's own root cause.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from training_studio.contract import JobStatus
from training_studio.runner.presets import Preset, find_outputs, parse_presets_text
from training_studio.runner.progress import (
    ErrorTracker,
    LogLine,
    PhaseContext,
    PhaseUpdate,
    ProgressPoint,
    StreamReader,
    describe_failure,
)
from training_studio.server.storage import Storage
from tests.runner.test_presets import uncommented_example

TRAINERS = Path(__file__).parent / "trainers"
PY = sys.executable
TOTAL = 40
JOB_ID = "0123456789abcdef0123456789abcdef"


def stand_in_presets() -> dict[str, Preset]:
    return {preset.id: preset for preset in parse_presets_text(stand_in_presets_text())}


def stand_in_preset_block(preset_id: str, new_id: str, env: dict[str, str]) -> str:
    """One preset of stand_in_presets_text() as its own [[preset]] text, renamed, with an env table."""
    text = stand_in_presets_text()
    block = next(part for part in text.split("[[preset]]\n") if part.startswith(f'id = "{preset_id}"\n'))
    env_table = "{ " + ", ".join(f'{key} = "{value}"' for key, value in env.items()) + " }"
    return f'[[preset]]\nid = "{new_id}"\nenv = {env_table}\n' + block.split("\n", 1)[1]


def stand_in_presets_text() -> str:
    """The shipped example with its programs and folders pointed at the stand-ins."""
    accelerate = f'"{PY}", "{TRAINERS / "accelerate_launch.py"}", "launch"'
    return (uncommented_example()
            .replace('"/path/to/sd-scripts/venv/bin/accelerate", "launch"', accelerate)
            .replace('"/path/to/venv/bin/accelerate", "launch"', accelerate)
            .replace('cwd = "/path/to/sd-scripts"', f'cwd = "{TRAINERS / "kohya"}"')
            .replace('cwd = "/path/to/diffusers/examples/text_to_image"', f'cwd = "{TRAINERS / "diffusers"}"')
            .replace('cwd = "/path/to/diffusers/examples/dreambooth"', f'cwd = "{TRAINERS / "diffusers"}"')
            .replace('"/path/to/ai-toolkit/venv/bin/python"', f'"{PY}"')
            .replace('cwd = "/path/to/ai-toolkit"', f'cwd = "{TRAINERS / "ai_toolkit"}"'))


# What each preset's run sets beyond the defaults, and what its trainer writes on the way.
CASES = {
    "kohya-sd15-lora": ({"save_every_n_steps": 20}, "loading image sizes 3/3",
                        ["lora-step00000020.safetensors", "lora.safetensors"]),
    "kohya-sdxl-lora": ({"save_every_n_steps": 20}, "caching text encoder outputs 3/3",
                        ["lora-step00000020.safetensors", "lora.safetensors"]),
    "kohya-flux-lora": ({"save_every_n_steps": 20}, "caching latents 3/3",
                        ["lora-step00000020.safetensors", "lora.safetensors"]),
    "diffusers-sd15-lora": ({"checkpointing_steps": 20}, "downloading config.json 100%",
                            ["checkpoint-20/pytorch_lora_weights.safetensors", "pytorch_lora_weights.safetensors"]),
    "diffusers-sdxl-dreambooth-lora": ({"checkpointing_steps": 20}, "downloading model_index.json 100%",
                                       ["checkpoint-20/pytorch_lora_weights.safetensors",
                                        "pytorch_lora_weights.safetensors"]),
    "ai-toolkit-flux-lora": ({"save_every": 20, "sample_every": 20}, "Caching latents to disk 3/3",
                             [f"{JOB_ID}/{JOB_ID}_000000020.safetensors", f"{JOB_ID}/{JOB_ID}.safetensors"]),
}


def make_datasets(root: Path) -> dict[str, Path]:
    kohya = root / "kohya" / "10_cats"
    kohya.mkdir(parents=True)
    folder = root / "imagefolder"
    folder.mkdir()
    lines = []
    for i in range(3):
        Image.new("RGB", (16, 16), (i * 40, 90, 200)).save(kohya / f"{i}.png")
        (kohya / f"{i}.txt").write_text(f"a cat number {i}")
    for i in range(14):
        Image.new("RGB", (16, 16), (i * 9, 90, 200)).save(folder / f"{i}.png")
        lines.append(json.dumps({"file_name": f"{i}.png", "text": f"a cat number {i}"}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return {"kohya": root / "kohya", "imagefolder": folder}


class Run:
    """One preset's trainer, started as the job runner starts it, read as the supervisor reads it."""

    def __init__(self, tmp_path: Path, preset_id: str, *, fail_at: int | None = None) -> None:
        self.preset = stand_in_presets()[preset_id]
        params, self.first_phase, self.outputs = CASES[preset_id]
        datasets = make_datasets(tmp_path / "datasets")
        self.output_dir = tmp_path / "jobs" / JOB_ID
        self.storage = Storage(tmp_path / "data")
        self.job = self.storage.create_job("job", None, preset_id, TOTAL, {})
        self.storage.set_job_status(self.job.id, JobStatus.RUNNING)
        self.run = self.preset.prepare(job_id=JOB_ID, dataset_dir=datasets[self.preset.dataset_layout],
                                       output_dir=self.output_dir, total_steps=TOTAL, params=params)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.record = tmp_path / "displayed.jsonl"
        env = {**os.environ, **self.preset.env, "PYTHONUNBUFFERED": "1", "STAND_IN_RECORD": str(self.record),
               "STAND_IN_STEP_DELAY": "0"}
        if fail_at is not None:
            env["STAND_IN_FAIL_AT_STEP"] = str(fail_at)
        self.result = subprocess.run(self.run.argv, cwd=self.preset.cwd, env=env, capture_output=True, timeout=180)
        self.items: list = []
        self.trackers: list[ErrorTracker] = []
        context = PhaseContext()
        for data in (self.result.stderr, self.result.stdout):
            reader = StreamReader("tqdm", self.preset.loss_key, progress_bar=self.run.progress_bar,
                                  total_steps=TOTAL, context=context)
            tracker = ErrorTracker()
            for start in range(0, len(data), 4096):  # chunks as a pipe delivers them
                self.items.extend(reader.feed(data[start:start + 4096]))
            self.items.extend(reader.close())
            for item in self.items:
                if isinstance(item, LogLine):
                    tracker.add(item.text)
            self.trackers.append(tracker)

    def displayed_losses(self) -> dict[int, float]:
        shown: dict[int, float] = {}
        for line in self.record.read_text().splitlines():
            entry = json.loads(line)
            shown[entry["step"]] = entry["loss"]  # the last one drawn for a step stays on screen
        return shown


@pytest.mark.parametrize("preset_id", list(CASES))
def test_a_preset_run_moves_forward_with_the_printed_loss_and_its_phases(tmp_path: Path, preset_id: str) -> None:
    run = Run(tmp_path, preset_id)
    assert run.result.returncode == 0, run.result.stderr.decode(errors="replace")[-3000:]
    points = [item for item in run.items if isinstance(item, ProgressPoint)]
    assert points and all(point.total_steps == TOTAL for point in points)
    # recorded in batches, as the supervisor flushes them: the stored step only ever rises
    seen_steps, seen_progress = [], []
    job_id = run.job.id
    for start in range(0, len(run.items), 7):
        batch = run.items[start:start + 7]
        rows = [(job_id, p.step, p.total_steps, p.loss, "2026-01-01T00:00:00Z") for p in batch
                if isinstance(p, ProgressPoint)]
        run.storage.record_progress(rows)
        phases = [p for p in batch if isinstance(p, PhaseUpdate)]
        if phases:
            run.storage.set_job_detail(job_id, phases[-1].text)
        job = run.storage.get_job(job_id)
        seen_steps.append(job.current_step or 0)
        seen_progress.append(job.progress)
    assert seen_steps == sorted(seen_steps) and seen_progress == sorted(seen_progress)
    job = run.storage.get_job(job_id)
    assert job.current_step == TOTAL and job.total_steps == TOTAL
    # the loss of every step is the one the trainer displayed for it
    stored = {point.step: point.loss for point in run.storage.metrics(job_id)}
    displayed = run.displayed_losses()
    assert len(displayed) >= TOTAL
    for step, loss in displayed.items():
        assert stored.get(step) == loss, (step, stored.get(step), loss)
    assert all(loss is None or displayed.get(step) == loss for step, loss in stored.items())
    # the phase shows before training, and is over once training runs
    first_point = next(i for i, item in enumerate(run.items) if isinstance(item, ProgressPoint))
    phases_before = [item.text for item in run.items[:first_point] if isinstance(item, PhaseUpdate)]
    assert run.first_phase in phases_before, phases_before
    # what it writes on the way
    for name in run.outputs:
        assert (run.output_dir / name).is_file(), sorted(str(p) for p in run.output_dir.rglob("*"))
    if run.preset.checkpoint_glob:
        matches = list(run.output_dir.glob(run.preset.checkpoint_glob))
        assert run.output_dir / run.outputs[-1] in matches
    # the intermediate checkpoints as the preset declares them, with their step
    checkpoints = find_outputs(run.output_dir, run.preset.checkpoints_glob, JOB_ID)
    assert [(f.name, f.step) for f in checkpoints][:1] == [(run.outputs[0], 20)]
    if run.preset.samples_glob and preset_id.startswith("ai-toolkit"):
        assert [f.step for f in find_outputs(run.output_dir, run.preset.samples_glob, JOB_ID)] == [0, 20, 40]


def test_kohya_writes_its_samples_while_training(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    presets = stand_in_presets()
    preset = presets["kohya-sd15-lora"]
    datasets = make_datasets(tmp_path / "datasets")
    output = tmp_path / "out"
    run = preset.prepare(job_id=JOB_ID, dataset_dir=datasets["kohya"], output_dir=output, total_steps=TOTAL,
                         params={"save_every_n_steps": 20})
    argv = [*run.argv, "--sample_every_n_steps=20", f"--sample_prompts={prompts}"]
    result = subprocess.run(argv, cwd=preset.cwd, env={**os.environ, "STAND_IN_STEP_DELAY": "0"},
                            capture_output=True, timeout=180)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    samples = find_outputs(output, preset.samples_glob, JOB_ID)
    assert [f.step for f in samples] == [20, 40] and all(f.name.startswith("sample/lora_") for f in samples)
    reader = StreamReader("tqdm", "avr_loss", progress_bar=run.progress_bar, total_steps=TOTAL)
    items = reader.feed(result.stderr) + reader.close()
    assert PhaseUpdate("prompt: a cat 30/30") in items  # kohya logs the prompt, then draws its bar
    assert [p.step for p in items if isinstance(p, ProgressPoint)] == sorted(
        p.step for p in items if isinstance(p, ProgressPoint))


@pytest.mark.parametrize("preset_id", ["kohya-sdxl-lora", "diffusers-sd15-lora", "ai-toolkit-flux-lora"])
def test_a_crash_gives_the_trainers_root_cause_and_status(tmp_path: Path, preset_id: str) -> None:
    run = Run(tmp_path, preset_id, fail_at=3)
    assert run.result.returncode == 1
    error = describe_failure(run.result.returncode, run.trackers)
    assert error.startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB."), error
    assert error.endswith(" (exit status 1)")
    assert b"Traceback (most recent call last)" in run.result.stderr  # the whole traceback stays in the log
