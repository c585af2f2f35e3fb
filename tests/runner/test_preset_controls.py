"""The params_schema fields that shape the New job form's controls (issue 15): `step`, `unit` and
`log_scale`, checked in presets.toml (and by `presets check`) with the messages docs/api.md lists, filled in
the built-in trainer's schema and the shipped example presets."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from training_studio.runner.presets import PresetError, control_field_problem, parse_preset, parse_presets_text
from training_studio.runner.registry import BUILTIN_BASE_MODEL
from tests.runner.test_presets import uncommented_example


def preset_with(param: str) -> str:
    return ('[[preset]]\nid = "p"\ncommand = ["python3", "-c", "pass"]\n'
            '[[preset.params]]\nname = "lr"\n' + param + "\n")


FLOAT = 'type = "float"\ndefault = 0.001\nmin = 1e-6\nmax = 1.0\n'
INT = 'type = "int"\ndefault = 512\nmin = 256\nmax = 2048\n'


@pytest.mark.parametrize(("param", "problem"), [
    (INT + "step = 0", "step must be a number above 0"),
    (INT + "step = -64", "step must be a number above 0"),
    (INT + 'step = "big"', "step must be a number above 0"),
    (INT + "step = nan", "step must be a number above 0"),
    (INT + "step = 2.5", "step must be a whole number for an int parameter"),
    (INT + "unit = 5", 'unit must be a short text such as "px" or "steps" (at most 16 characters)'),
    (INT + 'unit = "pixels of the training images"',
     'unit must be a short text such as "px" or "steps" (at most 16 characters)'),
    (INT + 'unit = ""', 'unit must be a short text such as "px" or "steps" (at most 16 characters)'),
    ('type = "str"\ndefault = "x"\nunit = "px"', "step and unit only apply to int and float parameters"),
    ('type = "bool"\ndefault = true\nstep = 1', "step and unit only apply to int and float parameters"),
    (FLOAT + 'log_scale = "yes"', "log_scale must be true or false"),
    (INT + "log_scale = true", "log_scale only applies to float parameters"),
    (FLOAT.replace("min = 1e-6", "min = 0.0") + "log_scale = true",
     "log_scale needs a min above 0 (a log scale cannot reach 0)"),
    (FLOAT + "log_scale = true\nstep = 1",
     "with log_scale, step is the factor one arrow press multiplies or divides by: it must be above 1"),
])
def test_bad_control_fields_are_refused_with_the_documented_message(param, problem):
    with pytest.raises(PresetError) as raised:
        parse_preset(tomllib.loads(preset_with(param))["preset"][0])
    assert str(raised.value).endswith(f"params[0] (lr): {problem}"), str(raised.value)


def test_good_control_fields_reach_the_base_models_schema():
    preset = parse_preset(tomllib.loads(preset_with(FLOAT + 'log_scale = true\nstep = 10\nunit = "×"'))["preset"][0])
    spec = preset.params_schema[0]
    assert (spec.step, spec.unit, spec.log_scale) == (10, "×", True)
    wire = preset.base_model.model_dump(mode="json", by_alias=True)["params_schema"][0]
    assert (wire["step"], wire["unit"], wire["log_scale"]) == (10, "×", True)


def test_presets_check_prints_the_message(tmp_path: Path):
    (tmp_path / "presets.toml").write_text(preset_with(INT + "step = 0"))
    result = subprocess.run([sys.executable, "-m", "training_studio", "presets", "check", "--data-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[1] == "  p: params[0] (lr): step must be a number above 0"


def test_builtin_and_example_schemas_fill_the_fields_and_pass_the_checks():
    builtin = {spec.name: spec for spec in BUILTIN_BASE_MODEL.params_schema}
    assert all(control_field_problem(spec) is None for spec in builtin.values())
    assert (builtin["resolution"].step, builtin["resolution"].unit) == (8, "px")
    assert builtin["learning_rate"].log_scale
    for preset in parse_presets_text(uncommented_example()):
        schema = {spec.name: spec for spec in preset.params_schema}
        assert schema["learning_rate"].log_scale and schema["learning_rate"].min > 0, preset.id
        assert schema["resolution"].unit == "px" and schema["resolution"].step == 64, preset.id
        assert all(control_field_problem(spec) is None for spec in schema.values())
