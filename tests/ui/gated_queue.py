"""A real server with one job slot and gated trainers (tests/runner/trainers/gated_env.py) for the Jobs tab's
queue tests: jobs are created over HTTP, each runs until the test releases it, every start is recorded in
order, and the server's queue order is read back from the jobs' `queuePosition`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset

TRAINER = Path(__file__).resolve().parents[1] / "runner" / "trainers" / "gated_env.py"


def gated_presets(record: Path) -> str:
    command = json.dumps([sys.executable, str(TRAINER), str(record), "{output_dir}/go", "{params.outcome}"])
    return (f'[[preset]]\nid = "gated"\nname = "gated"\ncommand = {command}\nprogress = "jsonl"\n'
            '[[preset.params]]\nname = "outcome"\ntype = "str"\ndefault = "succeed"\ndescription = "x"\n')


class GatedQueue:
    """Starts the server (through the `server_factory` fixture) with concurrency 1 and a dataset."""

    def __init__(self, server_factory, tmp_path: Path) -> None:
        self.record = tmp_path / "started.jsonl"
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "presets.toml").write_text(gated_presets(self.record))
        self.server = server_factory(extra_args=["--concurrency", "1", "--cancel-grace", "1"])
        self.http = sync_client(self.server.url, self.server.token)
        self.dataset = make_dataset(self.http)

    def create(self, name: str) -> str:
        response = self.http.post("/api/training/jobs", json={
            "name": name, "dataset_id": self.dataset, "base_model": "gated", "total_steps": 2})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def release(self, job_id: str) -> None:
        (self.server.data_dir / "jobs" / job_id / "go").write_text("go")

    def order(self, ids: list[str]) -> list[str]:
        """`ids` in the server's queue order (each must still be waiting)."""
        positions = {job_id: self.http.get("/api/training/status", params={"job_id": job_id}).json()["queuePosition"]
                     for job_id in ids}
        assert all(position is not None for position in positions.values()), positions
        return sorted(ids, key=lambda job_id: positions[job_id])
