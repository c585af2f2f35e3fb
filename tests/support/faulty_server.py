"""A tiny real-socket HTTP server that misbehaves on purpose, for the client's fault cases.

The real server answers by the contract; to prove the client and GUI survive servers that do not (a
500, malformed JSON, the wrong shape, an unknown status value, a slow answer, a 200 `success: false`
cancel), tests script this one: `routes[(method, path)] = Reply(...)`. It runs `http.server` on
127.0.0.1 with an ephemeral port in a background thread and records every request it got.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Any = b""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def job_json(job_id: str = "j1", *, name: str = "job one", status: str = "running", progress: float = 40.0,
             created_at: str = "2026-01-01T00:00:00.000Z", started_at: str | None = "2026-01-01T00:00:01.000Z",
             **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "name": name, "status": status, "progress": progress, "currentStep": 40,
            "totalSteps": 100, "currentLoss": 0.25, "startedAt": started_at, "createdAt": created_at, **extra}


class FaultyServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply] = {}
        self.date_header: str | None = None  # replaces the Date header, to fake a server clock
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests handled at the same moment
        self._count_lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                owner.requests.append((self.command, parts.path, parse_qs(parts.query), dict(self.headers)))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                reply = owner.routes.get((self.command, parts.path))
                if reply is None:
                    reply = Reply(404, {"error": {"code": "not_found", "message": "no such route"}})
                with owner._count_lock:
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    if reply.delay:
                        time.sleep(reply.delay)
                finally:
                    with owner._count_lock:
                        owner.in_flight -= 1
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of a slow reply

            def date_time_string(self, timestamp: float | None = None) -> str:
                return owner.date_header or super().date_time_string(timestamp)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="faulty-server", daemon=True)

    def start(self) -> "FaultyServer":
        self.routes.setdefault(("GET", "/api/health"), Reply(200, {"status": "ok", "version": "0.0.1"}))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
