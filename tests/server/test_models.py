"""Model endpoints against a real server process; model rows are made through Storage, as the runner does."""

from __future__ import annotations

import pytest

from training_studio.server.storage import Storage
from tests.server.helpers import assert_error, png_bytes


@pytest.fixture
def client(server):
    with server.client() as http:
        yield http


def make_models(server) -> dict[str, str]:
    storage = Storage(server.data_dir)
    try:
        job = storage.create_job("train", None, "builtin-linear-vae", 10, {})
        out = storage.job_output_dir(job.id)
        out.mkdir(parents=True)
        checkpoint = out / "model.npz"
        checkpoint.write_bytes(b"\x93NUMPY fake weights" * 100)
        (out / "samples.png").write_bytes(png_bytes(64, 64))
        ready = storage.create_model("ready one", "builtin-linear-vae", job.id, path=checkpoint)
        storage.update_model(ready.id, status="ready", size_bytes=checkpoint.stat().st_size)
        storage.set_job_status(job.id, "completed", model_id=ready.id)
        busy = storage.create_model("busy one", "builtin-linear-vae", None)
        outside = storage.create_model("outside", "builtin-linear-vae", None,
                                       path=server.data_dir.parent / "precious.bin")
        storage.update_model(outside.id, status="ready")
        return {"ready": ready.id, "busy": busy.id, "outside": outside.id, "job": job.id,
                "checkpoint": str(checkpoint)}
    finally:
        storage.close()


def test_list_download_samples_and_delete(server, client):
    ids = make_models(server)
    precious = server.data_dir.parent / "precious.bin"
    precious.write_bytes(b"not ours")
    models = {model["id"]: model for model in client.get("/api/models").json()}
    assert set(models) == {ids["ready"], ids["busy"], ids["outside"]}
    ready = models[ids["ready"]]
    assert ready["status"] == "ready" and ready["user_id"] == "local" and ready["training_job_id"] == ids["job"]
    assert ready["size_bytes"] == 1900 and ready["path"] == ids["checkpoint"]

    checkpoint = client.get(f"/api/models/{ids['ready']}/checkpoint")
    assert checkpoint.status_code == 200 and checkpoint.content == b"\x93NUMPY fake weights" * 100
    samples = client.get(f"/api/models/{ids['ready']}/samples")
    assert samples.status_code == 200 and samples.headers["content-type"] == "image/png"
    assert samples.content.startswith(b"\x89PNG")

    assert_error(client.get(f"/api/models/{ids['busy']}/checkpoint"), 409, "model_not_ready")
    assert_error(client.get(f"/api/models/{ids['busy']}/samples"), 404, "samples_not_found")
    assert_error(client.delete(f"/api/models/{ids['busy']}"), 409, "model_processing")
    for path in ("/api/models/nope/checkpoint", "/api/models/nope/samples"):
        assert_error(client.get(path), 404, "model_not_found")
    assert_error(client.delete("/api/models/nope"), 404, "model_not_found")

    assert client.delete(f"/api/models/{ids['ready']}").json() == {"success": True}
    assert not (server.data_dir / "jobs" / ids["job"] / "model.npz").exists()
    job = client.get("/api/training/status", params={"job_id": ids["job"]}).json()
    assert job["modelId"] is None
    # a path outside the data dir is never deleted
    assert client.delete(f"/api/models/{ids['outside']}").json() == {"success": True}
    assert precious.read_bytes() == b"not ours"
    assert {model["id"] for model in client.get("/api/models").json()} == {ids["busy"]}
