"""Command presets: third-party trainers described in `<data dir>/presets.toml`.

This module owns the presets file: its format, loading it tolerantly (a broken file or a broken preset
is skipped with a logged reason, never breaking the server), copying the commented example shipped
with the app into a data dir that has none, and turning a preset plus a job into an argv.

Format (one `[[preset]]` table per trainer; see presets/example-presets.toml):

    [[preset]]
    id = "kohya-lora"                 # the base_model id clients pick; [A-Za-z0-9._-], 1-100 chars
    name = "LoRA with kohya sd-scripts"
    description = "..."
    command = ["accelerate", "launch", "train_network.py", "--train_data_dir={dataset_dir}", ...]
    progress = "tqdm"                 # "jsonl" (default) or "tqdm"
    loss_key = "avr_loss"             # tqdm postfix key holding the loss (default "loss")
    dataset_layout = "kohya"          # "imagefolder" (default) or "kohya"
    base_model = "runwayml/stable-diffusion-v1-5"   # what {base_model} expands to (default: the id)
    cwd = "/path/to/sd-scripts"       # optional working directory
    env = { HF_HUB_OFFLINE = "1" }    # optional extra environment
    checkpoint_glob = "*.safetensors" # optional: the output file registered as the trained model
    progress_bar = "steps"            # tqdm: the training bar's label (`*` any text, `?` one character,
                                      # placeholders allowed); the other bars are the job's phase
    series = ["lr", "lr/*"]           # tqdm: postfix keys that are series besides the loss (`*`, `?`)
    config_file = "job.json"          # optional: a config rendered into the job's folder from
    config_template = '''...'''       #   config_template (text) or config_template_file (a path)
    samples_glob = "sample/*_{step}_*.png"          # optional: the sample images it writes as it trains,
    checkpoints_glob = "lora-step{step}.safetensors"  # and its intermediate checkpoints ({step}: digits)
    [[preset.params]]                 # the params_schema, as in GET /api/training/base-models
    name = "learning_rate"
    type = "float"
    default = 1e-4
    min = 1e-7
    max = 1.0
    log_scale = true                # optional: arrows walk 1, 2, 5, 10… (or multiply by `step`)
    description = "..."
    # optional for int/float: step = 64 (the arrows' increment), unit = "px" (shown after the value)

Placeholders in `command` items, `progress_bar` and the config template: {dataset_dir},
{dataset_images_dir} (the folder holding the images with their .txt captions), {output_dir},
{total_steps}, {base_model}, {job_id}, {validation_dir} (the held-out validation files in the same layout,
issue 17; an empty folder when none are held out), {config_file} (the rendered config's path; not inside the
config itself), {params.NAME} (NAME must be in the schema); `{{` and `}}` are literal braces.
`kind = "caption"` (issue 17) makes a captioning command instead of a trainer: it is not a base model; a
dataset's caption job runs it with {dataset_dir} a folder of the dataset's images (`<sha256><ext>`) and reads
the `<sha256>.txt` files it writes there back as the captions. Each command item
stays one argv item whatever the values contain, and no shell is ever involved. In a config, values are
escaped as inside a double-quoted JSON/YAML/TOML string (put text placeholders between double quotes);
in `progress_bar` they are literal text.

`check_presets_text` / `check_presets` report every preset as usable or with its exact problem (also what
the server lists in base-models with an `error`); `training-studio presets check` prints that report.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import threading
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from training_studio.contract import BaseModelInfo, ParamSpec
from training_studio.runner.progress import bar_label_pattern, escape_label
from training_studio.runner.registry import (
    BUILTIN_BASE_MODEL_ID,
    BUILTIN_CHECKPOINTS_GLOB,
    BUILTIN_SAMPLES_GLOB,
    ParamsError,
    validate_params,
)

logger = logging.getLogger(__name__)

PRESETS_FILE_NAME = "presets.toml"
EXAMPLE_RESOURCE = "example-presets.toml"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FIXED_PLACEHOLDERS = frozenset({"dataset_dir", "dataset_images_dir", "output_dir", "total_steps", "base_model",
                                 "job_id", "validation_dir"})
PRESET_KINDS = ("train", "caption")  # issue 17: a caption preset runs over a dataset and writes .txt captions
# Only in the command: the config cannot name its own path before it is written.
_COMMAND_PLACEHOLDERS = frozenset({"config_file"})
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# A `series` entry: a postfix key as progress.SCALAR_NAME allows, with `*` and `?` wildcards.
_SERIES_PATTERN = re.compile(r"^[A-Za-z0-9_./*?-]{1,64}$")
MAX_CONFIG_TEMPLATE_BYTES = 1024 * 1024


class PresetError(ValueError):
    """A preset is unusable; the message says which field and why."""


@dataclass(frozen=True)
class Preset:
    id: str
    name: str
    description: str
    command: tuple[str, ...]
    progress_format: str = "jsonl"
    loss_key: str = "loss"
    dataset_layout: str = "imagefolder"
    base_model_value: str = ""
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    checkpoint_glob: str | None = None
    params_schema: tuple[ParamSpec, ...] = ()
    progress_bar: str | None = None
    config_file: str | None = None
    config_template: str | None = None
    config_template_file: Path | None = None
    samples_glob: str | None = None
    checkpoints_glob: str | None = None
    series: tuple[str, ...] = ()  # tqdm postfix keys (patterns) that are series besides the loss (issue 14)
    kind: str = "train"  # "caption": a captioning command (issue 17), not listed as a base model

    @property
    def base_model(self) -> BaseModelInfo:
        return BaseModelInfo(id=self.id, name=self.name, description=self.description,
                             trainer=f"preset:{self.id}", params_schema=list(self.params_schema))

    def placeholder_values(self, *, dataset_dir: Path, output_dir: Path, total_steps: int,
                           params: dict[str, Any], job_id: str = "") -> dict[str, str]:
        values = {
            "dataset_dir": str(dataset_dir),
            "dataset_images_dir": str(images_dir(Path(dataset_dir), self.dataset_layout)),
            "output_dir": str(output_dir),
            "total_steps": str(int(total_steps)),
            "base_model": self.base_model_value or self.id,
            "job_id": job_id,
            # issue 17: the held-out validation files, beside the training layouts (server/layouts.py)
            "validation_dir": str(Path(dataset_dir).parent / "validation" / self.dataset_layout),
        }
        if self.config_file:
            values["config_file"] = str(Path(output_dir) / self.config_file)
        defaults = {spec.name: spec.default for spec in self.params_schema}
        for name, default in defaults.items():
            values[f"params.{name}"] = _param_text(params.get(name, default))
        return values

    def build_argv(self, *, dataset_dir: Path, output_dir: Path, total_steps: int,
                   params: dict[str, Any], job_id: str = "") -> list[str]:
        """The trainer's argv: each template item with its placeholders replaced, still one item."""
        values = self.placeholder_values(dataset_dir=dataset_dir, output_dir=output_dir, total_steps=total_steps,
                                         params=params, job_id=job_id)
        return [substitute(item, values) for item in self.command]

    def progress_bar_text(self, values: dict[str, str]) -> str | None:
        """The training bar's label pattern with the job's values in its placeholders, escaped so that
        they match only themselves (progress.bar_label_pattern reads it)."""
        if self.progress_bar is None:
            return None
        return label_text(self.progress_bar, values)

    def template_text(self) -> str | None:
        """The config template (inline or read from its file); PresetError if the file cannot be read."""
        if self.config_template is not None:
            return self.config_template
        if self.config_template_file is None:
            return None
        try:
            with open(self.config_template_file, "rb") as handle:
                data = handle.read(MAX_CONFIG_TEMPLATE_BYTES + 1)
        except OSError as exc:
            raise PresetError(f"config_template_file {str(self.config_template_file)!r}: "
                              f"{exc.strerror or exc}") from None
        if len(data) > MAX_CONFIG_TEMPLATE_BYTES:
            raise PresetError(f"config_template_file {str(self.config_template_file)!r} is over 1 MiB")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise PresetError(f"config_template_file {str(self.config_template_file)!r} is not UTF-8 text") from None

    def render_config(self, values: dict[str, str]) -> str | None:
        """The job's config text (values escaped as inside a double-quoted string), or None."""
        template = self.template_text()
        if template is None:
            return None
        escaped = {name: json.dumps(value, ensure_ascii=False)[1:-1] for name, value in values.items()
                   if name not in _COMMAND_PLACEHOLDERS}
        return substitute(template, escaped)

    def prepare(self, *, job_id: str, dataset_dir: Path, output_dir: Path, total_steps: int,
                params: dict[str, Any]) -> PreparedRun:
        """Everything a job's trainer needs from its preset: the argv, the training bar's pattern, and
        the rendered config written into `output_dir` (created if needed). PresetError, OSError."""
        values = self.placeholder_values(dataset_dir=dataset_dir, output_dir=output_dir, total_steps=total_steps,
                                         params=params, job_id=job_id)
        argv = [substitute(item, values) for item in self.command]
        config_path = None
        text = self.render_config(values)
        if text is not None and self.config_file:
            config_path = Path(output_dir) / self.config_file
            config_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = config_path.with_name(f".{config_path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(config_path)
        return PreparedRun(argv=argv, progress_bar=self.progress_bar_text(values), config_path=config_path,
                           total_steps=int(total_steps))


@dataclass(frozen=True)
class PreparedRun:
    argv: list[str]
    progress_bar: str | None  # the training bar's label pattern, for progress.StreamReader(progress_bar=)
    config_path: Path | None
    total_steps: int


def images_dir(dataset_dir: Path, layout: str) -> Path:
    """Where a layout keeps the images beside their captions: kohya's single `<repeats>_<name>` folder
    (ai-toolkit reads such a folder directly), or the imagefolder itself."""
    if layout == "kohya":
        try:
            folders = sorted(entry for entry in Path(dataset_dir).iterdir() if entry.is_dir())
        except OSError:
            folders = []
        if len(folders) == 1:
            return folders[0]
    return Path(dataset_dir)


def label_text(pattern: str, values: dict[str, str]) -> str:
    """A bar label pattern whose placeholders are replaced by escaped values (a value with a `*`
    matches only itself); `*` and `?` elsewhere stay wildcards."""
    return substitute(pattern, {name: escape_label(value) for name, value in values.items()})


def label_regex(pattern: str, values: dict[str, str]) -> re.Pattern[str]:
    return bar_label_pattern(label_text(pattern, values))


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def substitute(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name is None or name not in values:
            raise PresetError(f"unknown placeholder {token!r} in {template!r}")
        return values[name]

    return _PLACEHOLDER.sub(replace, template)


MAX_UNIT_LENGTH = 16


def control_field_type_problem(raw: Any) -> str | None:
    """What is wrong with the types of a raw [[preset.params]] table's `step`, `unit` and `log_scale`
    (how the New job form's control edits the value, issue 15), before the schema model would coerce or
    word it less plainly; None when they are fine or absent. See docs/api.md (ParamSpec)."""
    if not isinstance(raw, dict):
        return None
    step = raw.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))):
        return "step must be a number above 0"
    unit = raw.get("unit")
    if unit is not None and not isinstance(unit, str):
        return f"unit must be a short text such as \"px\" or \"steps\" (at most {MAX_UNIT_LENGTH} characters)"
    log_scale = raw.get("log_scale")
    if log_scale is not None and not isinstance(log_scale, bool):
        return "log_scale must be true or false"
    return None


