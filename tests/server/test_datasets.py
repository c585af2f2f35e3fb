"""Dataset endpoints against a real server process: uploads and every bad input, commit layouts,
captions, delete, thumbnails, and restart survival."""

from __future__ import annotations

import io
import json
import os

import httpx
import pytest
from PIL import Image

from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID
from tests.server.helpers import (
    assert_error,
    committed_dataset,
    create_dataset,
    huge_png_header,
    jpeg_bytes,
    leftover_temp_files,
    png_bytes,
    sha256_of,
    stored_blobs,
    upload,
    wait_spare_ready,
)


@pytest.fixture
def client(server):
    with server.client() as http:
        yield http


def assert_nothing_stored(server, client, dataset_id: str) -> None:
    assert client.get(f"/api/datasets/{dataset_id}/files").json() == []
    assert stored_blobs(server.data_dir) == set()
    assert leftover_temp_files(server.data_dir) == []
    assert httpx.get(server.url + "/api/health").json()["status"] == "ok"


def test_create_list_get(client):
    dataset = create_dataset(client, "Cats & dogs")
    assert dataset["status"] == "processing"
    assert dataset["type"] == "image" and dataset["user_id"] == "local" and dataset["image_count"] == 0
    assert client.get(f"/api/datasets/{dataset['id']}").json() == dataset
    assert [d["id"] for d in client.get("/api/datasets").json()] == [dataset["id"]]
    assert_error(client.get("/api/datasets/nope"), 404, "dataset_not_found")
    assert_error(client.get("/api/datasets/nope/files"), 404, "dataset_not_found")


@pytest.mark.parametrize("name", ["", "   ", "\x00\x01", "x" * 201, "x" * 10_000])
def test_bad_dataset_names_are_422_and_create_nothing(client, name):
    assert_error(client.post("/api/datasets", json={"name": name, "type": "image"}), 422, "validation_error")
    assert client.get("/api/datasets").json() == []


def test_bad_dataset_type_is_422(client):
    assert_error(client.post("/api/datasets", json={"name": "x", "type": "smell"}), 422, "validation_error")


def test_upload_is_idempotent_and_shared_files_are_stored_once(server, client):
    data = png_bytes()
    first = create_dataset(client, "first")
    response = upload(client, first["id"], data, "cat.png")
    assert response.status_code == 201, response.text
    file = response.json()
    assert file == {"sha256": sha256_of(data), "filename": "cat.png", "size": len(data), "width": 32,
                    "height": 24, "caption": None, "validation": False}
    again = upload(client, first["id"], data, "renamed.png")
    assert again.status_code == 200 and again.json()["filename"] == "cat.png"
    blob = server.data_dir / "blobs" / file["sha256"][:2] / file["sha256"]
    inode = blob.stat().st_ino

    second = create_dataset(client, "second")
    linked = upload(client, second["id"], data, "same.png")
    assert linked.status_code == 201 and linked.json()["filename"] == "same.png"
    assert stored_blobs(server.data_dir) == {file["sha256"]}
    assert blob.stat().st_ino == inode  # not written again
    assert blob.read_bytes() == data
    assert [f["sha256"] for f in client.get(f"/api/datasets/{second['id']}/files").json()] == [file["sha256"]]


def test_hash_mismatch_is_400_and_stores_nothing(server, client):
    dataset = create_dataset(client)
    assert_error(upload(client, dataset["id"], png_bytes(), sha=sha256_of(b"something else")), 400, "hash_mismatch")
    assert_nothing_stored(server, client, dataset["id"])


def test_malformed_hash_is_400(client):
    dataset = create_dataset(client)
    assert_error(upload(client, dataset["id"], png_bytes(), sha="not-a-hash"), 400, "invalid_hash")
    assert_error(upload(client, dataset["id"], png_bytes(), sha="zz" * 32), 400, "invalid_hash")


