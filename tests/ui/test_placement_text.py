"""Plain tests of how a job's placement reads (issue 16): the Jobs table's "Runs on", History's "Ran on" and
the Overview share these texts. No Qt."""

from __future__ import annotations

from training_studio.contract.models import Placement, TrainingJob
from training_studio.ui.jobs.format import placement_details, placement_text


def test_the_most_specific_place_and_the_gpus():
    assert placement_text(None) == ""
    assert placement_text(Placement(executor="local", host="box")) == "box"
    assert placement_text(Placement(executor="local", host="box", gpus=["0", "1"])) == "box · GPU 0, 1"
    ray = Placement(executor="ray", address="ray://head:10001", node="node-7", gpus=["GPU-ab"])
    assert placement_text(ray) == "node-7 · GPU GPU-ab"
    assert placement_text(Placement(executor="ray", address="ray://head:10001")) == "ray://head:10001"
    assert placement_text(Placement(executor="ray")) == "ray"
    assert placement_text(Placement(executor="", gpus=["3"])) == "GPU 3"


def test_the_details_name_every_known_part():
    assert placement_details(None) == ""
    assert placement_details(Placement(executor="local", host="box")).splitlines() == [
        "Executor: this server's machine", "Host: box", "GPU: none (CPU)"]
    ray = Placement(executor="ray", address="ray://head:10001", node="node-7", gpus=["0", "2"])
    assert placement_details(ray).splitlines() == [
        "Executor: Ray cluster", "Cluster: ray://head:10001", "Node: node-7", "GPUs: 0, 2"]


def test_a_placement_arrives_from_the_wire_in_camel_case():
    job = TrainingJob.model_validate({"id": "j", "name": "n", "status": "running", "createdAt": "2026-01-01T00:00:00Z",
                                      "placement": {"executor": "local", "host": "box", "gpus": ["1"]}})
    assert placement_text(job.placement) == "box · GPU 1"
