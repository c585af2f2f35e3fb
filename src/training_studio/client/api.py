"""The async API client: one class over one shared `httpx.AsyncClient`, speaking the wire contract.

`ApiClient` owns the HTTP details the rest of the app should never see: the base URL and bearer token
(both replaceable at run time, e.g. after the local server restarted on another port), request timeouts
kept shorter than the GUI's refresh interval, parsing answers into the contract's pydantic models, the
server's clock offset (read from every answer's `Date` header, so elapsed times can use the server's
clock), and turning every failure (transport, HTTP status, malformed or ill-shaped body) into one of the
typed errors of `training_studio.client.errors`. Nothing here imports Qt.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from training_studio.client.errors import (
    ApiError,
    AuthFailed,
    BadResponse,
    CancelRejected,
    CannotConnect,
    Conflict,
    NotFound,
    RequestRejected,
    RequestTimedOut,
    ServerError,
)
from training_studio.contract.models import (
    BaseModelInfo,
    Dataset,
    DatasetFile,
    Health,
    JobStatus,
    LogChunk,
    MetricPoint,
    TrainedModel,
    TrainingJob,
)

from training_studio.contract.models import JobOutputFile  # a job's samples (and models' checkpoints)
from training_studio.contract.models import QueueUpdateRequest
from training_studio.contract.system import SystemInfo
from training_studio.contract.templates import JobTemplate, JobTemplateSettings, SaveJobTemplateRequest
from training_studio.contract.datasets_ext import BucketReportResponse, CaptionBatchResult, CaptionerInfo

__all__ = ["ApiClient", "ActiveJobs", "HistoryPage", "DEFAULT_TIMEOUT_S", "REVISION_HEADER", "NEXT_CURSOR_HEADER",
           "DECODE_IN_THREAD_MIN_BYTES", "decode_json_list"]

# The GUI refreshes every 5 s; a request must give up before the next one is due.
DEFAULT_TIMEOUT_S = 4.0

# Every answer of GET /api/training/jobs from a server with revisions carries it (docs/api.md); its
# presence is how a client learns that the server understands `since=`.
REVISION_HEADER = "X-Training-Studio-Revision"
NEXT_CURSOR_HEADER = "X-Training-Studio-Next-Cursor"  # history paging (docs/api.md)
# `active_jobs(decode_in_thread=True)` decodes smaller bodies in place: handing them to the worker thread and
# back (a wake-up of the loop) would cost more than decoding them (a few jobs, an empty delta).
DECODE_IN_THREAD_MIN_BYTES = 64 * 1024

_T = TypeVar("_T")
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


@dataclass(frozen=True)
class HistoryPage:
    """One page of `job_history()`: the jobs, and the cursor of the next page (None: the last one)."""

    jobs: list[TrainingJob]
    next_cursor: str | None
    sorted_by_server: bool = True


@dataclass(frozen=True)
class ActiveJobs:
    """One answer of the active-jobs list: its items as decoded JSON (validate each with
    `ApiClient.parse_job()`), and the server's revision at the time of the answer (None: the server has
    no revisions, so it does not understand `since` either). `prepared` is what the caller's `prepare`
    made of the items (on the decoding thread with `decode_in_thread`), else None; given a `prepare`,
    `items` is empty (the decoded items are freed where they were decoded)."""

    items: list[Any]
    revision: int | None
    prepared: Any = None


class ApiClient:
    """Typed access to one Training Studio server.

    The `httpx.AsyncClient` is created here (or passed in) and closed by `aclose()`; the app makes one
    ApiClient at start-up and closes it at quit. `set_connection()` points it at another URL/token
    without dropping the connection pool.
    """

    def __init__(self, base_url: str = "", token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                 http: httpx.AsyncClient | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 3.0))
        self._owns_http = http is None  # decided before `http` is filled in below: ours to close
        if http is None:
            http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, verify=_tls_verify(base_url))
        self._http = http
        self.clock_offset: float | None = None  # server clock minus local clock, seconds

    # connection --------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def token(self) -> str | None:
        return self._token

    def set_connection(self, base_url: str, token: str | None) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self.clock_offset = None

    def replace_http(self, http: httpx.AsyncClient) -> httpx.AsyncClient:
        """Use `http` from now on (e.g. other TLS settings); it is closed by `aclose()`. Returns the old
        pool, which the caller closes once nothing uses it."""
        old, self._http, self._owns_http = self._http, http, True
        return old

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared connection pool (the local-server manager probes through it too)."""
        return self._http

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    async def aclose(self) -> None:
        if self._owns_http and not self._http.is_closed:
            await self._http.aclose()

    # endpoints ---------------------------------------------------------------------------------
    async def health(self) -> Health:
        return self._parse(Health, await self._request("GET", "/api/health", auth=False))

    async def list_active_jobs(self) -> list[TrainingJob]:
        data = await self._request("GET", "/api/training/jobs", params={"status": "active"})
        return self._parse(list[TrainingJob], data)

    async def list_active_jobs_raw(self) -> list[Any]:
        """The active jobs as decoded JSON, items not yet validated: a caller that keeps the previous
        answer validates only the items that changed, each with `parse_job()`. Only the outer shape
        (a list) is checked here, with the same BadResponse `list_active_jobs()` would raise."""
        data = await self._request("GET", "/api/training/jobs", params={"status": "active"})
        if not isinstance(data, list):  # the message the whole-list parse gives
            raise BadResponse("The server's answer does not match the contract (body: Input should be a "
                              "valid list).")
        return data

    async def active_jobs(self, since: int | None = None, *, decode_in_thread: bool = False,
                          prepare: Callable[[list[Any]], Any] | None = None) -> ActiveJobs:
        """The active jobs, or with `since` only the jobs changed after that revision, whatever their
        status now (so a job that finished meanwhile comes with its final state). Items are not validated
        yet (see `list_active_jobs_raw()`). A `since` the server no longer knows (or one from another
        database) is a Conflict with code `revision_unknown`: fetch without `since` then.

        `decode_in_thread`: a body of `DECODE_IN_THREAD_MIN_BYTES` or more is decoded on a worker thread
        (one, shared; `decode_json_list`), and `prepare(items)` runs there too (e.g. validating the items into jobs: its exceptions, such as
        `parse_job`'s BadResponse, come out of this call), so the calling thread (the GUI's) only waits: at
        10,000 jobs decoding alone is tens of milliseconds. Without it both run on the calling thread."""
        params: dict[str, Any] = {"status": "active"}
        if since is not None:
            params["since"] = since
        response = await self._send("GET", "/api/training/jobs", params=params)
        header = response.headers.get(REVISION_HEADER, "").strip()
        revision = int(header) if header.isascii() and header.isdigit() else None
        body = response.content
        if decode_in_thread and len(body) >= DECODE_IN_THREAD_MIN_BYTES:
            data, prepared = await asyncio.wrap_future(
                _decoding_pool().submit(_decode_active_list, body, response.status_code, prepare))
        else:
            data, prepared = _decode_active_list(body, response.status_code, prepare)
        return ActiveJobs(data, revision, prepared)

    @staticmethod
    def parse_job(item: Any, position: int | None = None) -> TrainingJob:
        """Validate one job of a list answer; BadResponse names `position` as the list parse would."""
        try:
            return TrainingJob.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {}
            loc = ((position,) if position is not None else ()) + tuple(first.get("loc", ()))
            where = ".".join(str(p) for p in loc) or "body"
            raise BadResponse(f"The server's answer does not match the contract ({where}: "
                              f"{first.get('msg', 'invalid')}).") from exc

    async def list_jobs(self, statuses: Iterable[JobStatus | str] | None = None, *, limit: int = 100,
                        before: str | None = None) -> list[TrainingJob]:
        status = ",".join(str(s) for s in statuses) if statuses else "all"
        params: dict[str, Any] = {"status": status, "limit": limit}
        if before:
            params["before"] = before
        return self._parse(list[TrainingJob], await self._request("GET", "/api/training/jobs", params=params))

    async def job_status(self, job_id: str) -> TrainingJob:
        data = await self._request("GET", "/api/training/status", params={"job_id": job_id})
        return self._parse(TrainingJob, data)

    async def cancel_job(self, job_id: str) -> None:
        """Ask the server to cancel; raises CancelRejected on a 200 `{"success": false}`."""
        data = await self._request("POST", f"/api/training/jobs/{_segment(job_id)}/cancel")
        if not isinstance(data, dict) or not isinstance(data.get("success"), bool):
            raise BadResponse("The server's answer to the cancel request is not {\"success\": true|false}.")
        if not data["success"]:
            reason = data.get("message") or data.get("error")
            detail = f": {reason}" if isinstance(reason, str) and reason else " (it answered success: false)"
            raise CancelRejected(f"The server refused to cancel the job{detail}.".replace("..", "."),
                                 status_code=200)

    async def create_job(self, *, name: str, dataset_id: str, base_model: str, total_steps: int,
                         params: dict[str, Any] | None = None, held: bool = False,
                         after_job_id: str | None = None, after_condition: str | None = None,
                         not_before: str | None = None) -> TrainingJob:
        """POST a new job; the scheduling fields (issue 16) go in the body only when set, so a job without
        them is the same request an older server knows."""
        body: dict[str, Any] = {"name": name, "dataset_id": dataset_id, "base_model": base_model,
                                "total_steps": total_steps, "params": params or {}}
        schedule = {"held": held or None, "after_job_id": after_job_id, "after_condition": after_condition,
                    "not_before": not_before}
        body.update({key: value for key, value in schedule.items() if value is not None})
        return self._parse(TrainingJob, await self._request("POST", "/api/training/jobs", json_body=body))

    async def base_models(self) -> list[BaseModelInfo]:
        return self._parse(list[BaseModelInfo], await self._request("GET", "/api/training/base-models"))

    async def list_datasets(self) -> list[Dataset]:
        return self._parse(list[Dataset], await self._request("GET", "/api/datasets"))

    async def create_dataset(self, name: str, type_: str = "image") -> Dataset:
        return self._parse(Dataset, await self._request("POST", "/api/datasets",
                                                        json_body={"name": name, "type": type_}))

    async def upload_file(self, dataset_id: str, sha256: str, filename: str, content: bytes) -> None:
        await self._request("PUT", f"/api/datasets/{_segment(dataset_id)}/files/{_segment(sha256)}",
                            params={"filename": filename}, content=content)

    async def list_dataset_files(self, dataset_id: str) -> list[DatasetFile]:
        return self._parse(list[DatasetFile],
                           await self._request("GET", f"/api/datasets/{_segment(dataset_id)}/files"))

    async def commit_dataset(self, dataset_id: str) -> Dataset:
        return self._parse(Dataset, await self._request("POST", f"/api/datasets/{_segment(dataset_id)}/commit"))

    async def list_models(self) -> list[TrainedModel]:
        return self._parse(list[TrainedModel], await self._request("GET", "/api/models"))

    # history, queue, templates, the machine (issue 16) ------------------------------------------------
    async def job_history(self, statuses: Iterable[JobStatus | str] | None = None, *, limit: int = 100,
                          query: str | None = None, order: str | None = None, after: str | None = None,
                          before: str | None = None, cursor: str | None = None) -> HistoryPage:
        """One page of the server's jobs, sorted and filtered by the server; `next_cursor` asks for the page
        after it (None: this was the last). A server without history queries answers the plain list in
        newest-first order: then there is no cursor, and `sorted_by_server` is False."""
        params: dict[str, Any] = {"status": ",".join(str(s) for s in statuses) if statuses else "all",
                                  "limit": limit}
        for key, value in (("q", query), ("order", order), ("after", after), ("before", before),
                           ("cursor", cursor)):
            if value:
                params[key] = value
        response = await self._send("GET", "/api/training/jobs", params=params)
        try:
            data = response.json() if response.content else None
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise BadResponse("The server answered GET /api/training/jobs with something that is not JSON.",
                              status_code=response.status_code) from exc
        jobs = self._parse(list[TrainingJob], data)
        return HistoryPage(jobs, response.headers.get(NEXT_CURSOR_HEADER) or None,
                           sorted_by_server=REVISION_HEADER in response.headers)

    async def update_queue(self, job_id: str, **changes: Any) -> TrainingJob:
        """PATCH …/queue: `move` top/up/down/bottom or `before_job_id`, `held`, `after_job_id` (""
        clears), `after_condition`, `not_before` ("" clears)."""
        body = QueueUpdateRequest(**changes).model_dump(mode="json", exclude_unset=True)
        data = await self._request("PATCH", f"/api/training/jobs/{_segment(job_id)}/queue", json_body=body)
        return self._parse(TrainingJob, data)

    async def delete_job(self, job_id: str) -> None:
        await self._request("DELETE", f"/api/training/jobs/{_segment(job_id)}")

    async def list_templates(self) -> list[JobTemplate]:
        return self._parse(list[JobTemplate], await self._request("GET", "/api/training/templates"))

    async def save_template(self, name: str, settings: JobTemplateSettings | dict[str, Any]) -> JobTemplate:
        body = SaveJobTemplateRequest(name=name, settings=settings).model_dump(mode="json")
        return self._parse(JobTemplate, await self._request("POST", "/api/training/templates", json_body=body))

    async def delete_template(self, template_id: str) -> None:
        await self._request("DELETE", f"/api/training/templates/{_segment(template_id)}")

    async def system(self) -> SystemInfo:
        return self._parse(SystemInfo, await self._request("GET", "/api/system"))

    # for the event stream (client.events), which opens its own streaming request ---------------------
    @property
    def timeout(self) -> httpx.Timeout:
        return self._timeout

    def prepare_request(self, path: str, *, accept: str, auth: bool = True) -> tuple[str, dict[str, str]]:
        """The URL and headers (bearer token included) of a request to `path`; CannotConnect when the
        client has no server yet or is closed."""
        return self._url_and_headers(path, auth=auth, accept=accept)

    def note_response(self, response: httpx.Response) -> None:
        """Learn the server's clock from an answer received outside `_send`."""
        self._note_clock(response, time.time())

    def error_for(self, response: httpx.Response) -> ApiError:
        """The typed error of an HTTP error answer (its body read already)."""
        return self._error_for(response)

    def describe_connect_failure(self, error: BaseException) -> str:
        return f"Cannot connect to the server at {self._base_url}.{_why_no_connection(error)}"

    # plumbing ----------------------------------------------------------------------------------
    def _url_and_headers(self, path: str, *, auth: bool, accept: str) -> tuple[str, dict[str, str]]:
        if not self._base_url:
            raise CannotConnect("Not connected to a server yet.")
        if self._http.is_closed:
            raise CannotConnect("The connection to the server is closed (the app is quitting).")
        headers = {"Accept": accept}
        if auth and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return self._base_url + path, headers

    async def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None,
                    content: bytes | AsyncIterable[bytes] | None = None, auth: bool = True,
                    accept: str = "application/json", extra_headers: dict[str, str] | None = None
                    ) -> httpx.Response:
        """One request; the response if it is 2xx, else the matching typed error."""
        url, headers = self._url_and_headers(path, auth=auth, accept=accept)
        if content is not None:
            headers["Content-Type"] = "application/octet-stream"
        headers.update(extra_headers or {})
        sent_at = time.time()
        try:
            response = await self._http.request(method, url, params=params, json=json_body, content=content,
                                                headers=headers, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"The server at {self._base_url} did not answer in time.") from exc
        except httpx.InvalidURL as exc:
            raise CannotConnect(f"The server address {self._base_url!r} is not a valid URL.") from exc
        except httpx.HTTPError as exc:
            raise CannotConnect(f"Cannot connect to the server at {self._base_url}.{_why_no_connection(exc)}") \
                from exc
        self._note_clock(response, (sent_at + time.time()) / 2)
        if response.status_code >= 400:
            raise self._error_for(response)
        return response

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                       json_body: Any = None, content: bytes | None = None, auth: bool = True) -> Any:
        """One request whose answer is JSON; the decoded body (None for an empty one)."""
        response = await self._send(method, path, params=params, json_body=json_body, content=content, auth=auth)
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise BadResponse(f"The server answered {method} {path} with something that is not JSON.",
                              status_code=response.status_code) from exc

    def _note_clock(self, response: httpx.Response, local_moment: float) -> None:
        date = response.headers.get("date")
        if not date:
            return
        try:
            server_moment = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        estimate = server_moment - local_moment
        # The Date header truncates to whole seconds, so each estimate is at most 1 s below the true offset:
        # the largest one seen is the best. A much lower one means the server's clock was set back.
        if self.clock_offset is None or estimate > self.clock_offset or estimate < self.clock_offset - 2.0:
            self.clock_offset = estimate

    def _error_for(self, response: httpx.Response) -> ApiError:
        status = response.status_code
        code: str | None = None
        detail: str | None = None
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                code = error.get("code") if isinstance(error.get("code"), str) else None
                detail = error.get("message") if isinstance(error.get("message"), str) else None
        except ValueError:
            pass
        detail = detail.strip() if detail else None
        if detail and detail[-1] not in ".!?":
            detail += "."
        suffix = f": {detail}" if detail else "."
        if status == 401:
            return AuthFailed("The server rejected the access token (401): the token is wrong or missing.",
                              status_code=status, code=code)
        if status == 404:
            return NotFound(f"Not found{suffix}", status_code=status, code=code)
        if status == 409:
            return Conflict(f"Not possible now{suffix}", status_code=status, code=code)
        if status >= 500:
            return ServerError(f"The server failed with HTTP {status}{suffix}", status_code=status, code=code)
        return RequestRejected(f"The server refused the request (HTTP {status}){suffix}",
                               status_code=status, code=code)

    @staticmethod
    def _parse(model: type[_T] | Any, data: Any) -> _T:
        try:
            if isinstance(model, type) and issubclass(model, BaseModel):
                return model.model_validate(data)  # type: ignore[return-value]
            adapter = _ADAPTERS.get(model)
            if adapter is None:
                adapter = _ADAPTERS[model] = TypeAdapter(model)
            return adapter.validate_python(data)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ())) or "body"
            raise BadResponse(f"The server's answer does not match the contract ({where}: "
                              f"{first.get('msg', 'invalid')}).") from exc

    # --- datasets and models (added by the Datasets/Models panels; only additions below) -----------
    async def get_dataset(self, dataset_id: str) -> Dataset:
        return self._parse(Dataset, await self._request("GET", f"/api/datasets/{_segment(dataset_id)}"))

    async def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset; Conflict (code `dataset_in_use`) while an active job uses it."""
        await self._request("DELETE", f"/api/datasets/{_segment(dataset_id)}")

    async def set_caption(self, dataset_id: str, sha256: str, caption: str) -> None:
        await self._request("PUT", f"/api/datasets/{_segment(dataset_id)}/files/{_segment(sha256)}/caption",
                            json_body={"caption": caption})

    async def dataset_thumbnail(self, dataset_id: str, sha256: str, size: int = 256) -> bytes:
        """The encoded (JPEG or PNG) thumbnail of one file, no larger than size×size."""
        return await self._request_bytes(
            f"/api/datasets/{_segment(dataset_id)}/files/{_segment(sha256)}/thumbnail", params={"size": size})

    async def delete_model(self, model_id: str) -> None:
        await self._request("DELETE", f"/api/models/{_segment(model_id)}")

    async def model_samples(self, model_id: str) -> bytes:
        """The PNG of the images the model generated; NotFound when its trainer made none."""
        return await self._request_bytes(f"/api/models/{_segment(model_id)}/samples")

    # a job's samples (issue 14's details pane) -------------------------------------------------------
    async def job_samples(self, job_id: str) -> list[JobOutputFile]:
        """The sample images the job's trainer wrote so far, ascending step (docs/api.md)."""
        data = await self._request("GET", f"/api/training/jobs/{_segment(job_id)}/samples")
        return self._parse(list[JobOutputFile], data)

    async def job_sample_image(self, job_id: str, name: str) -> bytes:
        """The encoded image of one sample; `name` is its path inside the job's output folder."""
        path = "/".join(_segment(part) for part in name.split("/"))
        return await self._request_bytes(f"/api/training/jobs/{_segment(job_id)}/samples/{path}")

    # a job's step checkpoints, as its trainer writes them (issue 13) ---------------------------------
    async def job_checkpoints(self, job_id: str) -> list[JobOutputFile]:
        """The step checkpoints the job's trainer wrote so far, ascending step (docs/api.md); NotFound
        (code `job_not_found`) for an unknown job, a plain NotFound from a server without the listing."""
        data = await self._request("GET", f"/api/training/jobs/{_segment(job_id)}/checkpoints")
        return self._parse(list[JobOutputFile], data)

    async def download_job_checkpoint_file(self, job_id: str, name: str,
                                           write: Callable[[bytes], Awaitable[None]],
                                           progress: Callable[[int, int | None], None] | None = None) -> int:
        """Stream one step checkpoint (a `name` from job_checkpoints) as download_checkpoint does; NotFound
        (code `checkpoint_not_found`) when it is gone, RequestRejected (code `outside_job_folder`) when it
        leads out of the job's folder."""
        path = "/".join(_segment(part) for part in name.split("/"))
        return await self._download(f"/api/training/jobs/{_segment(job_id)}/checkpoints/{path}", write, progress)

    async def download_checkpoint(self, model_id: str, write: Callable[[bytes], Awaitable[None]],
                                  progress: Callable[[int, int | None], None] | None = None) -> int:
        """Stream a model's checkpoint, handing each chunk to `write` (which should push the disk write
        off the event loop); `progress(done, total)` after each chunk. Returns the byte count.

        The timeout applies to each read, not to the whole download, so big checkpoints are fine.
        """
        return await self._download(f"/api/models/{_segment(model_id)}/checkpoint", write, progress)

    # a model's intermediate checkpoints (issue 13) -------------------------------------------------
    async def model_checkpoints(self, model_id: str) -> list[JobOutputFile]:
        """The intermediate checkpoints its trainer saved on the way, ascending step (docs/api.md);
        `name` is the path inside its training job's output folder. NotFound for an unknown model."""
        data = await self._request("GET", f"/api/models/{_segment(model_id)}/checkpoints")
        return self._parse(list[JobOutputFile], data)

    async def download_model_checkpoint_file(self, model_id: str, name: str,
                                             write: Callable[[bytes], Awaitable[None]],
                                             progress: Callable[[int, int | None], None] | None = None) -> int:
        """Stream one intermediate checkpoint (a `name` from model_checkpoints) as download_checkpoint
        does; NotFound when it is gone, RequestRejected (code `outside_job_folder`) when it leads out of
        its training job's folder."""
        path = "/".join(_segment(part) for part in name.split("/"))
        return await self._download(f"/api/models/{_segment(model_id)}/checkpoints/{path}", write, progress)

    async def _download(self, path: str, write: Callable[[bytes], Awaitable[None]],
                        progress: Callable[[int, int | None], None] | None) -> int:
        """Stream a file download (see download_checkpoint); errors mapped as `_request` maps them."""
        url = self._prepare(path)
        headers = self._headers(accept="application/octet-stream")
        sent_at = time.time()
        done = 0
        try:
            async with self._http.stream("GET", url, headers=headers, timeout=self._timeout) as response:
                self._note_clock(response, (sent_at + time.time()) / 2)
                if response.status_code >= 400:
                    await response.aread()
                    raise self._error_for(response)
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                async for chunk in response.aiter_bytes(1 << 20):
                    await write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                if total is not None and done != total:
                    raise BadResponse(f"The checkpoint download ended early ({done:,} of {total:,} bytes).")
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"The server at {self._base_url} stopped sending the checkpoint.") from exc
        except httpx.HTTPError as exc:  # a disk error from `write` (OSError) is the caller's to report
            raise CannotConnect(f"The connection to the server at {self._base_url} broke during the "
                                f"checkpoint download.") from exc
        return done

    # --- job details (issue 14): metrics with their other series, log ranges --------------------------
    async def job_metrics(self, job_id: str, since_step: int = -1, stride: int = 1) -> list[MetricPoint]:
        """The job's metric points with step > since_step, ascending, every stride-th (the latest always);
        each point's `scalars` holds its other series (lr, grad_norm…) or None."""
        params: dict[str, Any] = {"since_step": since_step}
        if stride > 1:
            params["stride"] = stride
        data = await self._request("GET", f"/api/training/jobs/{_segment(job_id)}/metrics", params=params)
        return self._parse(list[MetricPoint], data)

    async def job_log(self, job_id: str, offset: int = 0, limit: int | None = None) -> LogChunk:
        """Log text from byte `offset` forward (at most `limit` bytes; the server's default 64 KiB)."""
        params: dict[str, Any] = {"offset": offset}
        if limit is not None:
            params["limit"] = limit
        return await self._log_chunk(job_id, params)

    async def job_log_tail(self, job_id: str, max_bytes: int) -> LogChunk:
        """The end of the log: at most `max_bytes` (1..1 MiB), beginning at a line start. `start` is where
        it begins (read older text with `job_log_before(start)`), `next_offset` where to follow from.
        RequestRejected (422) from a server without log ranges."""
        return await self._log_chunk(job_id, {"offset": -max_bytes})

    async def job_log_before(self, job_id: str, before: int, limit: int) -> LogChunk:
        """The log text that ends at byte `before` (at most `limit` bytes, beginning at a line start):
        text is exactly bytes [start, before); start == 0 at the beginning of the log. A chunk whose
        `start` is None comes from a server without log ranges (it read forward from 0 instead)."""
        return await self._log_chunk(job_id, {"before": before, "limit": limit})

    async def _log_chunk(self, job_id: str, params: dict[str, Any]) -> LogChunk:
        data = await self._request("GET", f"/api/training/jobs/{_segment(job_id)}/logs", params=params)
        return self._parse(LogChunk, data)

    def _prepare(self, path: str) -> str:
        if not self._base_url:
            raise CannotConnect("Not connected to a server yet.")
        if self._http.is_closed:
            raise CannotConnect("The connection to the server is closed (the app is quitting).")
        return self._base_url + path

    def _headers(self, *, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _request_bytes(self, path: str, *, params: dict[str, Any] | None = None) -> bytes:
        """GET a binary body (an image); errors are mapped exactly as `_request` maps them."""
        url = self._prepare(path)
        sent_at = time.time()
        try:
            response = await self._http.get(url, params=params, headers=self._headers(accept="image/*, */*"),
                                            timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"The server at {self._base_url} did not answer in time.") from exc
        except httpx.InvalidURL as exc:
            raise CannotConnect(f"The server address {self._base_url!r} is not a valid URL.") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise CannotConnect(f"Cannot connect to the server at {self._base_url}.") from exc
        self._note_clock(response, (sent_at + time.time()) / 2)
        if response.status_code >= 400:
            raise self._error_for(response)
        return response.content

    async def upload_file_stream(self, dataset_id: str, sha256: str, filename: str,
                                 chunks: AsyncIterable[bytes], size: int) -> tuple[DatasetFile, bool]:
        """PUT one file's bytes, streamed from `chunks` (exactly `size` bytes), under its SHA-256.

        Returns the server's record and whether it was newly stored (201) rather than already there (200).
        The body is never held in memory as a whole. Reads may wait long while the server verifies a
        big file (a full image decode), so the read timeout here is generous; connects stay quick.
        """
        url = self._prepare(f"/api/datasets/{_segment(dataset_id)}/files/{_segment(sha256)}")
        headers = self._headers(accept="application/json")
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Length"] = str(size)
        # 120 s: the server fully decodes an image before answering; each write/read waits at most that.
        timeout = httpx.Timeout(120.0, connect=self._timeout.connect)
        sent_at = time.time()
        try:
            response = await self._http.put(url, params={"filename": filename}, content=chunks, headers=headers,
                                            timeout=timeout)
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"The server at {self._base_url} did not answer the upload in time.") from exc
        except httpx.InvalidURL as exc:
            raise CannotConnect(f"The server address {self._base_url!r} is not a valid URL.") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise CannotConnect(f"The connection to the server at {self._base_url} broke during the "
                                f"upload.") from exc
        self._note_clock(response, (sent_at + time.time()) / 2)
        if response.status_code >= 400:
            raise self._error_for(response)
        try:
            data = response.json()
        except ValueError as exc:
            raise BadResponse("The server answered the upload with something that is not JSON.",
                              status_code=response.status_code) from exc
        return self._parse(DatasetFile, data), response.status_code == 201

    # dataset workbench (issue 17) --------------------------------------------------------------------
    async def batch_captions(self, dataset_id: str, op: str, *, files: list[str] | str = "all",
                             text: str | None = None, find: str | None = None, replace: str | None = None,
                             ignore_case: bool = False, captions: dict[str, str] | None = None,
                             dry_run: bool = False) -> CaptionBatchResult:
        """One caption operation over a selection (docs/api.md "Dataset workbench"); all or none.
        ValidationFailed (422) for a bad or too slow regular expression, NotFound for an unknown file."""
        body: dict[str, Any] = {"op": op, "files": files, "ignore_case": ignore_case, "dry_run": dry_run}
        for key, value in (("text", text), ("find", find), ("replace", replace), ("captions", captions)):
            if value is not None:
                body[key] = value
        data = await self._request("POST", f"/api/datasets/{_segment(dataset_id)}/captions/batch", json_body=body)
        return self._parse(CaptionBatchResult, data)

    async def dataset_buckets(self, dataset_id: str, *, resolution: int = 1024, step: int = 64,
                              batch_size: int = 1) -> BucketReportResponse:
        data = await self._request("GET", f"/api/datasets/{_segment(dataset_id)}/buckets",
                                   params={"resolution": resolution, "step": step, "batch_size": batch_size})
        return self._parse(BucketReportResponse, data)

    async def update_dataset(self, dataset_id: str, *, repeats: int | None = None,
                             validation_percent: float | None = None,
                             validation_files: list[str] | None = None) -> Dataset:
        """Repeats and/or the validation split (a percentage or the files); the layouts are rebuilt."""
        body: dict[str, Any] = {}
        if repeats is not None:
            body["repeats"] = repeats
        if validation_percent is not None:
            body["validation"] = {"percent": validation_percent}
        elif validation_files is not None:
            body["validation"] = {"files": validation_files}
        data = await self._request("PATCH", f"/api/datasets/{_segment(dataset_id)}", json_body=body)
        return self._parse(Dataset, data)

    async def export_dataset(self, dataset_id: str, write: Callable[[bytes], Awaitable[None]], *,
                             layout: str = "kohya",
                             progress: Callable[[int, int | None], None] | None = None) -> int:
        """Stream the dataset as a zip (kohya or imagefolder layout) into `write`; the byte count."""
        return await self._download(f"/api/datasets/{_segment(dataset_id)}/export?layout={_segment(layout)}",
                                    write, progress)

    async def captioners(self) -> list[CaptionerInfo]:
        return self._parse(list[CaptionerInfo], await self._request("GET", "/api/captioners"))

    async def start_caption_job(self, dataset_id: str, preset: str, name: str | None = None) -> TrainingJob:
        body: dict[str, Any] = {"preset": preset}
        if name:
            body["name"] = name
        data = await self._request("POST", f"/api/datasets/{_segment(dataset_id)}/caption", json_body=body)
        return self.parse_job(data)



