"""Files served from stored or derived paths stay inside the folder they belong to, against a real server.

A trainer (a third-party preset, say) can leave symlinks in its job's folder: a checkpoint, a sample
sheet, a folder or a log that leads to the user's other files must be refused (403 `outside_job_folder`),
never served. Links that stay inside the folder are fine. Model rows are made through Storage, as the
runner does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.server.helpers import assert_error, png_bytes
from training_studio.server.storage import Storage

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not for the API"


@pytest.fixture
def client(pending_server):
    with pending_server.client() as http:
        yield http


def _ready_model(data_dir: Path, checkpoint_name: str = "model.npz") -> tuple[str, str, Path]:
    """A job with a ready model whose checkpoint is `<job folder>/<checkpoint_name>`; (model id, job id, folder)."""
    storage = Storage(data_dir)
    try:
        job = storage.create_job("train", None, "builtin-linear-vae", 10, {})
        folder = storage.job_output_dir(job.id)
        folder.mkdir(parents=True)
        model = storage.create_model("m", "builtin-linear-vae", job.id, path=folder / checkpoint_name)
        storage.update_model(model.id, status="ready", size_bytes=1)
        return model.id, job.id, folder
    finally:
        storage.close()


def _secret_outside(tmp_path: Path) -> Path:
    secret = tmp_path / "home" / ".ssh" / "id_ed25519"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(SECRET)
    return secret


def _refused(response) -> None:
    assert SECRET not in response.content
    body = assert_error(response, 403, "outside_job_folder")
    assert "outside" in body["error"]["message"]


def test_a_symlinked_checkpoint_or_sample_sheet_leading_outside_is_refused(pending_server, client, tmp_path):
    secret = _secret_outside(tmp_path)
    model_id, _job_id, folder = _ready_model(pending_server.data_dir)
    (folder / "model.npz").symlink_to(secret)
    (folder / "samples.png").symlink_to(secret)
    _refused(client.get(f"/api/models/{model_id}/checkpoint"))
    _refused(client.get(f"/api/models/{model_id}/samples"))
    # Deleting the model removes neither the link's target nor anything outside the data dir.
    assert client.delete(f"/api/models/{model_id}").json() == {"success": True}
    assert secret.read_bytes() == SECRET


def test_a_checkpoint_under_a_symlinked_folder_is_refused(pending_server, client, tmp_path):
    secret = _secret_outside(tmp_path)
    model_id, _job_id, folder = _ready_model(pending_server.data_dir, "out/id_ed25519")
    (folder / "out").symlink_to(secret.parent, target_is_directory=True)
    _refused(client.get(f"/api/models/{model_id}/checkpoint"))


def test_a_checkpoint_in_another_jobs_folder_is_refused(pending_server, client):
    model_id, _job_id, folder = _ready_model(pending_server.data_dir)
    _other_model, _other_job, other_folder = _ready_model(pending_server.data_dir)
    (other_folder / "model.npz").write_bytes(b"the other job's weights")
    (folder / "model.npz").symlink_to(other_folder / "model.npz")
    response = client.get(f"/api/models/{model_id}/checkpoint")
    assert b"the other job's weights" not in response.content
    assert_error(response, 403, "outside_job_folder")


def test_a_symlinked_job_log_leading_outside_is_refused(pending_server, client, tmp_path):
    secret = _secret_outside(tmp_path)
    _model_id, job_id, _folder = _ready_model(pending_server.data_dir)
    log = Storage(pending_server.data_dir)
    try:
        log_path = log.job_log_path(job_id)
    finally:
        log.close()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.symlink_to(secret)
    _refused(client.get(f"/api/training/jobs/{job_id}/logs"))


def test_links_that_stay_inside_the_job_folder_are_served(pending_server, client):
    model_id, _job_id, folder = _ready_model(pending_server.data_dir)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "step-10.npz").write_bytes(b"weights" * 1000)
    (folder / "model.npz").symlink_to(Path("checkpoints") / "step-10.npz")
    sheet = png_bytes(40, 40)
    (folder / "sheet.png").write_bytes(sheet)
    (folder / "samples.png").symlink_to(folder / "sheet.png")
    checkpoint = client.get(f"/api/models/{model_id}/checkpoint")
    assert checkpoint.status_code == 200, checkpoint.text
    assert checkpoint.content == b"weights" * 1000
    assert checkpoint.headers["content-length"] == str(7000)
    assert 'filename="model.npz"' in checkpoint.headers["content-disposition"]
    samples = client.get(f"/api/models/{model_id}/samples")
    assert samples.status_code == 200 and samples.headers["content-type"] == "image/png"
    assert samples.content == sheet


def test_a_fifo_a_folder_or_a_link_loop_in_place_of_the_checkpoint_is_missing_not_a_hang(pending_server, client):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    model_id, _job_id, folder = _ready_model(pending_server.data_dir)
    os.mkfifo(folder / "model.npz")
    os.mkfifo(folder / "samples.png")
    assert_error(client.get(f"/api/models/{model_id}/checkpoint"), 404, "checkpoint_not_found")
    assert_error(client.get(f"/api/models/{model_id}/samples"), 404, "samples_not_found")
    other_id, _other_job, other_folder = _ready_model(pending_server.data_dir)
    (other_folder / "model.npz").mkdir()
    assert_error(client.get(f"/api/models/{other_id}/checkpoint"), 404, "checkpoint_not_found")
    looped_id, _looped_job, looped_folder = _ready_model(pending_server.data_dir)
    (looped_folder / "model.npz").symlink_to(looped_folder / "loop")
    (looped_folder / "loop").symlink_to(looped_folder / "model.npz")
    assert_error(client.get(f"/api/models/{looped_id}/checkpoint"), 404, "checkpoint_not_found")
