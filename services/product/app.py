"""The product service's routes: `GET /products`, `GET /products/{id}`,
`POST /products/{id}/reserve`, `POST /products/{id}/release`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Path
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.app import Runtime, create_app
from services.common.cache import Cache, make_cache
from services.common.errors import ServiceError
from services.common.settings import Settings
from services.common.storage import Store, retry_on_clash
from services.product.models import SEED_CATALOG, SEED_STOCK, Base, Product, Reservation
from services.product.schemas import (
    PRODUCT_ID_PATTERN,
    ProductList,
    ProductOut,
    ReleaseRequest,
    ReservationOut,
    ReserveRequest,
)

CATALOG_KEY = "catalog"
CATALOG_TTL_S = 5.0
ProductId = Annotated[str, Path(pattern=PRODUCT_ID_PATTERN, max_length=64)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such product"}}


def _row(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "description": product.description,
        "price_cents": product.price_cents,
        "currency": product.currency,
        "stock": product.stock,
        "rating": product.rating,
        "rating_count": product.rating_count,
    }


class Catalog:
    """Catalog rows from the cache (Redis or memory), falling back to the database."""

    def __init__(self, settings: Settings) -> None:
        self.store = Store(settings, Base)
        self.cache: Cache = make_cache(settings.redis_url, "product:")
        self.version = settings.version
        self.served_by = f"product-{settings.version}"

    def seed(self) -> None:
        def _seed() -> None:
            with self.store.sessions.begin() as session:
                have = set(session.scalars(select(Product.id)).all())
                for pid, name, desc, price, rating, count in SEED_CATALOG:
                    if pid not in have:
                        session.add(
                            Product(
                                id=pid,
                                name=name,
                                description=desc,
                                price_cents=price,
                                currency="USD",
                                stock=SEED_STOCK,
                                rating=rating,
                                rating_count=count,
                            )
                        )

        retry_on_clash(_seed)

    async def rows(self) -> list[dict[str, Any]]:
        cached = await self.cache.get(CATALOG_KEY)
        if cached is not None:
            rows: list[dict[str, Any]] = json.loads(cached)
            return rows

        def _load(session: Session) -> list[dict[str, Any]]:
            return [_row(p) for p in session.scalars(select(Product).order_by(Product.id))]

        rows = await self.store.run(_load)
        await self.cache.set(CATALOG_KEY, json.dumps(rows), CATALOG_TTL_S)
        return rows

    def show(self, row: dict[str, Any]) -> ProductOut:
        """The product as this version presents it."""
        out = ProductOut(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            price_cents=row["price_cents"],
            currency=row["currency"],
            stock=row["stock"],
            served_by=self.served_by,
        )
        if self.version in ("v2", "v3"):
            out.rating = row["rating"]
            out.rating_count = row["rating_count"]
        if self.version == "v3":
            out.featured = row["rating"] >= 4.5
        return out


def _reservation(res: Reservation, product: Product) -> ReservationOut:
    return ReservationOut(
        reservation_id=res.id,
        product_id=res.product_id,
        order_id=res.order_id,
        quantity=res.quantity,
        status=res.status,
        name=product.name,
        unit_price_cents=product.price_cents,
        currency=product.currency,
    )


def _reserve(session: Session, product_id: str, body: ReserveRequest) -> ReservationOut:
    product = session.get(Product, product_id)
    if product is None:
        raise ServiceError(404, "not_found", f"no product {product_id!r}")
    existing = session.scalars(
        select(Reservation).where(
            Reservation.product_id == product_id, Reservation.order_id == body.order_id
        )
    ).first()
    if existing is not None:
        if existing.quantity != body.quantity:
            raise ServiceError(409, "conflict", "this order already reserved a different quantity")
        return _reservation(existing, product)
    taken = session.execute(
        update(Product)
        .where(Product.id == product_id, Product.stock >= body.quantity)
        .values(stock=Product.stock - body.quantity)
    )
    if taken.rowcount == 0:  # type: ignore[attr-defined]
        raise ServiceError(409, "out_of_stock", f"not enough {product_id!r} in stock")
    res = Reservation(
        id=str(uuid.uuid4()),
        product_id=product_id,
        order_id=body.order_id,
        quantity=body.quantity,
        status="reserved",
        created_at=datetime.now(UTC),
    )
    session.add(res)
    session.flush()
    session.refresh(product)
    return _reservation(res, product)


def _release(session: Session, product_id: str, body: ReleaseRequest) -> ReservationOut:
    product = session.get(Product, product_id)
    if product is None:
        raise ServiceError(404, "not_found", f"no product {product_id!r}")
    res = session.scalars(
        select(Reservation).where(
            Reservation.product_id == product_id, Reservation.order_id == body.order_id
        )
    ).first()
    if res is None:
        raise ServiceError(404, "not_found", "no reservation for this order")
    if res.status == "reserved":
        session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(stock=Product.stock + res.quantity)
        )
        res.status = "released"
    return _reservation(res, product)


def build_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    catalog = Catalog(settings)

    async def startup(_: FastAPI, rt: Runtime) -> None:
        catalog.store.create_schema()
        catalog.seed()
        rt.checks.append(catalog.store.check)

    async def shutdown(_: FastAPI, __: Runtime) -> None:
        await catalog.cache.aclose()
        catalog.store.dispose()

    app = create_app(
        settings,
        title="product",
        description="Catalog and inventory with stock reservations; v2 adds ratings.",
        startup=startup,
        shutdown=shutdown,
        transport=transport,
    )

    @app.get(
        "/products", tags=["catalog"], summary="All products", response_model_exclude_none=True
    )
    async def list_products() -> ProductList:
        rows = await catalog.rows()
        return ProductList(items=[catalog.show(r) for r in rows], version=settings.version)

    @app.get("/products/{product_id}", tags=["catalog"], summary="One product", responses=NOT_FOUND)
    async def get_product(product_id: ProductId) -> ProductOut:
        for row in await catalog.rows():
            if row["id"] == product_id:
                return catalog.show(row)
        raise ServiceError(404, "not_found", f"no product {product_id!r}")

    @app.post(
        "/products/{product_id}/reserve",
        status_code=201,
        tags=["inventory"],
        summary="Reserve stock for an order (idempotent per order)",
        responses={**NOT_FOUND, 409: {"description": "out of stock or conflicting quantity"}},
    )
    async def reserve(product_id: ProductId, body: ReserveRequest) -> ReservationOut:
        try:
            out = await catalog.store.run(lambda s: _reserve(s, product_id, body))
        except IntegrityError:  # the same order reserved concurrently: answer with that one
            out = await catalog.store.run(lambda s: _reserve(s, product_id, body))
        await catalog.cache.delete(CATALOG_KEY)
        return out

    @app.post(
        "/products/{product_id}/release",
        tags=["inventory"],
        summary="Give an order's reserved stock back (idempotent)",
        responses={404: {"description": "no such product or reservation"}},
    )
    async def release(product_id: ProductId, body: ReleaseRequest) -> ReservationOut:
        out = await catalog.store.run(lambda s: _release(s, product_id, body))
        await catalog.cache.delete(CATALOG_KEY)
        return out

    return app
