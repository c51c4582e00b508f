"""The order saga: reserve every line at product, charge payment, ask notification.

Each step is idempotent, so running the saga again for a `pending` order (a retry with the same
`Idempotency-Key`, or two concurrent retries) finishes it without double effects. A business
refusal (out of stock, declined card) releases what was reserved and ends the order; a failure
to reach a service leaves the order `pending` and is answered with that failure's status (the
caller sees the mesh's 503/504), so the client can retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from services.common.downstream import Downstream, json_or_error, raise_for_upstream
from services.common.errors import ServiceError

log = logging.getLogger("services.order")


@dataclass
class Line:
    product_id: str
    quantity: int
    name: str | None = None
    unit_price_cents: int | None = None


@dataclass
class Outcome:
    """What the saga settled; written back to the order row."""

    status: str
    lines: list[Line]
    total_cents: int = 0
    payment_id: str | None = None
    notified: bool = False
    failure_reason: str | None = None
    released: list[str] = field(default_factory=list)


async def _release_all(downstream: Downstream, order_id: str, lines: list[Line]) -> None:
    for line in lines:
        try:
            response = await downstream.call(
                "POST",
                "product",
                f"/products/{line.product_id}/release",
                json={"order_id": order_id},
            )
            if response.status_code >= 400 and response.status_code != 404:
                log.warning("release of %s for %s failed", line.product_id, order_id)
        except ServiceError as exc:
            log.warning("release of %s for %s failed: %s", line.product_id, order_id, exc)


async def _reserve(downstream: Downstream, order_id: str, lines: list[Line]) -> str | None:
    """Reserve every line; the refusal reason when product refuses one, else None."""
    for done, line in enumerate(lines):
        response = await downstream.call(
            "POST",
            "product",
            f"/products/{line.product_id}/reserve",
            json={"order_id": order_id, "quantity": line.quantity},
        )
        if response.status_code in (404, 409):
            await _release_all(downstream, order_id, lines[:done])
            return "unknown_product" if response.status_code == 404 else "out_of_stock"
        raise_for_upstream(response, "product")
        body = json_or_error(response, "product")
        line.name = str(body["name"])
        line.unit_price_cents = int(body["unit_price_cents"])
    return None


async def _charge(downstream: Downstream, order_id: str, total: int) -> dict[str, Any]:
    response = await downstream.call(
        "POST",
        "payment",
        "/charges",
        json={"order_id": order_id, "amount_cents": total, "currency": "USD"},
        headers={"Idempotency-Key": f"order-{order_id}"},
    )
    raise_for_upstream(response, "payment")
    charge: dict[str, Any] = json_or_error(response, "payment")
    return charge


async def notify(downstream: Downstream, order_id: str, email: str, lines: list[Line]) -> bool:
    """Ask for the confirmation email; a failure does not undo a paid order."""
    summary = ", ".join(f"{line.quantity} x {line.name}" for line in lines)
    try:
        response = await downstream.call(
            "POST",
            "notification",
            "/notifications",
            json={
                "channel": "email",
                "to": email,
                "subject": f"Order {order_id[:8]} confirmed",
                "body": f"Thank you for your order: {summary}.",
                "order_id": order_id,
            },
            headers={"Idempotency-Key": f"order-{order_id}-confirmation"},
        )
    except ServiceError as exc:
        log.warning("confirmation for %s not sent: %s", order_id, exc.message)
        return False
    if response.status_code >= 400:
        log.warning("confirmation for %s not sent: %d", order_id, response.status_code)
        return False
    return True


async def run_saga(downstream: Downstream, order_id: str, email: str, lines: list[Line]) -> Outcome:
    """Drive one order to a settled state (raises :class:`ServiceError` if a step is
    unreachable; the order then stays pending)."""
    refused = await _reserve(downstream, order_id, lines)
    if refused is not None:
        status = "out_of_stock" if refused == "out_of_stock" else "rejected"
        return Outcome(status=status, lines=lines, failure_reason=refused)
    total = sum((line.unit_price_cents or 0) * line.quantity for line in lines)
    charge = await _charge(downstream, order_id, total)
    if charge.get("status") != "succeeded":
        await _release_all(downstream, order_id, lines)
        return Outcome(
            status="payment_declined",
            lines=lines,
            total_cents=total,
            payment_id=str(charge.get("id")),
            failure_reason=str(charge.get("decline_reason") or "declined"),
        )
    notified = await notify(downstream, order_id, email, lines)
    return Outcome(
        status="paid",
        lines=lines,
        total_cents=total,
        payment_id=str(charge["id"]),
        notified=notified,
    )
