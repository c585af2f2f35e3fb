"""Create real datasets and jobs on a real server over HTTP, for the GUI tests (sync httpx)."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import httpx
from PIL import Image

from tests.support.jobs import wait_status

__all__ = ["BASE_MODEL", "make_dataset", "make_job", "png_bytes", "wait_status"]

BASE_MODEL = "builtin-linear-vae"


def png_bytes(seed: int, size: int = 16) -> bytes:
    image = Image.new("RGB", (size, size))
    image.putdata([((x * 7 + seed * 31) % 256, (y * 11 + seed * 17) % 256, (x * y + seed) % 256)
                   for y in range(size) for x in range(size)])
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def make_dataset(http: httpx.Client, name: str = "shapes", images: int = 6) -> str:
    response = http.post("/api/datasets", json={"name": name, "type": "image"})
    response.raise_for_status()
    dataset_id = response.json()["id"]
    for seed in range(images):
        body = png_bytes(seed)
        digest = hashlib.sha256(body).hexdigest()
        put = http.put(f"/api/datasets/{dataset_id}/files/{digest}", params={"filename": f"img{seed}.png"},
                       content=body, headers={"Content-Type": "application/octet-stream"})
        put.raise_for_status()
    http.post(f"/api/datasets/{dataset_id}/commit").raise_for_status()
    return dataset_id


def make_job(http: httpx.Client, dataset_id: str, name: str, total_steps: int, **params: Any) -> dict[str, Any]:
    response = http.post("/api/training/jobs", json={"name": name, "dataset_id": dataset_id,
                                                     "base_model": BASE_MODEL, "total_steps": total_steps,
                                                     "params": params})
    response.raise_for_status()
    return response.json()


