"""The real user and order services refuse forged tokens, and no text field reaches SQL as code.

A JWT names its own algorithm in its header; a verifier that believes it accepts ``alg: none``
(no signature at all) or an HMAC "signed" with the public key. Istio's RequestAuthentication
(Envoy's ``jwt_authn``) and these services verify against the issuer's JWKS with RS256 only, and
check ``exp``, ``iss`` and ``aud``. Here every kind of bad token is sent to both services
that verify tokens (user: ``GET /users/me``; order: ``GET /orders``): each gets 401, while a
good token works. Then injection strings go through every text field of the APIs (JSON bodies,
path parameters, the Idempotency-Key header): nothing answers 5xx or echoes a database error,
and the data is intact afterwards.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.services.stack import Stack

ISSUER = "http://user.shop.svc.cluster.local"
AUDIENCE = "shop"
INJECTIONS = (
    "' OR '1'='1",
    "x'; DROP TABLE users; --",
    '" OR 1=1 --',
    "1; SELECT * FROM signing_keys",
    "') UNION SELECT kid, private_pem FROM signing_keys --",
    "%' OR 1=1 --",
    "\\'; --",
)
LEAKS = ("sqlite", "syntax error", "Traceback", "OperationalError", "PRIVATE KEY", "psycopg")


def _client(stack: Stack, service: str) -> httpx.Client:
    return httpx.Client(base_url=stack.url(service), trust_env=False, timeout=20)


def _account(stack: Stack) -> tuple[str, dict[str, Any]]:
    """A registered user's good token, and its claims."""
    with _client(stack, "user") as user:
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        assert user.post("/users", json={"email": email, "password": "pw-123456", "name": "Al"}).status_code == 201  # fmt: skip
        token = user.post("/login", json={"email": email, "password": "pw-123456"}).json()[
            "access_token"
        ]
    return token, jwt.decode(token, options={"verify_signature": False})


def _signing_key(stack: Stack) -> tuple[str, str]:
    """The user service's own signing key (kid, PEM), read from its database as an insider
    would: to make tokens that are genuine but expired or for another audience."""
    db = next((stack.workdir / "data" / "user").glob("*.db"))
    with sqlite3.connect(db) as conn:
        kid, pem = conn.execute(
            "SELECT kid, private_pem FROM signing_keys ORDER BY created_at LIMIT 1"
        ).fetchone()
    return str(kid), str(pem)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(stack: Stack, claims: dict[str, Any]) -> dict[str, str]:
    kid, pem = _signing_key(stack)
    now = int(time.time())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = httpx.get(stack.url("user") + "/.well-known/jwks.json", trust_env=False).json()
    public_jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    fresh = {**claims, "iat": now, "exp": now + 600}
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(fresh)}.",
        "alg None, signature kept": ".".join(
            [_b64({"alg": "None", "kid": kid}), _b64(fresh), "c2ln"]
        ),
        "wrong key, right kid": jwt.encode(fresh, other, algorithm="RS256", headers={"kid": kid}),
        "HS256 with the public key as secret": jwt.encode(
            fresh,
            json.dumps(public_jwk).encode()[:32].ljust(32, b"k"),
            algorithm="HS256",
            headers={"kid": kid},
        ),
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600},
            pem,
            algorithm="RS256",
            headers={"kid": kid},
        ),
        "wrong audience": jwt.encode(
            {**fresh, "aud": "someone-else"}, pem, algorithm="RS256", headers={"kid": kid}
        ),
        "wrong issuer": jwt.encode(
            {**fresh, "iss": "https://evil.example"}, pem, algorithm="RS256", headers={"kid": kid}
        ),
        "no exp": jwt.encode(
            {k: v for k, v in fresh.items() if k != "exp"},
            pem,
            algorithm="RS256",
            headers={"kid": kid},
        ),
        "tampered claims": ".".join(
            [
                jwt.encode(fresh, pem, algorithm="RS256", headers={"kid": kid}).split(".")[0],
                _b64({**fresh, "sub": "someone-else"}),
                jwt.encode(fresh, pem, algorithm="RS256", headers={"kid": kid}).split(".")[2],
            ]
        ),
        "garbage": "not.a.token",
    }


def test_user_and_order_accept_a_good_token_and_refuse_every_forged_one(shop: Stack) -> None:
    token, claims = _account(shop)
    assert claims["aud"] == AUDIENCE and claims["iss"] == ISSUER
    probes = (("user", "/users/me"), ("order", "/orders"))
    for service, path in probes:
        with _client(shop, service) as c:
            good = c.get(path, headers={"Authorization": f"Bearer {token}"})
            assert good.status_code == 200, (service, good.text)
    for name, bad in _bad_tokens(shop, claims).items():
        for service, path in probes:
            with _client(shop, service) as c:
                r = c.get(path, headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, (name, service, r.status_code, r.text[:200])


def _no_leak(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    leaked = [m for m in LEAKS if m.lower() in r.text.lower()]
    assert not leaked, (what, leaked, r.text[:300])


def test_injection_strings_in_every_text_field_break_nothing_and_leak_nothing(
    shop: Stack,
) -> None:
    token, _ = _account(shop)
    auth = {"Authorization": f"Bearer {token}"}
    with _client(shop, "api-gateway") as api:
        catalog = api.get("/api/products").json()["items"]
        product = catalog[0]["id"]
        users_before = _count(shop, "user", "users")
        placed = 0
        clean = api.post(
            "/api/orders",
            json={"items": [{"product_id": product, "quantity": 1}]},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert clean.status_code == 201, clean.text
        placed += 1
        for s in INJECTIONS:
            email = f"{uuid.uuid4().hex[:6]}{s}@example.com"
            _no_leak(api.post("/api/users", json={"email": email, "password": s, "name": s}),
                     "register")  # fmt: skip
            _no_leak(api.post("/api/users", json={"email": s, "password": s, "name": s}),
                     "register bad email")  # fmt: skip
            _no_leak(api.post("/api/login", json={"email": s, "password": s}), "login")
            login = api.post("/api/login", json={"email": "x@example.com", "password": s})
            _no_leak(login, "login password")
            assert login.status_code in (401, 422), login.text
            _no_leak(api.get(f"/api/products/{s}"), "product id")
            _no_leak(api.get(f"/api/orders/{s}", headers=auth), "order id")
            r = api.post("/api/orders", json={"items": [{"product_id": s, "quantity": 1}]},
                         headers={**auth, "Idempotency-Key": s})  # fmt: skip
            _no_leak(r, "order item")
            r = api.post("/api/orders", json={"items": [{"product_id": product, "quantity": 1}]},
                         headers={**auth, "Idempotency-Key": f"{s}-{uuid.uuid4().hex}"})  # fmt: skip
            _no_leak(r, "idempotency key")
            placed += r.status_code == 201
        with _client(shop, "payment") as pay:
            for s in INJECTIONS:
                _no_leak(pay.get(f"/charges/{s}"), "charge id")
        # nothing was dropped, nothing is seen that should not be: the catalog and accounts stand
        assert len(api.get("/api/products").json()["items"]) == len(catalog)
        assert _count(shop, "user", "users") >= users_before
        mine = api.get("/api/orders", headers=auth)
        assert mine.status_code == 200
        assert placed and len(mine.json()["items"]) == placed, (
            placed,
            mine.text,
        )  # only this user's own orders


def _count(stack: Stack, service: str, table: str) -> int:
    db = next((stack.workdir / "data" / service).glob("*.db"))
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(n)
