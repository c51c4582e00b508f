"""Request and response bodies of the product service."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PRODUCT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class ProductOut(BaseModel):
    """A product as every version shows it; v2 and v3 fill `rating`/`rating_count`, v3 also
    `featured`."""

    id: str
    name: str
    description: str
    price_cents: int
    currency: str
    stock: int
    rating: float | None = None
    rating_count: int | None = None
    featured: bool | None = None
    served_by: str


class ProductList(BaseModel):
    items: list[ProductOut]
    version: str


class ReserveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(pattern=ORDER_ID_PATTERN)
    quantity: int = Field(ge=1, le=100)


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(pattern=ORDER_ID_PATTERN)


class ReservationOut(BaseModel):
    reservation_id: str
    product_id: str
    order_id: str
    quantity: int
    status: str
    name: str
    unit_price_cents: int
    currency: str