def control_field_problem(spec: ParamSpec) -> str | None:
    """What is wrong with a parameter's `step`, `unit` or `log_scale`, as one phrase; None when they fit.
    The same rules hold for the built-in trainer's schema (tested)."""
    numeric = spec.type.value in ("int", "float")
    if spec.step is not None:
        if not math.isfinite(spec.step) or spec.step <= 0:
            return "step must be a number above 0"
        if not numeric:
            return "step and unit only apply to int and float parameters"
        if spec.type.value == "int" and not float(spec.step).is_integer():
            return "step must be a whole number for an int parameter"
    if spec.unit is not None:
        if not numeric:
            return "step and unit only apply to int and float parameters"
        if not spec.unit.strip() or len(spec.unit) > MAX_UNIT_LENGTH or not spec.unit.isprintable():
            return f"unit must be a short text such as \"px\" or \"steps\" (at most {MAX_UNIT_LENGTH} characters)"
    if spec.log_scale:
        if spec.type.value != "float":
            return "log_scale only applies to float parameters"
        if spec.min is None or spec.min <= 0:
            return "log_scale needs a min above 0 (a log scale cannot reach 0)"
        if spec.step is not None and spec.step <= 1:
            return "with log_scale, step is the factor one arrow press multiplies or divides by: it must be above 1"
    return None


