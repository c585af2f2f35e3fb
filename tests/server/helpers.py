"""Helpers for the server tests: real image files made with Pillow, hashes, and upload shortcuts."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from pathlib import Path

import httpx
from PIL import Image


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_bytes(width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 30, 30),
              mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height), color if mode == "RGB" else (*color, 128))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48, seed: int = 1) -> bytes:
    image = Image.effect_noise((width, height), 40 + seed).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def huge_png_header(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims width×height pixels (a decompression bomb's calling card)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def create_dataset(client: httpx.Client, name: str = "cats", kind: str = "image") -> dict:
    response = client.post("/api/datasets", json={"name": name, "type": kind})
    assert response.status_code == 201, response.text
    return response.json()


def upload(client: httpx.Client, dataset_id: str, data: bytes, filename: str = "file.png",
           sha: str | None = None) -> httpx.Response:
    return client.put(f"/api/datasets/{dataset_id}/files/{sha or sha256_of(data)}", params={"filename": filename},
                      content=data, headers={"Content-Type": "application/octet-stream"})


def committed_dataset(client: httpx.Client, images: list[bytes] | None = None, name: str = "cats") -> dict:
    dataset = create_dataset(client, name)
    for index, data in enumerate(images or [png_bytes()]):
        response = upload(client, dataset["id"], data, f"img{index}.png")
        assert response.status_code == 201, response.text
    response = client.post(f"/api/datasets/{dataset['id']}/commit")
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"].strip(), body
    return body


def stored_blobs(data_dir: Path) -> set[str]:
    return {path.name for path in (data_dir / "blobs").glob("*/*")}


def leftover_temp_files(data_dir: Path) -> list[Path]:
    return list((data_dir / "tmp").glob("*"))


def wait_spare_ready(data_dir: Path, dataset_id: str, timeout: float = 120.0) -> Path:
    """The dataset's spare layouts, once the server has prepared them in the background after a commit (the
    folder appears by one rename when whole). Wait for it before walking the data dir: a walk that meets the
    hidden `.preparing` folder can see it renamed away under it. (benchmarks/bench_datasets.py waits with it
    too.)"""
    spare = data_dir / "layout-spares" / dataset_id
    deadline = time.monotonic() + timeout
    while not spare.is_dir():
        assert time.monotonic() < deadline, f"the spare layouts were not prepared within {timeout:g} s"
        time.sleep(0.02)
    return spare
