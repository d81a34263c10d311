"""Every endpoint of the OpenAPI schema fuzzed (schemathesis + Hypothesis) against a real
server process with an admin token: no 5xx, and every answer, errors included, is the status,
content type and body its schema documents. A server of its own, so that fuzzed runs, approvals
and registry changes do not disturb the other tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bandmaster.server._app import create_app
from bandmaster.server._auth import create_token
from bandmaster.store._sqlite import SQLiteStore

from .conftest import HERE, Server, start_server, stop, wait_healthy
from .fuzz_auth import authenticated, with_token

# Examples per operation (endpoint and method); the whole schema takes about a minute on 2 cores.
MAX_EXAMPLES = int(os.environ.get("BM_FUZZ_EXAMPLES", "100"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    db = tmp / "journal.db"
    store = SQLiteStore(db)
    secret = create_token(store, "fuzzer", ["admin"], rate_limit=1_000_000.0).secret
    store.close()
    proc, url, log = start_server(
        tmp, db, "--workers", "4", "--models", str(HERE / "models.yaml"), str(HERE / "wf_server.py")
    )
    try:
        wait_healthy(proc, url, log)
        yield Server(url, db, log, {"fuzzer": secret})
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def session(fuzzed: Server) -> Iterator[requests.Session]:
    # One connection for all cases, as a client keeps it. No token here: each case carries its
    # own (fuzz_auth.py), and one that schemathesis sends without it must be refused.
    with requests.Session() as kept_alive:
        yield kept_alive


# The schema of the app the server process builds, read here at collection time (the lazy
# loader of schemathesis does not work with pytest 9); the first test checks the process serves
# this very schema.
SCHEMA = create_app(HERE / "never-opened.db").openapi()
schema = authenticated(schemathesis.openapi.from_dict(SCHEMA))


def test_the_server_serves_the_schema_fuzzed_here(fuzzed: Server) -> None:
    assert requests.get(f"{fuzzed.url}/openapi.json", timeout=10).json() == SCHEMA


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure names its request already
    suppress_health_check=list(HealthCheck),
)
def test_every_endpoint_answers_in_its_documented_shape(
    case: schemathesis.Case[Any], fuzzed: Server, session: requests.Session
) -> None:
    with_token(case, fuzzed.tokens["fuzzer"])
    case.call_and_validate(base_url=fuzzed.url, session=session, checks=CHECKS, timeout=30)
