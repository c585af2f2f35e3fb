"""What the served OpenAPI document says beyond what FastAPI infers from the route signatures.

Several inputs are checked by the routes themselves, so that a bad one gets the contract's specific
error (`invalid_hash`, a sentence naming the field) rather than a generic validation message; FastAPI
cannot see those checks. `describe_server_checks` writes them into the document, so that every value the
schema allows is one the server accepts (a client or a fuzzer that follows the document is never refused
for the shape of its input) and empty or non-printable values the server refuses are refused by the
schema too. Each entry names the route check it mirrors; a renamed component or parameter fails loudly
here instead of silently dropping the constraint.
"""

from __future__ import annotations

from typing import Any

from training_studio.contract import JobStatus
from training_studio.server.routes_jobs import CURSOR_PATTERN

# files.normalise_sha256 strips and lower-cases, then wants 64 hex digits.
SHA256_PATTERN = "^[0-9a-fA-F]{64}$"
# routes_jobs._parse_statuses: a comma list of statuses, `all` or `active` (it also tolerates case,
# blanks and empty items; the document shows the plain form).
_STATUS_WORDS = "|".join(["all", "active", *(s.value for s in JobStatus if s is not JobStatus.UNKNOWN)])
JOB_STATUS_LIST_PATTERN = f"^({_STATUS_WORDS})(,({_STATUS_WORDS}))*$"
# Names are display text (files.clean_display_text drops control, format, private-use and unassigned
# characters and collapses whitespace) and must not be blank after that: the document asks for at least one
# visible character from a range that holds nothing the cleaning removes (ASCII, Latin, Cyrillic, CJK, Hangul).
VISIBLE_TEXT_PATTERN = "[!-~\\u00a1-\\u00ac\\u00ae-\\u024f\\u0400-\\u04ff\\u4e00-\\u9fa5\\uac00-\\ud7a3]"
# routes_jobs.create_job refuses ids that are not printable text; every id this server hands out is ASCII.
PRINTABLE_ID_PATTERN = "^[!-~]+$"
# runner.presets: a base model id (built-in or preset) is [A-Za-z0-9._-], 1-100 characters.
BASE_MODEL_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def describe_server_checks(document: dict[str, Any]) -> dict[str, Any]:
    """Add the routes' own input checks to `document` (changed in place and returned)."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.setdefault("schema", {})
                if parameter["in"] == "path":
                    schema["minLength"] = 1  # an empty segment never reaches the operation
                    if parameter["name"] == "sha256":
                        schema["pattern"] = SHA256_PATTERN
    _string_schema(_parameter(document, "/api/training/jobs", "get", "status"))["pattern"] = JOB_STATUS_LIST_PATTERN
    # routes_jobs reads `before` as an ISO 8601 / RFC 3339 timestamp.
    _string_schema(_parameter(document, "/api/training/jobs", "get", "before"))["format"] = "date-time"
    _string_schema(_parameter(document, "/api/training/jobs", "get", "after"))["format"] = "date-time"
    # routes_jobs._decode_cursor: `<createdAt>~<sort key>` (issue 16 history paging).
    _string_schema(_parameter(document, "/api/training/jobs", "get", "cursor"))["pattern"] = CURSOR_PATTERN
    # routes_jobs._schedule_fields reads not_before as a timestamp; after_job_id must name a job (a 422
    # otherwise, like an unknown dataset id is a 404: the document cannot know ids).
    for component in ("CreateJobRequest", "QueueUpdateRequest"):
        _nullable_string(schemas_of(document)[component]["properties"]["not_before"])["format"] = "date-time"
    schemas = document["components"]["schemas"]
    for component in ("CreateJobRequest", "CreateDatasetRequest", "SaveJobTemplateRequest"):
        schemas[component]["properties"]["name"]["pattern"] = VISIBLE_TEXT_PATTERN
    schemas["CreateJobRequest"]["properties"]["dataset_id"]["pattern"] = PRINTABLE_ID_PATTERN
    schemas["CreateJobRequest"]["properties"]["base_model"]["pattern"] = BASE_MODEL_ID_PATTERN
    return document


def schemas_of(document: dict[str, Any]) -> dict[str, Any]:
    return document["components"]["schemas"]


def _nullable_string(schema: dict[str, Any]) -> dict[str, Any]:
    for candidate in [schema, *schema.get("anyOf", [])]:
        if candidate.get("type") == "string":
            return candidate
    raise KeyError("not a string schema")


def _string_schema(parameter: dict[str, Any]) -> dict[str, Any]:
    """The string schema of a parameter, also when FastAPI wrote it as `anyOf: [string, null]`."""
    schema = parameter["schema"]
    for candidate in [schema, *schema.get("anyOf", [])]:
        if candidate.get("type") == "string":
            return candidate
    raise KeyError(f"parameter {parameter['name']!r} is not a string")


def _parameter(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    for parameter in document["paths"][path][method]["parameters"]:
        if parameter["name"] == name:
            return parameter
    raise KeyError(f"{method.upper()} {path} has no parameter {name!r}")
