"""Per-service behaviour, in process (FastAPI TestClient on a temp SQLite folder)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.common.app import create_app, knob_state
from services.common.settings import Settings, SettingsError
from services.notification.app import build_app as notification_app
from services.payment.app import build_app as payment_app
from services.product.app import build_app as product_app
from services.user.app import build_app as user_app
from tests.services.stack import Stack, free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _settings(service: str, tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(service, {"DATA_DIR": str(tmp_path / service), **env})


@pytest.fixture
def client(tmp_path: Path) -> Callable[..., TestClient]:
    opened: list[TestClient] = []

    def make(build: Callable[[Settings], FastAPI], service: str, **env: str) -> TestClient:
        tc = TestClient(build(_settings(service, tmp_path, **env)), raise_server_exceptions=False)
        tc.__enter__()
        opened.append(tc)
        return tc

    yield make  # type: ignore[misc]
    for tc in opened:
        tc.__exit__(None, None, None)


# --- settings and knobs ---------------------------------------------------------------------


def test_settings_default_to_in_mesh_service_names() -> None:
    settings = Settings.from_env("order", {})
    assert settings.downstream["product"] == "http://product:8080"
    assert settings.downstream["api-gateway"] == "http://api-gateway:8080"
    assert (settings.port, settings.version, settings.data_dir) == (8080, "v1", Path("data/order"))


@pytest.mark.parametrize(
    ("name", "value"), [("ERROR_RATE", "1.5"), ("LATENCY_MS", "soon"), ("REFUSE", "maybe")]
)
def test_a_bad_knob_in_the_environment_is_refused_with_its_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env("product", {name: value})


def test_error_injection_is_seeded_and_repeatable(client: Callable[..., TestClient]) -> None:
    def statuses(seed: str) -> list[int]:
        tc = client(product_app, "product", ERROR_RATE="0.5", SEED=seed)
        return [tc.get("/products").status_code for _ in range(40)]

    first, second = statuses("7"), statuses("7")
    assert first == second
    assert 10 < first.count(500) < 30
    assert statuses("8") != first


def test_knobs_change_live_and_never_touch_probes(client: Callable[..., TestClient]) -> None:
    tc = client(product_app, "product")
    assert tc.put("/admin/knobs", json={"error_rate": 1.0}).json()["error_rate"] == 1.0
    failed = tc.get("/products")
    assert (failed.status_code, failed.json()["error"]["code"]) == (500, "injected_fault")
    assert tc.get("/healthz").status_code == 200
    assert tc.get("/readyz").status_code == 200
    assert tc.put("/admin/knobs", json={"error_rate": 2}).status_code == 422
    assert tc.put("/admin/knobs", json={"surprise": 1}).status_code == 422
    tc.put("/admin/knobs", json={"error_rate": 0, "latency_ms": 120})
    started = time.monotonic()
    assert tc.get("/products").status_code == 200
    assert time.monotonic() - started >= 0.12


def test_errors_are_json_without_stack_traces(tmp_path: Path) -> None:
    app = create_app(_settings("product", tmp_path), title="t", description="t")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    logging.getLogger("services").disabled = True
    try:
        with TestClient(app, raise_server_exceptions=False) as tc:
            crashed = tc.get("/boom")
            missing = tc.get("/nowhere")
            wrong = tc.delete("/healthz")
    finally:
        logging.getLogger("services").disabled = False
    assert crashed.status_code == 500
    assert crashed.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "secret" not in crashed.text and "Traceback" not in crashed.text
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")


def test_an_unreachable_downstream_is_a_json_503(tmp_path: Path) -> None:
    from services.api_gateway.app import build_app as gateway_app

    closed = f"http://127.0.0.1:{free_port()}"
    settings = _settings("api-gateway", tmp_path, PRODUCT_URL=closed)
    with TestClient(gateway_app(settings)) as tc:
        answer = tc.get("/api/products")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "upstream_unavailable"


def test_refuse_closes_the_port_and_reopens_it(tmp_path: Path) -> None:
    """`refuse` is a closed listening socket: connections are refused by the kernel; the admin
    port keeps working, and turning refuse off binds the port again."""
    stack = Stack(tmp_path)
    admin_port = free_port()
    proc = stack.start("payment", {"ADMIN_PORT": str(admin_port)})
    admin = f"http://127.0.0.1:{admin_port}"
    try:
        stack.wait_ready()
        httpx.put(admin + "/admin/knobs", json={"refuse": True}, trust_env=False)
        time.sleep(0.2)
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", proc.port), 1),
        ):
            pass
        assert httpx.get(admin + "/readyz", trust_env=False).status_code == 503
        httpx.put(admin + "/admin/knobs", json={"refuse": False}, trust_env=False)
        time.sleep(0.2)
        assert httpx.get(proc.url + "/readyz", trust_env=False).status_code == 200
    finally:
        stack.stop()


def test_the_admin_port_listens_on_loopback_whatever_host_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a pod the service listens on ``HOST=0.0.0.0`` (the sidecar forwards to the pod IP),
    but ``ADMIN_PORT`` (the lesson knobs) must answer only inside the pod: bound on 127.0.0.1
    (``::1`` for an IPv6 ``HOST``), so no other pod, no sidecar passthrough and no gateway
    route reaches it."""
    from services.common import server

    for host, loopback in (("0.0.0.0", "127.0.0.1"), ("::", "::1")):
        bound: list[tuple[str, int]] = []
        monkeypatch.setattr(server, "_bind", lambda h, p, b=bound: b.append((h, p)) or _FakeSock(p))  # fmt: skip
        monkeypatch.setattr(server.RefusableServer, "run", lambda self, sockets=None: None)
        settings = _settings("payment", tmp_path, HOST=host, PORT="18080", ADMIN_PORT="15999")
        server.serve(payment_app(settings), settings)
        assert bound == [(host, 18080), (loopback, 15999)]


