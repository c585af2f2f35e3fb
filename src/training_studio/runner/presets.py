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
    [[preset.params]]                 # the params_schema, as in GET /api/training/base-models
    name = "learning_rate"
    type = "float"
    default = 1e-4
    min = 0.0
    max = 1.0
    description = "..."

Placeholders in `command` items: {dataset_dir}, {output_dir}, {total_steps}, {base_model},
{params.NAME} (NAME must be in the schema); `{{` and `}}` are literal braces. Each item stays one argv
item whatever the values contain, and no shell is ever involved.
"""

from __future__ import annotations

import logging
import re
import threading
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from training_studio.contract import BaseModelInfo, ParamSpec
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID, ParamsError, validate_params

logger = logging.getLogger(__name__)

PRESETS_FILE_NAME = "presets.toml"
EXAMPLE_RESOURCE = "example-presets.toml"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FIXED_PLACEHOLDERS = frozenset({"dataset_dir", "output_dir", "total_steps", "base_model"})


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

    @property
    def base_model(self) -> BaseModelInfo:
        return BaseModelInfo(id=self.id, name=self.name, description=self.description,
                             trainer=f"preset:{self.id}", params_schema=list(self.params_schema))

    def build_argv(self, *, dataset_dir: Path, output_dir: Path, total_steps: int,
                   params: dict[str, Any]) -> list[str]:
        """The trainer's argv: each template item with its placeholders replaced, still one item."""
        values = {
            "dataset_dir": str(dataset_dir),
            "output_dir": str(output_dir),
            "total_steps": str(int(total_steps)),
            "base_model": self.base_model_value or self.id,
        }
        defaults = {spec.name: spec.default for spec in self.params_schema}
        for name, default in defaults.items():
            values[f"params.{name}"] = _param_text(params.get(name, default))
        return [substitute(item, values) for item in self.command]


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
    raw_params = table.get("params", [])
    if not isinstance(raw_params, list):
        raise PresetError("params must be a list of [[preset.params]] tables")
    schema: list[ParamSpec] = []
    for index, raw in enumerate(raw_params):
        try:
            spec = ParamSpec.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            raise PresetError(f"params[{index}] {where}: {first.get('msg')}") from None
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
        checkpoint_glob=checkpoint_glob, params_schema=tuple(schema),
    )
    # every placeholder must be known now, not when a job starts
    placeholder_values = dict.fromkeys(_FIXED_PLACEHOLDERS, "")
    placeholder_values.update({f"params.{spec.name}": "" for spec in schema})
    for item in command:
        substitute(item, placeholder_values)
    return preset


def parse_presets_text(text: str, source: str = PRESETS_FILE_NAME) -> list[Preset]:
    """All usable presets of a presets file's text; unusable ones are logged and skipped."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        logger.warning("ignoring %s: it is not valid TOML (%s)", source, exc)
        return []
    tables = document.get("preset", [])
    if not isinstance(tables, list):
        logger.warning("ignoring %s: 'preset' must be an array of tables ([[preset]])", source)
        return []
    presets: list[Preset] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        label = table.get("id", f"#{index + 1}") if isinstance(table, dict) else f"#{index + 1}"
        try:
            preset = parse_preset(table)
        except PresetError as exc:
            logger.warning("skipping preset %s in %s: %s", label, source, exc)
            continue
        if preset.id in seen:
            logger.warning("skipping preset %s in %s: the id is used twice", label, source)
            continue
        seen.add(preset.id)
        presets.append(preset)
    return presets


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], list[Preset]]] = {}


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


def find_preset(data_dir: Path, preset_id: str) -> Preset | None:
    for preset in load_presets(data_dir):
        if preset.id == preset_id:
            return preset
    return None


def example_presets_text() -> str:
    return resources.files("training_studio.presets").joinpath(EXAMPLE_RESOURCE).read_text(encoding="utf-8")


def ensure_presets_file(data_dir: Path) -> Path | None:
    """Copy the commented example into a data dir that has no presets file yet (it defines nothing)."""
    path = presets_path(data_dir)
    if path.exists():
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
    "Preset", "PresetError", "load_presets", "find_preset", "ensure_presets_file", "parse_presets_text",
    "parse_preset", "substitute", "presets_path", "example_presets_text",
]
