"""End to end on the real services (uvicorn processes on free ports, SQLite): a shopper
registers, logs in, browses, orders, and the order is paid and confirmed; idempotency, declines,
restarts and an unreachable service behave as a real shop must."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.services.stack import Stack


def _client(stack: Stack, service: str = "api-gateway") -> httpx.Client:
    return httpx.Client(base_url=stack.url(service), trust_env=False, timeout=20)


def _login(api: httpx.Client) -> dict[str, str]:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    assert (
        api.post(
            "/api/users", json={"email": email, "password": "s3cret-pass", "name": "Bo"}
        ).status_code
        == 201
    )
    login = api.post("/api/login", json={"email": email, "password": "s3cret-pass"})
    assert login.status_code == 200
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _order(
    api: httpx.Client, auth: dict[str, str], key: str, items: list[dict[str, Any]]
) -> httpx.Response:
    return api.post("/api/orders", json={"items": items}, headers={**auth, "Idempotency-Key": key})


def _stock(api: httpx.Client, product_id: str) -> int:
    stock: int = api.get(f"/api/products/{product_id}").json()["stock"]
    return stock


def test_register_login_browse_order_is_paid_and_notified(shop: Stack) -> None:
    with _client(shop) as api:
        auth = _login(api)
        catalog = api.get("/api/products").json()["items"]
        assert {p["id"] for p in catalog} >= {"grinder", "kettle"}
        before = _stock(api, "kettle")
        placed = _order(api, auth, uuid.uuid4().hex, [{"product_id": "kettle", "quantity": 2}])
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert order["status"] == "paid"
        assert order["total_cents"] == 2 * 5400
        assert order["notified"] is True
        assert _stock(api, "kettle") == before - 2
        assert api.get(f"/api/orders/{order['id']}", headers=auth).json()["status"] == "paid"
        me = api.get("/api/me", headers=auth).json()
        assert [o["id"] for o in me["orders"]] == [order["id"]]
    outbox = httpx.get(
        shop.url("notification") + "/notifications",
        params={"order_id": order["id"]},
        trust_env=False,
    ).json()["items"]
    assert len(outbox) == 1
    assert outbox[0]["to"] == me["user"]["email"]
    charge = httpx.get(
        shop.url("payment") + f"/charges/{order['payment_id']}", trust_env=False
    ).json()
    assert (charge["status"], charge["amount_cents"]) == ("succeeded", 2 * 5400)


def test_same_idempotency_key_returns_the_same_order_and_charges_once(shop: Stack) -> None:
    with _client(shop) as api:
        auth = _login(api)
        key = uuid.uuid4().hex
        before = _stock(api, "scale")
        first = _order(api, auth, key, [{"product_id": "scale", "quantity": 1}]).json()
        again = _order(api, auth, key, [{"product_id": "scale", "quantity": 1}])
        assert again.status_code == 201
        assert again.json()["id"] == first["id"]
        assert again.json()["payment_id"] == first["payment_id"]
        assert _stock(api, "scale") == before - 1
        other = _order(api, auth, key, [{"product_id": "scale", "quantity": 3}])
        assert other.status_code == 409
        assert len(api.get("/api/orders", headers=auth).json()["items"]) == 1


def test_declined_payment_ends_the_order_and_gives_the_stock_back(shop: Stack) -> None:
    admin = shop.admin_url("payment") + "/admin/knobs"
    with _client(shop) as api:
        auth = _login(api)
        before = _stock(api, "filters")
        assert httpx.put(admin, json={"decline_rate": 1.0}, trust_env=False).status_code == 200
        try:
            order = _order(api, auth, uuid.uuid4().hex, [{"product_id": "filters", "quantity": 5}])
        finally:
            httpx.put(admin, json={"decline_rate": 0.0}, trust_env=False)
        assert order.status_code == 201
        assert (order.json()["status"], order.json()["failure_reason"]) == (
            "payment_declined",
            "card_declined",
        )
        assert order.json()["notified"] is False
        assert _stock(api, "filters") == before


def test_refusing_product_fails_the_order_with_503_and_a_retry_completes_it(shop: Stack) -> None:
    """`refuse` closes product's listening socket: order cannot connect (ECONNREFUSED) and
    answers 503; the order stays pending and the same Idempotency-Key finishes it later."""
    admin = shop.admin_url("product") + "/admin/knobs"
    with _client(shop) as api:
        auth = _login(api)
        key = uuid.uuid4().hex
        assert httpx.put(admin, json={"refuse": True}, trust_env=False).json()["refuse"] is True
        try:
            with pytest.raises(httpx.ConnectError):
                httpx.get(shop.url("product") + "/products", trust_env=False)
            assert (
                httpx.get(shop.admin_url("product") + "/readyz", trust_env=False).status_code == 503
            )
            failed = _order(api, auth, key, [{"product_id": "grinder", "quantity": 1}])
            assert failed.status_code == 503
            # A new connection is refused (upstream_unavailable); one order already had open
            # gets the 503 `refusing` answer and is closed.
            assert failed.json()["error"]["code"] in {"upstream_unavailable", "refusing"}
        finally:
            httpx.put(admin, json={"refuse": False}, trust_env=False)
        assert httpx.get(shop.url("product") + "/readyz", trust_env=False).status_code == 200
        retried = _order(api, auth, key, [{"product_id": "grinder", "quantity": 1}])
        assert (retried.status_code, retried.json()["status"]) == (201, "paid")


def test_injected_errors_and_latency_follow_the_knobs(shop: Stack) -> None:
    admin = shop.admin_url("product") + "/admin/knobs"
    with _client(shop) as api:
        httpx.put(admin, json={"error_rate": 1.0}, trust_env=False)
        try:
            failed = api.get("/api/products")
        finally:
            httpx.put(admin, json={"error_rate": 0.0}, trust_env=False)
        assert failed.status_code == 500
        assert failed.json()["error"]["code"] == "injected_fault"
        httpx.put(admin, json={"latency_ms": 300}, trust_env=False)
        try:
            slow = api.get("/api/products")
        finally:
            httpx.put(admin, json={"latency_ms": 0}, trust_env=False)
        assert slow.status_code == 200
        assert slow.elapsed.total_seconds() >= 0.3


def test_an_acknowledged_order_survives_a_restart_of_every_service(shop: Stack) -> None:
    with _client(shop) as api:
        auth = _login(api)
        order = _order(
            api, auth, uuid.uuid4().hex, [{"product_id": "pour-over", "quantity": 1}]
        ).json()
    for name in ("order", "payment", "product", "notification", "user", "api-gateway", "frontend"):
        shop.restart(name)
    with _client(shop) as api:
        kept = api.get(f"/api/orders/{order['id']}", headers=auth)
        assert kept.status_code == 200
        assert kept.json() == order
        assert api.get("/api/me", headers=auth).status_code == 200  # the signing key persisted


def test_the_frontend_keeps_the_token_in_an_httponly_cookie(shop: Stack) -> None:
    with _client(shop) as api:
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        api.post("/api/users", json={"email": email, "password": "s3cret-pass", "name": "Cy"})
    with _client(shop, "frontend") as web:
        page = web.get("/")
        assert page.status_code == 200
        assert "Hand grinder" in page.text
        login = web.post("/api/login", json={"email": email, "password": "s3cret-pass"})
        assert login.json() == {"logged_in": True, "expires_in": 3600}
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "access_token" not in login.text
        assert web.get("/api/me").json()["user"]["email"] == email
        web.post("/api/logout")
        assert web.get("/api/me").status_code == 401


def _served_by(response: httpx.Response) -> list[str]:
    return [e.strip() for e in response.headers["x-served-by"].split(",")]


def test_every_response_names_the_pods_that_served_it_in_call_order(shop: Stack) -> None:
    """x-served-by: the answering pod first, then each downstream pod as its answer arrived, so
    the storefront can show which versions a click went through."""
    with _client(shop, "frontend") as web:
        catalog = web.get("/api/products")
        assert _served_by(catalog) == [
            "frontend/v1/frontend-0",
            "api-gateway/v1/api-gateway-0",
            "product/v1/product-0",
        ]
    with _client(shop) as api:
        auth = _login(api)
        placed = _order(
            api, auth, uuid.uuid4().hex, [{"product_id": "espresso-cup", "quantity": 1}]
        )
        chain = _served_by(placed)
        assert chain[:2] == ["api-gateway/v1/api-gateway-0", "order/v1/order-0"]
        # the saga's calls in order: reserve, charge, confirm (a first order also fetches JWKS)
        saga = [e for e in chain[2:] if not e.startswith("user/")]
        assert saga == [
            "product/v1/product-0",
            "payment/v1/payment-0",
            "notification/v1/notification-0",
        ]
        # a pod that answers with an injected fault still says who it is
        admin = httpx.Client(base_url=shop.admin_url("product"), trust_env=False, timeout=5)
        with admin:
            admin.put("/admin/knobs", json={"error_rate": 1.0})
            try:
                failed = api.get("/api/products")
            finally:
                admin.put("/admin/knobs", json={"error_rate": 0.0})
        assert failed.status_code == 500
        assert _served_by(failed) == ["api-gateway/v1/api-gateway-0", "product/v1/product-0"]
