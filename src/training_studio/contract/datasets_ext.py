"""The dataset workbench's wire shapes (issue 17): batch caption edits, resolution buckets, repeats and the
validation split, captioning jobs. snake_case on the wire like the other dataset fields (docs/api.md,
"Dataset workbench")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BucketInfo",
    "BucketReportResponse",
    "CaptionBatchRequest",
    "CaptionBatchResult",
    "CaptionChange",
    "CaptionerInfo",
    "CAPTION_OPS",
    "DatasetSettingsUpdate",
    "StartCaptionJobRequest",
    "ValidationSplit",
]

CAPTION_OPS = ("prefix", "suffix", "replace", "regex_replace", "set", "clear", "restore")
MAX_CAPTION_CHARS = 10_000
MAX_BATCH_FILES = 100_000
# A file's SHA-256 as the server accepts it (upper case is read as lower case)
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


class _ExtModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _only_hash_keys(schema: dict) -> None:
    """`captions` takes SHA-256 keys only (pydantic writes patternProperties but lets any other key through)."""
    for option in schema.get("properties", {}).get("captions", {}).get("anyOf", []):
        if "patternProperties" in option:
            option["additionalProperties"] = False


class CaptionBatchRequest(_ExtModel):
    """One caption operation over a selection of a dataset's files, applied all or none.

    prefix/suffix: `text` before/after each caption; replace: every `find` (plain text) by `replace`;
    regex_replace: `find` is a regular expression (Python `re` syntax); in `replace`, \\1…\\99 and \\g<name>
    insert groups (one the pattern lacks stays as written) and \\\\ is a backslash, all else is literal;
    set: the caption becomes `text`; clear: the caption becomes empty; restore: each file of `captions`
    gets its caption back (the undo of any operation; `files` is ignored).
    """
    op: Literal["prefix", "suffix", "replace", "regex_replace", "set", "clear", "restore"]
    text: str | None = Field(default=None, max_length=MAX_CAPTION_CHARS)
    # format "regex": the document says what the server compiles (for a plain replace any text would do)
    find: str | None = Field(default=None, max_length=1000, json_schema_extra={"format": "regex"})
    replace: str | None = Field(default=None, max_length=MAX_CAPTION_CHARS)
    ignore_case: bool = False  # replace / regex_replace
    files: Annotated[list[Sha256], Field(max_length=MAX_BATCH_FILES)] | Literal["all"] = Field(default="all")
    captions: dict[Sha256, Annotated[str, Field(max_length=MAX_CAPTION_CHARS)]] | None = None  # restore: sha256 -> caption
    dry_run: bool = False

    model_config = ConfigDict(extra="ignore", populate_by_name=True, json_schema_extra=_only_hash_keys)


class CaptionChange(_ExtModel):
    sha256: str
    before: str
    after: str


class CaptionBatchResult(_ExtModel):
    dry_run: bool
    selected: int  # files the operation looked at
    changed: int  # of those, whose caption changes (changed)
    files: list[str]  # sha256 of every changed file, in dataset order
    changes: list[CaptionChange]  # before/after: a few examples on a dry run; on apply as many as the bound allows
    changes_complete: bool  # False when `changes` was cut short (then undo from the client's own copy)


class BucketInfo(_ExtModel):
    width: int
    height: int
    count: int
    small: bool  # fewer images than batch_size (OneTrainer drops them, kohya trains short batches)
    files: list[str]


class BucketReportResponse(_ExtModel):
    resolution: int
    step: int
    batch_size: int
    min_bucket: int
    max_bucket: int
    image_count: int
    buckets: list[BucketInfo]
    upscaled: list[str]  # images enlarged to fill their bucket (smaller than it: a warning)
    unsized: list[str]  # files without a stored size (not images): not bucketed


class ValidationSplit(_ExtModel):
    """Either a share of the files (chosen reproducibly by content hash) or the files themselves."""
    percent: float | None = Field(default=None, ge=0, le=90)
    files: list[Sha256] | None = Field(default=None, max_length=MAX_BATCH_FILES)


class DatasetSettingsUpdate(_ExtModel):
    repeats: int | None = Field(default=None, ge=1, le=10_000)
    validation: ValidationSplit | None = None


class StartCaptionJobRequest(_ExtModel):
    preset: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    name: str | None = Field(default=None, max_length=200)


class CaptionerInfo(_ExtModel):
    id: str
    name: str
    description: str = ""
