"""The simple storefront page, rendered on the server (every value escaped): what the frontend
serves when the React bundle is not built (see :mod:`services.frontend.bundle`)."""

from __future__ import annotations

from html import escape
from importlib.resources import files
from string import Template
from typing import Any

_PAGE = Template(files("services.frontend").joinpath("templates/index.html").read_text("utf-8"))


def _price(cents: int, currency: str) -> str:
    symbol = "$" if currency == "USD" else currency + " "
    return f"{symbol}{cents // 100}.{cents % 100:02d}"


def _stars(rating: float) -> str:
    full = round(rating)
    return "★" * full + "☆" * (5 - full)


def product_card(item: dict[str, Any]) -> str:
    pid = escape(str(item.get("id", "")))
    rating = item.get("rating")
    extra = ""
    if isinstance(rating, int | float):
        count = int(item.get("rating_count") or 0)
        extra += (
            f'<p class="rating" title="{rating:.1f} of 5">{_stars(float(rating))} '
            f"<span>{rating:.1f} ({count})</span></p>"
        )
    if item.get("featured"):
        extra += '<p class="featured">Featured</p>'
    price = _price(int(item.get("price_cents", 0)), str(item.get("currency", "USD")))
    return (
        f'<article class="product" data-id="{pid}">'
        f"<h3>{escape(str(item.get('name', '')))}</h3>"
        f'<p class="description">{escape(str(item.get("description", "")))}</p>'
        f"{extra}"
        f'<p class="price">{escape(price)}</p>'
        f'<p class="stock">{int(item.get("stock", 0))} in stock</p>'
        f'<p class="served-by">{escape(str(item.get("served_by", "")))}</p>'
        f'<button type="button" class="add" data-id="{pid}" '
        f'data-name="{escape(str(item.get("name", "")))}" '
        f'data-price="{int(item.get("price_cents", 0))}">Add to cart</button>'
        "</article>"
    )


def page(products: list[dict[str, Any]] | None, version: str, problem: str | None) -> str:
    if products is None:
        catalog = f'<p class="problem" id="catalog-problem">{escape(problem or "")}</p>'
    else:
        catalog = "\n".join(product_card(p) for p in products)
    return _PAGE.substitute(catalog=catalog, version=escape(version))