def _require_str(table: dict[str, Any], key: str, *, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise PresetError(f"{key} must be text")
    return value


def parse_preset(table: Any) -> Preset:
    """One `[[preset]]` table to a Preset; PresetError says what is wrong."""
    if not isinstance(table, dict):
        raise PresetError("each [[preset]] must be a table")
    preset_id = _require_str(table, "id")
    if not _ID_PATTERN.match(preset_id):
        raise PresetError(f"id {preset_id!r} must be 1-100 characters of letters, digits, '.', '_' or '-'")
    if preset_id == BUILTIN_BASE_MODEL_ID:
        raise PresetError(f"id {preset_id!r} is taken by the built-in trainer")
    name = _require_str(table, "name", default=preset_id).strip() or preset_id
    description = _require_str(table, "description", default="")
    command = table.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(item, str) for item in command):
        raise PresetError("command must be a non-empty list of strings (one per argv item)")
    if not command[0].strip():
        raise PresetError("command's first item (the program) is empty")
    progress = _require_str(table, "progress", default="jsonl")
    if progress not in ("jsonl", "tqdm"):
        raise PresetError(f"progress must be \"jsonl\" or \"tqdm\", not {progress!r}")
    loss_key = _require_str(table, "loss_key", default="loss")
    layout = _require_str(table, "dataset_layout", default="imagefolder")
    if layout not in ("imagefolder", "kohya"):
        raise PresetError(f"dataset_layout must be \"imagefolder\" or \"kohya\", not {layout!r}")
    base_model_value = _require_str(table, "base_model", default="")
    kind = _require_str(table, "kind", default="train")
    if kind not in PRESET_KINDS:
        raise PresetError(f"kind must be \"train\" or \"caption\", not {kind!r}")
    cwd_text = table.get("cwd")
    if cwd_text is not None and (not isinstance(cwd_text, str) or not cwd_text.strip()):
        raise PresetError("cwd must be a folder path")
    env = table.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise PresetError("env must be a table of text values")
    checkpoint_glob = table.get("checkpoint_glob")
    if checkpoint_glob is not None and (not isinstance(checkpoint_glob, str) or not checkpoint_glob.strip()
                                        or ".." in checkpoint_glob or checkpoint_glob.startswith("/")):
        raise PresetError("checkpoint_glob must be a relative pattern inside the output folder")
    progress_bar = table.get("progress_bar")
    if progress_bar is not None and (not isinstance(progress_bar, str) or not progress_bar.strip()):
        raise PresetError("progress_bar must be the training bar's label (text), e.g. \"steps\"")
    if progress_bar is not None and progress != "tqdm":
        raise PresetError("progress_bar needs progress = \"tqdm\"")
    series = table.get("series", [])
    if not isinstance(series, list) or not all(isinstance(item, str) and _SERIES_PATTERN.match(item) for item in series):
        raise PresetError("series must be a list of postfix keys (1-64 of letters, digits, '_', '.', '/', '-', "
                          "with '*' and '?' as wildcards), e.g. [\"lr\", \"grad_norm\"]")
    if series and progress != "tqdm":
        raise PresetError("series needs progress = \"tqdm\" (JSON lines carry their series themselves)")
    config_file = table.get("config_file")
    config_template = table.get("config_template")
    config_template_file = table.get("config_template_file")
    if config_file is not None and (not isinstance(config_file, str) or not _CONFIG_NAME.match(config_file)):
        raise PresetError("config_file must be a file name (letters, digits, '.', '_', '-'), e.g. \"job.yaml\"")
    if config_template is not None and not isinstance(config_template, str):
        raise PresetError("config_template must be text")
    if config_template_file is not None and (not isinstance(config_template_file, str)
                                             or not config_template_file.strip()):
        raise PresetError("config_template_file must be a file path")
    if config_template is not None and config_template_file is not None:
        raise PresetError("give config_template or config_template_file, not both")
    if (config_template is not None or config_template_file is not None) != (config_file is not None):
        raise PresetError("config_file and a config_template (or config_template_file) go together")
    if config_file is not None and config_file == checkpoint_glob:
        raise PresetError("config_file must not be the checkpoint_glob")
    output_globs = {}
    for key in ("samples_glob", "checkpoints_glob"):
        value = table.get(key)
        if value is not None:
            try:
                output_pattern(value, "")
            except PresetError as exc:
                raise PresetError(f"{key}: {exc}") from None
        output_globs[key] = value
    raw_params = table.get("params", [])
    if not isinstance(raw_params, list):
        raise PresetError("params must be a list of [[preset.params]] tables")
    schema: list[ParamSpec] = []
    for index, raw in enumerate(raw_params):
        raw_problem = control_field_type_problem(raw)
        if raw_problem is not None:
            label = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else "?"
            raise PresetError(f"params[{index}] ({label}): {raw_problem}")
        try:
            spec = ParamSpec.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            raise PresetError(f"params[{index}] {where}: {first.get('msg')}") from None
        control_problem = control_field_problem(spec)
        if control_problem is not None:
            raise PresetError(f"params[{index}] ({spec.name}): {control_problem}")
        if spec.type.value == "unknown":
            raise PresetError(f"params[{index}] ({spec.name}): type must be int, float, str, bool or choice")
        if any(existing.name == spec.name for existing in schema):
            raise PresetError(f"params: {spec.name!r} is defined twice")
        if spec.default is None:
            raise PresetError(f"params[{index}] ({spec.name}): needs a default (the New job form starts from it)")
        if spec.type.value == "choice" and not spec.choices:
            raise PresetError(f"params[{index}] ({spec.name}): a choice needs a non-empty choices list")
        schema.append(spec)
    try:
        validate_params(schema, {})
    except ParamsError as exc:
        raise PresetError(f"params: bad default: {exc}") from None
    preset = Preset(
        id=preset_id, name=name, description=description, command=tuple(command), progress_format=progress,
        loss_key=loss_key, dataset_layout=layout, base_model_value=base_model_value,
        cwd=Path(cwd_text).expanduser() if cwd_text else None, env=dict(env),
        checkpoint_glob=checkpoint_glob, params_schema=tuple(schema), progress_bar=progress_bar,
        series=tuple(series), kind=kind,
        config_file=config_file, config_template=config_template,
        config_template_file=Path(config_template_file).expanduser() if config_template_file else None,
        samples_glob=output_globs["samples_glob"], checkpoints_glob=output_globs["checkpoints_glob"],
    )
    # every placeholder must be known now, not when a job starts
    placeholder_values = dict.fromkeys(_FIXED_PLACEHOLDERS, "")
    placeholder_values.update({f"params.{spec.name}": "" for spec in schema})
    if config_file is not None:
        placeholder_values["config_file"] = ""
    for item in command:
        substitute(item, placeholder_values)
    if progress_bar is not None:
        try:
            label_regex(progress_bar, placeholder_values)
        except PresetError as exc:
            raise PresetError(f"progress_bar: {exc}") from None
    if config_template is not None:
        _check_template(config_template, placeholder_values, "config_template")
    return preset


