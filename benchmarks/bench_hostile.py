"""Figure: what hostile uploads cost everyone else: /api/health and a small upload while 6 hostile files upload.

This module owns the hostile-upload figures, measured over real HTTP against the real `serve` subprocess
(`--no-runner`). Six client threads upload hostile images back to back, each a fresh file every time (so
nothing is answered from what is already stored), cycling through: a ~1 MB GIF of hundreds of full-canvas
2000×2000 frames (refused from its headers), a 75 KB 10000×10000 GIF (accepted: 100 million pixels is the
default limit, so it is fully decoded) and an animation just inside the frame budget (1000×1000, 100 frames,
every frame decoded). Meanwhile one client measures, one request at a time:
- hostile-uploads/health: `GET /api/health`;
- hostile-uploads/small-upload: `PUT` of a fresh 64×64 PNG (about 12 KB) into a dataset, checked and stored.
Baseline: the same requests, same client, same server, with no hostile upload running (measured first, in
the same run). The hostile uploads run in this process on the same two cores as the server.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.common import BenchServer, Result, log, median, percentile
from tests.support import hostile_images

HOSTILE_CLIENTS = 6
PAUSE_S = 0.1  # between measured rounds: 60 rounds span several seconds of the attack


def _small_png(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 30 + index % 50).convert("RGB").rotate(index % 360).save(buffer, format="PNG")
    return buffer.getvalue()


def _hostile_file(variant: int, smoke: bool) -> tuple[str, bytes]:
    """The next hostile file; --smoke keeps the kinds but shrinks them (the run only checks the plumbing)."""
    kind = variant % 3
    if kind == 0:
        return "many-frames.gif", hostile_images.many_frame_gif(variant, target_bytes=200_000 if smoke else 1_000_000)
    if kind == 1:
        return "giant.gif", hostile_images.giant_gif(variant, side=2000 if smoke else 10_000)
    return "budget-edge.gif", hostile_images.many_frame_gif(variant, side=1000, frames=10 if smoke else 100)


def _put(client: httpx.Client, dataset_id: str, name: str, data: bytes) -> httpx.Response:
    sha = hashlib.sha256(data).hexdigest()
    return client.put(f"/api/datasets/{dataset_id}/files/{sha}", params={"filename": name}, content=data,
                      headers={"Content-Type": "application/octet-stream"})


def _measure(client: httpx.Client, dataset_id: str, rounds: int, counter: itertools.count,
             pause_s: float = 0.0) -> tuple[list, list]:
    """`rounds` × (health, small upload), one at a time, `pause_s` apart (so the rounds span the attack)."""
    health, uploads = [], []
    for _ in range(rounds):
        time.sleep(pause_s)
        started = time.perf_counter()
        client.get("/api/health").raise_for_status()
        health.append(time.perf_counter() - started)
        data = _small_png(next(counter))
        started = time.perf_counter()
        response = _put(client, dataset_id, "small.png", data)
        uploads.append(time.perf_counter() - started)
        if response.status_code != 201:
            raise RuntimeError(f"the small upload got {response.status_code}: {response.text[:200]}")
    return health, uploads


def run_hostile_uploads(smoke: bool) -> list[Result]:
    rounds = 5 if smoke else 60  # with PAUSE_S between rounds
    clients = 2 if smoke else HOSTILE_CLIENTS
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp, \
            BenchServer(Path(tmp) / "data", extra_args=["--no-runner"]) as server, \
            httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as client:
        dataset_id = client.post("/api/datasets", json={"name": "bench", "type": "image"}).json()["id"]
        hostile_dataset = client.post("/api/datasets", json={"name": "hostile", "type": "image"}).json()["id"]
        counter = itertools.count()
        _measure(client, dataset_id, 2, counter)  # warm-up: connection, Pillow's plugins
        base_health, base_uploads = _measure(client, dataset_id, rounds, counter, PAUSE_S)

        for variant in range(3):  # build the cached frames before the clock matters
            _hostile_file(variant, smoke)
        stop = threading.Event()
        variants = itertools.count(1000)
        outcomes: dict[int, int] = {}
        lock = threading.Lock()

        def attack() -> None:
            with httpx.Client(base_url=server.url, headers=server.headers, timeout=300) as hostile:
                while not stop.is_set():
                    with lock:
                        variant = next(variants)
                    name, data = _hostile_file(variant, smoke)
                    status = _put(hostile, hostile_dataset, name, data).status_code
                    with lock:
                        outcomes[status] = outcomes.get(status, 0) + 1

        threads = [threading.Thread(target=attack, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 120
            while sum(outcomes.values()) < clients and time.monotonic() < deadline:
                time.sleep(0.05)  # the attack is in full swing once each client has had an answer
            with lock:
                before = dict(outcomes)
            log(f"hostile-uploads: {clients} hostile clients running, measuring {rounds} rounds")
            hostile_health, hostile_uploads = _measure(client, dataset_id, rounds, counter, PAUSE_S)
            with lock:
                during = {status: count - before.get(status, 0) for status, count in outcomes.items()}
        finally:
            stop.set()
            for thread in threads:
                thread.join(300)
    summary = ", ".join(f"{count}× {status}" for status, count in sorted(during.items()) if count)
    kinds = ("200 KB of 2000×2000 frames, 2000×2000, 1000×1000×10 frames" if smoke else
             "1 MB of 2000×2000 frames, 10000×10000, 1000×1000×100 frames")
    notes = (f"{clients} clients uploading hostile GIFs back to back ({kinds}; answers while measuring: "
             f"{summary or 'none yet'}); one request at a time from a separate client, {PAUSE_S:g} s apart")
    return [
        Result("hostile-uploads/health", median(hostile_health) * 1000, "ms",
               "the same request with no hostile upload running", median(base_health) * 1000, len(hostile_health),
               f"GET /api/health; p95 {percentile(hostile_health, 0.95) * 1000:.1f} ms under attack, "
               f"{percentile(base_health, 0.95) * 1000:.1f} ms without; {notes}"),
        Result("hostile-uploads/small-upload", median(hostile_uploads) * 1000, "ms",
               "the same upload with no hostile upload running", median(base_uploads) * 1000, len(hostile_uploads),
               f"PUT of a fresh 64×64 PNG (checked, stored); p95 {percentile(hostile_uploads, 0.95) * 1000:.1f} ms "
               f"under attack, {percentile(base_uploads, 0.95) * 1000:.1f} ms without; {notes}"),
    ]
