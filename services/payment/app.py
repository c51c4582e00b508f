"""The payment service's routes: `POST /charges`, `GET /charges/{id}`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import DateTime, Integer, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.app import Runtime, create_app, knob_state
from services.common.errors import ServiceError
from services.common.knobs import Knobs
from services.common.settings import Settings
from services.common.storage import Store

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"


class Base(DeclarativeBase):
    pass


class Charge(Base):
    __tablename__ = "charges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    order_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # succeeded | declined
    decline_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    amount_cents: int = Field(ge=1, le=100_000_000)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class ChargeOut(BaseModel):
    id: str
    order_id: str
    amount_cents: int
    currency: str
    status: str
    decline_reason: str | None
    created_at: str


def _out(charge: Charge) -> ChargeOut:
    created = charge.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return ChargeOut(
        id=charge.id,
        order_id=charge.order_id,
        amount_cents=charge.amount_cents,
        currency=charge.currency,
        status=charge.status,
        decline_reason=charge.decline_reason,
        created_at=created.isoformat(),
    )


def _same(charge: Charge, body: ChargeRequest) -> bool:
    return (charge.order_id, charge.amount_cents, charge.currency) == (
        body.order_id,
        body.amount_cents,
        body.currency,
    )


def build_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    store = Store(settings, Base)
    decline_rate = settings.float_env("DECLINE_RATE", 0.0, 0.0, 1.0)

    async def startup(_: FastAPI, rt: Runtime) -> None:
        store.create_schema()
        rt.checks.append(store.check)

    async def shutdown(_: FastAPI, __: Runtime) -> None:
        store.dispose()

    app = create_app(
        settings,
        title="payment",
        description="A simulated card processor with idempotent charges.",
        startup=startup,
        shutdown=shutdown,
        knobs=Knobs(decline_rate=decline_rate),
        transport=transport,
    )
    knobs = knob_state(app)

    responses: dict[int | str, dict[str, Any]] = {
        409: {"description": "this key was used for a different charge"},
    }

    @app.post(
        "/charges",
        status_code=201,
        tags=["charges"],
        summary="Charge a card (idempotent by Idempotency-Key: a replay answers the same)",
        responses=responses,
    )
    async def charge(
        body: ChargeRequest,
        idempotency_key: Annotated[
            str, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)
        ],
    ) -> ChargeOut:
        def _find(session: Session) -> Charge | None:
            return session.scalars(
                select(Charge).where(Charge.idempotency_key == idempotency_key)
            ).first()

        def _replay(found: Charge) -> ChargeOut:
            if not _same(found, body):
                raise ServiceError(409, "conflict", "Idempotency-Key reused for another charge")
            return _out(found)

        found = await store.run(_find)
        if found is not None:
            return _replay(found)
        rate = knobs.current.decline_rate or 0.0
        declined = knobs.draw(rate)

        def _create(session: Session) -> ChargeOut:
            charge = Charge(
                id=str(uuid.uuid4()),
                idempotency_key=idempotency_key,
                order_id=body.order_id,
                amount_cents=body.amount_cents,
                currency=body.currency,
                status="declined" if declined else "succeeded",
                decline_reason="card_declined" if declined else None,
                created_at=datetime.now(UTC),
            )
            session.add(charge)
            session.flush()
            return _out(charge)

        try:
            return await store.run(_create)
        except IntegrityError:  # a concurrent retry with the same key won the race
            again = await store.run(_find)
            if again is None:
                raise
            return _replay(again)

    @app.get(
        "/charges/{charge_id}",
        tags=["charges"],
        summary="One charge",
        responses={404: {"description": "no such charge"}},
    )
    async def get_charge(
        charge_id: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")],
    ) -> ChargeOut:
        def _get(session: Session) -> ChargeOut | None:
            charge = session.get(Charge, charge_id)
            return _out(charge) if charge else None

        found = await store.run(_get)
        if found is None:
            raise ServiceError(404, "not_found", "no such charge")
        return found

    return app
