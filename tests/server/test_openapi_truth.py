"""The served OpenAPI document tells the truth about the server's own input checks, and a 405 names every
method of its path in `Allow`. Against a real server: the values the server refuses are refused by the
document's schemas, and values the document allows get past the checks (tests/reliability/
test_schemathesis.py fuzzes the same promises across every operation)."""

from __future__ import annotations

import json
import re

import jsonschema_rs
import pytest

from tests.server.helpers import assert_error, committed_dataset
from tests.support.server import ServerProcess

HEX = "ab" * 32


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for the whole module (these tests only read, or add rows nobody else counts)."""
    server = ServerProcess(tmp_path_factory.mktemp("openapi") / "data", extra_args=["--no-runner"]).start()
    yield server
    server.stop()
    log = (server.data_dir / "logs" / "server.log").read_text(errors="replace")
    assert "unexpected error on" not in log and "Exception in ASGI application" not in log, log[-3000:]


@pytest.fixture
def client(shared_server):
    with shared_server.client() as http:
        yield http


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def _validator(schema: dict) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(schema)


def _path_parameter(document: dict, path: str, method: str, name: str) -> dict:
    return next(p for p in document["paths"][path][method]["parameters"] if p["name"] == name)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("POST", "/api/datasets/some-id", "DELETE, GET, PATCH"),
    ("PUT", "/api/datasets/some-id", "DELETE, GET, PATCH"),  # PATCH: repeats and validation (issue 17)
    ("OPTIONS", "/api/datasets/some-id", "DELETE, GET, PATCH"),
    ("DELETE", "/api/datasets", "GET, POST"),
    ("PUT", "/api/training/jobs", "GET, POST"),
    ("GET", "/api/models/some-id", "DELETE"),
    ("POST", f"/api/datasets/some-id/files/{HEX}", "PUT"),
])
def test_a_405_lists_every_method_of_the_path_in_allow(client, method, path, allowed):
    response = client.request(method, path)
    body = assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed
    assert method in body["error"]["message"] and allowed in body["error"]["message"]


def test_the_405_allow_header_matches_the_document(client, document):
    for path, operations in document["paths"].items():
        documented = {method.upper() for method in operations}
        concrete = path.replace("{sha256}", HEX).replace("{", "x").replace("}", "x")
        response = client.request("TRACE", concrete)
        assert response.status_code == 405, (path, response.text)
        assert set(response.headers["allow"].split(", ")) == documented, path


def test_sha256_path_parameters_carry_their_hex_pattern(client, document):
    sha_parameters = [parameter for operations in document["paths"].values() for operation in operations.values()
                      for parameter in operation.get("parameters", []) if parameter["name"] == "sha256"]
    assert len(sha_parameters) == 3  # upload, caption, thumbnail
    dataset = committed_dataset(client)
    for parameter in sha_parameters:
        schema = _validator(parameter["schema"])
        assert not schema.is_valid("")
        for refused in ("zz" * 32, "ab" * 31, "ab" * 33, "ab" * 31 + "\u00e9f"):
            assert not schema.is_valid(refused), refused
            assert_error(client.get(f"/api/datasets/{dataset['id']}/files/{refused}/thumbnail"), 400, "invalid_hash")
        for accepted in (HEX, HEX.upper()):
            assert schema.is_valid(accepted)
            # Past the hash check: an unknown file of a real dataset, not a 400.
            assert_error(client.get(f"/api/datasets/{dataset['id']}/files/{accepted}/thumbnail"), 404,
                         "file_not_found")


def test_every_path_parameter_refuses_the_empty_string(document):
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert not _validator(parameter["schema"]).is_valid(""), (path, parameter["name"])


@pytest.mark.parametrize("name", ["", "   ", "\u200b\u200b", "\x00\x01", "\u00ad", "\n\t"])
def test_names_the_server_refuses_as_blank_are_refused_by_the_document(client, document, name):
    schemas = document["components"]["schemas"]
    for component in ("CreateDatasetRequest", "CreateJobRequest"):
        assert not _validator(schemas[component]["properties"]["name"]).is_valid(name), component
    assert_error(client.post("/api/datasets", json={"name": name, "type": "image"}), 422, "validation_error")


@pytest.mark.parametrize("name", ["cats", " 猫 ", "Ünïcødé set", "x\u200b"])
def test_names_the_document_allows_are_accepted(client, document, name):
    schema = document["components"]["schemas"]["CreateDatasetRequest"]["properties"]["name"]
    assert _validator(schema).is_valid(name)
    assert client.post("/api/datasets", json={"name": name, "type": "image"}).status_code == 201


@pytest.mark.parametrize(("field", "value"), [("dataset_id", ""), ("dataset_id", "a\x00b"), ("dataset_id", "\ud800"),
                                              ("base_model", ""), ("base_model", "\x7f"), ("base_model", "\ud800")])
def test_job_ids_the_server_refuses_are_refused_by_the_document(client, document, field, value):
    schema = document["components"]["schemas"]["CreateJobRequest"]["properties"][field]
    # Python's re, not jsonschema_rs: a lone surrogate cannot even be handed to the Rust validator.
    assert re.search(schema["pattern"], value) is None
    dataset = committed_dataset(client)
    request = {"name": "j", "dataset_id": dataset["id"], "base_model": "builtin-linear-vae", "total_steps": 5,
               "params": {}, field: value}
    response = client.post("/api/training/jobs", content=json.dumps(request),
                           headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 404, 422), response.text


def test_job_status_lists_the_document_allows_are_accepted(client, document):
    schema = _validator(_path_parameter(document, "/api/training/jobs", "get", "status")["schema"])
    for refused in ("", ",", "done", "all,,running"):
        assert not schema.is_valid(refused), refused
    for accepted in ("all", "active", "running,failed,cancelled", "pending"):
        assert schema.is_valid(accepted)
        assert client.get("/api/training/jobs", params={"status": accepted}).status_code == 200
    assert_error(client.get("/api/training/jobs", params={"status": ""}), 422, "validation_error")


@pytest.mark.parametrize("before", ["2024-02-29T12:00:00Z", "2024-02-29t12:00:00.123456z", "2016-12-31T23:59:60Z",
                                    "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
                                    "2024-01-01T00:00:00.123456789+05:30"])
def test_every_rfc3339_date_time_is_a_valid_before(client, before):
    response = client.get("/api/training/jobs", params={"status": "all", "before": before})
    assert response.status_code == 200, response.text


def test_paging_before_years_below_1000_returns_nothing(client):
    dataset = committed_dataset(client)
    created = client.post("/api/training/jobs", json={"name": "j", "dataset_id": dataset["id"], "total_steps": 5,
                                                      "base_model": "builtin-linear-vae", "params": {}})
    assert created.status_code == 201, created.text
    every = client.get("/api/training/jobs", params={"status": "all"}).json()
    assert created.json()["id"] in {job["id"] for job in every}
    for long_ago in ("0999-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"):
        assert client.get("/api/training/jobs", params={"status": "all", "before": long_ago}).json() == []
    far_ahead = client.get("/api/training/jobs", params={"status": "all", "before": "9999-12-31T23:59:59-01:00"})
    assert far_ahead.json() == every


def _component_validator(document: dict, name: str) -> jsonschema_rs.Validator:
    """A component's schema with the document's components beside it, so its `$ref`s resolve."""
    return _validator({**document["components"]["schemas"][name], "components": document["components"]})


def test_the_system_answer_and_its_typed_cluster_match_the_document(client, document):
    """issue 18: `cluster` is a typed object in the document (wire name kept), null on a local server."""
    answer = client.get("/api/system").json()
    assert answer["cluster"] is None
    assert _component_validator(document, "SystemInfo").is_valid(answer)
    cluster = _component_validator(document, "ClusterInfo")
    unreachable = {"reachable": False, "error": "connection refused", "address": "http://127.0.0.1:8265"}
    node = {"node_id": "ab" * 28, "address": "10.0.0.2", "head": True, "cpus_total": 16.0, "cpus_free": 12.0,
            "gpus_total": 4.0, "gpus_free": 2.0}
    reachable = {"reachable": True, "error": None, "address": "http://10.0.0.2:8265", "nodes_alive": 1,
                 "nodes_dead": 0, "nodes": [node], "cpus_total": 16.0, "cpus_free": 12.0, "gpus_total": 4.0,
                 "gpus_free": 2.0}
    for value in (unreachable, reachable):
        assert cluster.is_valid(value), value
        assert _component_validator(document, "SystemInfo").is_valid({**answer, "cluster": value})
    for refused in ({}, {"reachable": "yes"}, {**reachable, "nodes": [{"address": "10.0.0.2"}]},
                    {**reachable, "cpus_free": "12"}, ["reachable"]):
        assert not cluster.is_valid(refused), refused
