"""A minimal stand-in for a foreign server on a real socket: only the seed's endpoints, optionally revisions.

LABELLED FAKE: this is not the Training Studio server. The app must keep working against any server that
implements just the seed contract (docs/api.md, "Seed endpoints"): `GET /api/health`,
`GET /api/training/jobs?status=active`, `GET /api/training/status?job_id=` and
`POST /api/training/jobs/{id}/cancel`. Everything else (the event stream, history, datasets) answers 404,
as an unknown route does. With `revisions=True` it also does what a server with revisions but without an
event stream would: the `X-Training-Studio-Revision` header on job lists, and `since=R` answering only the
jobs changed after R (409 `revision_unknown` for an R it does not know). `events_status` makes
`GET /api/training/events` answer that status instead (a 200 opens a stream that says hello and stays
quiet), for a server whose stream fails while everything else works.

Jobs live in memory: a test adds them with `add_job()` and moves them with `advance()`/`finish()`; every
change takes the next revision. Every request is recorded in `requests` as (method, path, query).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def _now() -> str:
    moment = datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SeedOnlyServer:
    ACTIVE = ("pending", "queued", "running")

    def __init__(self, *, token: str = "seed-token", revisions: bool = False, events_status: int = 404) -> None:
        self.token = token
        self.revisions = revisions
        self.events_status = events_status
        self.revision = 1000
        self.horizon = 1000  # `since` below this is unknown (409): see forget_history()
        self.jobs: dict[str, dict[str, Any]] = {}
        self._job_revision: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def _not_found(self) -> None:
                self._send(404, {"error": {"code": "not_found", "message": "no such route"}})

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                owner.requests.append(("GET", parts.path, query))
                if parts.path == "/api/health":
                    self._send(200, {"status": "ok", "version": "seed-1.0"})
                    return
                if self.headers.get("Authorization") != f"Bearer {owner.token}":
                    self._send(401, {"error": {"code": "unauthorized", "message": "bad token"}})
                    return
                if parts.path == "/api/training/jobs" and query.get("status") == ["active"]:
                    self._list(query)
                elif parts.path == "/api/training/status" and query.get("job_id"):
                    with owner._lock:
                        job = owner.jobs.get(query["job_id"][0])
                        job = dict(job) if job is not None else None
                    if job is None:
                        self._send(404, {"error": {"code": "job_not_found", "message": "no such job"}})
                    else:
                        self._send(200, job)
                elif parts.path == "/api/training/events" and owner.events_status != 404:
                    self._stream()
                else:
                    self._not_found()

            def _list(self, query: dict[str, list[str]]) -> None:
                headers: dict[str, str] = {}
                with owner._lock:
                    if owner.revisions:
                        headers["X-Training-Studio-Revision"] = str(owner.revision)
                        since_text = (query.get("since") or [None])[0]
                        if since_text is not None:
                            since = int(since_text)
                            if since > owner.revision or since < owner.horizon:
                                body = {"error": {"code": "revision_unknown", "message": "unknown revision"}}
                                self._send(409, body, headers)
                                return
                            changed = sorted((rev, job_id) for job_id, rev in owner._job_revision.items()
                                             if rev > since)
                            self._send(200, [dict(owner.jobs[job_id]) for _rev, job_id in changed], headers)
                            return
                    active = [dict(job) for job in owner.jobs.values() if job["status"] in owner.ACTIVE]
                self._send(200, active, headers)

            def _stream(self) -> None:
                if owner.events_status != 200:
                    self._send(owner.events_status, {"error": {"code": "internal", "message": "stream broken"}})
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    hello = json.dumps({"revision": owner.revision, "version": "seed-1.0"})
                    self.wfile.write(f"retry: 1000\nid: {owner.revision}\nevent: hello\ndata: {hello}\n\n".encode())
                    self.wfile.flush()
                    while not owner._stop.wait(0.05) and owner.events_status == 200:
                        pass
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                owner.requests.append(("POST", parts.path, {}))
                segments = parts.path.split("/")
                if (len(segments) == 6 and parts.path.startswith("/api/training/jobs/")
                        and segments[5] == "cancel"):
                    with owner._lock:
                        job = owner.jobs.get(segments[4])
                    if job is None:
                        self._send(404, {"error": {"code": "job_not_found", "message": "no such job"}})
                        return
                    owner.finish(job["id"], "cancelled")
                    self._send(200, {"success": True})
                    return
                self._not_found()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="seed-server", daemon=True)

    # the jobs -----------------------------------------------------------------------------------------
    def _touch(self, job_id: str) -> None:
        self.revision += 1
        self._job_revision[job_id] = self.revision
        if self.revisions:
            self.jobs[job_id]["revision"] = self.revision

    def add_job(self, job_id: str, name: str, total_steps: int = 10) -> None:
        with self._lock:
            self.jobs[job_id] = {"id": job_id, "name": name, "status": "running", "progress": 0.0,
                                 "currentStep": 0, "totalSteps": total_steps, "currentLoss": None,
                                 "startedAt": _now(), "createdAt": _now()}
            self._touch(job_id)
        time.sleep(0.002)  # distinct createdAt values keep the rows in creation order

    def advance(self, job_id: str, step: int) -> None:
        with self._lock:
            job = self.jobs[job_id]
            job["currentStep"] = step
            job["progress"] = round(100.0 * step / job["totalSteps"], 2)
            job["currentLoss"] = 1.0 / (step + 1)
            self._touch(job_id)

    def finish(self, job_id: str, status: str = "completed") -> None:
        with self._lock:
            job = self.jobs[job_id]
            job["status"] = status
            if status == "completed":
                job["currentStep"] = job["totalSteps"]
                job["progress"] = 100.0
            self._touch(job_id)

    def forget_history(self) -> None:
        """From now on only revisions from the current one on can be answered (as after pruning)."""
        with self._lock:
            self.revision += 1
            self.horizon = self.revision

    def count(self, path: str, **query: str) -> int:
        return sum(1 for _method, seen, seen_query in list(self.requests)
                   if seen == path and all(seen_query.get(k) == [v] for k, v in query.items()))

    # lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> "SeedOnlyServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