@dataclass(frozen=True)
class OutputFile:
    """A sample image or intermediate checkpoint a trainer wrote: its path inside the job's output folder
    (`name`, with '/'), the step parsed from it, and when it was last written."""

    name: str
    step: int | None
    mtime: float
    size: int


MAX_OUTPUT_FILES = 10_000


def output_pattern(glob: str, job_id: str) -> re.Pattern[str]:
    """A samples/checkpoints pattern as a regular expression over a path relative to the output folder:
    `*` any text within one folder name, `?` one character, `{step}` the step (digits), `{job_id}` the
    job's id. PresetError for a pattern that could leave the folder or names another placeholder."""
    if not isinstance(glob, str) or not glob.strip():
        raise PresetError("must be a relative pattern inside the output folder, e.g. \"sample/*_{step}_*.png\"")
    parts = glob.split("/")
    if glob.startswith("/") or "\\" in glob or any(part in ("", ".", "..") for part in parts):
        raise PresetError(f"{glob!r} must be a relative pattern inside the output folder (no '..', no '/' first)")
    regex: list[str] = []
    position = 0
    for match in re.finditer(r"\{([^{}]*)\}|[*?]|[{}]", glob):
        regex.append(re.escape(glob[position:match.start()]))
        token = match.group(0)
        if token == "*":
            regex.append("[^/]*?")
        elif token == "?":
            regex.append("[^/]")
        elif match.group(1) == "step":
            if "(?P<step>" in "".join(regex):
                raise PresetError(f"{glob!r} names {{step}} twice")
            regex.append(r"(?P<step>\d+)")
        elif match.group(1) == "job_id":
            regex.append(re.escape(job_id))
        else:
            raise PresetError(f"unknown placeholder {token!r} in {glob!r} (only {{step}} and {{job_id}})")
        position = match.end()
    regex.append(re.escape(glob[position:]))
    return re.compile("".join(regex))


