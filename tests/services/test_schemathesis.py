"""Property-based API tests: schemathesis generates requests from each service's OpenAPI spec
and sends them to the running services; no request may be answered with a 5xx."""

from __future__ import annotations

import uuid

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.services.stack import PACKAGES, Stack

#: Operations left out: the admin API changes the knobs (it would inject faults on purpose).
SKIPPED_PREFIXES = ("/admin/",)
MAX_EXAMPLES = 20


def _token(shop: Stack) -> str:
    """A real login, so generated requests also get past authentication."""
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=shop.url("user"), trust_env=False, timeout=20) as user:
        user.post("/users", json={"email": email, "password": "fuzz-me-pls", "name": "Fuzz"})
        token: str = user.post("/login", json={"email": email, "password": "fuzz-me-pls"}).json()[
            "access_token"
        ]
    return token


@pytest.mark.parametrize("service", list(PACKAGES))
def test_no_generated_request_gets_a_server_error(shop: Stack, service: str) -> None:
    base = shop.url(service)
    token = _token(shop)
    auth: dict[str, dict[str, str]] = (
        {"cookies": {"shop_token": token}}
        if service == "frontend"
        else {"headers": {"Authorization": f"Bearer {token}"}}
    )
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if not result.ok().path.startswith(SKIPPED_PREFIXES)
    ]
    assert operations
    session = requests.Session()
    session.trust_env = False
    failures: list[str] = []
    statuses: dict[int, int] = {}
    strategies = [
        strategy
        for operation in operations
        for strategy in (
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.POSITIVE, **auth),  # type: ignore[arg-type]
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    ]
    for strategy in strategies:

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, session=session, timeout=20)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]}"
                )

        try:
            check()
        except Unsatisfiable:  # nothing to make invalid (an operation without inputs)
            continue
    assert not failures, "\n".join(failures[:20])
    print(service, len(operations), statuses)
