"""Pydantic models for every body in the wire contract, plus timestamp helpers.

Responses are parsed tolerantly because the client may talk to any server that implements the
contract: unknown fields are ignored, and an unknown status or type becomes the explicit `UNKNOWN`
member instead of failing validation. Serialisation always uses the wire names (`by_alias=True`),
which `to_wire()` does for you. Timestamps stay ISO 8601 strings on the models (a foreign server's
odd timestamp must not make a whole job unreadable); `parse_timestamp()` turns them into aware
datetimes when a value is needed.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "JobOutputFile",
    "JobStatus",
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "DatasetType",
    "DatasetStatus",
    "ModelStatus",
    "ParamType",
    "TrainingJob",
    "Placement",
    "QueueUpdateRequest",
    "Dataset",
    "TrainedModel",
    "DatasetFile",
    "ParamSpec",
    "BaseModelInfo",
    "MetricPoint",
    "LogChunk",
    "Health",
    "SuccessResponse",
    "ErrorDetail",
    "ErrorBody",
    "CreateJobRequest",
    "CreateDatasetRequest",
    "CaptionUpdate",
    "utc_now",
    "format_timestamp",
    "parse_timestamp",
    "to_wire",
]


class _TolerantEnum(str, enum.Enum):
    """A string enum whose unknown values map to UNKNOWN instead of raising."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        return cls.UNKNOWN  # type: ignore[attr-defined]

    def __str__(self) -> str:  # f"{status}" gives the wire value
        return self.value


