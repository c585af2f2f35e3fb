"""Deleting a dataset, the in-app way to free space, on a completely full disk: the data dir on a small
tmpfs filled to the last byte. Needs root and a kernel that lets us mount tmpfs (CI runs as root);
elsewhere these tests skip and say why.

The server keeps a space reserve file in the data dir and gives it up for the delete's own transaction;
the rows go before the files, so the data dir is consistent whatever happens.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.reliability.helpers import assert_data_dir_consistent
from tests.server.helpers import assert_error, committed_dataset, create_dataset, sha256_of, stored_blobs, upload
from tests.support.tmpfs import fill, mounted_tmpfs
from training_studio.server.storage import RESERVE_BYTES, RESERVE_BYTES_ENV, RESERVE_NAME


def _noise_png(side: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((side, side), 40 + seed).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def small_disk(tmp_path):
    yield from mounted_tmpfs(tmp_path, "40m")


def test_delete_on_a_full_disk_frees_space_and_leaves_the_data_dir_consistent(small_disk, server_factory):
    shared = _noise_png(96, 0)
    doomed_images = [shared, *(_noise_png(96, seed) for seed in range(1, 300))]
    # The real size of the reserve (the suite's conftest makes it small for every other test server).
    server = server_factory("small", extra_args=["--no-runner"], env={RESERVE_BYTES_ENV: str(RESERVE_BYTES)})
    data_dir = server.data_dir
    assert data_dir == small_disk
    with server.client() as client:
        doomed = committed_dataset(client, doomed_images, name="doomed")
        kept = committed_dataset(client, [shared, _noise_png(96, 999)], name="kept")
        waiting = create_dataset(client, name="waiting")
    # A restart checkpoints and removes the WAL: the delete below must grow it from nothing.
    server.restart()
    assert (data_dir / RESERVE_NAME).stat().st_size == RESERVE_BYTES
    with server.client() as client:
        filler = fill(small_disk)
        # The disk really is full: a new upload is refused.
        assert_error(upload(client, waiting["id"], _noise_png(300, 7)), 507, "insufficient_storage")

        response = client.delete(f"/api/datasets/{doomed['id']}")
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
        # It took the reserve: the database could not have grown its WAL otherwise (stderr lands outside the disk).
        assert "released the space reserve" in server.log_path.read_text(errors="replace")

        assert_error(client.get(f"/api/datasets/{doomed['id']}"), 404, "dataset_not_found")
        assert {dataset["id"] for dataset in client.get("/api/datasets").json()} == {kept["id"], waiting["id"]}
        kept_files = {file["sha256"] for file in client.get(f"/api/datasets/{kept['id']}/files").json()}
        assert sha256_of(shared) in kept_files
        assert stored_blobs(data_dir) == kept_files
        assert not (data_dir / "datasets" / doomed["id"]).exists()
        assert client.get("/api/health").json()["status"] == "ok"
        assert_data_dir_consistent(data_dir)

        # With room again, the next delete takes the reserve back.
        filler.unlink()
        assert client.delete(f"/api/datasets/{waiting['id']}").json() == {"success": True}
        assert (data_dir / RESERVE_NAME).stat().st_size == RESERVE_BYTES
    server.stop()
    assert_data_dir_consistent(data_dir)
