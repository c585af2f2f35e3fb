"""A really full disk: the data dir on a small tmpfs, filled up. Needs root and a kernel that lets us mount
tmpfs (CI runs as root); elsewhere these tests skip and say why."""

from __future__ import annotations

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
from tests.support.tmpfs import fill, mounted_tmpfs


def _noise_png(side: int, seed: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((side, side), 60 + seed).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def small_disk(tmp_path):
    yield from mounted_tmpfs(tmp_path, "8m")


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
