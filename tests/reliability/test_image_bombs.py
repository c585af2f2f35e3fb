"""Hostile images against the real server: no request may cost it more than 512 MB of memory or 2 s of CPU.

The costs are read from the server process itself: its peak resident memory (VmHWM in /proc/<pid>/status,
reset through /proc/<pid>/clear_refs before each measurement) and its CPU time (utime + stime in
/proc/<pid>/stat). Files over a work limit must get 415 `image_too_complex` with a message saying which
limit; files within the limits (a 10000×10000 GIF is exactly the default pixel limit) are accepted and
thumbnailed at reduced size. Speed under attack is a benchmark (benchmarks/bench_hostile.py), not a test.
"""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from tests.reliability.helpers import quiet_server
from tests.server.helpers import assert_error, create_dataset, sha256_of, upload
from tests.support import hostile_images

MB = 1024 * 1024
MEMORY_BOUND = 512 * MB
CPU_BOUND_S = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    yield from quiet_server(tmp_path_factory.mktemp("bombs") / "data",
                            ["unexpected error on", "Exception in ASGI application"])


@pytest.fixture(scope="module")
def client(srv):
    with srv.client(timeout=120) as http:
        yield http


class Cost:
    """The server's peak memory above its resident size at the start, and the CPU time it spent, over a block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.memory = 0
        self.cpu_s = 0.0

    def _status(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"{field} missing from /proc/{self.pid}/status")

    def _cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def __enter__(self) -> Cost:
        with open(f"/proc/{self.pid}/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # VmHWM := VmRSS
        self.start_resident = self.resident()
        self._cpu = self._cpu_s()
        return self

    def resident(self) -> int:
        return self._status("VmRSS")

    def __exit__(self, *exc: object) -> None:
        self.memory = self._status("VmHWM") - self.start_resident
        self.cpu_s = self._cpu_s() - self._cpu


def _thumbnail(client: httpx.Client, dataset_id: str, data: bytes, size: int) -> httpx.Response:
    return client.get(f"/api/datasets/{dataset_id}/files/{sha256_of(data)}/thumbnail", params={"size": size})


def test_giant_gif_uploads_and_thumbnails_stay_within_memory_and_cpu(srv, client):
    dataset = create_dataset(client, name="giants")
    giants = [hostile_images.giant_gif(variant) for variant in range(6)]
    assert all(len(data) < 100_000 for data in giants)  # 75 KB files, 100 million pixels each
    for data in giants:
        with Cost(srv.proc.pid) as cost:
            response = upload(client, dataset["id"], data, "giant.gif")
        assert response.status_code == 201, response.text
        assert (response.json()["width"], response.json()["height"]) == (10_000, 10_000)
        assert cost.memory < MEMORY_BOUND, f"one upload took {cost.memory / MB:.0f} MB"
        assert cost.cpu_s < CPU_BOUND_S, f"one upload took {cost.cpu_s:.2f} s of CPU"

    with Cost(srv.proc.pid) as cost:
        response = _thumbnail(client, dataset["id"], giants[0], 256)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.content)).size) == 256
    assert cost.memory < MEMORY_BOUND, f"one thumbnail took {cost.memory / MB:.0f} MB"
    assert cost.cpu_s < CPU_BOUND_S, f"one thumbnail took {cost.cpu_s:.2f} s of CPU"

    # Six at once (none cached yet at this size): the whole server stays under one request's bound.
    with Cost(srv.proc.pid) as cost, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda data: _thumbnail(client, dataset["id"], data, 128), giants))
    assert [r.status_code for r in responses] == [200] * 6, [r.text[:200] for r in responses]
    assert cost.memory < MEMORY_BOUND, f"six concurrent thumbnails took {cost.memory / MB:.0f} MB"
    assert cost.cpu_s < 6 * CPU_BOUND_S, f"six thumbnails took {cost.cpu_s:.2f} s of CPU"
    assert httpx.get(f"{srv.url}/api/health", timeout=30).status_code == 200
    # ...and gives the decoded images' memory back instead of keeping it resident.
    deadline = time.monotonic() + 30
    while cost.resident() > cost.start_resident + 128 * MB:
        assert time.monotonic() < deadline, f"the server kept {(cost.resident() - cost.start_resident) / MB:.0f} MB"
        time.sleep(0.2)


def test_many_frame_gifs_are_refused_from_their_headers(srv, client):
    dataset = create_dataset(client, name="animations")
    bombs = [hostile_images.many_frame_gif(variant) for variant in range(6)]
    assert all(900_000 < len(data) < 1_100_000 for data in bombs)
    with Cost(srv.proc.pid) as cost, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda data: upload(client, dataset["id"], data, "anim.gif"), bombs))
    for response in responses:
        body = assert_error(response, 415, "image_too_complex")
        assert "anim.gif" in body["error"]["message"] and "frames" in body["error"]["message"]
    assert cost.memory < MEMORY_BOUND, f"six animation bombs took {cost.memory / MB:.0f} MB"
    assert cost.cpu_s < 6 * CPU_BOUND_S, f"six animation bombs took {cost.cpu_s:.2f} s of CPU"
    assert client.get(f"/api/datasets/{dataset['id']}/files").json() == []
    assert list((srv.data_dir / "tmp").iterdir()) == []


def test_an_animation_within_the_limits_is_checked_and_accepted(client):
    dataset = create_dataset(client, name="small animation")
    frames = [Image.new("P", (300, 200), index) for index in range(12)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=40)
    response = upload(client, dataset["id"], buffer.getvalue(), "ok.gif")
    assert response.status_code == 201, response.text
    thumb = _thumbnail(client, dataset["id"], buffer.getvalue(), 64)
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (64, 43)


@pytest.mark.parametrize("data, reason", [
    (hostile_images.many_frame_gif(side=4, frames=1001), "more than 1,000 frames"),
    (hostile_images.tiny_block_gif(), "tiny data blocks"),
    (hostile_images.many_chunk_png(), "chunks"),
], ids=["1001-frames", "gif-1-byte-blocks", "png-1-byte-chunks"])
def test_container_bombs_are_refused_before_decoding(srv, client, data, reason):
    dataset = create_dataset(client, name="containers")
    with Cost(srv.proc.pid) as cost:
        response = upload(client, dataset["id"], data, "bomb")
    body = assert_error(response, 415, "image_too_complex")
    assert reason in body["error"]["message"], body
    assert cost.cpu_s < CPU_BOUND_S


def test_a_webp_too_big_to_decode_within_the_memory_bound_is_refused(client):
    dataset = create_dataset(client, name="webp")
    buffer = io.BytesIO()
    Image.new("RGB", (6000, 6000), (10, 20, 30)).save(buffer, format="WEBP", quality=10)
    body = assert_error(upload(client, dataset["id"], buffer.getvalue(), "big.webp"), 415, "image_too_complex")
    assert "memory" in body["error"]["message"] and "WEBP" in body["error"]["message"]


def test_junk_inside_a_jpeg_header_is_refused_as_damaged(client):
    dataset = create_dataset(client, name="junk")
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    junk = data[:2] + b"\x00" * 70_000 + data[2:]
    body = assert_error(upload(client, dataset["id"], junk, "junk.jpg"), 415, "unsupported_file")
    assert "damaged" in body["error"]["message"]
