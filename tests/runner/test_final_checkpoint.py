"""Which file a preset trainer that announces nothing leaves as its model (job_runner.final_checkpoint).

The newest `checkpoint_glob` match that is not an intermediate checkpoint (`checkpoints_glob`), else the
intermediate checkpoint of the highest step; never a file that resolves outside the job's folder or lies
in the control folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from training_studio.runner.job_runner import final_checkpoint

JOB_ID = "0123456789abcdef0123456789abcdef"


def write(folder: Path, name: str, mtime: float) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(name.encode())
    os.utime(path, (mtime, mtime))
    return path


def test_the_final_file_wins_over_a_newer_step_checkpoint_that_the_glob_also_matches(tmp_path) -> None:
    final = write(tmp_path, "lora.safetensors", 1000)
    write(tmp_path, "lora-step00000020.safetensors", 2000)
    write(tmp_path, "lora-step00000040.safetensors", 3000)
    assert final_checkpoint(tmp_path, "*.safetensors", "lora-step{step}.safetensors", JOB_ID) == final.resolve()


def test_among_final_files_the_newest_wins(tmp_path) -> None:
    write(tmp_path, "a/old.safetensors", 1000)
    newest = write(tmp_path, "b/new.safetensors", 2000)
    assert final_checkpoint(tmp_path, "*/*.safetensors", None, JOB_ID) == newest.resolve()


def test_without_a_final_file_the_highest_step_is_the_model(tmp_path) -> None:
    write(tmp_path, "checkpoint-100/weights.safetensors", 3000)
    highest = write(tmp_path, "checkpoint-1000/weights.safetensors", 1000)  # older, but the higher step
    write(tmp_path, "checkpoint-500/weights.safetensors", 2000)
    steps = "checkpoint-{step}/weights.safetensors"
    assert final_checkpoint(tmp_path, None, steps, JOB_ID) == highest.resolve()
    assert final_checkpoint(tmp_path, "weights.safetensors", steps, JOB_ID) == highest.resolve()  # not written
    assert final_checkpoint(tmp_path, None, None, JOB_ID) is None


def test_links_out_of_the_folder_and_the_control_folder_never_count(tmp_path) -> None:
    job, outside = tmp_path / "job", tmp_path / "outside"
    job.mkdir()
    secret = write(outside, "secret.safetensors", 1000)
    (job / "lora.safetensors").symlink_to(secret)
    (job / "lora-step00000090.safetensors").symlink_to(secret)
    write(job, ".training-studio/lora.safetensors", 5000)
    kept = write(job, "lora-step00000020.safetensors", 1000)
    assert final_checkpoint(job, "*.safetensors", "lora-step{step}.safetensors", JOB_ID) == kept.resolve()
    assert final_checkpoint(job, ".training-studio/*.safetensors", None, JOB_ID) is None
