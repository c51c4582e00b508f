"""How the frontend serves the React storefront's bundle, in process: the catalogue embedded in
the page (so the first paint needs no second round trip), the simple page when no bundle is
built, and the static files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common.settings import Settings
from services.frontend.app import build_app
from services.frontend.bundle import STATE_SLOT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CATALOGUE = {
    "items": [
        {
            "id": "grinder",
            "name": "Hand grinder </script><script>alert(1)</script>",
            "description": "d",
            "price_cents": 7900,
            "currency": "USD",
            "stock": 3,
            "served_by": "product-v2",
            "rating": 4.8,
            "rating_count": 431,
        }
    ],
    "version": "v2",
}
CHAIN = "api-gateway/v1/api-gateway-v1-0, product/v2/product-v2-0"


def gateway(status: int, body: object, chain: str = CHAIN) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("GET", "/api/products")
        return httpx.Response(status, json=body, headers={"x-served-by": chain})

    return httpx.MockTransport(answer)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / "index.html").write_text(f"<html><body><div id=root></div>{STATE_SLOT}</body></html>")
    (folder / "index-AbCd1234.js").write_text("console.log('bundle')")
    return folder


def client(dist: Path | str, transport: httpx.MockTransport, tmp_path: Path) -> TestClient:
    env = {"STOREFRONT_DIST": str(dist), "POD_NAME": "frontend-v1-0", "DATA_DIR": str(tmp_path)}
    return TestClient(build_app(Settings.from_env("frontend", env), transport=transport))


def embedded(html: str) -> dict[str, object]:
    found = re.search(r'<script id="shop-state" type="application/json">(.*?)</script>', html)
    assert found, html
    state: dict[str, object] = json.loads(found.group(1))
    return state


def test_the_page_embeds_the_catalogue_and_the_pods_that_served_it(
    dist: Path, tmp_path: Path
) -> None:
    with client(dist, gateway(200, CATALOGUE), tmp_path) as tc:
        page = tc.get("/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    chain = "frontend/v1/frontend-v1-0, " + CHAIN
    assert page.headers["x-served-by"] == chain
    # a product name cannot close the script element: "<" travels as \u003c
    assert "</script><script>alert(1)" not in page.text
    assert embedded(page.text) == {
        "catalogue": {"status": 200, "body": CATALOGUE, "served_by": chain}
    }


def test_a_failed_catalogue_still_serves_the_app_with_the_error_for_it_to_explain(
    dist: Path, tmp_path: Path
) -> None:
    fault = {"error": {"code": "injected_fault", "message": "injected error"}}
    with client(dist, gateway(500, fault, "api-gateway/v1/api-gateway-v1-0"), tmp_path) as tc:
        page = tc.get("/")
    assert page.status_code == 503
    state = embedded(page.text)["catalogue"]
    assert state == {
        "status": 500,
        "body": fault,
        "served_by": "frontend/v1/frontend-v1-0, api-gateway/v1/api-gateway-v1-0",
    }


def test_without_a_bundle_the_simple_page_is_served_with_a_note(tmp_path: Path) -> None:
    with client(tmp_path / "missing", gateway(200, CATALOGUE), tmp_path) as tc:
        page = tc.get("/")
        script = tc.get("/static/app.js")
    assert page.status_code == 200
    assert 'id="bundle-note"' in page.text and "bin/setup --storefront" in page.text
    assert 'class="product" data-id="grinder"' in page.text  # rendered on the server
    assert script.status_code == 200


def test_bundle_files_are_immutable_and_the_simple_page_files_still_served(
    dist: Path, tmp_path: Path
) -> None:
    with client(dist, gateway(200, CATALOGUE), tmp_path) as tc:
        hashed = tc.get("/static/index-AbCd1234.js")
        legacy = tc.get("/static/app.js")
        missing = tc.get("/static/nothing.js")
    assert hashed.status_code == 200
    assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert legacy.status_code == 200 and "cache-control" not in legacy.headers
    assert missing.status_code == 404
