"""The frontend's routes: `GET /` (the React storefront, or the simple page when the bundle is
not built), `/static/*`, and `/api/*` forwarded to api-gateway."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import httpx
from fastapi import Cookie, FastAPI, Header, Path
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from services.api_gateway.app import Account
from services.common.app import Runtime, create_app
from services.common.downstream import Downstream, UpstreamResponse, relay
from services.common.errors import ServiceError, error_body
from services.common.servedby import downstream_entries, entry
from services.common.settings import Settings
from services.frontend.bundle import find_bundle, static_files
from services.frontend.render import page
from services.order.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    ORDER_ID_PATTERN,
    OrderCreate,
    OrderList,
    OrderOut,
)
from services.product.schemas import PRODUCT_ID_PATTERN, ProductList, ProductOut
from services.user.schemas import LoginRequest, UserCreate, UserPublic

COOKIE = "shop_token"
Token = Annotated[str | None, Cookie(alias=COOKIE, max_length=4096, pattern=r"^[A-Za-z0-9._-]+$")]
ProductId = Annotated[str, Path(pattern=PRODUCT_ID_PATTERN, max_length=64)]
OrderId = Annotated[str, Path(pattern=ORDER_ID_PATTERN)]
Passed: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in"},
    503: {"description": "the api-gateway (or a service behind it) is unreachable"},
}


class LoggedIn(BaseModel):
    """`POST /api/login`: the token went into the HttpOnly cookie, not into this body."""

    logged_in: bool
    expires_in: int


log = logging.getLogger("services")


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def build_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    wired: dict[str, Downstream] = {}

    async def startup(_: FastAPI, rt: Runtime) -> None:
        wired["downstream"] = rt.downstream

    app = create_app(
        settings,
        title="frontend",
        description="The storefront page; /api/* is forwarded to the api-gateway.",
        startup=startup,
        transport=transport,
    )
    bundle = find_bundle(dict(settings.extra))
    if bundle is None:
        log.warning(
            "frontend: the React storefront is not built (bin/setup --storefront builds it "
            "with Node.js); serving the simple page"
        )
    app.mount("/static", static_files(bundle), name="static")
    this_pod = entry(settings.service, settings.version, settings.pod)

    async def gateway(
        method: str, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> UpstreamResponse:
        return await wired["downstream"].call(
            method, "api-gateway", path, json=json, headers=headers
        )

    async def forward(
        method: str, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        return relay(await gateway(method, path, json, headers), "api-gateway")

    @app.get(
        "/",
        response_class=HTMLResponse,
        tags=["storefront"],
        summary="The storefront page, with the catalog fetched on the server",
        responses={503: {"description": "the page, with the catalog unavailable"}},
    )
    async def index() -> HTMLResponse:
        status: int | None = None
        body: Any = None
        try:
            response = await gateway("GET", "/api/products")
            status = response.status_code
            body = response.json()
        except ServiceError as exc:
            status, body = exc.status, error_body(exc.code, exc.message)
        except ValueError:
            body = None
        items = body.get("items") if status == 200 and isinstance(body, dict) else None
        code = 200 if isinstance(items, list) else 503
        if bundle is not None:
            served_by = ", ".join([this_pod, *downstream_entries()])
            state = {"catalogue": {"status": status, "body": body, "served_by": served_by}}
            headers = {"cache-control": "no-store"}
            return HTMLResponse(bundle.page(state), status_code=code, headers=headers)
        if not isinstance(items, list):
            problem = f"HTTP {status}" if status is not None else "unavailable"
            text = page(None, settings.version, f"The catalog is unavailable ({problem}).")
            return HTMLResponse(text, status_code=503)
        return HTMLResponse(page(items, settings.version, None))

    @app.get("/api/products", tags=["api"], response_model=ProductList, responses=Passed)
    async def products() -> Response:
        return await forward("GET", "/api/products")

    @app.get(
        "/api/products/{product_id}", tags=["api"], response_model=ProductOut, responses=Passed
    )
    async def product(product_id: ProductId) -> Response:
        return await forward("GET", f"/api/products/{product_id}")

    @app.post(
        "/api/users", status_code=201, tags=["api"], response_model=UserPublic, responses=Passed
    )
    async def register(body: UserCreate) -> Response:
        return await forward("POST", "/api/users", json=body.model_dump())

    @app.post("/api/login", tags=["api"], response_model=LoggedIn, responses=Passed)
    async def login(body: LoginRequest) -> Response:
        response = await gateway("POST", "/api/login", json=body.model_dump())
        if response.status_code != 200:
            return relay(response, "api-gateway")
        token = response.json()
        expires_in = int(token["expires_in"])
        out = JSONResponse({"logged_in": True, "expires_in": expires_in})
        out.set_cookie(
            COOKIE,
            str(token["access_token"]),
            max_age=expires_in,
            httponly=True,
            samesite="strict",
            path="/",
        )
        return out

    @app.post("/api/logout", tags=["api"], summary="Forget the login cookie")
    async def logout() -> JSONResponse:
        out = JSONResponse({"logged_in": False})
        out.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return out

    @app.get("/api/me", tags=["api"], response_model=Account, responses=Passed)
    async def me(token: Token = None) -> Response:
        return await forward("GET", "/api/me", headers=_auth(token))

    @app.post(
        "/api/orders",
        status_code=201,
        tags=["api"],
        response_model=OrderOut,
        responses={**Passed, 409: {"description": "Idempotency-Key reused"}},
    )
    async def place_order(
        body: OrderCreate,
        idempotency_key: Annotated[
            str, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)
        ],
        token: Token = None,
    ) -> Response:
        headers = {**_auth(token), "Idempotency-Key": idempotency_key}
        return await forward("POST", "/api/orders", json=body.model_dump(), headers=headers)

    @app.get("/api/orders", tags=["api"], response_model=OrderList, responses=Passed)
    async def orders(token: Token = None) -> Response:
        return await forward("GET", "/api/orders", headers=_auth(token))

    @app.get(
        "/api/orders/{order_id}",
        tags=["api"],
        response_model=OrderOut,
        responses={**Passed, 404: {"description": "no such order"}},
    )
    async def order(order_id: OrderId, token: Token = None) -> Response:
        return await forward("GET", f"/api/orders/{order_id}", headers=_auth(token))

    return app
