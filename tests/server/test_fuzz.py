"""An API fuzz pass: schemathesis generates requests, fitting the schema and deliberately not fitting it,
from the served OpenAPI document for every operation; none may answer 500, and every error is the
`{"code", "message"}` envelope. The database is seeded so that small ids hit real rows.

Schemathesis' pytest plugin does not run under pytest 9, so its strategies are driven by Hypothesis here.
"""

from __future__ import annotations

import math
import os

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


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fuzz-server")
    live = start_cli_server(workdir, f"sqlite:///{workdir / 'fuzz.db'}", env={"DIARY_ENABLE_AUTH": "false"})
    seed = RemoteTracker(live.url)
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


def test_no_server_errors(fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40  # every route is in the schema
    problems: list[str] = []
    calls = 0

    for operation in operations:
        @given(case=_strategy(operation))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=DERANDOMIZE, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            nonlocal calls
            calls += 1
            response = case.call(base_url=fuzz_server.url, timeout=30)
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
