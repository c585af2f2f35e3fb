"""Everything the server (and a trainer it starts) creates in the data dir is private to the user, even when
the server is started with umask 000: files 0600, folders 0700. Against a real server that commits a
dataset, makes a thumbnail and trains a real (tiny) built-in job."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.server.helpers import committed_dataset, png_bytes, sha256_of, wait_spare_ready
from tests.support.jobs import create_job, finished, wait_job
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID
from training_studio.server.storage import Storage


def _modes(root: Path) -> dict[str, int]:
    modes = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            info = path.lstat()
            modes[str(path.relative_to(root))] = stat.S_IMODE(info.st_mode) | (stat.S_IFDIR if stat.S_ISDIR(
                info.st_mode) else 0)
    return modes


def _not_private(modes: dict[str, int]) -> dict[str, str]:
    wrong = {}
    for name, mode in modes.items():
        expected = 0o700 if mode & stat.S_IFDIR else 0o600
        if mode & 0o777 != expected:
            wrong[name] = oct(mode & 0o777)
    return wrong


def test_data_files_and_folders_are_private_whatever_the_umask(server_factory):
    previous = os.umask(0)
    try:
        server = server_factory(extra_args=["--cancel-grace", "1"])
    finally:
        os.umask(previous)
    images = [png_bytes(24, 24, color=(seed, 40, 80)) for seed in range(3)]
    with server.client() as client:
        dataset = committed_dataset(client, images)
        thumbnail = client.get(f"/api/datasets/{dataset['id']}/files/{sha256_of(images[0])}/thumbnail")
        assert thumbnail.status_code == 200
        job = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, total_steps=3,
                         params={"resolution": 8, "latent_dim": 2})
        done = wait_job(client, job["id"], finished)
        assert done["status"] == "completed", done
        assert client.get("/api/models").json()[0]["status"] == "ready"
    wait_spare_ready(server.data_dir, dataset["id"])  # the walk must not meet the spare half-made
    modes = _modes(server.data_dir)
    # What must be there for this test to mean anything: the database, its WAL, an upload, a layout, a
    # thumbnail, a job's log and output, and their folders.
    names = set(modes)
    assert {"studio.db", "studio.db-wal", "blobs", "datasets", "thumbnails", "logs", "jobs"} <= names
    assert any(name.startswith(f"blobs{os.sep}") and name.count(os.sep) == 2 for name in names)
    assert any(name.startswith(os.path.join("datasets", dataset["id"], "imagefolder", "")) for name in names)
    assert any(name.startswith(f"thumbnails{os.sep}") and name.count(os.sep) == 2 for name in names)
    assert any(name.startswith(os.path.join("jobs", job["id"], "")) for name in names)
    assert any(name.startswith(os.path.join("logs", job["id"])) for name in names)
    assert _not_private(modes) == {}
    server.stop()
    assert _not_private(_modes(server.data_dir)) == {}


def test_storage_creates_its_data_dir_and_database_private_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        storage = Storage(tmp_path / "new" / "data")
        storage.create_dataset("d", "image")  # a write, so the WAL and shared-memory files exist
        modes = _modes(tmp_path)
        storage.close()
    finally:
        os.umask(previous)
    assert {"new", os.path.join("new", "data"), os.path.join("new", "data", "studio.db"),
            os.path.join("new", "data", "studio.db-wal"), os.path.join("new", "data", "studio.db-shm")} <= set(modes)
    assert _not_private(modes) == {}
