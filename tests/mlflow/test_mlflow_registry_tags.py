"""Registered-model and model-version tags (issue 26, migration 0013) with a stock MLflow client against a
real `diary server`: set on create and by the set-tag routes, returned by get and search, matched by the
search filters, deleted, gone with their model; a bad tag is refused and writes nothing."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow_helpers import MlflowServer


@pytest.fixture
def client(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return MlflowClient(mlflow_server.url)


def _tags(entity) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(entity.tags)


def test_model_and_version_tags_round_trip(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    run_id = client.create_run(client.create_experiment("tags")).info.run_id
    client.create_registered_model("fraud", tags={"team": "risk", "tier": "1"})
    version = client.create_model_version("fraud", "s3://b/m", run_id, tags={"data": "2026-q4"})
    assert _tags(client.get_registered_model("fraud")) == {"team": "risk", "tier": "1"}
    assert _tags(version) == {"data": "2026-q4"}

    client.set_registered_model_tag("fraud", "tier", "2")  # overwrites
    client.set_model_version_tag("fraud", "1", "validated", "yes")
    assert _tags(client.get_registered_model("fraud")) == {"team": "risk", "tier": "2"}
    assert _tags(client.get_model_version("fraud", "1")) == {"data": "2026-q4", "validated": "yes"}
    (found,) = client.search_registered_models()
    assert _tags(found) == {"team": "risk", "tier": "2"}

    client.delete_registered_model_tag("fraud", "team")
    client.delete_model_version_tag("fraud", "1", "data")
    client.delete_registered_model_tag("fraud", "never-set")  # no error, as MLflow's registry
    assert _tags(client.get_registered_model("fraud")) == {"tier": "2"}
    assert _tags(client.get_model_version("fraud", "1")) == {"validated": "yes"}

    # A renamed model keeps its tags; a deleted one takes them along.
    client.rename_registered_model("fraud", "fraud-v2")
    assert _tags(client.get_registered_model("fraud-v2")) == {"tier": "2"}
    client.delete_registered_model("fraud-v2")
    with sqlite3.connect(mlflow_server.database) as db:
        assert db.execute("select count(*) from model_tag").fetchone() == (0,)
        assert db.execute("select count(*) from model_version_tag").fetchone() == (0,)


def test_search_filters_by_tag(client: MlflowClient) -> None:
    run_id = client.create_run(client.create_experiment("search")).info.run_id
    client.create_registered_model("a", tags={"team": "risk"})
    client.create_registered_model("b", tags={"team": "growth"})
    client.create_registered_model("c")

    def names(text: str) -> list[str]:
        return [m.name for m in client.search_registered_models(filter_string=text)]

    assert names("tags.team = 'risk'") == ["a"]
    assert names("tags.team != 'risk'") == ["b"]  # as MLflow: a model without the key is not kept
    assert names("tags.team LIKE 'r%'") == ["a"]
    assert names("tags.team ILIKE 'GROW%'") == ["b"]
    assert names("name != 'a' AND tags.`team` LIKE '%'") == ["b"]
    assert names("") == ["a", "b", "c"]

    for name in ("a", "b"):
        client.create_model_version(name, "s3://b/m", run_id, tags={"split": name})
    client.create_model_version("a", "s3://b/m2", run_id)
    found = client.search_model_versions("tags.split = 'a'")
    assert [(v.name, v.version) for v in found] == [("a", "1")]
    found = client.search_model_versions("name = 'a' AND tags.split LIKE '%'")
    assert [(v.name, v.version) for v in found] == [("a", "1")]


def test_prompts_are_left_out_unless_asked_for(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    # MLflow keeps prompts as registered models tagged mlflow.prompt.is_prompt; its registry leaves them
    # out of a model search unless the filter asks for them (its client refuses to create one as a model).
    client.create_registered_model("plain")
    prompt = {"name": "prompt", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}
    httpx.post(f"{mlflow_server.url}/api/2.0/mlflow/registered-models/create", json=prompt).raise_for_status()
    assert [m.name for m in client.search_registered_models()] == ["plain"]
    asked = client.search_registered_models(filter_string="tags.`mlflow.prompt.is_prompt` = 'true'")
    assert [m.name for m in asked] == ["prompt"]


def test_bad_tags_are_refused_and_write_nothing(client: MlflowClient, mlflow_server: MlflowServer) -> None:
    api = f"{mlflow_server.url}/api/2.0/mlflow"
    answer = httpx.post(f"{api}/registered-models/create",
                        json={"name": "m", "tags": [{"key": "k" * 251, "value": "v"}]})
    assert answer.status_code == 400 and "length limit of 250" in answer.json()["message"]
    with pytest.raises(MlflowException, match="not found"):
        client.get_registered_model("m")
    answer = httpx.post(f"{api}/registered-models/create", json={"name": "m", "tags": [{"value": "v"}]})
    assert answer.status_code == 400 and "tags[0].key" in answer.json()["message"]

    client.create_registered_model("m", tags={"keep": "1"})
    answer = httpx.post(f"{api}/registered-models/set-tag", json={"name": "m", "key": "k", "value": "v" * 100_001})
    assert answer.status_code == 400 and "length limit of 100000" in answer.json()["message"]
    answer = httpx.post(f"{api}/registered-models/set-tag", json={"name": "m", "value": "v"})
    assert answer.status_code == 400 and "'key'" in answer.json()["message"]
    assert _tags(client.get_registered_model("m")) == {"keep": "1"}
    with pytest.raises(MlflowException, match="Registered Model with name=absent not found"):
        client.set_registered_model_tag("absent", "k", "v")
    with pytest.raises(MlflowException, match=r"Model Version \(name=m, version=3\) not found"):
        client.set_model_version_tag("m", "3", "k", "v")
