"""Tables of the product service and the seed catalog created at first start."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer)
    rating: Mapped[float] = mapped_column(Float)
    rating_count: Mapped[int] = mapped_column(Integer)


class Reservation(Base):
    """Stock held for one order; at most one per (product, order), so a retried reserve is
    answered with the same reservation instead of taking stock twice."""

    __tablename__ = "reservations"
    __table_args__ = (UniqueConstraint("product_id", "order_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    order_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # reserved | released
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


SEED_STOCK = 1000

#: id, name, description, price in cents, rating, rating count
SEED_CATALOG: tuple[tuple[str, str, str, int, float, int], ...] = (
    ("espresso-cup", "Espresso cup", "Thick porcelain, 80 ml, keeps it hot.", 900, 4.6, 212),
    ("pour-over", "Pour-over dripper", "Ceramic cone for one to two cups.", 2400, 4.3, 98),
    ("grinder", "Hand grinder", "Steel burrs, 40 click settings.", 7900, 4.8, 431),
    ("kettle", "Gooseneck kettle", "1 l, thermometer in the lid.", 5400, 4.1, 77),
    (
        "beans-ethiopia",
        "Beans: Ethiopia",
        "250 g, light roast, jasmine and lemon.",
        1500,
        4.7,
        1045,
    ),
    ("beans-brazil", "Beans: Brazil", "250 g, medium roast, chocolate and nuts.", 1300, 4.2, 684),
    ("scale", "Coffee scale", "0.1 g resolution with a timer.", 3200, 3.9, 156),
    ("filters", "Paper filters", "100 filters for the dripper.", 600, 4.4, 530),
)
