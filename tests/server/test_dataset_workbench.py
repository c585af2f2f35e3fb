"""The dataset workbench over real HTTP (issue 17): batch caption edits (checked over HTTP and in the
materialised layouts), all-or-none failures, dry runs, undo by restore, resolution buckets, repeats and the
validation split, export round trips and a captioning job run through the normal runner. A server killed
between a caption edit's database commit and its layout swap (fault injection) puts the layouts right at its
next start."""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import (
    assert_error, committed_dataset, create_dataset, png_bytes, sha256_of, upload, wait_spare_ready)
from tests.support.jobs import wait_job
from training_studio.server.dataset_ops import FAULT_PAUSE_BEFORE_SWAP_ENV, LAYOUTS_CHECKED_MESSAGE
from training_studio.server.layouts import STAMP_NAME

CAPTIONER = Path(__file__).resolve().parents[1] / "support" / "standin_captioner.py"


@pytest.fixture
def srv(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(
        "[[preset]]\n"
        'id = "standin-captioner"\n'
        'name = "Stand-in captioner"\n'
        'kind = "caption"\n'
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(CAPTIONER))}, \"{{dataset_dir}}\"]\n")
    return server_factory("data", extra_args=["--cancel-grace", "1"])


@pytest.fixture
def client(srv):
    with srv.client() as http:
        yield http


IMAGES = [png_bytes(color=(10, 20, 30)), png_bytes(color=(40, 50, 60)), png_bytes(color=(70, 80, 90))]
SHAS = [sha256_of(data) for data in IMAGES]


@pytest.fixture
def dataset(client) -> dict:
    dataset = committed_dataset(client, images=IMAGES, name="cats")
    for sha, caption in zip(SHAS, ["a cat", "a black cat", "a dog"]):
        response = client.put(f"/api/datasets/{dataset['id']}/files/{sha}/caption", json={"caption": caption})
        assert response.status_code == 200, response.text
    return dataset


def captions_over_http(client, dataset_id: str) -> dict[str, str]:
    response = client.get(f"/api/datasets/{dataset_id}/files")
    assert response.status_code == 200, response.text
    return {file["sha256"]: file["caption"] or "" for file in response.json()}