_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON_DECODER = json.JSONDecoder()
_decoding: ThreadPoolExecutor | None = None


def _decoding_pool() -> ThreadPoolExecutor:
    """The one worker thread that decodes big list answers (started on first use)."""
    global _decoding
    if _decoding is None:
        _decoding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-decode")
    return _decoding


def decode_json_list(body: bytes) -> Any:
    """`json.loads(body)`, with a top-level array decoded one item at a time: the same values and the same
    errors, but never one C call holding the GIL for the whole body (about 30 ms at 10,000 jobs), so a
    worker thread decoding it lets the GUI thread run between items (every `sys.getswitchinterval()`)."""
    text = body.decode(json.detect_encoding(body), "surrogatepass")
    skip, decode = _JSON_SPACE.match, _JSON_DECODER.raw_decode
    position = skip(text).end()
    if not text.startswith("[", position):
        return json.loads(text)  # not an array: whatever it is, or its error, as a whole
    items: list[Any] = []
    append = items.append
    position = skip(text, position + 1).end()
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            item, position = decode(text, position)
            append(item)
            position = skip(text, position).end()
            if text.startswith(",", position):
                position = skip(text, position + 1).end()
            elif text.startswith("]", position):
                position += 1
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
    if skip(text, position).end() != len(text):
        raise json.JSONDecodeError("Extra data", text, position)
    return items