def find_outputs(output_dir: Path, glob: str, job_id: str) -> list[OutputFile]:
    """The files under `output_dir` that `glob` (see output_pattern) names, by step then name; links are
    not followed out of the folder (a listed file is served only after open_confined checks it)."""
    pattern = output_pattern(glob, job_id)
    search = re.sub(r"\{step\}", "*", glob).replace("{job_id}", job_id)
    found: list[OutputFile] = []
    root = Path(output_dir)
    try:
        candidates = root.glob(search)
        for path in candidates:
            name = path.relative_to(root).as_posix()
            match = pattern.fullmatch(name)
            if match is None:
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            if not path.is_file():
                continue
            step = match.groupdict().get("step")
            found.append(OutputFile(name=name, step=int(step) if step is not None else None, mtime=info.st_mtime,
                                    size=info.st_size))
            if len(found) >= MAX_OUTPUT_FILES:
                break
    except OSError:
        pass
    found.sort(key=lambda f: (f.step if f.step is not None else -1, f.name))
    return found


def output_file_allowed(glob: str, job_id: str, name: str) -> bool:
    """Whether `name` is one of the files `glob` declares (only those are served)."""
    try:
        return output_pattern(glob, job_id).fullmatch(name) is not None
    except PresetError:
        return False


def _check_template(text: str, values: dict[str, str], where: str) -> None:
    config_values = {name: value for name, value in values.items() if name not in _COMMAND_PLACEHOLDERS}
    try:
        substitute(text, config_values)
    except PresetError as exc:
        raise PresetError(f"{where}: {exc}") from None


