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
    # The server's change counter when this state was written (issue 12); None from older servers.
    revision: int | None = None
    # The server's change counter when this state was stored (live updates, docs/api.md "Revisions").
    revision: int | None = None


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
    revision: int | None = None  # extension: see TrainingJob.revision


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
    revision: int | None = None  # see TrainingJob.revision


class DatasetFile(_WireModel):
    sha256: str
    filename: str
    size: int
    width: int | None = None
    height: int | None = None
    caption: str | None = None


class ParamSpec(_WireModel):
    name: str
    type: ParamType
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = None
    description: str = ""


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
