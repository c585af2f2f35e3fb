"""Presets: parsing the TOML file, placeholders as separate argv items, the shipped example, broken files."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from training_studio.runner.presets import (
    PresetError,
    check_presets,
    ensure_presets_file,
    example_presets_text,
    load_presets,
    parse_preset,
    parse_presets_text,
    substitute,
)
from training_studio.runner.progress import bar_label_pattern
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


def uncommented_example() -> str:
    text = example_presets_text()
    body = "# --- kohya" + text.split("# --- kohya", 1)[1]
    return "\n".join(line[2:] if line.startswith("# ") else line
                     for line in body.splitlines() if not line.startswith("# ---"))


def test_the_shipped_example_defines_nothing_until_uncommented(tmp_path: Path) -> None:
    written = ensure_presets_file(tmp_path)
    assert written == tmp_path / "presets.toml"
    assert load_presets(tmp_path) == []
    assert ensure_presets_file(tmp_path) is None  # never overwrites the user's file
    presets = {p.id: p for p in parse_presets_text(uncommented_example())}
    assert set(presets) == {"kohya-sd15-lora", "kohya-sdxl-lora", "kohya-flux-lora", "diffusers-sd15-lora",
                            "diffusers-sdxl-dreambooth-lora", "ai-toolkit-flux-lora"}
    kohya, diffusers = presets["kohya-sd15-lora"], presets["diffusers-sd15-lora"]
    assert (kohya.progress_format, kohya.loss_key, kohya.dataset_layout, kohya.progress_bar) == \
        ("tqdm", "avr_loss", "kohya", "steps")
    assert (diffusers.progress_format, diffusers.loss_key, diffusers.progress_bar) == ("tqdm", "step_loss", "Steps")
    assert presets["diffusers-sdxl-dreambooth-lora"].loss_key == "loss"
    assert any("train_network.py" in item for item in kohya.command)
    assert any("sdxl_train_network.py" in item for item in presets["kohya-sdxl-lora"].command)
    assert any("flux_train_network.py" in item for item in presets["kohya-flux-lora"].command)
    assert any("train_text_to_image_lora.py" in item for item in diffusers.command)
    assert any("train_dreambooth_lora_sdxl.py" in item for item in presets["diffusers-sdxl-dreambooth-lora"].command)
    argv = kohya.build_argv(dataset_dir=Path("/d"), output_dir=Path("/o"), total_steps=500, params={})
    assert "--max_train_steps=500" in argv and "--train_data_dir=/d" in argv
    # what users set most, with bounds
    for preset in presets.values():
        names = {spec.name for spec in preset.params_schema}
        assert {"learning_rate", "resolution", "batch_size", "seed", "precision"} <= names, preset.id
        assert names & {"network_dim", "rank"}, preset.id
        for spec in preset.params_schema:
            if spec.type.value in ("int", "float"):
                assert spec.min is not None and spec.max is not None, (preset.id, spec.name)


def test_the_ai_toolkit_preset_renders_its_config_into_the_job_folder(tmp_path: Path) -> None:
    import yaml

    preset = {p.id: p for p in parse_presets_text(uncommented_example())}["ai-toolkit-flux-lora"]
    dataset = tmp_path / "kohya"
    (dataset / "10_cats").mkdir(parents=True)
    output = tmp_path / "jobs" / "abc123"
    hostile = 'a "quoted" prompt\nwith: yaml {braces} and \\ backslash'
    run = preset.prepare(job_id="abc123", dataset_dir=dataset, output_dir=output, total_steps=40,
                         params={"sample_prompt": hostile, "learning_rate": 2e-4})
    assert run.config_path == output / "job.yaml" and run.argv[-1] == str(output / "job.yaml")
    config = yaml.safe_load(run.config_path.read_text())["config"]
    process = config["process"][0]
    assert config["name"] == "abc123" and process["training_folder"] == str(output)
    assert process["datasets"][0]["folder_path"] == str(dataset / "10_cats")  # the images with their captions
    assert process["train"]["steps"] == 40 and float(process["train"]["lr"]) == 2e-4
    assert process["sample"]["prompts"] == [hostile]  # escaped: one string, whatever it holds
    assert run.progress_bar == "abc123"


@pytest.mark.parametrize("change, message", [
    ({"progress_bar": "{nope}", "progress": "tqdm"}, "progress_bar: unknown placeholder '{nope}'"),
    ({"progress_bar": "steps"}, 'progress_bar needs progress = "tqdm"'),
    ({"progress_bar": ""}, "progress_bar must be"),
    ({"config_file": "../x.yaml", "config_template": "a"}, "config_file must be a file name"),
    ({"config_file": "x.yaml"}, "go together"),
    ({"config_template": "a: 1"}, "go together"),
    ({"config_file": "x.yaml", "config_template": "a: {params.missing}"},
     "config_template: unknown placeholder '{params.missing}'"),
    ({"config_file": "x.yaml", "config_template": "a: {config_file}"}, "config_template: unknown placeholder"),
    ({"config_file": "x.yaml", "config_template": "a", "config_template_file": "/t.yaml"}, "not both"),
])
def test_bad_progress_bar_and_config_fields_are_refused_with_the_reason(change: dict, message: str) -> None:
    table = {"id": "ok", "command": ["python", "train.py"], **change}
    with pytest.raises(PresetError, match=re.escape(message)):
        parse_preset(table)


def test_a_label_pattern_takes_placeholders_as_literal_text() -> None:
    [preset] = parse_presets_text('[[preset]]\nid = "p"\ncommand = ["python", "run.py"]\nprogress = "tqdm"\n'
                                  'progress_bar = "run {params.name} *"\n[[preset.params]]\nname = "name"\n'
                                  'type = "str"\ndefault = "x"\n')
    run = preset.prepare(job_id="j", dataset_dir=Path("/d"), output_dir=Path("/o"), total_steps=5,
                         params={"name": "a*b?"})
    pattern = bar_label_pattern(run.progress_bar)
    assert pattern.fullmatch("run a*b? 3 of 4")
    assert not pattern.fullmatch("run aXXb? 3 of 4") and not pattern.fullmatch("run a*bc 1")


def test_check_reports_each_preset_with_its_exact_problem(tmp_path: Path) -> None:
    program = tmp_path / "trainer.sh"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    not_executable = tmp_path / "plain.txt"
    not_executable.write_text("")
    (tmp_path / "presets.toml").write_text(BROKEN_PRESETS.format(program=program, plain=not_executable,
                                                                 tmp=tmp_path))
    report = check_presets(tmp_path)
    assert {entry.label: entry.error for entry in report.presets} == {
        "ok": None,
        "missing-program": "program '/no/such/accelerate' not found",
        "not-on-path": "program 'no-such-trainer-xyz' not found on PATH",
        "not-executable": f"program '{not_executable}' is not executable",
        "unknown-placeholder": "unknown placeholder '{steps}' in '--max_train_steps={steps}'",
        "bad-schema": "params[0] (rank): type must be int, float, str, bool or choice",
        "#7": "the id 'ok' is used twice",
        "missing-cwd": f"cwd '{tmp_path / 'nowhere'}' is not a folder",
        "missing-template": f"config_template_file '{tmp_path / 'nope.yaml'}': No such file or directory",
        "installable": f"program '{tmp_path / 'later.sh'}' not found",
    }
    # the server lists them all, the broken ones with their error, and refuses jobs on them
    listed = {m.id: m for m in list_base_models(tmp_path)}
    assert listed["ok"].error is None and listed["missing-program"].error == "program '/no/such/accelerate' not found"
    assert listed["bad-schema"].params_schema == [] and listed["bad-schema"].error.startswith("params[0]")
    assert find_base_model("ok", tmp_path) is not None and find_base_model("bad-schema", tmp_path) is None
    # a well-formed preset whose program is missing still takes jobs: they fail at start, saying why
    assert find_base_model("missing-program", tmp_path).error is None
    # installing the program fixes it without touching the file
    later = tmp_path / "later.sh"
    assert {e.label: e.error for e in check_presets(tmp_path).presets}["installable"] == f"program '{later}' not found"
    later.write_text("#!/bin/sh\n")
    later.chmod(0o755)
    assert {e.label: e.error for e in check_presets(tmp_path).presets}["installable"] is None


BROKEN_PRESETS = """
[[preset]]
id = "ok"
command = ["{program}", "train.py", "--max_train_steps={{total_steps}}"]
[[preset]]
id = "missing-program"
command = ["/no/such/accelerate", "launch", "train_network.py"]
[[preset]]
id = "not-on-path"
command = ["no-such-trainer-xyz"]
[[preset]]
id = "not-executable"
command = ["{plain}"]
[[preset]]
id = "unknown-placeholder"
command = ["{program}", "--max_train_steps={{steps}}"]
[[preset]]
id = "bad-schema"
command = ["{program}"]
[[preset.params]]
name = "rank"
type = "integer"
default = 4
[[preset]]
id = "ok"
command = ["{program}"]
[[preset]]
id = "missing-cwd"
cwd = "{tmp}/nowhere"
command = ["{program}"]
[[preset]]
id = "missing-template"
command = ["{program}", "{{config_file}}"]
config_file = "job.yaml"
config_template_file = "{tmp}/nope.yaml"
[[preset]]
id = "installable"
command = ["{tmp}/later.sh"]
"""


def test_presets_check_command_prints_the_report(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "presets.toml").write_text(
        '[[preset]]\nid = "fine"\ncommand = ["python3", "-c", "pass"]\n'
        '[[preset]]\nid = "gone"\ncommand = ["/no/such/python", "train.py"]\n'
        '[[preset]]\nid = "typo"\ncommand = ["python3", "{dataset}"]\n'
        '[[preset]]\nid = "bad-schema"\ncommand = ["python3", "-c", "pass"]\n'
        '[[preset.params]]\nname = "rank"\ntype = "integer"\n')
    result = subprocess.run([sys.executable, "-m", "training_studio", "presets", "check", "--data-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'presets.toml'}:",
        "  fine: OK",
        "  gone: program '/no/such/python' not found",
        "  typo: unknown placeholder '{dataset}' in '{dataset}'",
        "  bad-schema: params[0] (rank): type must be int, float, str, bool or choice",
    ]
    (tmp_path / "presets.toml").write_text("[[preset]\n")
    broken = subprocess.run([sys.executable, "-m", "training_studio", "presets", "check", "--data-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "is not valid TOML" in broken.stdout
    (tmp_path / "presets.toml").write_text('[[preset]]\nid = "fine"\ncommand = ["python3", "-c", "pass"]\n')
    fine = subprocess.run([sys.executable, "-m", "training_studio", "presets", "check", "--data-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert fine.returncode == 0 and fine.stdout.splitlines()[1:] == ["  fine: OK"]


def test_substitute_keeps_escaped_braces() -> None:
    assert substitute("{{a}} {x}", {"x": "{y}"}) == "{a} {y}"


@pytest.mark.parametrize("glob, message", [
    ("../x/*.png", "relative pattern inside the output folder"),
    ("/abs/*.png", "relative pattern inside the output folder"),
    ("a//b.png", "relative pattern inside the output folder"),
    ("s/{epoch}.png", "unknown placeholder '{epoch}'"),
    ("s/{step}_{step}.png", "names {step} twice"),
    ("", "must be a relative pattern"),
])
def test_bad_output_globs_are_refused(glob: str, message: str) -> None:
    with pytest.raises(PresetError, match=re.escape(message)):
        parse_preset({"id": "ok", "command": ["python"], "samples_glob": glob})


def test_outputs_are_found_with_their_step_and_only_as_declared(tmp_path: Path) -> None:
    from training_studio.runner.presets import find_outputs, output_file_allowed

    (tmp_path / "sample").mkdir()
    for name in ["sample/lora_000020_00_20261204142621.png", "sample/lora_000010_01_20261204142600.png",
                 "sample/notes.txt", "lora-step00000020.safetensors", "lora.safetensors"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sample" / "dir_000030_00_x.png").mkdir()  # a folder is not a sample
    samples = find_outputs(tmp_path, "sample/*_{step}_*.png", "")
    assert [(f.name, f.step) for f in samples] == [("sample/lora_000010_01_20261204142600.png", 10),
                                                   ("sample/lora_000020_00_20261204142621.png", 20)]
    assert [(f.name, f.step) for f in find_outputs(tmp_path, "lora-step{step}.safetensors", "")] == \
        [("lora-step00000020.safetensors", 20)]
    assert output_file_allowed("sample/*_{step}_*.png", "", "sample/lora_000020_00_20261204142621.png")
    assert not output_file_allowed("sample/*_{step}_*.png", "", "../sample/lora_000020_00_x.png")
    assert not output_file_allowed("sample/*_{step}_*.png", "", "sample/notes.txt")
    assert not output_file_allowed("{job_id}/{job_id}_{step}.safetensors", "abc", "xyz/xyz_000000020.safetensors")
    assert find_outputs(tmp_path / "missing", "sample/*_{step}_*.png", "") == []


def test_the_server_start_logs_the_presets_report(tmp_path: Path, caplog) -> None:
    (tmp_path / "presets.toml").write_text('[[preset]]\nid = "fine"\ncommand = ["python3", "-c", "pass"]\n'
                                          '[[preset]]\nid = "typo"\ncommand = ["python3", "{dataset}"]\n')
    with caplog.at_level(logging.INFO, logger="training_studio.runner.presets"):
        assert ensure_presets_file(tmp_path) is None
    messages = [record.getMessage() for record in caplog.records]
    assert "preset fine: OK" in messages
    assert "preset typo: unknown placeholder '{dataset}' in '{dataset}'" in messages
