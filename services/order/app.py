"""The order service's routes: `POST /orders`, `GET /orders`, `GET /orders/{id}`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, Path
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.app import Runtime, create_app
from services.common.errors import ServiceError
from services.common.settings import Settings
from services.common.storage import Store
from services.order.auth import JwksVerifier
from services.order.models import Base, Order, OrderItem
from services.order.outbox import relay_forever
from services.order.saga import Line, Outcome, run_saga
from services.order.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    ORDER_ID_PATTERN,
    OrderCreate,
    OrderLineOut,
    OrderList,
    OrderOut,
)

AUTH: dict[int | str, dict[str, Any]] = {401: {"description": "missing or invalid token"}}


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _out(order: Order) -> OrderOut:
    return OrderOut(
        id=order.id,
        status=order.status,
        items=[
            OrderLineOut(
                product_id=i.product_id,
                quantity=i.quantity,
                name=i.name,
                unit_price_cents=i.unit_price_cents,
            )
            for i in order.items
        ],
        total_cents=order.total_cents,
        currency=order.currency,
        payment_id=order.payment_id,
        notified=order.notified,
        failure_reason=order.failure_reason,
        created_at=_iso(order.created_at),
        updated_at=_iso(order.updated_at),
    )


def _lines_of(body: OrderCreate) -> list[tuple[str, int]]:
    return [(line.product_id, line.quantity) for line in body.items]


def build_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    store = Store(settings, Base)
    issuer = settings.str_env("JWT_ISSUER", "http://user.shop.svc.cluster.local")
    audience = settings.str_env("JWT_AUDIENCE", "shop")
    wired: dict[str, Any] = {}  # set at start: the runtime and the JWKS verifier

    async def startup(_: FastAPI, rt: Runtime) -> None:
        store.create_schema()
        rt.checks.append(store.check)
        wired["runtime"] = rt
        wired["verifier"] = JwksVerifier(rt.downstream, issuer, audience)
        wired["relay"] = asyncio.create_task(relay_forever(rt.downstream, store))

    async def shutdown(_: FastAPI, __: Runtime) -> None:
        relay = wired.get("relay")
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        store.dispose()

    app = create_app(
        settings,
        title="order",
        description="Orders: reserve stock, charge payment, confirm by notification.",
        startup=startup,
        shutdown=shutdown,
        transport=transport,
    )

    async def user_of(authorization: str | None) -> tuple[str, str]:
        verifier: JwksVerifier = wired["verifier"]
        claims = await verifier.verify(authorization)
        return str(claims["sub"]), str(claims.get("email", ""))

    @app.post(
        "/orders",
        status_code=201,
        tags=["orders"],
        summary="Place an order (idempotent by Idempotency-Key)",
        responses={
            **AUTH,
            409: {"description": "this key was used for a different order"},
            503: {"description": "a service the order needs is unreachable; retry"},
        },
    )
    async def create_order(
        body: OrderCreate,
        idempotency_key: Annotated[
            str, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)
        ],
        authorization: Annotated[str | None, Header()] = None,
    ) -> OrderOut:
        user_id, email = await user_of(authorization)
        wanted = _lines_of(body)

        def _find(session: Session) -> Order | None:
            return session.scalars(
                select(Order).where(
                    Order.user_id == user_id, Order.idempotency_key == idempotency_key
                )
            ).first()

        def _create(session: Session) -> Order:
            now = datetime.now(UTC)
            order = Order(
                id=uuid.uuid4().hex,
                user_id=user_id,
                email=email,
                idempotency_key=idempotency_key,
                status="pending",
                total_cents=0,
                currency="USD",
                notified=False,
                created_at=now,
                updated_at=now,
            )
            order.items = [
                OrderItem(position=n, product_id=pid, quantity=qty)
                for n, (pid, qty) in enumerate(wanted)
            ]
            session.add(order)
            session.flush()
            return order

        order = await store.run(_find)
        if order is None:
            try:
                order = await store.run(_create)
            except IntegrityError:  # a concurrent request with the same key created it
                order = await store.run(_find)
        if order is None:
            raise ServiceError(500, "internal", "the order could not be stored")
        if [(i.product_id, i.quantity) for i in order.items] != wanted:
            raise ServiceError(409, "conflict", "Idempotency-Key reused for a different order")
        if order.status != "pending":
            return _out(order)
        lines = [Line(i.product_id, i.quantity) for i in order.items]
        rt: Runtime = wired["runtime"]
        outcome = await run_saga(rt.downstream, order.id, order.email, lines)
        return _out(await store.run(lambda s: _settle(s, order.id, outcome)))

    @app.get(
        "/orders", tags=["orders"], summary="The caller's orders, newest first", responses=AUTH
    )
    async def list_orders(authorization: Annotated[str | None, Header()] = None) -> OrderList:
        user_id, _ = await user_of(authorization)

        def _list(session: Session) -> list[OrderOut]:
            query = (
                select(Order)
                .where(Order.user_id == user_id)
                .order_by(Order.created_at.desc())
                .limit(50)
            )
            return [_out(o) for o in session.scalars(query)]

        return OrderList(items=await store.run(_list))

    @app.get(
        "/orders/{order_id}",
        tags=["orders"],
        summary="One of the caller's orders",
        responses={**AUTH, 404: {"description": "no such order for this user"}},
    )
    async def get_order(
        order_id: Annotated[str, Path(pattern=ORDER_ID_PATTERN)],
        authorization: Annotated[str | None, Header()] = None,
    ) -> OrderOut:
        user_id, _ = await user_of(authorization)

        def _get(session: Session) -> OrderOut | None:
            order = session.get(Order, order_id)
            return _out(order) if order is not None and order.user_id == user_id else None

        found = await store.run(_get)
        if found is None:
            raise ServiceError(404, "not_found", "no such order")
        return found

    return app


def _settle(session: Session, order_id: str, outcome: Outcome) -> Order:
    # the row lock makes two replicas settling the same order (the client's retry reached the
    # other one) take turns: the second sees it settled and leaves it as the first wrote it
    order = session.get(Order, order_id, with_for_update=True)
    if order is None:
        raise ServiceError(500, "internal", "the order vanished")
    if order.status == "pending":  # a concurrent retry may have settled it first
        for item, line in zip(order.items, outcome.lines, strict=True):
            item.name = line.name
            item.unit_price_cents = line.unit_price_cents
        order.status = outcome.status
        order.total_cents = outcome.total_cents
        order.payment_id = outcome.payment_id
        order.notified = outcome.notified
        order.failure_reason = outcome.failure_reason
        order.updated_at = datetime.now(UTC)
    session.flush()
    return order
