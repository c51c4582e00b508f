"""The notification service's routes: `POST /notifications`, `GET /notifications`."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from fastapi import FastAPI, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import DateTime, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.app import Runtime, create_app
from services.common.settings import Settings
from services.common.storage import Store

log = logging.getLogger("services.notification")

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"


class Base(DeclarativeBase):
    pass


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16))  # logged: written to the log, never sent
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "sms"]
    to: str = Field(min_length=3, max_length=254, pattern=r"^[A-Za-z0-9@.+_%-]+$")
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=5000)
    order_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class NotificationOut(BaseModel):
    id: str
    channel: str
    to: str
    subject: str
    body: str
    order_id: str | None
    status: str
    created_at: str


class NotificationList(BaseModel):
    items: list[NotificationOut]


def _out(msg: OutboxMessage) -> NotificationOut:
    created = msg.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return NotificationOut(
        id=msg.id,
        channel=msg.channel,
        to=msg.recipient,
        subject=msg.subject,
        body=msg.body,
        order_id=msg.order_id,
        status=msg.status,
        created_at=created.isoformat(),
    )


def build_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    store = Store(settings, Base)

    async def startup(_: FastAPI, rt: Runtime) -> None:
        store.create_schema()
        rt.checks.append(store.check)

    async def shutdown(_: FastAPI, __: Runtime) -> None:
        store.dispose()

    app = create_app(
        settings,
        title="notification",
        description="Email and SMS into an outbox table and the log; nothing leaves the machine.",
        startup=startup,
        shutdown=shutdown,
        transport=transport,
    )

    @app.post(
        "/notifications",
        status_code=202,
        tags=["notifications"],
        summary="Queue an email or SMS (idempotent when an Idempotency-Key is given)",
    )
    async def notify(
        body: NotificationRequest,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)
        ] = None,
    ) -> NotificationOut:
        def _find(session: Session) -> NotificationOut | None:
            if idempotency_key is None:
                return None
            found = session.scalars(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)
            ).first()
            return _out(found) if found else None

        def _create(session: Session) -> NotificationOut:
            msg = OutboxMessage(
                id=str(uuid.uuid4()),
                idempotency_key=idempotency_key,
                channel=body.channel,
                recipient=body.to,
                subject=body.subject,
                body=body.body,
                order_id=body.order_id,
                status="logged",
                created_at=datetime.now(UTC),
            )
            session.add(msg)
            session.flush()
            return _out(msg)

        found = await store.run(_find)
        if found is not None:
            return found
        try:
            out = await store.run(_create)
        except IntegrityError:  # a concurrent retry with the same key stored it first
            again = await store.run(_find)
            if again is None:
                raise
            return again
        log.info(
            "%s to %s: %s (order %s, id %s)",
            out.channel,
            out.to,
            out.subject,
            out.order_id or "-",
            out.id,
        )
        return out

    @app.get("/notifications", tags=["notifications"], summary="Messages in the outbox")
    async def list_notifications(
        order_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> NotificationList:
        def _list(session: Session) -> list[NotificationOut]:
            query = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(limit)
            if order_id is not None:
                query = query.where(OutboxMessage.order_id == order_id)
            return [_out(m) for m in session.scalars(query)]

        return NotificationList(items=await store.run(_list))

    return app
