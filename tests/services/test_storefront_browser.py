"""The simple storefront page (what the frontend serves when the React bundle is not built) in a
real headless Chromium (Debian's `chromium`, driven by playwright): a shopper signs up, logs in,
puts products in the cart and places an order that gets paid. The React storefront has its own
browser tests through the ingress gateway (test_storefront_mesh.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services.stack import Stack, env_url_name

pytestmark = pytest.mark.chromium


@pytest.fixture(scope="module")
def simple_frontend(shop: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second frontend of the shop that finds no bundle (as where Node.js is missing)."""
    missing = tmp_path_factory.mktemp("no-bundle") / "dist"
    urls = {env_url_name(n): p.url for n, p in shop.procs.items() if "@" not in n}
    shop.start("frontend@simple", {**urls, "STOREFRONT_DIST": str(missing)})
    shop.wait_ready(["frontend@simple"])
    try:
        yield shop.url("frontend@simple")
    finally:
        shop.procs.pop("frontend@simple").stop()


def test_a_shopper_logs_in_and_places_an_order_in_chromium(
    simple_frontend: str, browser: Any
) -> None:
    page = browser.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(simple_frontend + "/")
        assert page.locator("article.product").count() >= 8  # rendered on the server
        assert "not built here" in page.locator("#bundle-note").inner_text()
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        page.fill("#signup-form input[name=name]", "Dee")
        page.fill("#signup-form input[name=email]", email)
        page.fill("#signup-form input[name=password]", "browser-pass")
        page.click("#signup-form button[type=submit]")
        page.wait_for_function(
            "document.getElementById('message').textContent.includes('Account created')"
        )
        page.fill("#login-form input[name=email]", email)
        page.fill("#login-form input[name=password]", "browser-pass")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector(f"#whoami:has-text('{email}')")
        # The token is HttpOnly: page scripts cannot read it.
        assert "shop_token" not in page.evaluate("document.cookie")
        page.click("button.add[data-id=grinder]")
        page.click("button.add[data-id=grinder]")
        page.click("button.add[data-id=filters]")
        assert page.locator("#cart-lines li").count() == 2
        page.click("#place-order")
        page.wait_for_selector("#order-list li .order-status")
        assert page.locator("#order-list li .order-status").first.text_content() == "paid"
        assert "confirmation sent" in (page.locator("#order-list li").first.text_content() or "")
        assert page.locator("#cart-lines li").count() == 0
    finally:
        page.close()