def runtime_problem(preset: Preset) -> str | None:
    """What stops a well-formed preset from running on this machine now (missing program, working
    folder or config template file), or None. Checked live: installing the program fixes it."""
    if preset.cwd is not None and not preset.cwd.is_dir():
        return f"cwd {str(preset.cwd)!r} is not a folder"
    program = preset.command[0]
    if "{" in program:
        return None  # named by a placeholder: known only when a job starts
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program).expanduser()
        if not path.is_absolute() and preset.cwd is not None:
            path = preset.cwd / path
        if not path.is_file():
            return f"program {program!r} not found"
        if not os.access(path, os.X_OK):
            return f"program {program!r} is not executable"
    elif shutil.which(program) is None:
        return f"program {program!r} not found on PATH"
    if preset.config_template_file is not None:
        try:
            text = preset.template_text()
        except PresetError as exc:
            return str(exc)
        placeholder_values = dict.fromkeys(_FIXED_PLACEHOLDERS, "")
        placeholder_values.update({f"params.{spec.name}": "" for spec in preset.params_schema})
        try:
            _check_template(text or "", placeholder_values, "config_template_file")
        except PresetError as exc:
            return str(exc)
    return None


@dataclass(frozen=True)
class PresetReport:
    """One `[[preset]]` of a file: usable (`preset`) or not (`error` says exactly why)."""

    label: str  # its id, or "#N" (its position) when it has no usable id
    name: str
    description: str = ""
    preset: Preset | None = None
    error: str | None = None

    @property
    def base_model(self) -> BaseModelInfo:
        """How the server lists it; a broken preset has an `error` and no parameters."""
        if self.preset is not None and self.error is None:
            return self.preset.base_model
        return BaseModelInfo(id=self.label, name=self.name, description=self.description,
                             trainer=f"preset:{self.label}", params_schema=[], error=self.error)


