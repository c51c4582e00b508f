"""Request and response bodies of the order service (the api-gateway validates with them too)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
ORDER_ID_PATTERN = r"^[0-9a-f]{32}$"


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    quantity: int = Field(ge=1, le=100)


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[OrderLine] = Field(min_length=1, max_length=20)

    @field_validator("items")
    @classmethod
    def _distinct(cls, items: list[OrderLine]) -> list[OrderLine]:
        ids = [line.product_id for line in items]
        if len(set(ids)) != len(ids):
            raise ValueError("each product may appear once; add up the quantities")
        return items


class OrderLineOut(BaseModel):
    product_id: str
    quantity: int
    name: str | None
    unit_price_cents: int | None


class OrderOut(BaseModel):
    id: str
    status: str
    items: list[OrderLineOut]
    total_cents: int
    currency: str
    payment_id: str | None
    notified: bool
    failure_reason: str | None
    created_at: str
    updated_at: str


class OrderList(BaseModel):
    items: list[OrderOut]