def _decode_active_list(body: bytes, status_code: int, prepare: Callable[[list[Any]], Any] | None
                        ) -> tuple[list[Any], Any]:
    """The list answer's items and what `prepare` made of them (see `ApiClient.active_jobs`)."""
    try:
        data = decode_json_list(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise BadResponse("The server answered GET /api/training/jobs with something that is not JSON.",
                          status_code=status_code) from exc
    if not isinstance(data, list):
        raise BadResponse("The server's answer does not match the contract (body: Input should be a "
                          "valid list).")
    if prepare is None:
        return data, None
    # The items stay here (on the decoding thread, with `decode_in_thread`): at 10,000 jobs freeing them is
    # some 300,000 objects, several milliseconds of the thread that drops them last.
    prepared = prepare(data)
    del data
    return [], prepared


def _tls_verify(base_url: str) -> ssl.SSLContext | bool:
    """Certificate checking for the client's lifetime, chosen from the first URL.

    Loading the CA bundle costs about 100 ms at start-up, and the embedded server (the default) is
    plain HTTP on loopback, so the bundle is loaded only for an https URL. For an http URL the client
    gets a TLS context with no trusted roots: should it ever be pointed at https later, it fails closed
    (a certificate error) rather than talking to an unverified server.
    """
    if base_url.lower().startswith("https://"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _why_no_connection(error: BaseException) -> str:
    """A sentence naming the cause of a failed connect when it is one the user can act on, else "".

    httpx reports both an unknown host name and a refused connection as ConnectError; the cause
    below it tells them apart, and the fix differs (check the address / start the server).
    """
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            host = urlsplit(str(error.request.url)).hostname if _has_request(error) else None
            name = f"“{host}”" if host else "of the server"
            return f" The host name {name} was not found: check the address."
        if isinstance(cause, ConnectionRefusedError):
            return " Nothing answers at that address (connection refused): is the server running?"
        cause = cause.__cause__ or cause.__context__
    return ""


def _has_request(error: BaseException) -> bool:
    try:
        return isinstance(error, httpx.RequestError) and error.request is not None
    except RuntimeError:  # httpx raises when the error was created without a request
        return False


def _segment(value: str) -> str:
    """Quote an id for use as one URL path segment (ids come from servers we may not trust)."""
    from urllib.parse import quote

    return quote(value, safe="")