@dataclass(frozen=True)
class PresetsFileReport:
    presets: tuple[PresetReport, ...] = ()
    file_error: str | None = None  # the whole file is unusable (not TOML, wrong shape)

    @property
    def usable(self) -> list[Preset]:
        return [r.preset for r in self.presets if r.preset is not None and r.error is None]


def check_presets_text(text: str, source: str = PRESETS_FILE_NAME) -> PresetsFileReport:
    """Every preset of a presets file's text, usable or with its problem (no live checks)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return PresetsFileReport(file_error=f"{source} is not valid TOML ({exc})")
    tables = document.get("preset", [])
    if not isinstance(tables, list):
        return PresetsFileReport(file_error=f"{source}: 'preset' must be an array of tables ([[preset]])")
    reports: list[PresetReport] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        raw_id = table.get("id") if isinstance(table, dict) else None
        label = raw_id if isinstance(raw_id, str) and _ID_PATTERN.match(raw_id) else f"#{index + 1}"
        raw_name = table.get("name") if isinstance(table, dict) else None
        name = raw_name.strip() if isinstance(raw_name, str) and raw_name.strip() else label
        raw_description = table.get("description") if isinstance(table, dict) else None
        description = raw_description if isinstance(raw_description, str) else ""
        try:
            preset = parse_preset(table)
        except PresetError as exc:
            reports.append(PresetReport(label, name, description, error=str(exc)))
            continue
        if preset.id in seen:
            reports.append(PresetReport(f"#{index + 1}", name, description,
                                        error=f"the id {preset.id!r} is used twice"))
            continue
        seen.add(preset.id)
        reports.append(PresetReport(preset.id, preset.name, preset.description, preset=preset))
    return PresetsFileReport(presets=tuple(reports))


def parse_presets_text(text: str, source: str = PRESETS_FILE_NAME) -> list[Preset]:
    """All usable presets of a presets file's text; unusable ones are logged and skipped."""
    report = check_presets_text(text, source)
    if report.file_error is not None:
        logger.warning("ignoring %s", report.file_error)
    for entry in report.presets:
        if entry.error is not None:
            logger.warning("skipping preset %s in %s: %s", entry.label, source, entry.error)
    return report.usable


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], list[Preset]]] = {}
_report_cache: dict[Path, tuple[tuple[int, int], PresetsFileReport]] = {}


