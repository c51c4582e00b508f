"""The storefront in a real headless Chromium (Debian's `chromium`, driven by playwright):
a shopper signs up, logs in, puts products in the cart and places an order that gets paid."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services.stack import Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_a_shopper_logs_in_and_places_an_order_in_chromium(shop: Stack, browser: Any) -> None:
    page = browser.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(shop.url("frontend") + "/")
        assert page.locator("article.product").count() >= 8  # rendered on the server
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
