"""Presets: parsing the TOML file, placeholders as separate argv items, the shipped example, broken files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from training_studio.runner.presets import (
    PresetError,
    ensure_presets_file,
    example_presets_text,
    load_presets,
    parse_preset,
    parse_presets_text,
    substitute,
)
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID, find_base_model, list_base_models

VALID = """
[[preset]]
id = "echo-trainer"
name = "Echo"
description = "prints its argv"
command = ["/bin/echo", "--data={dataset_dir}", "{output_dir}", "{total_steps}", "{base_model}",
           "--note", "{params.note}", "--flag={params.flag}", "{{literal}}"]
progress = "tqdm"
loss_key = "avr_loss"
dataset_layout = "kohya"
base_model = "some/model"
env = { A = "1" }
[[preset.params]]
name = "note"
type = "str"
default = "hello"
description = "free text"
[[preset.params]]
name = "flag"
type = "bool"
default = false
"""


def test_a_valid_preset_becomes_a_base_model_and_an_argv(tmp_path: Path) -> None:
    [preset] = parse_presets_text(VALID)
    info = preset.base_model
    assert info.id == "echo-trainer" and info.trainer == "preset:echo-trainer"
    assert [spec.name for spec in info.params_schema] == ["note", "flag"]
    assert preset.progress_format == "tqdm" and preset.loss_key == "avr_loss" and preset.dataset_layout == "kohya"
    hostile = "; rm -rf ~ $(touch pwned) `id` 'quoted' \"double\""
    argv = preset.build_argv(dataset_dir=tmp_path / "my data", output_dir=tmp_path / "out", total_steps=7,
                             params={"note": hostile, "flag": True})
    assert argv == ["/bin/echo", f"--data={tmp_path / 'my data'}", str(tmp_path / "out"), "7", "some/model",
                    "--note", hostile, "--flag=true", "{literal}"]


def test_defaults_fill_missing_params() -> None:
    [preset] = parse_presets_text(VALID)
    argv = preset.build_argv(dataset_dir=Path("/d"), output_dir=Path("/o"), total_steps=1, params={})
    assert "hello" in argv and "--flag=false" in argv


@pytest.mark.parametrize("change, message", [
    ({"id": "has space"}, "id"),
    ({"id": BUILTIN_BASE_MODEL_ID}, "built-in"),
    ({"command": []}, "command"),
    ({"command": "python train.py"}, "command"),
    ({"command": ["python", "{nope}"]}, "unknown placeholder"),
    ({"command": ["python", "{params.missing}"]}, "unknown placeholder"),
    ({"command": ["python", "a } b"]}, "unknown placeholder"),
    ({"progress": "csv"}, "progress"),
    ({"dataset_layout": "flat"}, "dataset_layout"),
    ({"checkpoint_glob": "../../etc/*"}, "checkpoint_glob"),
    ({"params": [{"name": "x", "type": "matrix", "default": 1}]}, "type"),
    ({"params": [{"name": "x", "type": "int", "default": 1}, {"name": "x", "type": "int", "default": 1}]}, "twice"),
    ({"env": {"A": 1}}, "env"),
    ({"params": [{"name": "x", "type": "int", "default": "abc"}]}, "bad default: x must be a whole number"),
    ({"params": [{"name": "x", "type": "int", "default": 5, "max": 3}]}, "bad default: x must be at most 3"),
    ({"params": [{"name": "x", "type": "choice", "default": "a"}]}, "choices"),
    ({"params": [{"name": "x", "type": "str"}]}, "needs a default"),
])
def test_bad_presets_are_refused_with_the_reason(change: dict, message: str) -> None:
    table = {"id": "ok", "command": ["python", "train.py"], **change}
    with pytest.raises(PresetError, match=message):
        parse_preset(table)


def test_a_broken_preset_is_skipped_and_the_others_kept(caplog) -> None:
    text = VALID + '\n[[preset]]\nid = "broken"\ncommand = ["x", "{what}"]\n'
    with caplog.at_level(logging.WARNING):
        presets = parse_presets_text(text)
    assert [p.id for p in presets] == ["echo-trainer"]
    assert "skipping preset broken" in caplog.text and "{what}" in caplog.text


def test_a_file_that_is_not_toml_defines_nothing_and_says_why(tmp_path: Path, caplog) -> None:
    (tmp_path / "presets.toml").write_text("[[preset]\nid = ")
    with caplog.at_level(logging.WARNING):
        assert load_presets(tmp_path) == []
    assert "not valid TOML" in caplog.text
    # the server keeps listing the built-in trainer
    assert [m.id for m in list_base_models(tmp_path)] == [BUILTIN_BASE_MODEL_ID]


def test_undecodable_file_defines_nothing(tmp_path: Path) -> None:
    (tmp_path / "presets.toml").write_bytes(b"\xff\xfe\x00garbage")
    assert load_presets(tmp_path) == []


def test_the_registry_lists_presets_after_the_builtin_and_sees_edits(tmp_path: Path) -> None:
    assert [m.id for m in list_base_models(tmp_path)] == [BUILTIN_BASE_MODEL_ID]
    (tmp_path / "presets.toml").write_text(VALID)
    assert [m.id for m in list_base_models(tmp_path)] == [BUILTIN_BASE_MODEL_ID, "echo-trainer"]
    assert find_base_model("echo-trainer", tmp_path) is not None
    (tmp_path / "presets.toml").write_text(VALID.replace("echo-trainer", "renamed") + "\n# longer\n")
    assert [m.id for m in list_base_models(tmp_path)] == [BUILTIN_BASE_MODEL_ID, "renamed"]


def test_the_shipped_example_defines_nothing_until_uncommented(tmp_path: Path) -> None:
    written = ensure_presets_file(tmp_path)
    assert written == tmp_path / "presets.toml"
    assert load_presets(tmp_path) == []
    assert ensure_presets_file(tmp_path) is None  # never overwrites the user's file
    text = example_presets_text()
    body = "# --- kohya" + text.split("# --- kohya", 1)[1]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line
                            for line in body.splitlines() if not line.startswith("# ---"))
    presets = {p.id: p for p in parse_presets_text(uncommented)}
    assert set(presets) == {"kohya-sd15-lora", "diffusers-sd15-lora"}
    kohya, diffusers = presets["kohya-sd15-lora"], presets["diffusers-sd15-lora"]
    assert (kohya.progress_format, kohya.loss_key, kohya.dataset_layout) == ("tqdm", "avr_loss", "kohya")
    assert (diffusers.progress_format, diffusers.loss_key) == ("tqdm", "step_loss")
    assert any("train_network.py" in item for item in kohya.command)
    assert any("train_text_to_image_lora.py" in item for item in diffusers.command)
    argv = kohya.build_argv(dataset_dir=Path("/d"), output_dir=Path("/o"), total_steps=500, params={})
    assert "--max_train_steps=500" in argv and "--train_data_dir=/d" in argv


def test_substitute_keeps_escaped_braces() -> None:
    assert substitute("{{a}} {x}", {"x": "{y}"}) == "{a} {y}"