def _tiff_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize("data, reason", [
    (b"hello, I am plain text pretending to be a picture\n" * 10, "not an image"),
    (jpeg_bytes(256, 256)[:3000], "truncated"),
    (b"", "empty"),
    (huge_png_header(), "too many pixels"),
    (_tiff_bytes(), "TIFF images are not accepted"),
], ids=["not-an-image", "truncated-jpeg", "zero-bytes", "50000x50000-png-header", "tiff"])
def test_bad_images_are_415_and_store_nothing(server, client, data, reason):
    dataset = create_dataset(client)
    body = assert_error(upload(client, dataset["id"], data, "bad.jpg"), 415, "unsupported_file")
    assert "bad.jpg" in body["error"]["message"] and reason in body["error"]["message"]
    assert_nothing_stored(server, client, dataset["id"])


def test_too_many_pixels_for_a_configured_limit(server_factory):
    srv = server_factory(extra_args=["--max-pixels", "1000"])
    with srv.client() as client:
        dataset = create_dataset(client)
        body = assert_error(upload(client, dataset["id"], png_bytes(40, 30)), 415, "unsupported_file")
        assert "pixels" in body["error"]["message"]
        assert upload(client, dataset["id"], png_bytes(30, 30)).status_code == 201


def test_body_over_the_size_limit_is_413_declared_or_streamed(server_factory):
    srv = server_factory(extra_args=["--max-upload-bytes", "5000"])
    big = jpeg_bytes(300, 300)
    assert len(big) > 5000
    with srv.client() as client:
        dataset = create_dataset(client)
        assert_error(upload(client, dataset["id"], big), 413, "too_large")

        def chunks():  # no Content-Length: the limit must hold while streaming
            for start in range(0, len(big), 1000):
                yield big[start:start + 1000]

        response = client.put(f"/api/datasets/{dataset['id']}/files/{sha256_of(big)}", content=chunks())
        assert_error(response, 413, "too_large")
        assert client.get(f"/api/datasets/{dataset['id']}/files").json() == []
        assert upload(client, dataset["id"], png_bytes()).status_code == 201
    assert leftover_temp_files(srv.data_dir) == []


@pytest.mark.parametrize("filename, expected", [
    ("../../etc/passwd", "../../etc/passwd"),
    ("evil\x00name\x1b[31m.png", "evilname[31m.png"),
    ("line\nbreak\r.png", "linebreak.png"),
    ("\x00\x07", None),
])
def test_filenames_are_display_text_only(server, client, filename, expected, tmp_path):
    dataset = create_dataset(client)
    data = png_bytes(color=(len(filename), 1, 2))
    response = upload(client, dataset["id"], data, filename)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == (expected or sha256_of(data))
    before = set(os.listdir(tmp_path))
    committed = client.post(f"/api/datasets/{dataset['id']}/commit")
    assert committed.status_code == 200
    assert set(os.listdir(tmp_path)) == before  # nothing written beside the data dir
    wait_spare_ready(server.data_dir, dataset["id"])  # the walk below must not meet the spare half-made
    for path in server.data_dir.rglob("*"):
        assert "passwd" not in path.name and "evil" not in path.name
        assert path.resolve().is_relative_to(server.data_dir.resolve())


def test_upload_into_unknown_or_committed_dataset(client):
    assert_error(upload(client, "nope", png_bytes()), 404, "dataset_not_found")
    dataset = committed_dataset(client)
    assert_error(upload(client, dataset["id"], png_bytes(color=(1, 1, 1))), 409, "dataset_not_processing")


