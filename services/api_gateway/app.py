"""The api-gateway's routes, all under `/api`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, Path
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.common.app import Runtime, create_app
from services.common.downstream import Downstream, UpstreamResponse, relay
from services.common.settings import Settings
from services.order.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    ORDER_ID_PATTERN,
    OrderCreate,
    OrderList,
    OrderOut,
)
from services.product.schemas import PRODUCT_ID_PATTERN, ProductList, ProductOut
from services.user.schemas import LoginRequest, Token, UserCreate, UserPublic

Authorization = Annotated[str | None, Header()]
ProductId = Annotated[str, Path(pattern=PRODUCT_ID_PATTERN, max_length=64)]
OrderId = Annotated[str, Path(pattern=ORDER_ID_PATTERN)]
Passed: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token"},
    503: {"description": "a service behind the gateway is unreachable"},
    504: {"description": "a service behind the gateway timed out"},
}


class Account(BaseModel):
    """`GET /api/me`: the profile and, when order answered, the order history."""

    user: UserPublic
    orders: list[OrderOut] | None


def _headers(**pairs: str | None) -> dict[str, str]:
    names = {"authorization": "Authorization", "idempotency_key": "Idempotency-Key"}
    return {names[k]: v for k, v in pairs.items() if v is not None}


def build_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    wired: dict[str, Downstream] = {}

    async def startup(_: FastAPI, rt: Runtime) -> None:
        wired["downstream"] = rt.downstream

    app = create_app(
        settings,
        title="api-gateway",
        description="The shop's API: forwards to user, product and order, aggregates /api/me.",
        startup=startup,
        transport=transport,
    )

    async def forward(
        method: str,
        service: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        response = await wired["downstream"].call(method, service, path, json=json, headers=headers)
        return relay(response, service)

    @app.get("/api/products", tags=["catalog"], response_model=ProductList, responses=Passed)
    async def products() -> Response:
        return await forward("GET", "product", "/products")

    @app.get(
        "/api/products/{product_id}", tags=["catalog"], response_model=ProductOut, responses=Passed
    )
    async def product(product_id: ProductId) -> Response:
        return await forward("GET", "product", f"/products/{product_id}")

    @app.post(
        "/api/users", status_code=201, tags=["account"], response_model=UserPublic, responses=Passed
    )
    async def register(body: UserCreate) -> Response:
        return await forward("POST", "user", "/users", json=body.model_dump())

    @app.post("/api/login", tags=["account"], response_model=Token, responses=Passed)
    async def login(body: LoginRequest) -> Response:
        return await forward("POST", "user", "/login", json=body.model_dump())

    @app.get("/api/me", tags=["account"], response_model=Account, responses=Passed)
    async def me(authorization: Authorization = None) -> Response:
        downstream = wired["downstream"]
        auth = _headers(authorization=authorization)
        profile, orders = await asyncio.gather(
            downstream.call("GET", "user", "/users/me", headers=auth),
            downstream.call("GET", "order", "/orders", headers=auth),
            return_exceptions=True,
        )
        if isinstance(profile, BaseException):
            raise profile
        if profile.status_code != 200:
            return relay(profile, "user")
        history = None
        if isinstance(orders, UpstreamResponse) and orders.status_code == 200:
            history = orders.json().get("items")
        return JSONResponse({"user": profile.json(), "orders": history})

    @app.post(
        "/api/orders",
        status_code=201,
        tags=["orders"],
        response_model=OrderOut,
        responses={**Passed, 409: {"description": "Idempotency-Key reused"}},
    )
    async def place_order(
        body: OrderCreate,
        idempotency_key: Annotated[
            str, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)
        ],
        authorization: Authorization = None,
    ) -> Response:
        headers = _headers(authorization=authorization, idempotency_key=idempotency_key)
        return await forward("POST", "order", "/orders", json=body.model_dump(), headers=headers)

    @app.get("/api/orders", tags=["orders"], response_model=OrderList, responses=Passed)
    async def orders(authorization: Authorization = None) -> Response:
        return await forward(
            "GET", "order", "/orders", headers=_headers(authorization=authorization)
        )

    @app.get(
        "/api/orders/{order_id}",
        tags=["orders"],
        response_model=OrderOut,
        responses={**Passed, 404: {"description": "no such order"}},
    )
    async def order(order_id: OrderId, authorization: Authorization = None) -> Response:
        return await forward(
            "GET", "order", f"/orders/{order_id}", headers=_headers(authorization=authorization)
        )

    return app
