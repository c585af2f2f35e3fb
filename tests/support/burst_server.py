"""The seed-only stand-in with revisions and an event stream that a test fills: bursts of job events at once.

LABELLED FAKE: this is not the Training Studio server. It is `SeedOnlyServer(revisions=True,
events_status=200)` (tests/support/seed_server.py: the seed endpoints, `since=` deltas, a revision header)
whose event stream, after its `hello`, also writes what the test hands it. `burst()` changes jobs many
times and writes every one of those states as a `job` event, all in ONE write to every open stream, so
the client receives them within one frame, which the real server cannot be made to do on purpose (it
coalesces a job's progress to 10 events a second). The jobs themselves change in memory exactly as
`advance()` would change them, so a delta sync (`since=`) agrees with the events.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from tests.support.seed_server import SeedOnlyServer


class BurstEventServer(SeedOnlyServer):
    def __init__(self, *, token: str = "seed-token") -> None:
        super().__init__(token=token, revisions=True, events_status=200)
        self._streams: list[queue.Queue[bytes]] = []
        self._streams_lock = threading.Lock()
        owner = self
        seed_handler = self._httpd.RequestHandlerClass

        class Handler(seed_handler):  # type: ignore[misc, valid-type]
            def _stream(self) -> None:  # the seed stand-in's stream, plus what the test writes into it
                outbox: queue.Queue[bytes] = queue.Queue()
                with owner._streams_lock:
                    owner._streams.append(outbox)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    hello = json.dumps({"revision": owner.revision, "version": "seed-1.0"})
                    self.wfile.write(f"retry: 1000\nid: {owner.revision}\nevent: hello\ndata: {hello}\n\n".encode())
                    self.wfile.flush()
                    while not owner._stop.is_set():
                        try:
                            chunk = outbox.get(timeout=0.05)
                        except queue.Empty:
                            continue
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with owner._streams_lock:
                        owner._streams.remove(outbox)

        self._httpd.RequestHandlerClass = Handler

    @property
    def open_streams(self) -> int:
        with self._streams_lock:
            return len(self._streams)

    def _job_frame(self, job_id: str) -> bytes:
        job = self.jobs[job_id]
        return f"id: {job['revision']}\nevent: job\ndata: {json.dumps(job)}\n\n".encode()

    def burst(self, job_ids: list[str], steps: range) -> int:
        """For each step in `steps`, advance every job of `job_ids` to it (one revision each, as
        `advance()` does); write all those states as `job` events to every open stream in one write.
        Returns how many events were written to each stream."""
        frames = []
        for step in steps:
            for job_id in job_ids:
                self.advance(job_id, step)
                with self._lock:
                    frames.append(self._job_frame(job_id))
        self.write(b"".join(frames))
        return len(frames)

    def write(self, chunk: bytes) -> None:
        with self._streams_lock:
            for outbox in self._streams:
                outbox.put(chunk)

    def job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.jobs[job_id])