def test_commit_materialises_kohya_and_imagefolder_layouts(server, client):
    images = [png_bytes(color=(10, 20, 30)), jpeg_bytes(seed=3)]
    dataset = create_dataset(client, "My Cats!")
    for index, data in enumerate(images):
        assert upload(client, dataset["id"], data, f"photo{index}").status_code == 201
    sha_png, sha_jpg = (sha256_of(data) for data in images)
    assert client.put(f"/api/datasets/{dataset['id']}/files/{sha_png}/caption",
                      json={"caption": "a red cat"}).status_code == 200
    assert_error(client.post("/api/datasets/nope/commit"), 404, "dataset_not_found")

    committed = client.post(f"/api/datasets/{dataset['id']}/commit").json()
    assert committed["status"] == "active" and committed["image_count"] == 2
    assert client.post(f"/api/datasets/{dataset['id']}/commit").json() == committed  # unchanged

    root = server.data_dir / "datasets" / dataset["id"]
    kohya = root / "kohya" / "10_My_Cats"
    assert sorted(p.name for p in kohya.iterdir()) == sorted(
        [f"{sha_png}.png", f"{sha_png}.txt", f"{sha_jpg}.jpg", f"{sha_jpg}.txt"])
    assert (kohya / f"{sha_png}.png").read_bytes() == images[0]
    assert (kohya / f"{sha_png}.txt").read_text() == "a red cat"
    assert (kohya / f"{sha_jpg}.txt").read_text() == ""
    imagefolder = root / "imagefolder"
    assert (imagefolder / f"{sha_jpg}.jpg").read_bytes() == images[1]
    metadata = [json.loads(line) for line in (imagefolder / "metadata.jsonl").read_text().splitlines()]
    assert metadata == [{"file_name": f"{sha_png}.png", "text": "a red cat"},
                        {"file_name": f"{sha_jpg}.jpg", "text": ""}]

    # caption edits after commit reach both layouts
    response = client.put(f"/api/datasets/{dataset['id']}/files/{sha_jpg}/caption", json={"caption": "noise"})
    assert response.status_code == 200 and response.json()["caption"] == "noise"
    assert (kohya / f"{sha_jpg}.txt").read_text() == "noise"
    metadata = [json.loads(line) for line in (imagefolder / "metadata.jsonl").read_text().splitlines()]
    assert metadata[1] == {"file_name": f"{sha_jpg}.jpg", "text": "noise"}


def test_caption_errors(client):
    dataset = create_dataset(client)
    data = png_bytes()
    upload(client, dataset["id"], data)
    assert_error(client.put(f"/api/datasets/{dataset['id']}/files/{sha256_of(b'x')}/caption", json={"caption": "c"}),
                 404, "file_not_found")
    assert_error(client.put(f"/api/datasets/nope/files/{sha256_of(data)}/caption", json={"caption": "c"}),
                 404, "dataset_not_found")
    assert_error(client.put(f"/api/datasets/{dataset['id']}/files/{sha256_of(data)}/caption", json={}),
                 422, "validation_error")
    assert_error(client.put(f"/api/datasets/{dataset['id']}/files/{sha256_of(data)}/caption",
                            json={"caption": "x" * 10_001}), 422, "validation_error")


def test_commit_of_empty_dataset_is_409(client):
    dataset = create_dataset(client)
    assert_error(client.post(f"/api/datasets/{dataset['id']}/commit"), 409, "dataset_empty")
    assert client.get(f"/api/datasets/{dataset['id']}").json()["status"] == "processing"


def test_delete_removes_only_unshared_files(server, client):
    shared, own = png_bytes(color=(1, 2, 3)), png_bytes(color=(4, 5, 6))
    keep = committed_dataset(client, [shared], name="keep")
    doomed = committed_dataset(client, [shared, own], name="doomed")
    assert stored_blobs(server.data_dir) == {sha256_of(shared), sha256_of(own)}
    thumb = client.get(f"/api/datasets/{doomed['id']}/files/{sha256_of(own)}/thumbnail")
    assert thumb.status_code == 200
    assert client.delete(f"/api/datasets/{doomed['id']}").json() == {"success": True}
    assert stored_blobs(server.data_dir) == {sha256_of(shared)}
    assert not (server.data_dir / "datasets" / doomed["id"]).exists()
    wait_spare_ready(server.data_dir, keep["id"])  # the walk below must not meet keep's spare half-made
    assert not any(p.name.startswith(sha256_of(own)) for p in server.data_dir.rglob("*"))
    assert_error(client.get(f"/api/datasets/{doomed['id']}"), 404, "dataset_not_found")
    assert_error(client.delete(f"/api/datasets/{doomed['id']}"), 404, "dataset_not_found")
    kohya = next((server.data_dir / "datasets" / keep["id"] / "kohya").iterdir())
    assert (kohya / f"{sha256_of(shared)}.png").read_bytes() == shared


