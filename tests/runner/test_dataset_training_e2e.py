"""Issue 17's "done when", end to end over a real server: a dataset with captions, repeats 3 and a validation
split is trained on by a preset job, and the trainer (a stand-in that records what it was given,
trainers/records_dataset.py) sees `3_<name>/` with the training files and their captions in `{dataset_dir}`
and the held-out files in `{validation_dir}`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.server.helpers import committed_dataset, png_bytes, sha256_of
from tests.support.jobs import create_job, wait_job
from tests.support.server import with_presets
from training_studio.server.storage import Storage

RECORDER = Path(__file__).parent / "trainers" / "records_dataset.py"
PRESETS = (
    '[[preset]]\nid = "recorder"\nname = "Recorder"\ndataset_layout = "kohya"\nprogress = "jsonl"\n'
    f"command = [{json.dumps(sys.executable)}, {json.dumps(str(RECORDER))}, "
    '"{dataset_dir}", "{validation_dir}", "{output_dir}"]\n')


def test_a_job_trains_on_the_right_repeats_and_validation_split(server_factory, tmp_path):
    srv = with_presets(server_factory, tmp_path / "data", PRESETS)
    images = [png_bytes(color=(index * 30, 100, 50)) for index in range(6)]
    shas = [sha256_of(data) for data in images]
    captions = {sha: f"photo {index} of sks cat" for index, sha in enumerate(shas)}
    held_out = {shas[1], shas[4]}
    with srv.client() as http:
        dataset_id = committed_dataset(http, images, name="my cat")["id"]
        for sha, caption in captions.items():
            response = http.put(f"/api/datasets/{dataset_id}/files/{sha}/caption", json={"caption": caption})
            assert response.status_code == 200, response.text
        response = http.patch(f"/api/datasets/{dataset_id}",
                              json={"repeats": 3, "validation": {"files": sorted(held_out)}})
        assert response.status_code == 200, response.text
        assert response.json()["repeats"] == 3

        job = create_job(http, dataset_id, "recorder", total_steps=1, name="train my cat")
        done = wait_job(http, job["id"], lambda j: j["status"] in ("completed", "failed", "cancelled"), timeout=120)
        assert done["status"] == "completed", done

    seen = json.loads((Storage(srv.data_dir).job_output_dir(job["id"]) / "seen.json").read_text(encoding="utf-8"))
    root = srv.data_dir / "datasets" / dataset_id
    assert Path(seen["dataset_dir"]) == root / "kohya"
    assert Path(seen["validation_dir"]) == root / "validation" / "kohya"
    assert seen["training"] == {"3_my_cat": {sha: captions[sha] for sha in shas if sha not in held_out}}
    assert seen["validation"] == {"1_my_cat": {sha: captions[sha] for sha in shas if sha in held_out}}