def presets_path(data_dir: Path) -> Path:
    return Path(data_dir) / PRESETS_FILE_NAME


def load_presets(data_dir: Path) -> list[Preset]:
    """The presets of a data dir (cached until the file changes); [] when there is no usable file."""
    path = presets_path(data_dir)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return []
    key = (stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return list(cached[1])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("ignoring %s: %s", path, exc)
        return []
    presets = parse_presets_text(text, str(path))
    with _cache_lock:
        _cache[path] = (key, presets)
    return list(presets)


def check_presets(data_dir: Path) -> PresetsFileReport:
    """The report of a data dir's presets file with the live checks (program, cwd, template file)
    applied; an empty report when there is no file. The parse is cached until the file changes."""
    path = presets_path(data_dir)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return PresetsFileReport()
    except OSError as exc:
        return PresetsFileReport(file_error=f"cannot read {path}: {exc.strerror or exc}")
    key = (stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _report_cache.get(path)
    if cached is not None and cached[0] == key:
        report = cached[1]
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return PresetsFileReport(file_error=f"cannot read {path}: {exc}")
        report = check_presets_text(text, str(path))
        with _cache_lock:
            _report_cache[path] = (key, report)
    checked = []
    for entry in report.presets:
        problem = runtime_problem(entry.preset) if entry.preset is not None and entry.error is None else None
        checked.append(entry if problem is None else PresetReport(entry.label, entry.name, entry.description,
                                                                  preset=entry.preset, error=problem))
    return PresetsFileReport(presets=tuple(checked), file_error=report.file_error)


def log_presets_report(data_dir: Path) -> PresetsFileReport:
    """Log what `presets check` would say (the server does this at start)."""
    report = check_presets(data_dir)
    if report.file_error is not None:
        logger.warning("presets: %s", report.file_error)
    for entry in report.presets:
        if entry.error is None:
            logger.info("preset %s: OK", entry.label)
        else:
            logger.warning("preset %s: %s", entry.label, entry.error)
    return report


def find_preset(data_dir: Path, preset_id: str) -> Preset | None:
    for preset in load_presets(data_dir):
        if preset.id == preset_id:
            return preset
    return None


def output_globs(data_dir: Path, base_model: str | None) -> tuple[str | None, str | None]:
    """(samples_glob, checkpoints_glob) of a job's trainer: the built-in trainer's own (registry.py), else
    its preset's as presets.toml defines it now; (None, None) for an unknown one. No base model is the
    built-in trainer, as when the job runner starts a job."""
    if not base_model or base_model == BUILTIN_BASE_MODEL_ID:
        return BUILTIN_SAMPLES_GLOB, BUILTIN_CHECKPOINTS_GLOB
    preset = find_preset(data_dir, base_model)
    return (preset.samples_glob, preset.checkpoints_glob) if preset is not None else (None, None)


def example_presets_text() -> str:
    return resources.files("training_studio.presets").joinpath(EXAMPLE_RESOURCE).read_text(encoding="utf-8")


def ensure_presets_file(data_dir: Path) -> Path | None:
    """Copy the commented example into a data dir that has no presets file yet (it defines nothing).

    The server calls this at start, so it also logs what `presets check` would say about an existing file."""
    path = presets_path(data_dir)
    if path.exists():
        try:
            log_presets_report(data_dir)
        except Exception:  # a report must never stop the server from starting
            logger.exception("could not check %s", path)
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(example_presets_text(), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        logger.warning("could not write the example presets file %s: %s", path, exc)
        return None
    return path


__all__ = [
    "Preset", "PresetError", "PreparedRun", "PresetReport", "PresetsFileReport", "load_presets", "find_preset",
    "ensure_presets_file", "parse_presets_text", "check_presets_text", "check_presets", "log_presets_report",
    "runtime_problem", "OutputFile", "find_outputs", "output_pattern", "output_file_allowed", "parse_preset", "substitute", "label_text", "label_regex", "images_dir", "presets_path",
    "example_presets_text",
]
