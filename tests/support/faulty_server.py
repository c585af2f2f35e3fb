"""A tiny real-socket HTTP server that misbehaves on purpose, for the client's fault cases.

The real server answers by the contract; to prove the client and GUI survive servers that do not (a
500, malformed JSON, the wrong shape, an unknown status value, a slow answer, a 200 `success: false`
cancel), tests script this one: `routes[(method, path)] = Reply(...)`. It runs `http.server` on
127.0.0.1 with an ephemeral port in a background thread and records every request it got.
`SwitchableServer` is the other way round: a proxy in front of a real server process that a test
flips between forwarding faithfully and one fault at a time, on the same socket.
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
        # The same per path: the app also keeps an event stream request going beside its refreshes.
        self.in_flight_by_path: dict[str, int] = {}
        self.max_in_flight_by_path: dict[str, int] = {}
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
                    on_path = owner.in_flight_by_path[parts.path] = owner.in_flight_by_path.get(parts.path, 0) + 1
                    owner.max_in_flight_by_path[parts.path] = max(owner.max_in_flight_by_path.get(parts.path, 0),
                                                                  on_path)
                try:
                    if reply.delay:
                        time.sleep(reply.delay)
                finally:
                    with owner._count_lock:
                        owner.in_flight -= 1
                        owner.in_flight_by_path[parts.path] -= 1
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


class SwitchableServer:
    """One real socket in front of a real server, whose behaviour a test flips at run time.

    While `mode` is "healthy" every request is forwarded to `upstream` (a real `training-studio serve`)
    and its answer passed back; a fault mode replaces or mangles that answer for every path, so the
    client sees the fault exactly where it would see a real server's. `set_upstream()` points it at a
    restarted server (another port, maybe another token) while the client keeps the same URL;
    `go_offline()`/`go_online()` close and reopen the listening socket on the same port (connection
    refused in between). It does not relay the event stream (see `_reply`): through it the app polls.
    """

    MODES = ("healthy", "http_500", "slow", "malformed_json", "wrong_shape", "unknown_status")
    SLOW_DELAY_S = 10.0  # longer than any client timeout the tests use

    def __init__(self, upstream: str) -> None:
        import httpx

        self.upstream = upstream.rstrip("/")
        self.mode = "healthy"
        self.requests: list[tuple[str, str, str]] = []  # (mode, method, path) as received
        self._forwarder = httpx.Client(timeout=30)
        self._wake = threading.Event()  # ends slow replies early when the server stops
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.url = ""

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> "SwitchableServer":
        self.go_online()
        return self

    def go_online(self) -> None:
        self._wake.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="switchable-server", daemon=True)
        self._thread.start()

    def go_offline(self) -> None:
        if self._httpd is not None:
            self._wake.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        self.go_offline()
        self._forwarder.close()

    def set_upstream(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")

    def count(self, path: str, mode: str | None = None) -> int:
        return sum(1 for seen_mode, _method, seen_path in list(self.requests)
                   if seen_path == path and (mode is None or seen_mode == mode))

    # behaviour -------------------------------------------------------------------------------
    def _reply(self, method: str, target: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, str], bytes]:
        if urlsplit(target).path == "/api/training/events":
            # This proxy reads whole answers before passing them on, so it cannot relay an event stream (which
            # never ends): it answers as a server without live updates does, and the app polls through it.
            return 404, {}, json.dumps({"error": {"code": "not_found", "message": "no such route"}}).encode()
        mode = self.mode
        if mode == "http_500":
            return 500, {}, json.dumps({"error": {"code": "internal",
                                                  "message": "database disk image is malformed"}}).encode()
        if mode == "slow":
            self._wake.wait(self.SLOW_DELAY_S)
        forwarded = {key: value for key, value in headers.items()
                     if key.lower() in ("authorization", "accept", "content-type")}
        answer = self._forwarder.request(method, self.upstream + target, headers=forwarded, content=body or None)
        status, payload = answer.status_code, answer.content
        passed = {key: answer.headers[key] for key in ("date",) if key in answer.headers}
        if mode == "malformed_json" and payload:
            payload = payload[: max(1, len(payload) // 2)]
        elif mode == "wrong_shape" and status < 400:
            payload = json.dumps({"items": json.loads(payload or b"null")}).encode()
        elif mode == "unknown_status" and status < 400:
            data = json.loads(payload or b"null")
            for item in data if isinstance(data, list) else [data]:
                if isinstance(item, dict) and "status" in item and "id" in item:
                    item["status"] = "hibernating"
                    item["gpuTemperature"] = 71.5
                    item["schedule"] = {"kind": "cosine", "warmup": [1, 2, 3]}
                    # A server that changed a job gives it a new revision (clients may skip a job whose
                    # revision they hold); this stand-in has none of its own to give, so it sends none,
                    # as a server without revisions would, and clients compare the job's fields.
                    item["revision"] = None
            payload = json.dumps(data).encode()
        return status, passed, payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so going offline leaves no kept-alive socket answering.
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append((owner.mode, self.command, urlsplit(self.path).path))
                try:
                    status, headers, payload = owner._reply(self.command, self.path, dict(self.headers), body)
                except Exception:  # upstream down: no answer at all, as from a dead server
                    self.close_connection = True
                    return
                try:
                    self.send_response_only(status)
                    for key, value in headers.items():
                        self.send_header(key.title(), value)
                    if "date" not in headers:
                        self.send_header("Date", self.date_time_string())
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of a slow reply

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
