"""The behaviour declaration matches the real services.

`lessons/apps/ecommerce/behavior.yaml` tells the simulator which downstream calls each endpoint
makes. Here the seven real services run as processes, each with a recording proxy as its
`HTTP_PROXY` (where a sidecar would sit), and every declared endpoint is exercised on its success
path. For each (service, x-request-id) the calls the service made must be exactly the declared
ones: same methods, services and callee routes, sequential steps in order, parallel steps as a
set, and `once` calls only on the first request of a replica that needs them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.services.recorder import RecordedCall, Recorder
from tests.services.stack import PACKAGES, ROOT, Stack, free_port

BEHAVIOR = ROOT / "lessons/apps/ecommerce/behavior.yaml"
TRACE = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736",
    "x-b3-spanid": "00f067aa0ba902b7",
    "x-b3-sampled": "1",
}
#: Routes every service has that are operations, not application endpoints.
OPERATIONS = {
    "/healthz",
    "/readyz",
    "/admin/knobs",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
}


def load_behavior() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(BEHAVIOR.read_text())
    return {svc["name"]: svc for svc in doc["spec"]["services"]}


def route_regex(route: str) -> re.Pattern[str]:
    method, path = route.split()
    pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
    return re.compile(f"^{method} {pattern}$")


def endpoint_of(behavior: dict[str, Any], service: str, method: str, path: str) -> dict[str, Any]:
    for endpoint in behavior[service]["endpoints"]:
        if route_regex(endpoint["route"]).match(f"{method} {path}"):
            return dict(endpoint)
    raise AssertionError(f"{service} has no declared endpoint for {method} {path}")


def callee_route(behavior: dict[str, Any], method: str, service: str, path: str) -> str:
    """A concrete call `METHOD service /path` names the callee's endpoint route."""
    return f"{service} {endpoint_of(behavior, service, method, path)['route']}"


def declared_steps(
    behavior: dict[str, Any], endpoint: dict[str, Any], source: str, done_once: set[tuple[str, str]]
) -> list[list[str]]:
    """The declared calls as steps (a step is one call or a parallel set), dropping `once`
    calls this replica has made before."""
    steps: list[list[str]] = []
    for step in endpoint.get("calls") or []:
        if isinstance(step, dict) and "parallel" in step:
            group = [c if isinstance(c, str) else c["call"] for c in step["parallel"]]
            steps.append([callee_route(behavior, *c.split()) for c in group])
            continue
        text, once = (step, False) if isinstance(step, str) else (step["call"], step.get("once"))
        if once:
            if (source, text) in done_once:
                continue
            done_once.add((source, text))
        steps.append([callee_route(behavior, *text.split())])
    return steps


def matches(steps: list[list[str]], actual: list[str]) -> bool:
    position = 0
    for group in steps:
        if Counter(actual[position : position + len(group)]) != Counter(group):
            return False
        position += len(group)
    return position == len(actual)


