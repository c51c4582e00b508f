"""The confirmation relay: a paid order whose confirmation could not be sent is sent later.

The saga asks notification for the confirmation right after the charge; if notification cannot
be reached then (its pod died, its sidecar is restarting) the order is still ``paid`` and is
stored with ``notified = false``. This relay is the outbox's second half: every few seconds it
sends the confirmation of such orders again, with the same ``Idempotency-Key`` the saga used
(``order-<id>-confirmation``), so notification stores it at most once however often it is
sent, and marks the order notified once notification accepted it. Delivery is at least once,
its effect exactly once.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from services.common.downstream import Downstream
from services.common.storage import Store
from services.order.models import Order
from services.order.saga import Line, notify

log = logging.getLogger("services.order")

RELAY_INTERVAL_S = 2.0
BATCH = 20


def _claim(session: Session) -> list[tuple[str, str, list[Line]]]:
    """Begin the round's transaction and lock the orders it will send (skipping any another
    replica's round holds)."""
    session.begin()
    rows = session.scalars(
        select(Order)
        .where(Order.status == "paid", Order.notified.is_(False))
        .order_by(Order.created_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True, of=Order)
    ).all()
    return [
        (
            o.id,
            o.email,
            [Line(i.product_id, i.quantity, i.name, i.unit_price_cents) for i in o.items],
        )
        for o in rows
    ]


def _mark(session: Session, *, order_ids: list[str]) -> None:
    """Mark the sent ones and end the round's transaction (releasing every claimed row)."""
    if order_ids:
        session.execute(update(Order).where(Order.id.in_(order_ids)).values(notified=True))
    session.commit()


async def relay_once(downstream: Downstream, store: Store) -> int:
    """Send the confirmations still owed; the number notification accepted."""
    session = store.sessions()
    try:
        sent: list[str] = []
        for order_id, email, lines in await run_in_threadpool(_claim, session):
            if not await notify(downstream, order_id, email, lines):
                break
            sent.append(order_id)
        await run_in_threadpool(functools.partial(_mark, session, order_ids=sent))
        return len(sent)
    finally:
        await run_in_threadpool(session.close)  # rolls back a round that did not get to _mark


async def relay_forever(downstream: Downstream, store: Store) -> None:
    """Run :func:`relay_once` every ``RELAY_INTERVAL_S`` until cancelled."""
    while True:
        await asyncio.sleep(RELAY_INTERVAL_S)
        try:
            sent = await relay_once(downstream, store)
        except Exception as exc:  # storage briefly unavailable: try again next round
            log.warning("confirmation relay: %s", exc)
            continue
        if sent:
            log.info("confirmation relay: %d sent late", sent)
