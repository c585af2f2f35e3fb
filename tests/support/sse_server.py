"""A scripted, deliberately limited event-stream server on a real socket, for the client's stream tests.

LABELLED FAKE: this is not the Training Studio server. It exists for what the real server never does on
purpose (a malformed event, an endless event, a 500 or a 200 that is not an event stream, a stream cut
after N events) and for checking exactly which `Last-Event-ID` each reconnect sends. Tests of the real
behaviour (resume across a real restart, reset, coalescing) use the real server subprocess.

Each connection to `GET /api/training/events` takes the next `Script` from `scripts` (the last one is
reused when they run out): a status, a content type, raw chunks written one by one, then either close or
hold the stream open until the server stops. Every other path answers like the seed's minimal server does
for an unknown route: 404. The headers of every stream request are recorded in `requests`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    status: int = 200
    content_type: str = "text/event-stream"
    chunks: list[bytes] = field(default_factory=list)
    hold_open: bool = False  # after the chunks: keep the connection open (else close it)
    pause: float = 0.0  # between chunks


def sse(event: str | None = None, data: str | None = None, id: int | str | None = None,
        retry: int | None = None) -> bytes:
    lines = []
    if retry is not None:
        lines.append(f"retry: {retry}")
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


class ScriptedEventServer:
    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.requests: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._served = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?")[0] != "/api/training/events":
                    body = b'{"error": {"code": "not_found", "message": "no such route"}}'
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                owner.requests.append(dict(self.headers))
                script = owner._next_script()
                try:
                    self.send_response(script.status)
                    self.send_header("Content-Type", script.content_type)
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.flush()
                    for chunk in script.chunks:
                        if script.pause:
                            time.sleep(script.pause)
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    while script.hold_open and not owner._stop.wait(0.05):
                        pass
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-sse", daemon=True)

    def _next_script(self) -> Script:
        index = min(self._served, len(self.scripts) - 1)
        self._served += 1
        return self.scripts[index] if self.scripts else Script(hold_open=True)

    def start(self) -> "ScriptedEventServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