class Harness:
    """Services behind recording proxies, and the requests the test sends with their ids."""

    def __init__(self, stack: Stack, recorders: dict[str, Recorder]) -> None:
        self.stack = stack
        self.recorders = recorders
        self.client = httpx.Client(trust_env=False, timeout=20)
        # service, method, path, request id, when sent
        self.inbound: list[tuple[str, str, str, str, float]] = []

    def send(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        request_id = uuid.uuid4().hex
        sent = time.monotonic()
        headers = {"x-request-id": request_id, **TRACE, **kwargs.pop("headers", {})}
        self.client.cookies.clear()
        for name, value in kwargs.pop("cookies", {}).items():
            self.client.cookies.set(name, value)
        response = self.client.request(
            method, self.stack.url(service) + path, headers=headers, **kwargs
        )
        assert response.status_code < 300, (service, method, path, response.text)
        self.inbound.append((service, method, path, request_id, sent))
        return response


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    stack = Stack(tmp_path_factory.mktemp("behavior"))
    ports = {name: free_port() for name in PACKAGES}
    routes = {f"{name}:8080": port for name, port in ports.items()}
    recorders = {name: Recorder(name, routes) for name in PACKAGES}
    try:
        for name, port in ports.items():
            stack.start(name, {"HTTP_PROXY": f"http://127.0.0.1:{recorders[name].port}"}, port)
        stack.wait_ready()
        yield Harness(stack, recorders)
    finally:
        stack.stop()
        for recorder in recorders.values():
            recorder.close()


def exercise(h: Harness) -> None:
    """Every declared endpoint once or more, on its success path."""
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    account = {"email": email, "password": "correct horse", "name": "Ada"}
    login = {"email": email, "password": "correct horse"}
    h.send("frontend", "GET", "/")
    h.send("frontend", "GET", "/static/app.js")
    h.send("frontend", "POST", "/api/users", json=account)
    cookie = h.send("frontend", "POST", "/api/login", json=login).cookies["shop_token"]
    auth = {"cookies": {"shop_token": cookie}}
    h.send("frontend", "GET", "/api/products")
    h.send("frontend", "GET", "/api/products/grinder")
    order = {"items": [{"product_id": "grinder", "quantity": 1}]}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    placed = h.send("frontend", "POST", "/api/orders", json=order, headers=key, **auth).json()
    assert placed["status"] == "paid"
    h.send("frontend", "GET", "/api/me", **auth)
    h.send("frontend", "GET", "/api/orders", **auth)
    h.send("frontend", "GET", f"/api/orders/{placed['id']}", **auth)
    h.send("frontend", "POST", "/api/logout")
    # The endpoints no frontend request reaches, called directly.
    bearer = {
        "Authorization": f"Bearer {h.send('user', 'POST', '/login', json=login).json()['access_token']}"
    }
    h.send("api-gateway", "GET", "/api/products")
    h.send("user", "GET", "/.well-known/jwks.json")
    h.send("user", "POST", "/users", json={**account, "email": "x" + email})
    h.send("user", "GET", "/users/me", headers=bearer)
    h.send("product", "GET", "/products")
    h.send("product", "POST", "/products/kettle/reserve", json={"order_id": "t1", "quantity": 1})
    h.send("product", "POST", "/products/kettle/release", json={"order_id": "t1"})
    h.send("payment", "GET", f"/charges/{placed['payment_id']}")
    charge = {"order_id": "t2", "amount_cents": 100, "currency": "USD"}
    h.send("payment", "POST", "/charges", json=charge, headers={"Idempotency-Key": "t2"})
    note = {"channel": "sms", "to": "+15550100", "subject": "hi", "body": "hello"}
    h.send("notification", "POST", "/notifications", json=note)
    h.send("notification", "GET", "/notifications")
    h.send("order", "GET", "/orders", headers=bearer)


def test_every_endpoint_makes_exactly_the_declared_downstream_calls(harness: Harness) -> None:
    behavior = load_behavior()
    exercise(harness)
    calls: list[RecordedCall] = sorted(
        (c for r in harness.recorders.values() for c in r.take()), key=lambda c: c.started
    )
    # Which endpoint each service served for each request id: the test's own requests plus
    # every call one service made to another.
    served = list(harness.inbound)
    served += [(c.service, c.method, c.path, c.request_id, c.started) for c in calls]
    done_once: set[tuple[str, str]] = set()
    problems = []
    for service, method, path, request_id, _ in sorted(served, key=lambda x: x[4]):
        endpoint = endpoint_of(behavior, service, method, path)
        made = [c for c in calls if c.source == service and c.request_id == request_id]
        actual = [callee_route(behavior, c.method, c.service, c.path) for c in made]
        expected = declared_steps(behavior, endpoint, service, done_once)
        if not matches(expected, actual):
            problems.append(f"{service} {endpoint['route']}: declared {expected}, made {actual}")
    assert not problems, "\n".join(problems)
    exercised = {(s, endpoint_of(behavior, s, m, p)["route"]) for s, m, p, _, _ in served}
    declared = {(name, e["route"]) for name, svc in behavior.items() for e in svc["endpoints"]}
    assert declared - exercised == set(), "declared endpoints the test did not exercise"


def test_trace_headers_reach_every_downstream_call(harness: Harness) -> None:
    """Envoy cannot join an inbound request to the app's outbound calls; the app copies
    x-request-id, traceparent and x-b3-* so the trace stays one trace."""
    harness.send("frontend", "GET", "/api/products")
    request_id = harness.inbound[-1][3]
    calls: list[Any] = []
    deadline = time.monotonic() + 5.0
    while True:  # a recorder may log a relayed call a moment after the answer went back
        calls += [
            c for r in harness.recorders.values() for c in r.take() if c.request_id == request_id
        ]
        if len({(c.source, c.service) for c in calls}) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {(c.source, c.service) for c in calls} == {
        ("frontend", "api-gateway"),
        ("api-gateway", "product"),
    }
    for call in calls:
        for name, value in TRACE.items():
            assert call.headers.get(name) == value, (call.source, name)


def test_every_application_route_in_the_openapi_specs_is_declared(harness: Harness) -> None:
    behavior = load_behavior()
    missing = []
    for name in PACKAGES:
        spec = harness.client.get(harness.stack.url(name) + "/openapi.json").json()
        for path, operations in spec["paths"].items():
            if path in OPERATIONS:
                continue
            for method in operations:
                declared = [
                    e["route"]
                    for e in behavior[name]["endpoints"]
                    if e["route"] == f"{method.upper()} {path}"
                ]
                if not declared:
                    missing.append(f"{name}: {method.upper()} {path}")
    assert not missing, missing


def test_behavior_declares_each_service_of_the_manifests() -> None:
    behavior = load_behavior()
    manifests = ROOT / "lessons/apps/ecommerce/kubernetes"
    services = {
        doc["metadata"]["name"]
        for f in sorted(manifests.glob("*.yaml"))
        for doc in yaml.safe_load_all(f.read_text())
        if doc and doc["kind"] == "Service" and doc["metadata"]["name"] not in ("postgres", "redis")
    }
    assert set(behavior) == services == set(PACKAGES)