class JobStatus(_TolerantEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING})
TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class DatasetType(_TolerantEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    TEXT = "text"
    UNKNOWN = "unknown"


class DatasetStatus(_TolerantEnum):
    ACTIVE = "active"
    PROCESSING = "processing"
    FAILED = "failed"
    UNKNOWN = "unknown"


class ModelStatus(_TolerantEnum):
    READY = "ready"
    PROCESSING = "processing"
    FAILED = "failed"
    UNKNOWN = "unknown"


class ParamType(_TolerantEnum):
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    CHOICE = "choice"
    UNKNOWN = "unknown"


class _WireModel(BaseModel):
    # extra="ignore": clients ignore unknown fields. populate_by_name: code may use python names.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Placement(_WireModel):
    """Where a job runs: the executor ("local" or "ray"), the host or cluster address and node, and the GPUs
    it was given (indices or UUIDs as the executor names them; empty for CPU)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    executor: str = "local"
    host: str | None = None
    address: str | None = None
    node: str | None = None
    gpus: list[str] = Field(default_factory=list)


class TrainingJob(_WireModel):
    """A training job; camelCase on the wire (seed type, exact names)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    id: str
    name: str
    status: JobStatus
    progress: float = Field(default=0.0)
    current_step: int | None = None
    total_steps: int | None = None
    current_loss: float | None = None
    started_at: str | None = None
    created_at: str
    # extensions
    finished_at: str | None = None
    dataset_id: str | None = None
    base_model: str | None = None
    params: dict[str, Any] | None = None
    error: str | None = None
    model_id: str | None = None
    # What a running job is doing besides training steps ("loading image sizes 16/16", "downloading
    # config.json 45%") or another short status note; None when there is nothing to say (issue 13).
    detail: str | None = None
    # The server's change counter when this state was stored (live updates, docs/api.md "Revisions");
    # None from older servers.
    revision: int | None = None
    # When the server expects the job to finish (ISO 8601 UTC), from a time-weighted moving average of the
    # recent step rate; None while estimating, when not running, or from older servers (issue 14).
    eta_at: str | None = None
    # Queue control (issue 16): a queued job's place (lower runs first; None when not waiting), whether the user
    # holds it back (it stays queued), and the job it waits for with the outcome it needs ("finished": any
    # end, "completed": only success).
    queue_position: int | None = None
    held: bool = False
    after_job_id: str | None = None
    after_condition: str | None = None
    not_before: str | None = None  # a queued job starts no earlier than this moment (ISO 8601 UTC)
    # Where the job runs (issue 16; the Ray executor fills it for Ray jobs); None before it starts.
    placement: Placement | None = None
    # What the job does (issue 17): "train" (a trainer), or "caption" (a captioning command run over its
    # dataset, whose .txt files become the dataset's captions when it completes).
    kind: str = "train"


class Dataset(_WireModel):
    id: str
    user_id: str = "local"
    name: str
    type: DatasetType
    image_count: int = 0
    status: DatasetStatus
    created_at: str
    updated_at: str
    error: str | None = None  # extension
    revision: int | None = None  # extension: the server's change counter (see TrainingJob.revision)
    repeats: int | None = None  # extension (issue 17): kohya repeats, the `<repeats>_<name>` folder


class TrainedModel(_WireModel):
    id: str
    user_id: str = "local"
    name: str
    base_model: str
    training_job_id: str | None = None
    status: ModelStatus
    created_at: str
    updated_at: str
    # extensions
    size_bytes: int | None = None
    path: str | None = None
    error: str | None = None
    revision: int | None = None  # the server's change counter (see TrainingJob.revision)


class DatasetFile(_WireModel):
    sha256: str
    filename: str
    size: int
    width: int | None = None
    height: int | None = None
    caption: str | None = None
    validation: bool = False  # extension (issue 17): held out for validation, not trained on


class ParamSpec(_WireModel):
    name: str
    type: ParamType
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = None
    description: str = ""
    # How a control edits the value (issue 15): the increment of a spin box, the unit shown after the
    # value ("px", "steps"), and whether the value is best edited on a log scale (learning rates).
    step: float | None = None
    unit: str | None = None
    log_scale: bool = False


class BaseModelInfo(_WireModel):
    id: str
    name: str
    description: str = ""
    trainer: str
    params_schema: list[ParamSpec] = Field(default_factory=list)
    # extension: why this entry cannot be used (a broken command preset); clients show it greyed out.
    error: str | None = None


class MetricPoint(_WireModel):
    step: int
    loss: float | None = None
    time: str
    # Other scalars the trainer reported at this step besides the loss (lr, grad_norm, …), name -> value;
    # None when there are none or from older servers (issue 14).
    scalars: dict[str, float] | None = None


class JobOutputFile(_WireModel):
    """A sample image or intermediate checkpoint a job's trainer wrote (extension, issue 13): `name` is
    its path inside the job's output folder, `step` parsed from the name, `time` when it was written."""

    name: str
    step: int | None = None
    time: str
    size: int = 0


class LogChunk(_WireModel):
    text: str
    next_offset: int
    size: int
    # The byte offset of `text`'s first byte: text is exactly bytes [start, next_offset) of the log (issue 14:
    # reading a huge log from its end, backwards); None from older servers.
    start: int | None = None


class Health(_WireModel):
    status: str
    version: str
    max_upload_bytes: int | None = None
    max_pixels: int | None = None


class SuccessResponse(_WireModel):
    success: bool


class ErrorDetail(_WireModel):
    code: str
    message: str


class ErrorBody(_WireModel):
    error: ErrorDetail


# Request bodies: strict (extra fields are a client bug on our own server, but harmless: ignore).
class CreateJobRequest(_WireModel):
    name: str = Field(min_length=1, max_length=200)
    dataset_id: str
    base_model: str
    total_steps: int = Field(ge=1, le=10_000_000)
    params: dict[str, Any] = Field(default_factory=dict)
    # Scheduling (issue 16), all optional: start held, after another job ("finished": whatever its end;
    # "completed": only if it succeeds), or not before a moment.
    held: bool = False
    after_job_id: str | None = Field(default=None, max_length=100)
    after_condition: Literal["finished", "completed"] | None = None
    not_before: str | None = Field(default=None, max_length=64)


class QueueUpdateRequest(_WireModel):
    """`PATCH /api/training/jobs/{id}/queue` (issue 16): move a waiting job and/or change how it waits."""

    move: Literal["top", "up", "down", "bottom"] | None = None
    before_job_id: str | None = Field(default=None, max_length=100)  # move just before this queued job
    held: bool | None = None
    after_job_id: str | None = Field(default=None, max_length=100)  # "" clears it
    after_condition: Literal["finished", "completed"] | None = None
    not_before: str | None = Field(default=None, max_length=64)  # "" clears it


class CreateDatasetRequest(_WireModel):
    name: str = Field(min_length=1, max_length=200)
    type: Literal["image", "audio", "video", "text"]


class CaptionUpdate(_WireModel):
    caption: str = Field(max_length=10_000)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z` suffix and millisecond precision, as the contract wants."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str | None) -> datetime | None:
    """Parse a wire timestamp into an aware UTC datetime; None for missing or unreadable text."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a model under its wire field names."""
    return model.model_dump(mode="json", by_alias=True)
