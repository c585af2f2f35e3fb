"""The base-model registry: which trainers exist, their parameter schemas, and parameter validation.

The server lists these at GET /api/training/base-models and validates a new job's params against the
chosen entry's schema before the job is stored (422 on a bad value). The built-in trainer is always
present; command presets for third-party trainers come from a TOML file in the data dir (see
`presets.py`). No Qt, no HTTP.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from training_studio.contract import BaseModelInfo, ParamSpec, ParamType

BUILTIN_BASE_MODEL_ID = "builtin-linear-vae"

BUILTIN_BASE_MODEL = BaseModelInfo(
    id=BUILTIN_BASE_MODEL_ID,
    name="Built-in linear VAE (CPU, no downloads)",
    description=(
        "A small generative image model (a linear VAE on images downscaled to a few dozen pixels) "
        "trained with mini-batch gradient steps on the CPU. Learns in seconds; good for trying the app."
    ),
    trainer="builtin",
    params_schema=[
        ParamSpec(name="resolution", type=ParamType.INT, default=32, min=8, max=64, step=8, unit="px",
                  description="Side of the square training images, in pixels."),
        ParamSpec(name="latent_dim", type=ParamType.INT, default=16, min=1, max=256, step=4,
                  description="Size of the latent space."),
        ParamSpec(name="learning_rate", type=ParamType.FLOAT, default=0.01, min=1e-6, max=1.0, log_scale=True,
                  description="Step size of the optimiser."),
        ParamSpec(name="batch_size", type=ParamType.INT, default=32, min=1, max=1024, step=8, unit="images",
                  description="Images per gradient step."),
        ParamSpec(name="seed", type=ParamType.INT, default=0, min=0, max=2**31 - 1,
                  description="Random seed, for repeatable runs."),
        # Issue 13: what the trainer writes as it trains, listed like a preset's samples and checkpoints.
        ParamSpec(name="sample_every", type=ParamType.INT, default=50, min=0, max=10_000_000, unit="steps",
                  description="Write a 2×2 grid of generated samples every this many steps (0: never)."),
        ParamSpec(name="checkpoint_every", type=ParamType.INT, default=0, min=0, max=10_000_000, unit="steps",
                  description="Also save an intermediate checkpoint every this many steps (0: only the final one)."),
    ],
)

# Where the built-in trainer writes its step samples and intermediate checkpoints, as a preset declares
# them (presets.py, output_pattern): the same endpoints list them. trainers/builtin.py writes these names.
BUILTIN_SAMPLES_GLOB = "samples/step-{step}.png"
BUILTIN_CHECKPOINTS_GLOB = "checkpoints/step-{step}.npz"


class ParamsError(ValueError):
    """A job's params do not fit the base model's schema; the message says which and why."""


def list_base_models(data_dir: Path | None = None) -> list[BaseModelInfo]:
    """The built-in trainer first, then the presets defined in the data dir (if any), including the
    ones that cannot be used, with their `error` (a client shows them greyed out with the reason)."""
    models = [BUILTIN_BASE_MODEL]
    if data_dir is not None:
        from training_studio.runner.presets import check_presets

        # caption presets (issue 17) are dataset tools, not base models
        models.extend(entry.base_model for entry in check_presets(Path(data_dir)).presets
                      if entry.preset is None or entry.preset.kind != "caption")
    return models


def find_base_model(base_model_id: str, data_dir: Path | None = None) -> BaseModelInfo | None:
    """A base model by id; None for an unknown one or a preset whose definition is broken. A well-formed
    preset whose program is missing is found (listed with its `error`): its job fails at start saying so."""
    if base_model_id == BUILTIN_BASE_MODEL_ID:
        return BUILTIN_BASE_MODEL
    if data_dir is None:
        return None
    from training_studio.runner.presets import find_preset

    preset = find_preset(Path(data_dir), base_model_id)
    return preset.base_model if preset is not None and preset.kind != "caption" else None


def validate_params(schema: list[ParamSpec], params: dict[str, Any]) -> dict[str, Any]:
    """Check `params` against `schema` and return them with defaults filled in.

    Unknown names are refused (a typo must not silently fall back to a default).
    """
    if not isinstance(params, dict):
        raise ParamsError("params must be an object")
    by_name = {spec.name: spec for spec in schema}
    unknown = sorted(set(params) - set(by_name))
    if unknown:
        raise ParamsError(f"unknown parameter(s): {', '.join(unknown)}")
    result: dict[str, Any] = {}
    for spec in schema:
        value = params.get(spec.name, spec.default)
        result[spec.name] = _check_value(spec, value)
    return result


def _check_value(spec: ParamSpec, value: Any) -> Any:
    name = spec.name
    if value is None:
        raise ParamsError(f"{name} is required")
    if spec.type is ParamType.BOOL:
        if not isinstance(value, bool):
            raise ParamsError(f"{name} must be true or false")
        return value
    if spec.type is ParamType.INT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()
        ):
            raise ParamsError(f"{name} must be a whole number")
        value = int(value)
    elif spec.type is ParamType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParamsError(f"{name} must be a finite number")
        value = float(value)
    elif spec.type is ParamType.STR:
        if not isinstance(value, str):
            raise ParamsError(f"{name} must be text")
        if len(value) > 10_000:
            raise ParamsError(f"{name} is too long (at most 10,000 characters)")
        return value
    elif spec.type is ParamType.CHOICE:
        if value not in (spec.choices or []):
            choices = ", ".join(str(c) for c in spec.choices or [])
            raise ParamsError(f"{name} must be one of: {choices}")
        return value
    else:
        return value
    if spec.min is not None and value < spec.min:
        raise ParamsError(f"{name} must be at least {_fmt(spec.min)}")
    if spec.max is not None and value > spec.max:
        raise ParamsError(f"{name} must be at most {_fmt(spec.max)}")
    return value


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)
