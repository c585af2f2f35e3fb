"""Presets of kind "caption" and the {validation_dir} placeholder (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_studio.runner.presets import PresetError, parse_preset
from training_studio.runner.registry import find_base_model, list_base_models

CAPTIONER = {"id": "wd14", "kind": "caption", "command": ["tagger", "--folder", "{dataset_dir}"]}
TRAINER = {"id": "kohya", "dataset_layout": "kohya",
           "command": ["train", "--train_data_dir={dataset_dir}", "--validation_data_dir={validation_dir}"]}


def test_kind_defaults_to_train_and_accepts_caption():
    assert parse_preset(TRAINER).kind == "train"
    assert parse_preset(CAPTIONER).kind == "caption"
    with pytest.raises(PresetError, match="kind"):
        parse_preset({**CAPTIONER, "kind": "tagging"})


def test_validation_dir_is_the_validation_folder_in_the_presets_layout():
    argv = parse_preset(TRAINER).build_argv(dataset_dir=Path("/data/datasets/abc/kohya"), output_dir=Path("/o"),
                                            total_steps=10, params={})
    assert argv == ["train", "--train_data_dir=/data/datasets/abc/kohya",
                    "--validation_data_dir=/data/datasets/abc/validation/kohya"]


def test_caption_presets_are_not_base_models(tmp_path: Path):
    (tmp_path / "presets.toml").write_text(
        '[[preset]]\nid = "wd14"\nkind = "caption"\ncommand = ["python3", "{dataset_dir}"]\n'
        '[[preset]]\nid = "trainer"\ncommand = ["python3", "{dataset_dir}"]\n')
    ids = [model.id for model in list_base_models(tmp_path)]
    assert "trainer" in ids and "wd14" not in ids
    assert find_base_model("wd14", tmp_path) is None
    assert find_base_model("trainer", tmp_path) is not None
