"""Job templates over HTTP against a real server subprocess: save, list, replace by name, get, delete,
survive a restart, and bad input answered with the reason."""

from __future__ import annotations

from training_studio.contract import JobTemplate
from tests.support.server import ServerProcess


def test_templates_round_trip_and_survive_a_restart(tmp_path):
    server = ServerProcess(tmp_path / "data", extra_args=["--no-runner"]).start()
    try:
        settings = {"dataset_id": "d1", "base_model": "builtin-tiny", "total_steps": 40,
                    "params": {"learning_rate": 0.0002, "seed": 7}}
        with server.client() as client:
            created = client.post("/api/training/templates", json={"name": "Portrait LoRA", "settings": settings})
            assert created.status_code == 201, created.text
            template = JobTemplate.model_validate(created.json())
            assert template.settings.model_dump() == settings
            # The same name in another case replaces the settings instead of adding a copy.
            replaced = client.post("/api/training/templates",
                                   json={"name": "portrait lora", "settings": {**settings, "total_steps": 80}})
            assert replaced.status_code == 200
            assert replaced.json()["id"] == template.id and replaced.json()["settings"]["total_steps"] == 80
            client.post("/api/training/templates", json={"name": "A first", "settings": {}})
            names = [t["name"] for t in client.get("/api/training/templates").json()]
            assert names == ["A first", "portrait lora"]
        server.stop()
        server.start()
        with server.client() as client:
            again = client.get(f"/api/training/templates/{template.id}")
            assert again.status_code == 200 and again.json()["settings"]["total_steps"] == 80
            assert client.delete(f"/api/training/templates/{template.id}").json() == {"success": True}
            gone = client.get(f"/api/training/templates/{template.id}")
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "template_not_found"
            assert client.delete(f"/api/training/templates/{template.id}").status_code == 404
    finally:
        server.stop()


def test_bad_templates_are_refused_with_the_reason(tmp_path):
    server = ServerProcess(tmp_path / "data", extra_args=["--no-runner"]).start()
    try:
        with server.client() as client:
            blank = client.post("/api/training/templates", json={"name": "\u200b \t", "settings": {}})
            assert blank.status_code == 422 and "visible characters" in blank.text
            steps = client.post("/api/training/templates", json={"name": "x", "settings": {"total_steps": 0}})
            assert steps.status_code == 422 and "total_steps" in steps.text
            huge = client.post("/api/training/templates",
                               json={"name": "x", "settings": {"params": {"blob": "a" * 70_000}}})
            assert huge.status_code == 413 and "64 KiB" in huge.text
            assert client.get("/api/training/templates").json() == []
    finally:
        server.stop()
