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

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.downstream import Downstream
from services.common.storage import Store
from services.order.models import Order
from services.order.saga import Line, notify

log = logging.getLogger("services.order")

RELAY_INTERVAL_S = 2.0
BATCH = 20


def _due(session: Session) -> list[tuple[str, str, list[Line]]]:
    rows = session.scalars(
        select(Order)
        .where(Order.status == "paid", Order.notified.is_(False))
        .order_by(Order.created_at)
        .limit(BATCH)
    ).all()
    return [
        (
            o.id,
            o.email,
            [Line(i.product_id, i.quantity, i.name, i.unit_price_cents) for i in o.items],
        )
        for o in rows
    ]


def _mark(session: Session, *, order_id: str) -> None:
    order = session.get(Order, order_id)
    if order is not None:
        order.notified = True


async def relay_once(downstream: Downstream, store: Store) -> int:
    """Send the confirmations still owed; the number notification accepted."""
    sent = 0
    for order_id, email, lines in await store.run(_due):
        if await notify(downstream, order_id, email, lines):
            await store.run(functools.partial(_mark, order_id=order_id))
            sent += 1
    return sent


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
