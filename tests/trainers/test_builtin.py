"""The built-in trainer, run as a real subprocess (`python -m training_studio train builtin ...`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.trainers.images import write_image_set


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    sets = {}
    for seed, style in enumerate(("warm", "cool")):
        folder = root / style / "train"
        write_image_set(folder, 100, style, seed=seed + 1)
        (folder / "metadata.jsonl").write_text("")  # the imagefolder layout has one; it is not an image
        sets[style] = root / style
    return sets


def train(dataset: Path, output: Path, steps: int = 300, *extra: str, timeout: float = 60
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training_studio", "train", "builtin", "--dataset-dir", str(dataset),
         "--output-dir", str(output), "--total-steps", str(steps), *extra],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def grid_pixels(output: Path) -> np.ndarray:
    with Image.open(output / "samples.png") as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def trained(image_sets, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    results = {}
    for style, dataset in image_sets.items():
        output = tmp_path_factory.mktemp(f"out-{style}")
        results[style] = (train(dataset, output, 300), output)
    return results


def test_it_reports_every_step_and_learns(trained) -> None:
    result, _ = trained["warm"]
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    steps = [line for line in lines if "step" in line]
    assert [line["step"] for line in steps] == list(range(1, 301))
    assert all(line["total_steps"] == 300 for line in steps)
    first, last = np.mean([s["loss"] for s in steps[:10]]), np.mean([s["loss"] for s in steps[-10:]])
    assert last < 0.5 * first


@pytest.mark.parametrize("style", ["warm", "cool"])
def test_held_out_reconstruction_beats_the_mean_image_by_30_percent(trained, style) -> None:
    result, _ = trained[style]
    evaluation = [line for line in json_lines(result.stdout) if line.get("event") == "evaluation"]
    assert len(evaluation) == 1
    report = evaluation[0]
    assert report["heldout_images"] == 10 and report["train_images"] == 90
    assert report["heldout_mse"] <= 0.7 * report["baseline_mse"]
    assert report["improvement"] == pytest.approx(1 - report["heldout_mse"] / report["baseline_mse"])


def test_it_announces_and_writes_a_checkpoint_and_a_sample_grid(trained) -> None:
    result, output = trained["warm"]
    events = [line for line in json_lines(result.stdout) if line.get("event") == "checkpoint"]
    assert [event["state"] for event in events] == ["writing", "written"]
    assert Path(events[1]["checkpoint"]) == output / "checkpoint.npz"
    assert Path(events[1]["samples"]) == output / "samples.png"
    with np.load(output / "checkpoint.npz") as checkpoint:
        assert checkpoint["mu"].shape == (32 * 32 * 3,)
        assert checkpoint["W"].shape == (32 * 32 * 3, 16)
        assert int(checkpoint["resolution"]) == 32
    pixels = grid_pixels(output)
    assert pixels.shape[0] >= 4 * 64 and pixels.shape[1] >= 4 * 64
    assert pixels.std() > 5  # not a blank image
    assert not list(output.glob("*.tmp"))


def test_two_image_sets_give_visibly_different_samples(trained) -> None:
    warm, cool = grid_pixels(trained["warm"][1]), grid_pixels(trained["cool"][1])
    assert np.abs(warm - cool).mean() > 30
    # each grid looks like its own training set: warm is red-dominant, cool blue/green-dominant
    assert warm[..., 0].mean() > warm[..., 2].mean() + 30
    assert cool[..., 2].mean() > cool[..., 0].mean() + 30


def test_an_empty_dataset_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = train(tmp_path / "empty", tmp_path / "out", 10)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: the dataset has no images")
    assert not (tmp_path / "out" / "checkpoint.npz").exists()


def test_unreadable_images_are_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "b.jpg").write_bytes(b"")
    result = train(folder, tmp_path / "out", 10)
    assert result.returncode == 1
    assert "none of the 2 images of the dataset could be read" in result.stderr
    assert "stepping" not in result.stdout and '"step"' not in result.stdout


def test_a_missing_dataset_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = train(tmp_path / "nowhere", tmp_path / "out", 10)
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_bad_arguments_are_a_usage_error(tmp_path: Path) -> None:
    result = train(tmp_path, tmp_path / "out", 0)
    assert result.returncode == 2
    assert "--total-steps" in result.stderr


def test_sigterm_stops_it_promptly(image_sets, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "training_studio", "train", "builtin", "--dataset-dir", str(image_sets["warm"]),
         "--output-dir", str(tmp_path / "out"), "--total-steps", "10000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert json.loads(first)["step"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 128 + signal.SIGTERM
        assert "stopped by SIGTERM" in process.stderr.read()  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait()
