"""A really full disk: the data dir on a small tmpfs, filled up. Needs root and a kernel that lets us mount
tmpfs (CI runs as root); elsewhere these tests skip and say why."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.server.helpers import (
    assert_error,
    create_dataset,
    leftover_temp_files,
    png_bytes,
    sha256_of,
    stored_blobs,
    upload,
)


def _noise_png(side: int, seed: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((side, side), 60 + seed).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Fill the filesystem, then give back `leave_bytes` (rounded to pages by the filesystem)."""
    filler = directory / "filler.bin"
    block = b"\0" * 65536
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    # write() may have half-filled the buffer; settle the real size before trimming.
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave_bytes))
    return filler


def test_upload_on_a_full_disk_is_507_and_leaves_nothing(small_disk, server_factory):
    server = server_factory("small", extra_args=["--no-runner"])
    big = _noise_png(400, 1)
    assert len(big) > 256 * 1024
    with server.client() as client:
        dataset = create_dataset(client)
        filler = fill(small_disk, leave_bytes=64 * 1024)
        assert_error(upload(client, dataset["id"], big), 507, "insufficient_storage")
        assert leftover_temp_files(server.data_dir) == []
        assert stored_blobs(server.data_dir) == set()
        assert client.get("/api/health").json()["status"] == "ok"
        filler.unlink()
        response = upload(client, dataset["id"], big)
        assert response.status_code == 201, response.text
        assert stored_blobs(server.data_dir) == {sha256_of(big)}


def test_commit_on_a_full_disk_is_507_and_can_be_retried(small_disk, server_factory):
    server = server_factory("small", extra_args=["--no-runner"])
    images = [png_bytes(color=(seed, 0, 0)) for seed in range(3)]
    with server.client() as client:
        dataset = create_dataset(client)
        for data in images:
            assert upload(client, dataset["id"], data).status_code == 201
            client.put(f"/api/datasets/{dataset['id']}/files/{sha256_of(data)}/caption", json={"caption": "x" * 3000})
        filler = fill(small_disk)
        assert_error(client.post(f"/api/datasets/{dataset['id']}/commit"), 507, "insufficient_storage")
        assert not (server.data_dir / "datasets" / dataset["id"]).exists()
        assert [p for p in (server.data_dir / "datasets").iterdir()] == []
        filler.unlink()
        state = client.get(f"/api/datasets/{dataset['id']}").json()
        assert state["status"] in ("processing", "failed")
        committed = client.post(f"/api/datasets/{dataset['id']}/commit")
        assert committed.status_code == 200, committed.text
        assert committed.json()["status"] == "active" and committed.json()["image_count"] == 3
        assert committed.json()["error"] is None