class _FakeSock:
    def __init__(self, port: int) -> None:
        self.port = port

    def getsockname(self) -> tuple[str, int]:
        return ("", self.port)


def test_a_bad_setting_stops_the_service_with_one_line(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    proc = stack.start("product", {"ERROR_RATE": "lots"})
    try:
        assert proc.popen.wait(timeout=30) == 2
    finally:
        stack.stop()
    assert proc.log.read_text().strip().splitlines() == [
        "product: error: ERROR_RATE='lots': expected a number"
    ]


# --- user -----------------------------------------------------------------------------------


def test_user_issues_rs256_tokens_its_jwks_verifies(client: Callable[..., TestClient]) -> None:
    tc = client(user_app, "user")
    created = tc.post(
        "/users", json={"email": "Ann@Example.com", "password": "long-enough", "name": "Ann"}
    )
    assert created.status_code == 201
    assert created.json()["email"] == "ann@example.com"
    token = tc.post("/login", json={"email": "ann@example.com", "password": "long-enough"}).json()
    jwks = tc.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(token["access_token"])
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert (header["alg"], key["kty"], key["use"]) == ("RS256", "RSA", "sig")
    claims = jwt.decode(
        token["access_token"],
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience="shop",
        issuer="http://user.shop.svc.cluster.local",
    )
    assert claims["sub"] == created.json()["id"]
    assert claims["exp"] - claims["iat"] == token["expires_in"] == 3600
    me = tc.get("/users/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["id"] == created.json()["id"]


def test_user_refuses_wrong_passwords_duplicates_and_forged_tokens(
    client: Callable[..., TestClient],
) -> None:
    tc = client(user_app, "user")
    body = {"email": "bo@example.com", "password": "long-enough", "name": "Bo"}
    tc.post("/users", json=body)
    assert tc.post("/users", json=body).status_code == 409
    wrong = tc.post("/login", json={"email": "bo@example.com", "password": "not-it"})
    assert wrong.status_code == 401
    assert (
        tc.post("/login", json={"email": "nobody@example.com", "password": "x"}).status_code == 401
    )
    assert tc.post("/users", json={**body, "password": "short"}).status_code == 422
    forged = jwt.encode(
        {"sub": "x", "aud": "shop", "iss": "http://user.shop.svc.cluster.local", "exp": 9999999999},
        "k" * 32,
        algorithm="HS256",
    )
    assert tc.get("/users/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert tc.get("/users/me").status_code == 401


def test_user_keeps_its_signing_key_across_restarts(tmp_path: Path) -> None:
    settings = _settings("user", tmp_path)
    kids = []
    for _ in range(2):
        with TestClient(user_app(settings)) as tc:
            kids.append(tc.get("/.well-known/jwks.json").json()["keys"][0]["kid"])
    assert kids[0] == kids[1]


# --- product --------------------------------------------------------------------------------


def test_product_versions_differ_visibly(client: Callable[..., TestClient]) -> None:
    v1 = client(product_app, "product").get("/products/grinder").json()
    v2 = client(product_app, "product", VERSION="v2").get("/products/grinder").json()
    v3 = client(product_app, "product", VERSION="v3").get("/products/grinder").json()
    assert "rating" not in client(product_app, "product").get("/products").json()["items"][0]
    assert v1.get("rating") is None and v1["served_by"] == "product-v1"
    assert (v2["rating"], v2["rating_count"], v2.get("featured")) == (4.8, 431, None)
    assert v3["featured"] is True


def test_reservations_take_stock_once_per_order_and_release_it(
    client: Callable[..., TestClient],
) -> None:
    tc = client(product_app, "product")
    stock = lambda: tc.get("/products/kettle").json()["stock"]  # noqa: E731
    start = stock()
    first = tc.post("/products/kettle/reserve", json={"order_id": "o1", "quantity": 3})
    again = tc.post("/products/kettle/reserve", json={"order_id": "o1", "quantity": 3})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert stock() == start - 3
    assert (
        tc.post("/products/kettle/reserve", json={"order_id": "o1", "quantity": 4}).status_code
        == 409
    )
    assert (
        tc.post("/products/kettle/release", json={"order_id": "o1"}).json()["status"] == "released"
    )
    assert tc.post("/products/kettle/release", json={"order_id": "o1"}).status_code == 200
    assert stock() == start
    assert (
        tc.post("/products/nope/reserve", json={"order_id": "o2", "quantity": 1}).status_code == 404
    )
    for n in range(10):
        tc.post("/products/kettle/reserve", json={"order_id": f"big{n}", "quantity": 100})
    empty = tc.post("/products/kettle/reserve", json={"order_id": "late", "quantity": 1})
    assert (empty.status_code, empty.json()["error"]["code"]) == (409, "out_of_stock")


# --- payment and notification ---------------------------------------------------------------


def test_charges_are_idempotent_by_key(client: Callable[..., TestClient]) -> None:
    tc = client(payment_app, "payment")
    body = {"order_id": "o1", "amount_cents": 1200, "currency": "USD"}
    first = tc.post("/charges", json=body, headers={"Idempotency-Key": "k1"})
    again = tc.post("/charges", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["status"] == "succeeded"
    other = tc.post("/charges", json={**body, "amount_cents": 1}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 409
    assert tc.post("/charges", json=body).status_code == 422  # the key is required
    assert tc.get(f"/charges/{first.json()['id']}").json() == first.json()


def test_decline_rate_declines_new_charges(client: Callable[..., TestClient]) -> None:
    tc = client(payment_app, "payment", DECLINE_RATE="1")
    body = {"order_id": "o1", "amount_cents": 1200, "currency": "USD"}
    declined = tc.post("/charges", json=body, headers={"Idempotency-Key": "d1"}).json()
    assert (declined["status"], declined["decline_reason"]) == ("declined", "card_declined")
    assert knob_state(tc.app).current.decline_rate == 1.0  # type: ignore[arg-type]
    tc.put("/admin/knobs", json={"decline_rate": 0})
    assert (
        tc.post("/charges", json=body, headers={"Idempotency-Key": "d2"}).json()["status"]
        == "succeeded"
    )


def test_notifications_go_to_the_outbox_and_the_log(
    client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    tc = client(notification_app, "notification")
    body = {
        "channel": "email",
        "to": "ann@example.com",
        "subject": "Hi",
        "body": "Hello",
        "order_id": "o9",
    }
    with caplog.at_level(logging.INFO, logger="services.notification"):
        first = tc.post("/notifications", json=body, headers={"Idempotency-Key": "n1"})
        again = tc.post("/notifications", json=body, headers={"Idempotency-Key": "n1"})
    assert first.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert [r.getMessage() for r in caplog.records if "ann@example.com" in r.getMessage()] == [
        f"email to ann@example.com: Hi (order o9, id {first.json()['id']})"
    ]
    listed = tc.get("/notifications", params={"order_id": "o9"}).json()["items"]
    assert [n["id"] for n in listed] == [first.json()["id"]]
    assert tc.post("/notifications", json={**body, "channel": "pigeon"}).status_code == 422
