"""The built-in trainer's step samples and intermediate checkpoints (issue 13), run as a real subprocess.

Every `--sample-every` steps a 2×2 grid of generated images lands in `samples/step-NNNNNN.png`, every
`--checkpoint-every` steps a checkpoint in `checkpoints/step-NNNNNN.npz`: names the built-in trainer's
declared globs match (so the server lists them), written whole (no temp file left), the same bytes for
the same seed, changing as the model learns, and without changing the training itself.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.trainers.images import write_image_set
from tests.trainers.test_builtin import json_lines, train
from training_studio.runner.presets import find_outputs
from training_studio.runner.registry import BUILTIN_BASE_MODEL, BUILTIN_CHECKPOINTS_GLOB, BUILTIN_SAMPLES_GLOB

STEPS = 40


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images") / "train"
    write_image_set(folder, 40, "warm", seed=3)
    return folder


@pytest.fixture(scope="module")
def sampled(dataset, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("sampled")
    result = train(dataset, output, STEPS, "--sample-every", "10", "--checkpoint-every", "20")
    assert result.returncode == 0, result.stderr
    (output / "stdout.jsonl").write_text(result.stdout)
    return output


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_samples_and_checkpoints_appear_at_their_steps_under_the_declared_names(sampled) -> None:
    samples = find_outputs(sampled, BUILTIN_SAMPLES_GLOB, "job")
    checkpoints = find_outputs(sampled, BUILTIN_CHECKPOINTS_GLOB, "job")
    assert [(f.name, f.step) for f in samples] == [(f"samples/step-{s:06d}.png", s) for s in (10, 20, 30, 40)]
    assert [(f.name, f.step) for f in checkpoints] == [(f"checkpoints/step-{s:06d}.npz", s) for s in (20, 40)]
    assert sorted(p.name for p in sampled.rglob("*.tmp")) == []
    # the final checkpoint and sample sheet are still the model's, where they always were
    assert (sampled / "checkpoint.npz").is_file() and (sampled / "samples.png").is_file()


def test_a_sample_is_a_2x2_grid_of_64px_tiles_that_changes_as_it_learns(sampled) -> None:
    first, last = pixels(sampled / "samples/step-000010.png"), pixels(sampled / "samples/step-000040.png")
    assert first.shape == last.shape == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2, 3)  # 32 px tiles drawn at 2x, 2 px gaps
    assert np.abs(first - last).mean() > 0.5  # the model moved between step 10 and step 40
    tiles = [last[2 + r * 66:66 + r * 66, 2 + c * 66:66 + c * 66] for r in range(2) for c in range(2)]
    assert all(np.abs(tiles[0] - other).mean() > 0.5 for other in tiles[1:])  # four different latent points


def test_an_intermediate_checkpoint_holds_the_model_at_its_step(sampled) -> None:
    with np.load(sampled / "checkpoints/step-000040.npz") as step, np.load(sampled / "checkpoint.npz") as final:
        assert str(step["kind"]) == "linear-vae" and int(step["resolution"]) == 32
        np.testing.assert_array_equal(step["W"], final["W"])  # step 40 is the last one
    with np.load(sampled / "checkpoints/step-000020.npz") as middle, np.load(sampled / "checkpoint.npz") as final:
        assert not np.array_equal(middle["W"], final["W"])


def test_samples_are_repeatable_by_seed_and_do_not_change_the_training(dataset, sampled, tmp_path) -> None:
    again, other_seed, plain = tmp_path / "again", tmp_path / "seed", tmp_path / "plain"
    assert train(dataset, again, STEPS, "--sample-every", "10").returncode == 0
    assert train(dataset, other_seed, STEPS, "--sample-every", "10", "--seed", "7").returncode == 0
    result = train(dataset, plain, STEPS)
    assert result.returncode == 0, result.stderr
    name = "samples/step-000030.png"
    assert (again / name).read_bytes() == (sampled / name).read_bytes()
    assert (other_seed / name).read_bytes() != (sampled / name).read_bytes()
    losses = [line["loss"] for line in json_lines(result.stdout) if "step" in line]
    sampled_losses = [line["loss"] for line in json_lines((sampled / "stdout.jsonl").read_text()) if "step" in line]
    assert losses == sampled_losses and len(losses) == STEPS
    assert not (plain / "samples").exists() and not (plain / "checkpoints").exists()  # 0: never


def test_a_sample_that_cannot_be_written_is_a_warning_not_the_end_of_the_run(dataset, tmp_path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "samples").write_bytes(b"a file where the samples folder would go")
    result = train(dataset, output, 20, "--sample-every", "5")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning:") == 1 and "sample_every" in result.stderr  # said once, then no retries
    assert (output / "checkpoint.npz").is_file()


def test_the_schema_defaults_give_a_default_run_a_few_samples_and_no_extra_checkpoints() -> None:
    specs = {spec.name: spec for spec in BUILTIN_BASE_MODEL.params_schema}
    assert specs["sample_every"].min == 0 and specs["checkpoint_every"].min == 0
    assert specs["checkpoint_every"].default == 0
    default_run_steps = 200  # the Train dialog's default
    assert 2 <= default_run_steps // specs["sample_every"].default <= 10


def test_the_grid_png_is_small(sampled) -> None:
    data = (sampled / "samples/step-000040.png").read_bytes()
    assert len(data) < 64 * 1024
    Image.open(io.BytesIO(data)).verify()