def test_delete_of_dataset_used_by_an_active_job_is_409(pending_server):
    with pending_server.client() as client:
        dataset = committed_dataset(client)
        job = client.post("/api/training/jobs", json={"name": "j", "dataset_id": dataset["id"], "total_steps": 5,
                                                      "base_model": BUILTIN_BASE_MODEL_ID, "params": {}}).json()
        assert_error(client.delete(f"/api/datasets/{dataset['id']}"), 409, "dataset_in_use")
        assert client.get(f"/api/datasets/{dataset['id']}").json()["status"] == "active"
        client.post(f"/api/training/jobs/{job['id']}/cancel")
        assert client.delete(f"/api/datasets/{dataset['id']}").json() == {"success": True}


def test_thumbnail_is_an_image_within_the_size(client):
    big = jpeg_bytes(640, 320)
    transparent = png_bytes(300, 600, mode="RGBA")
    dataset = committed_dataset(client, [big, transparent])
    for data, fmt in ((big, "JPEG"), (transparent, "PNG")):
        response = client.get(f"/api/datasets/{dataset['id']}/files/{sha256_of(data)}/thumbnail",
                              params={"size": 128})
        assert response.status_code == 200
        image = Image.open(io.BytesIO(response.content))
        assert image.format == fmt
        assert max(image.size) == 128 and image.width <= 128 and image.height <= 128
        assert response.headers["content-type"] == f"image/{fmt.lower()}"
    default = client.get(f"/api/datasets/{dataset['id']}/files/{sha256_of(big)}/thumbnail")
    assert Image.open(io.BytesIO(default.content)).size == (256, 128)
    assert_error(client.get(f"/api/datasets/{dataset['id']}/files/{sha256_of(b'x')}/thumbnail"), 404,
                 "file_not_found")
    assert_error(client.get(f"/api/datasets/{dataset['id']}/files/{sha256_of(big)}/thumbnail",
                            params={"size": 0}), 422, "validation_error")


@pytest.mark.parametrize("kind, good, bad", [
    ("text", "a caption file, ünïcödé\n".encode(), b"\xff\xfe not utf-8 \x00"),
    ("audio", b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\0" * 32, b"definitely not audio"),
    ("video", b"\x00\x00\x00\x18ftypmp42" + b"\0" * 32, b"GIF89a not a video"),
])
def test_non_image_datasets_check_content(server, client, kind, good, bad):
    dataset = create_dataset(client, kind, kind)
    assert upload(client, dataset["id"], good, f"good.{kind}").status_code == 201
    assert_error(upload(client, dataset["id"], bad, f"bad.{kind}"), 415, "unsupported_file")
    assert_error(upload(client, dataset["id"], b"", "empty"), 415, "unsupported_file")
    assert stored_blobs(server.data_dir) == {sha256_of(good)}
    assert client.post(f"/api/datasets/{dataset['id']}/commit").json()["status"] == "active"
    assert_error(client.get(f"/api/datasets/{dataset['id']}/files/{sha256_of(good)}/thumbnail"), 415,
                 "unsupported_file")


def test_datasets_files_and_layouts_survive_restart(server, client):
    images = [png_bytes(color=(9, 9, 9)), jpeg_bytes(seed=7)]
    active = committed_dataset(client, images, name="kept")
    draft = create_dataset(client, "draft")
    upload(client, draft["id"], images[0], "resume-me.png")
    files_before = client.get(f"/api/datasets/{active['id']}/files").json()
    server.restart()
    with server.client() as fresh:
        assert fresh.get(f"/api/datasets/{active['id']}").json() == active
        assert fresh.get(f"/api/datasets/{active['id']}/files").json() == files_before
        resumed = fresh.get(f"/api/datasets/{draft['id']}/files").json()
        assert [f["filename"] for f in resumed] == ["resume-me.png"]
        assert upload(fresh, draft["id"], images[1], "second.jpg").status_code == 201
        assert fresh.post(f"/api/datasets/{draft['id']}/commit").json()["image_count"] == 2
        for data in images:
            blob = server.data_dir / "blobs" / sha256_of(data)[:2] / sha256_of(data)
            assert blob.read_bytes() == data
        assert (server.data_dir / "datasets" / active["id"] / "imagefolder" / "metadata.jsonl").exists()
