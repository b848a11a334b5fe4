"""The documented API holds for generated input: schemathesis against the running server.

Every operation of the committed `openapi.yaml` is called with generated requests, as a
customer and as an admin, on a real `autorenew serve` process over each test backend. The
checks: no 5xx, only documented status codes, documented content types, bodies matching
their schemas. The number of examples is bounded so this stays a CI job of about a minute;
a second, focused run gives the operations that read dates, instants, amounts and numbers
many more examples (those are where generated input found 500s: year 1, 9999, huge amounts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, checks

from tests.processes import free_port, start, stop, wait_until_listening

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 8
# The focused run: its operations, and examples for each (admin, on SQLite; about a minute).
FOCUSED_OPERATIONS = [
    "upsert_service",
    "create_batch",
    "list_my_services",
    "list_collections",
    "rotate_secret",
]
FOCUSED_EXAMPLES = 150
# What the API promises. Left out on purpose: `positive_data_acceptance` (a schema-valid IBAN
# or cursor can still be refused by the rules, with a documented 4xx) and the 405 `Allow`
# check (Starlette answers a wrong method with the first matching route's methods only).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,  # input outside the schema must be a 4xx, not accepted
]

schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
# The same examples on every run, so a CI failure is reproducible rather than luck. Query
# parameters the API does not know are ignored, as HTTP APIs do; not counted as accepted
# invalid input.
schema.config.generation.update(deterministic=True, allow_extra_parameters=False)
# Sends webhooks to whatever URLs the generated endpoints name: real hosts, not ours.
schema = schema.exclude(method="POST", path="/v1/admin/events/dispatch")
# The import route's body is text (NDJSON lines): sent as generated, like text/plain. A
# "wrongly typed" body (an object instead of a string) is the same bytes on the wire as
# some string, so there is no invalid body to refuse: the route answers each line in its
# report. Every other check applies to it.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
TEXT_BODY_PATHS = ("/v1/admin/imports/payment-methods",)
TEXT_BODY_CHECKS = [check for check in CHECKS if check is not checks.negative_data_rejection]
focused = schema.include(operation_id=FOCUSED_OPERATIONS)


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`autorenew serve` on the test database (already migrated); yields its base URL."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    log = tmp / "server.log"
    env = {
        "AUTORENEW_DATABASE_URL": database_url,
        "AUTORENEW_MIGRATE_ON_START": "false",
        "AUTORENEW_SCHEDULER_ENABLED": "false",
        "AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{tmp / 'sandbox.db'}",
    }
    process = start(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        wait_until_listening(process, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop([process])


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(params=["customer", "admin"])
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bearer(
    role: str, backend: str, token_for: Callable[..., str], sessionmaker: object
) -> dict[str, str]:
    # `sessionmaker` is requested for its teardown: the tables are emptied after each test.
    if backend == "postgresql" and role == "customer":
        # Time budget: an admin token reaches every route (its `sub` is a customer too);
        # what only a customer token adds is the 403 of admin routes, which the database
        # does not change. Both roles run on SQLite.
        pytest.skip("the customer role runs on SQLite only")
    token = token_for("cus_schemathesis", admin=role == "admin")
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms(
    case: Case, server: str, http: requests.Session, bearer: dict[str, str]
) -> None:
    chosen = TEXT_BODY_CHECKS if case.operation.path in TEXT_BODY_PATHS else CHECKS
    case.call_and_validate(base_url=server, session=http, headers=bearer, checks=chosen)


@focused.parametrize()
@settings(
    max_examples=FOCUSED_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_dates_amounts_and_numbers_at_their_edges(
    case: Case,
    server: str,
    http: requests.Session,
    backend: str,
    token_for: Callable[..., str],
    sessionmaker: object,
) -> None:
    # `sessionmaker` is requested for its teardown, as in `bearer`. What is probed here
    # (validation and calendar arithmetic) does not depend on the database: SQLite only.
    if backend == "postgresql":
        pytest.skip("the focused run is on SQLite only (time budget)")
    token = token_for("cus_schemathesis", admin=True)
    case.call_and_validate(
        base_url=server, session=http, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )
