"""An API fuzz pass: schemathesis generates requests, fitting the schema and deliberately not fitting it,
from the served OpenAPI document for every operation; none may answer 500, and every error is the
`{"code", "message"}` envelope. The database is seeded so that small ids hit real rows.

The server runs with auth on, as a team runs it; requests carry an administrator's token so they reach
the routes' own checks. A case may end that token (logout-all, a password change, deleting or demoting
the user), so there are two administrators and whichever survives repairs the other.

Schemathesis' pytest plugin does not run under pytest 9, so its strategies are driven by Hypothesis here.
"""

from __future__ import annotations

import math
import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from server_harness import start_cli_server

from diary_integrations import IterationStatus, RemoteTracker, TagTarget

# Bounded so the whole pass takes about a minute on two cores; DIARY_FUZZ_EXAMPLES=500 DIARY_FUZZ_RANDOM=1
# runs a longer, differently seeded search by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("DIARY_FUZZ_EXAMPLES", "40"))
pytestmark = pytest.mark.slow  # about a minute of generated requests
DERANDOMIZE = not os.environ.get("DIARY_FUZZ_RANDOM")


PASSWORD = "fuzz-admin-password"
ADMINS = ("fuzzadmin", "default")


class Admin:
    """An administrator's bearer token that survives the cases that end it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.token: str | None = None

    def _login(self, name: str) -> str | None:
        answer = httpx.post(f"{self.url}/auth", json={"username": name, "password": PASSWORD}, timeout=30)
        if answer.status_code != 200 or not answer.json()["user"]["is_admin"]:
            return None
        return answer.json()["access_token"]

    def headers(self) -> dict[str, str]:
        if self.token is None:
            self.repair()
        return {"authorization": f"Bearer {self.token}"}

    def repair(self) -> None:
        """Log in as whichever administrator still can, and give the other back its password and rank."""
        for me, other in (ADMINS, ADMINS[::-1]):
            token = self._login(me)
            if token is None:
                continue
            if self._login(other) is None:
                auth = {"authorization": f"Bearer {token}"}
                found = httpx.get(f"{self.url}/user/by-name", params={"username": other}, headers=auth)
                if found.status_code == 200:
                    httpx.patch(f"{self.url}/user/{found.json()['id']}", headers=auth,
                                json={"password": PASSWORD, "is_admin": True})
                else:
                    httpx.post(f"{self.url}/user/", headers=auth,
                               json={"username": other, "password": PASSWORD, "is_admin": True})
            self.token = token
            return
        raise AssertionError("both fuzz administrators were lost at once")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fuzz-server")
    live = start_cli_server(workdir, f"sqlite:///{workdir / 'fuzz.db'}", env={
        "DIARY_ENABLE_AUTH": "true", "DIARY_JWT_SECRET": "fuzz-secret-" + "f" * 40, "DIARY_ADMIN_PASSWORD": PASSWORD,
        # The fuzzer's own failed logins must not lock the pass out of its administrators.
        "DIARY_LOGIN_MAX_FAILURES_PER_USER": "1000000", "DIARY_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
    })
    seed = RemoteTracker(live.url, username="default", password=PASSWORD)
    seed.create_user("fuzzadmin", PASSWORD, is_admin=True)
    project, _ = seed.create_project("P")
    experiment, _ = seed.create_experiment(project, 1, "E")
    for n in range(3):
        iteration, _ = seed.create_iteration(experiment, snapshot=False)
        seed.create_parameter(iteration, "lr", 0.1)
        seed.log_metrics(iteration, {"loss": 0.5, "nan": math.nan}, step=0)
        seed.add_tag(TagTarget.ITERATION, iteration, f"tag{n}")
        seed.create_resource(experiment, f"r{n}", b"bytes")
        seed.create_user(f"user{n}", "pw")
    seed.end_iteration(iteration, IterationStatus.FAILED, error_message="boom")
    seed.close()
    yield live
    live.stop()


def _strategy(operation):
    modes = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            modes.append(operation.as_strategy(generation_mode=mode))
        except Exception:  # noqa: BLE001 - an operation with nothing to negate has no negative mode
            pass
    return st.one_of(*modes)


# The operations are dealt into shards, one test each, so a parallel test run spreads the pass.
SHARDS = 3


@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_server_errors(fuzz_server, shard):
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    every = [result.ok() for result in schema.get_all_operations()]
    assert len(every) >= 40  # every route is in the schema
    operations = every[shard::SHARDS]
    problems: list[str] = []
    calls = 0
    admin = Admin(fuzz_server.url)

    for operation in operations:
        @given(case=_strategy(operation))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=DERANDOMIZE, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            nonlocal calls
            calls += 1
            response = case.call(base_url=fuzz_server.url, timeout=30, headers=admin.headers())
            on_a_user = case.method in ("PATCH", "DELETE") and case.path == "/user/{user_id}"
            ended = response.status_code < 300 and (case.path == "/auth/logout-all" or on_a_user)
            revoked = response.status_code == 401 and ("TOKEN_REVOKED" in response.text
                                                      or "USER_NOT_FOUND" in response.text)
            if ended or revoked:
                admin.token = None  # this case may have ended the token (or its user): repaired before the next
            where = f"{case.method} {case.formatted_path} {case.query or ''} {str(case.body)[:200]}"
            if response.status_code >= 500:
                problems.append(f"{where} -> {response.status_code}: {response.text[:300]}")
            elif response.status_code >= 400 and "json" in str(response.headers.get("content-type")):
                body = response.json()
                if not (isinstance(body, dict) and {"code", "message"} <= set(body)):
                    problems.append(f"{where} -> {response.status_code} without the envelope: {body}")

        run()

    assert calls >= len(operations) * 5
    assert not problems, "\n".join(problems[:20])


# MLflow's tracking API (server/mlflow/): its routes are left out of the OpenAPI document (their bodies are
# MLflow's protos, read by hand), so they are fuzzed here from their field names. Every answer must be
# below 500 and every error MLflow's shape, `{"error_code", "message"}`.
MLFLOW_ROUTES = {
    ("POST", "experiments/create"): ["name", "artifact_location", "tags"],
    ("GET", "experiments/get"): ["experiment_id"],
    ("GET", "experiments/get-by-name"): ["experiment_name"],
    ("POST", "experiments/search"): ["max_results", "filter", "order_by", "page_token", "view_type"],
    ("POST", "experiments/update"): ["experiment_id", "new_name"],
    ("POST", "experiments/delete"): ["experiment_id"],
    ("POST", "experiments/restore"): ["experiment_id"],
    ("POST", "experiments/set-experiment-tag"): ["experiment_id", "key", "value"],
    ("POST", "runs/create"): ["experiment_id", "user_id", "start_time", "tags", "run_name"],
    ("GET", "runs/get"): ["run_id", "run_uuid"],
    ("POST", "runs/update"): ["run_id", "status", "end_time", "run_name"],
    ("POST", "runs/delete"): ["run_id"],
    ("POST", "runs/restore"): ["run_id"],
    ("POST", "runs/search"): ["experiment_ids", "filter", "run_view_type", "max_results", "order_by", "page_token"],
    ("POST", "runs/log-metric"): ["run_id", "key", "value", "timestamp", "step"],
    ("POST", "runs/log-parameter"): ["run_id", "key", "value"],
    ("POST", "runs/log-batch"): ["run_id", "metrics", "params", "tags"],
    ("POST", "runs/set-tag"): ["run_id", "key", "value"],
    ("POST", "runs/delete-tag"): ["run_id", "key"],
    ("POST", "runs/log-inputs"): ["run_id", "datasets", "models"],
    ("POST", "runs/outputs"): ["run_id", "models"],
    ("GET", "metrics/get-history-bulk-interval"): ["run_ids", "metric_key", "max_results", "start_step", "end_step"],
    ("POST", "experiments/search-datasets"): ["experiment_ids"],
    ("GET", "metrics/get-history"): ["run_id", "metric_key", "max_results", "page_token"],
    ("POST", "logged-models"): ["experiment_id", "name", "source_run_id", "tags", "params"],
    ("POST", "logged-models/search"): ["experiment_ids", "filter", "max_results", "order_by", "page_token"],
}
MLFLOW_EXAMPLES_PER_ROUTE = max(EXAMPLES_PER_OPERATION // 4, 5)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from(["1", "2", "0", "-1", "999999999999999999999", "RUNNING", "FAILED", "metrics.loss > 0.1",
                     "params.x = 'a'", "tags.`a b` LIKE '%'", "attributes.status IN ('FINISHED')",
                     "eyJvZmZzZXQiOiAxfQ==", "mlflow.parentRunId", "mlflow.runName", "../../etc", "NaN"]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["key", "value", "timestamp", "step", "x"]), inner,
                                                 max_size=4)), max_leaves=12)


def _mlflow_body(fields: list[str]):
    return st.dictionaries(st.sampled_from([*fields, "junk"]), _values, max_size=len(fields) + 1)


def test_mlflow_routes_answer_in_mlflow_shape(fuzz_server):
    admin = Admin(fuzz_server.url)
    base = f"{fuzz_server.url}/api/2.0/mlflow"
    seeded = httpx.post(f"{base}/experiments/create", json={"name": "fuzz"}, headers=admin.headers(), timeout=30)
    if seeded.status_code == 200:
        experiment = seeded.json()["experiment_id"]
        for _ in range(2):
            httpx.post(f"{base}/runs/create", json={"experiment_id": experiment}, headers=admin.headers(), timeout=30)
    problems: list[str] = []
    with httpx.Client(timeout=30) as http:  # one connection: the pass measures the server, not handshakes
        for (method, route), fields in sorted(MLFLOW_ROUTES.items()):
            _fuzz_mlflow_route(http, base, admin, method, route, fields, problems)
    assert not problems, "\n".join(problems[:20])


def _fuzz_mlflow_route(
    http: httpx.Client, base: str, admin: Admin, method: str, route: str, fields: list[str], problems: list[str]
) -> None:
    @given(body=_mlflow_body(fields))
    @settings(max_examples=MLFLOW_EXAMPLES_PER_ROUTE, deadline=None, derandomize=DERANDOMIZE, database=None,
              suppress_health_check=list(HealthCheck))
    def run(body):
        if method == "GET":
            query = {k: v if isinstance(v, str) else str(v) for k, v in body.items()}
            response = http.get(f"{base}/{route}", params=query, headers=admin.headers())
        else:
            response = http.post(f"{base}/{route}", content=_dumps(body), headers={
                **admin.headers(), "content-type": "application/json"})
        where = f"{method} {route} {str(body)[:200]}"
        if response.status_code >= 500:
            problems.append(f"{where} -> {response.status_code}: {response.text[:300]}")
        elif response.status_code >= 400:
            answer = response.json()
            if not (isinstance(answer, dict) and {"error_code", "message"} == set(answer)):
                problems.append(f"{where} -> {response.status_code} not in MLflow's shape: {answer}")

    run()


def _dumps(body: object) -> bytes:
    import json

    return json.dumps(body, allow_nan=True).encode()