def captions_in_layouts(srv, dataset_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """(kohya .txt captions, imagefolder metadata.jsonl captions) of the training layouts."""
    root = srv.data_dir / "datasets" / dataset_id
    [folder] = [p for p in (root / "kohya").iterdir()]
    kohya = {path.stem: path.read_text(encoding="utf-8") for path in folder.glob("*.txt")}
    lines = (root / "imagefolder" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    imagefolder = {Path(item["file_name"]).stem: item["text"] for item in map(json.loads, lines)}
    return kohya, imagefolder


def batch(client, dataset_id: str, **body):
    return client.post(f"/api/datasets/{dataset_id}/captions/batch", json=body)


def assert_everywhere(client, srv, dataset_id: str, expected: dict[str, str]) -> None:
    assert captions_over_http(client, dataset_id) == expected
    kohya, imagefolder = captions_in_layouts(srv, dataset_id)
    assert kohya == expected
    assert imagefolder == expected


def test_batch_operations_are_applied_over_http_and_in_both_layouts(client, srv, dataset):
    dataset_id = dataset["id"]
    response = batch(client, dataset_id, op="prefix", text="sks, ", files="all")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["changed"] == 3 and result["selected"] == 3 and result["dry_run"] is False
    assert sorted(result["files"]) == sorted(SHAS)
    expected = dict(zip(SHAS, ["sks, a cat", "sks, a black cat", "sks, a dog"]))
    assert_everywhere(client, srv, dataset_id, expected)

    response = batch(client, dataset_id, op="replace", find="cat", replace="kitten", files=SHAS[:2])
    assert response.status_code == 200, response.text
    assert response.json()["changed"] == 2
    expected = dict(zip(SHAS, ["sks, a kitten", "sks, a black kitten", "sks, a dog"]))
    assert_everywhere(client, srv, dataset_id, expected)

    response = batch(client, dataset_id, op="regex_replace", find=r"^sks, a (?P<rest>\w+)", replace=r"sks, one \g<rest>")
    assert response.status_code == 200, response.text
    expected = dict(zip(SHAS, ["sks, one kitten", "sks, one black kitten", "sks, one dog"]))
    assert_everywhere(client, srv, dataset_id, expected)

    response = batch(client, dataset_id, op="suffix", text=", outdoors", files=[SHAS[2]])
    assert response.status_code == 200, response.text
    expected[SHAS[2]] = "sks, one dog, outdoors"
    assert_everywhere(client, srv, dataset_id, expected)

    response = batch(client, dataset_id, op="set", text="same", files=SHAS[:2])
    assert response.status_code == 200, response.text
    expected.update({SHAS[0]: "same", SHAS[1]: "same"})
    assert_everywhere(client, srv, dataset_id, expected)

    response = batch(client, dataset_id, op="clear", files=[SHAS[0]])
    assert response.status_code == 200, response.text
    changes = response.json()["changes"]
    assert changes == [{"sha256": SHAS[0], "before": "same", "after": ""}]
    expected[SHAS[0]] = ""
    assert_everywhere(client, srv, dataset_id, expected)

    # undo: send the previous captions back
    response = batch(client, dataset_id, op="restore", captions={c["sha256"]: c["before"] for c in changes})
    assert response.status_code == 200, response.text
    expected[SHAS[0]] = "same"
    assert_everywhere(client, srv, dataset_id, expected)


def test_dry_run_counts_and_shows_examples_and_changes_nothing(client, srv, dataset):
    before = captions_over_http(client, dataset["id"])
    response = batch(client, dataset["id"], op="regex_replace", find="cat$", replace="feline", dry_run=True)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["dry_run"] is True and result["changed"] == 2 and result["selected"] == 3
    assert {(c["before"], c["after"]) for c in result["changes"]} == {("a cat", "a feline"),
                                                                       ("a black cat", "a black feline")}
    assert_everywhere(client, srv, dataset["id"], before)


def test_failing_batches_change_nothing(client, srv, dataset):
    dataset_id = dataset["id"]
    before = captions_over_http(client, dataset_id)
    assert_error(batch(client, dataset_id, op="regex_replace", find="(unclosed", replace="x"), 422, "validation_error")
    assert_error(batch(client, dataset_id, op="regex_replace", find="a{2,1}", replace="x"), 422, "validation_error")
    assert_error(batch(client, dataset_id, op="prefix", text="x", files=[SHAS[0], "0" * 64]), 404, "file_not_found")
    assert_error(batch(client, dataset_id, op="restore", captions={SHAS[0]: "x", "1" * 64: "y"}), 404,
                 "file_not_found")
    assert_error(batch(client, dataset_id, op="prefix", text="x", files=["not-a-hash"]), 422, "validation_error")
    assert_error(batch(client, dataset_id, op="uppercase", files="all"), 422, "validation_error")
    # the longest caption ("a black cat", 11 characters) would go over 10,000: the whole batch is refused
    body = assert_error(batch(client, dataset_id, op="suffix", text="x" * 9_990, files="all"), 409,
                        "caption_too_long")
    assert SHAS[1] in body["error"]["message"]
    assert_error(batch(client, "no-such-dataset", op="clear"), 404, "dataset_not_found")
    assert_everywhere(client, srv, dataset_id, before)


def test_a_catastrophic_pattern_is_stopped_with_a_clear_error(client, srv, dataset):
    dataset_id = dataset["id"]
    response = batch(client, dataset_id, op="set", text="a" * 40 + "!", files=[SHAS[0]])
    assert response.status_code == 200, response.text
    before = captions_over_http(client, dataset_id)
    response = batch(client, dataset_id, op="regex_replace", find=r"^(a|a)*$", replace="x")
    body = assert_error(response, 409, "pattern_too_slow")
    assert "longer than" in body["error"]["message"]
    assert client.get("/api/health").status_code == 200  # the server still answers
    assert_everywhere(client, srv, dataset_id, before)


def sized_png(width: int, height: int, color=(1, 2, 3)) -> bytes:
    return png_bytes(width=width, height=height, color=color)


def test_buckets_match_the_hand_computed_example(client):
    # the example of test_dataset_buckets_unit.py, as real images (see there for the arithmetic)
    images = {"a": sized_png(1000, 1000), "b": sized_png(300, 300), "c": sized_png(1536, 1024),
              "d": sized_png(512, 512), "e": sized_png(400, 600), "f": sized_png(640, 384)}
    dataset = committed_dataset(client, images=list(images.values()), name="sizes")
    sha = {name: sha256_of(data) for name, data in images.items()}
    response = client.get(f"/api/datasets/{dataset['id']}/buckets",
                          params={"resolution": 512, "step": 64, "batch_size": 2})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["image_count"] == 6 and report["max_bucket"] == 1024 and report["min_bucket"] == 256
    assert [(b["width"], b["height"], sorted(b["files"]), b["count"], b["small"]) for b in report["buckets"]] == [
        (384, 640, [sha["e"]], 1, True),
        (512, 512, sorted([sha["a"], sha["b"], sha["d"]]), 3, False),
        (640, 384, sorted([sha["c"], sha["f"]]), 2, False),
    ]
    assert sorted(report["upscaled"]) == sorted([sha["b"], sha["e"]])
    assert report["unsized"] == []
    assert_error(client.get(f"/api/datasets/{dataset['id']}/buckets", params={"resolution": 0}), 422,
                 "validation_error")


def test_repeats_and_validation_split_rematerialise_the_layouts(client, srv, dataset):
    dataset_id = dataset["id"]
    root = srv.data_dir / "datasets" / dataset_id
    assert dataset["repeats"] == 10 and [p.name for p in (root / "kohya").iterdir()] == ["10_cats"]
    response = client.patch(f"/api/datasets/{dataset_id}", json={"repeats": 3})
    assert response.status_code == 200, response.text
    assert response.json()["repeats"] == 3
    assert client.get(f"/api/datasets/{dataset_id}").json()["repeats"] == 3
    assert [p.name for p in (root / "kohya").iterdir()] == ["3_cats"]
    assert sorted(p.stem for p in (root / "kohya" / "3_cats").glob("*.png")) == sorted(SHAS)

    response = client.patch(f"/api/datasets/{dataset_id}", json={"validation": {"files": [SHAS[1]]}})
    assert response.status_code == 200, response.text
    files = client.get(f"/api/datasets/{dataset_id}/files").json()
    assert {f["sha256"]: f["validation"] for f in files} == {SHAS[0]: False, SHAS[1]: True, SHAS[2]: False}
    assert sorted(p.stem for p in (root / "kohya" / "3_cats").glob("*.png")) == sorted([SHAS[0], SHAS[2]])
    assert [p.stem for p in (root / "validation" / "kohya" / "1_cats").glob("*.png")] == [SHAS[1]]
    assert (root / "validation" / "kohya" / "1_cats" / f"{SHAS[1]}.txt").read_text() == "a black cat"
    lines = (root / "validation" / "imagefolder" / "metadata.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"file_name": f"{SHAS[1]}.png", "text": "a black cat"}]
    assert len((root / "imagefolder" / "metadata.jsonl").read_text().splitlines()) == 2

    # a caption edit of a held-out file lands in the validation layout
    response = batch(client, dataset_id, op="suffix", text="!", files=[SHAS[1]])
    assert response.status_code == 200, response.text
    assert (root / "validation" / "kohya" / "1_cats" / f"{SHAS[1]}.txt").read_text() == "a black cat!"

    response = client.patch(f"/api/datasets/{dataset_id}", json={"validation": {"percent": 34}})
    assert response.status_code == 200, response.text
    held = [f["sha256"] for f in client.get(f"/api/datasets/{dataset_id}/files").json() if f["validation"]]
    assert len(held) == 1
    assert [p.stem for p in (root / "validation" / "imagefolder").glob("*.png")] == held

    response = client.patch(f"/api/datasets/{dataset_id}", json={"validation": {"percent": 0}})
    assert response.status_code == 200, response.text
    assert list((root / "validation" / "imagefolder").glob("*.png")) == []
    assert_error(client.patch(f"/api/datasets/{dataset_id}", json={"repeats": 0}), 422, "validation_error")
    assert_error(client.patch(f"/api/datasets/{dataset_id}", json={"validation": {"files": ["1" * 64]}}), 404,
                 "file_not_found")
    assert_error(client.patch(f"/api/datasets/{dataset_id}", json={"validation": {"percent": 91}}), 422,
                 "validation_error")


def layout_tree(root: Path) -> dict[str, str]:
    """Every file under a live layout folder -> its text (captions, metadata.jsonl) or "image"; the generation's
    stamp (server/layouts.py, STAMP_NAME) aside: it is no file a trainer reads."""
    return {str(path.relative_to(root)): path.read_text(encoding="utf-8") if path.suffix in (".txt", ".jsonl")
            else "image" for path in root.rglob("*") if path.is_file() and path.name != STAMP_NAME}


def expected_tree(client, dataset_id: str) -> dict[str, str]:
    """What the layouts must hold, worked out from the dataset over HTTP (files, captions, repeats, split)."""
    dataset = client.get(f"/api/datasets/{dataset_id}").json()
    files = client.get(f"/api/datasets/{dataset_id}/files").json()
    tree: dict[str, str] = {}
    for prefix, held_out, repeats in (("", False, dataset["repeats"]), ("validation/", True, 1)):
        group = [file for file in files if file["validation"] == held_out]
        for file in group:
            tree[f"{prefix}kohya/{repeats}_cats/{file['sha256']}.png"] = "image"
            tree[f"{prefix}kohya/{repeats}_cats/{file['sha256']}.txt"] = file["caption"] or ""
            tree[f"{prefix}imagefolder/{file['sha256']}.png"] = "image"
        tree[f"{prefix}imagefolder/metadata.jsonl"] = "".join(
            json.dumps({"file_name": f"{file['sha256']}.png", "text": file["caption"] or ""}, ensure_ascii=False)
            + "\n" for file in group)
    return tree


def test_rebuilt_layouts_hold_exactly_the_dataset_after_a_series_of_changes(client, srv, dataset):
    # Each rebuild brings the previous generation up to date in place (server/layouts.py): whatever came
    # before, the live folder must end up with exactly the dataset's files and captions, nothing stale.
    dataset_id = dataset["id"]
    root = srv.data_dir / "datasets" / dataset_id
    steps = [
        ("batch", {"op": "suffix", "text": ", outdoors", "files": "all"}),
        ("batch", {"op": "replace", "find": "cat", "replace": "kitten \u00e9\"", "files": "all"}),
        ("patch", {"repeats": 4}),
        ("batch", {"op": "set", "text": "short", "files": [SHAS[0]]}),
        ("patch", {"validation": {"files": [SHAS[1], SHAS[2]]}}),
        ("batch", {"op": "clear", "files": [SHAS[2]]}),
        ("batch", {"op": "prefix", "text": "a much longer caption than before, ", "files": "all"}),
        ("patch", {"validation": {"files": [SHAS[0]]}, "repeats": 2}),
        ("batch", {"op": "restore", "captions": {SHAS[0]: "one", SHAS[1]: "two", SHAS[2]: "three"}}),
        ("patch", {"validation": {"percent": 0}}),
    ]
    for kind, body in steps:
        if kind == "batch":
            response = batch(client, dataset_id, **body)
        else:
            response = client.patch(f"/api/datasets/{dataset_id}", json=body)
        assert response.status_code == 200, (kind, body, response.text)
        assert layout_tree(root) == expected_tree(client, dataset_id), (kind, body)
    assert captions_over_http(client, dataset_id) == {SHAS[0]: "one", SHAS[1]: "two", SHAS[2]: "three"}
    for sha, data in zip(SHAS, IMAGES):
        assert (root / "kohya" / "2_cats" / f"{sha}.png").read_bytes() == data

    # deleting the dataset leaves none of its files anywhere in the data dir (the kept generation included)
    assert client.delete(f"/api/datasets/{dataset_id}").status_code == 200
    assert not any(dataset_id in str(path) or any(sha in path.name for sha in SHAS)
                   for path in srv.data_dir.rglob("*")), sorted(srv.data_dir.rglob("*"))


def test_a_batch_edit_cut_short_by_a_crash_is_made_right_by_the_next_one(srv):
    # A SIGKILL can land anywhere in a rebuild, also while the kept generation is being brought up to date;
    # whatever it left, the next edit must produce exactly the dataset's layouts.
    images = [png_bytes(color=(index, 7, 7)) for index in range(40)]
    with srv.client() as http:
        dataset_id = committed_dataset(http, images, name="cats")["id"]
        assert batch(http, dataset_id, op="suffix", text=" one", files="all").status_code == 200
    for delay in (0.0, 0.02, 0.1):
        outcome: list[object] = []

        def edit() -> None:
            try:
                with srv.client() as http:
                    outcome.append(batch(http, dataset_id, op="prefix", text="cut ", files="all").status_code)
            except httpx.HTTPError as exc:  # the server died under the request
                outcome.append(exc)

        worker = threading.Thread(target=edit)
        worker.start()
        time.sleep(delay)
        srv.kill()
        worker.join(timeout=60)
        assert not worker.is_alive() and outcome
        srv.start()
        with srv.client() as http:
            response = batch(http, dataset_id, op="replace", find="cut", replace="whole", files="all")
            assert response.status_code == 200, response.text
            assert layout_tree(srv.data_dir / "datasets" / dataset_id) == expected_tree(http, dataset_id)


def wait_log_line(log: Path, text: str, offset: int, timeout: float = 60.0) -> str:
    """The server log from `offset` on, once `text` appears in it (a positive signal the server writes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(log, "rb") as handle:
                handle.seek(offset)
                tail = handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            tail = ""
        if text in tail:
            return tail
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout:g} s:\n{tail[-3000:]}"
        time.sleep(0.02)


def test_a_crash_between_the_commit_and_the_layout_swap_is_put_right_at_the_next_start(server_factory, tmp_path):
    # FAULT INJECTION: FAULT_PAUSE_BEFORE_SWAP_ENV makes the server stop a caption edit right after its
    # database commit, before its layout swap, and say so in a file; the test then kills it there (SIGKILL).
    marker = tmp_path / "paused-before-swap"
    srv = server_factory("data", env={FAULT_PAUSE_BEFORE_SWAP_ENV: str(marker)})
    images = [png_bytes(color=(index, 9, 9)) for index in range(6)]
    with srv.client() as http:
        dataset_id = committed_dataset(http, images, name="cats")["id"]
        response = http.patch(f"/api/datasets/{dataset_id}", json={"repeats": 3, "validation": {"percent": 34}})
        assert response.status_code == 200, response.text
        wait_spare_ready(srv.data_dir, dataset_id)
        before = captions_over_http(http, dataset_id)
    root = srv.data_dir / "datasets" / dataset_id
    tree_before = layout_tree(root)

    def edit() -> None:
        try:
            with srv.client(timeout=120) as http:
                batch(http, dataset_id, op="set", text="a red square", files="all")
        except httpx.HTTPError:
            pass  # the server is killed under the request

    worker = threading.Thread(target=edit, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while not marker.exists():  # committed, not swapped in
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.02)
    srv.kill()
    worker.join(timeout=30)
    assert layout_tree(root) == tree_before  # the live layouts are the old ones: the swap never happened

    del srv.env[FAULT_PAUSE_BEFORE_SWAP_ENV]
    log = srv.data_dir / "logs" / "server.log"
    offset = log.stat().st_size
    srv.start()
    tail = wait_log_line(log, LAYOUTS_CHECKED_MESSAGE, offset)
    assert f"{LAYOUTS_CHECKED_MESSAGE}: 1 rebuilt" in tail, tail
    with srv.client() as http:
        after = captions_over_http(http, dataset_id)
        assert after == {sha: "a red square" for sha in before}  # the commit had happened
        assert layout_tree(root) == expected_tree(http, dataset_id)
    assert {path for path in layout_tree(root) if path.startswith("validation/kohya/1_cats/")}  # split kept
    assert (root / "kohya" / "3_cats").is_dir()

    # a start with nothing to put right rebuilds nothing
    offset = log.stat().st_size
    srv.restart()
    assert f"{LAYOUTS_CHECKED_MESSAGE}: 0 rebuilt" in wait_log_line(log, LAYOUTS_CHECKED_MESSAGE, offset)


@pytest.mark.parametrize("layout", ["kohya", "imagefolder"])
def test_export_round_trips_through_reimport(client, srv, dataset, layout):
    response = client.patch(f"/api/datasets/{dataset['id']}", json={"repeats": 4})
    assert response.status_code == 200, response.text
    response = client.get(f"/api/datasets/{dataset['id']}/export", params={"layout": layout})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    images: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    for name in archive.namelist():
        if name.endswith(".png"):
            images[name] = archive.read(name)
    if layout == "kohya":
        assert {name.split("/")[0] for name in archive.namelist()} == {"4_cats"}
        for name in images:
            captions[name] = archive.read(name[:-4] + ".txt").decode("utf-8")
    else:
        for line in archive.read("metadata.jsonl").decode("utf-8").splitlines():
            item = json.loads(line)
            captions[item["file_name"]] = item["text"]

    # re-import as a client would: upload each file under its hash, set its caption, commit
    again = create_dataset(client, "cats again")
    for name, data in images.items():
        response = upload(client, again["id"], data, Path(name).name)
        assert response.status_code == 201, response.text
        response = client.put(f"/api/datasets/{again['id']}/files/{sha256_of(data)}/caption",
                              json={"caption": captions[name]})
        assert response.status_code == 200, response.text
    response = client.post(f"/api/datasets/{again['id']}/commit")
    assert response.status_code == 200, response.text
    assert captions_over_http(client, again["id"]) == captions_over_http(client, dataset["id"])
    assert_error(client.get(f"/api/datasets/{dataset['id']}/export", params={"layout": "zipfolder"}), 422,
                 "validation_error")


def test_a_caption_job_writes_captions_that_appear_over_http(client, srv, dataset):
    response = client.get("/api/captioners")
    assert response.status_code == 200, response.text
    assert response.json() == [{"id": "standin-captioner", "name": "Stand-in captioner", "description": ""}]
    # a caption preset is not a base model
    assert "standin-captioner" not in {m["id"] for m in client.get("/api/training/base-models").json()}

    response = client.post(f"/api/datasets/{dataset['id']}/caption", json={"preset": "standin-captioner"})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["kind"] == "caption" and job["datasetId"] == dataset["id"]
    done = wait_job(client, job["id"], lambda j: j["status"] in ("completed", "failed", "cancelled"), timeout=120)
    assert done["status"] == "completed", done
    expected = {sha: f"a 32x24 picture, colour {','.join(str(c) for c in color)}"
                for sha, color in zip(SHAS, [(10, 20, 30), (40, 50, 60), (70, 80, 90)])}
    assert_everywhere(client, srv, dataset["id"], expected)
    assert_error(client.post(f"/api/datasets/{dataset['id']}/caption", json={"preset": "nope"}), 404,
                 "unknown_captioner")


def hidden_spares(srv) -> list[str]:
    """Half-prepared spares (`layout-spares/.<id>.preparing`); the folder may not exist yet at all."""
    spares = srv.data_dir / "layout-spares"
    return [p.name for p in spares.iterdir() if p.name.startswith(".")] if spares.is_dir() else []


def test_a_spare_is_prepared_after_commit_and_the_first_edit_brings_it_up_to_date(client, srv):
    images = [png_bytes(color=(index, 9, 9)) for index in range(12)]
    dataset_id = committed_dataset(client, images, name="cats")["id"]
    spare = wait_spare_ready(srv.data_dir, dataset_id)
    assert layout_tree(spare) == expected_tree(client, dataset_id)  # a whole copy of the committed layouts
    assert batch(client, dataset_id, op="suffix", text=", first", files="all").status_code == 200
    assert layout_tree(srv.data_dir / "datasets" / dataset_id) == expected_tree(client, dataset_id)
    assert set(captions_over_http(client, dataset_id).values()) == {", first"}
    assert sorted(p.name for p in (srv.data_dir / "layout-spares").iterdir()) == [dataset_id]


def test_an_edit_right_after_commit_takes_over_the_spare_being_prepared(client, srv):
    # Sent the moment the commit answers, the edit meets the spare's background preparation (somewhere between
    # not started and done): it must stop it and carry on, never race it, leaving exactly the dataset.
    images = [png_bytes(color=(index, 11, 3)) for index in range(150)]
    for _round in range(3):
        dataset_id = committed_dataset(client, images, name="cats")["id"]
        response = batch(client, dataset_id, op="prefix", text="now ", files="all")
        assert response.status_code == 200, response.text
        assert layout_tree(srv.data_dir / "datasets" / dataset_id) == expected_tree(client, dataset_id)
        response = batch(client, dataset_id, op="replace", find="now", replace="later", files="all")
        assert response.status_code == 200, response.text
        assert layout_tree(srv.data_dir / "datasets" / dataset_id) == expected_tree(client, dataset_id)
        assert dataset_id in {p.name for p in (srv.data_dir / "layout-spares").iterdir()}
        assert hidden_spares(srv) == []
        assert client.delete(f"/api/datasets/{dataset_id}").status_code == 200


def test_deleting_a_dataset_right_after_commit_leaves_no_spare_behind(client, srv):
    images = [png_bytes(color=(index, 3, 11)) for index in range(150)]
    for _round in range(3):
        dataset_id = committed_dataset(client, images, name="cats")["id"]
        assert client.delete(f"/api/datasets/{dataset_id}").status_code == 200
        # the delete stopped the preparation before removing its folder: nothing of it anywhere, now or later
        assert not any(dataset_id in str(path) for path in srv.data_dir.rglob("*")), \
            sorted(srv.data_dir.rglob("*"))
    assert not any(path.name.endswith(".png") for path in srv.data_dir.rglob("*"))


def test_a_kill_while_the_spare_is_prepared_is_swept_and_the_next_edit_is_whole(srv):
    images = [png_bytes(color=(index, 5, 5)) for index in range(150)]
    with srv.client() as http:
        dataset_id = committed_dataset(http, images, name="cats")["id"]
    srv.kill()  # most likely while the spare is half prepared; wherever it lands, the restart makes it right
    srv.start()
    assert hidden_spares(srv) == [], "half-prepared spare left behind"
    with srv.client() as http:
        response = batch(http, dataset_id, op="suffix", text=" after", files="all")
        assert response.status_code == 200, response.text
        assert layout_tree(srv.data_dir / "datasets" / dataset_id) == expected_tree(http, dataset_id)


def test_a_dataset_without_a_spare_gets_one_after_the_next_start(srv):
    # A dataset committed by a server from before spares, or whose preparation a stop cut short, has none: the
    # start's layout check prepares it in the background, so the first batch edit does not build it itself.
    images = [png_bytes(color=(index, 7, 7)) for index in range(40)]
    with srv.client() as http:
        dataset_id = committed_dataset(http, images, name="cats")["id"]
    spare = wait_spare_ready(srv.data_dir, dataset_id)
    assert srv.stop() == 0, srv.log_tail()
    shutil.rmtree(spare)
    srv.start()
    spare = wait_spare_ready(srv.data_dir, dataset_id)  # appears by one rename, once whole
    with srv.client() as http:
        assert layout_tree(spare) == expected_tree(http, dataset_id)
        response = batch(http, dataset_id, op="suffix", text=" again", files="all")
        assert response.status_code == 200, response.text
        assert layout_tree(srv.data_dir / "datasets" / dataset_id) == expected_tree(http, dataset_id)
    assert hidden_spares(srv) == []


def test_a_stop_while_the_spare_is_prepared_does_not_wait_for_it(srv):
    # The preparation is a daemon thread: SIGTERM right after a commit stops the server cleanly (the stop
    # would otherwise hit ServerProcess.stop's deadline and be a SIGKILL), and what it left is swept at start.
    images = [png_bytes(color=(index, 6, 6)) for index in range(150)]
    with srv.client() as http:
        dataset_id = committed_dataset(http, images, name="cats")["id"]
    code = srv.stop()
    assert code == 0, srv.log_tail()
    srv.start()
    assert hidden_spares(srv) == []
    with srv.client() as http:
        response = batch(http, dataset_id, op="suffix", text=" after", files="all")
        assert response.status_code == 200, response.text
        assert layout_tree(srv.data_dir / "datasets" / dataset_id) == expected_tree(http, dataset_id)


def test_a_selection_of_many_files_is_within_the_body_limit_of_the_requests_that_carry_one(client, srv, dataset):
    """A list of up to MAX_BATCH_FILES (100,000) hashes goes over the 1 MiB of other JSON requests (15,600
    hashes fill it): the caption edit and the validation split take 8 MiB."""
    dataset_id = dataset["id"]
    unknown = [f"{n:064x}" for n in range(1, 20_001)]  # 20,000 hashes: about 1.3 MB of JSON
    body = assert_error(batch(client, dataset_id, op="prefix", text="x", files=[*SHAS, *unknown]), 404,
                        "file_not_found")
    assert unknown[0] in body["error"]["message"]  # read and checked, not refused for its size
    body = assert_error(client.patch(f"/api/datasets/{dataset_id}", json={"validation": {"files": unknown}}), 404,
                        "file_not_found")
    response = batch(client, dataset_id, op="suffix", text="!", files=SHAS * 7_000, dry_run=True)
    assert response.status_code == 200, response.text
    assert response.json()["changed"] == 3
    # Past 8 MiB it is refused before it is held, declared or chunked, and nothing changed.
    assert_error(batch(client, dataset_id, op="prefix", text="x", files=["0" * 64] * 130_000), 413, "too_large")

    def chunked():
        yield b'{"op": "prefix", "text": "x", "files": ["'
        for _ in range(140):
            yield b"a" * 65536
        yield b'"]}'

    response = client.post(f"/api/datasets/{dataset_id}/captions/batch", content=chunked(),
                           headers={"Content-Type": "application/json"})
    assert_error(response, 413, "too_large")
    assert captions_over_http(client, dataset_id) == dict(zip(SHAS, ["a cat", "a black cat", "a dog"]))
