"""The React storefront end to end, as a learner uses it: the whole shop on real Envoy sidecars
(the local runner), the app's own Gateway + VirtualService (`lessons/apps/ecommerce/istio/`),
and Debian's headless Chromium at the ingress gateway's URL.

A shopper registers, logs in, orders and sees the order paid and the confirmation sent; a
VirtualService applied live shifts product traffic to v2 and the page shows v2's ratings; an
Envoy fault (`fault.abort`) on product shows a friendly error, not a blank page; the catalogue
matches a recorded screenshot (tolerant comparison; `--snapshot-update` records it again).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cluster.local.mesh import LocalMesh
from mesh.app import load_app
from mesh.model import Resource
from mesh.source import load_paths, load_text
from mesh.state import MeshState
from tests.services.stack import ROOT

pytestmark = [pytest.mark.envoy, pytest.mark.chromium, pytest.mark.node, pytest.mark.slow]

APP = ROOT / "lessons" / "apps" / "ecommerce"
SNAPSHOT = Path(__file__).parent / "snapshots" / "storefront-catalogue.png"
VIEWPORT = {"width": 1280, "height": 900}

SUBSETS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: product, namespace: shop}
spec:
  host: product
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def product_route(subset: str, fault: str = "") -> str:
    """A VirtualService for product: every request to ``subset``, optionally with a fault."""
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: product, namespace: shop}}
spec:
  hosts: [product]
  http:
  - {fault}
    route:
    - destination: {{host: product, subset: {subset}}}
"""


ABORT_ALL = "fault: {abort: {httpStatus: 503, percentage: {value: 100}}}"


def _load(text: str) -> tuple[Resource, ...]:
    loaded = load_text(text, "test.yaml", default_namespace="shop")
    assert loaded.ok, [d.render() for d in loaded.errors]
    return loaded.resources


@dataclass
class Shop:
    mesh: LocalMesh
    url: str
    base: tuple[Resource, ...]

    def route(self, *texts: str) -> None:
        """Push the app plus ``texts`` to every Envoy, live."""
        extra = tuple(r for t in texts for r in _load(t))
        self.mesh.apply(MeshState(self.base).apply(extra).resources)

    def gateway_log(self) -> list[dict[str, Any]]:
        (log,) = [p for p in self.mesh.access_logs() if "ingressgateway" in p.name]
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    app = load_app(APP)
    ingress = load_paths([APP / "istio"], default_namespace="shop")
    assert ingress.ok, [d.render() for d in ingress.errors]
    base = (*app.resources, *ingress.resources)
    with LocalMesh(tmp_path_factory.mktemp("storefront"), seed=11) as mesh:
        mesh.start(base)
        port = mesh.pods["istio-ingressgateway-0"].ports.listeners[8080]
        yield Shop(mesh, f"http://127.0.0.1:{port}", base)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, errors  # no script error in any test


def until(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def settle(page: Any) -> None:
    """Wait until React has painted the catalogue: products, or the error in their place."""
    page.wait_for_selector("article.product, #catalogue [role=alert]")


def open_shop(page: Any, url: str) -> None:
    page.goto(url + "/")
    settle(page)


def reload(page: Any) -> None:
    page.reload()
    settle(page)


def badges(page: Any) -> set[str]:
    return set(page.locator("article.product .badge[data-version]").all_inner_texts())


def mesh_row(page: Any, request: str) -> Any:
    return page.locator("#mesh-panel li.mesh-call", has_text=request).first


def test_meshplay_up_prints_a_url_that_serves_the_storefront_and_where_the_logs_are(
    tmp_path: Path,
) -> None:
    """The URL ``meshplay up`` prints answers with the React storefront through the ingress
    gateway (the app's Gateway + VirtualService are applied), and the printed log folders hold
    the gateway's access log and the frontend's app log."""
    env = {**os.environ, "MESHPLAY_STATE_DIR": str(tmp_path)}

    def meshplay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "playground", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    up = meshplay("up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        url = re.search(r"^ingress: (http://127\.0\.0\.1:\d+/) \(the storefront", up.stdout, re.M)
        access = re.search(r"^access logs: (\S+)/<pod>\.log", up.stdout, re.M)
        apps = re.search(r"^app logs: (\S+)/app-<pod>\.log", up.stdout, re.M)
        assert url and access and apps, up.stdout
        page = httpx.get(url.group(1), trust_env=False, timeout=20)
        assert page.status_code == 200
        assert '<script id="shop-state" type="application/json">{' in page.text
        assert page.headers["x-served-by"].startswith("frontend/v1/frontend-v1-0, api-gateway/")
        time.sleep(0.3)  # Envoy writes its access log line after the response
        gateway_log = Path(access.group(1)) / "istio-ingressgateway-0.log"
        assert '"path":"/"' in gateway_log.read_text().replace(" ", "")
        assert (Path(apps.group(1)) / "app-frontend-v1-0.log").is_file()
    finally:
        down = meshplay("down")
        assert down.returncode == 0, down.stderr


def test_a_shopper_registers_logs_in_orders_and_sees_it_paid_and_notified(
    shop: Shop, page: Any
) -> None:
    shop.route(SUBSETS, product_route("v1"))
    open_shop(page, shop.url)
    assert page.locator("article.product").count() == 8  # painted from the embedded catalogue
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    page.click("nav >> text=Log in")
    page.fill("#signup-form input[name=name]", "Dee")
    page.fill("#signup-form input[name=email]", email)
    page.fill("#signup-form input[name=password]", "browser-pass")
    page.click("#signup-form button[type=submit]")
    page.wait_for_selector("text=Welcome, Dee! Your account is ready.")
    page.click("text=Log out")
    page.fill("#login-form input[name=email]", email)
    page.fill("#login-form input[name=password]", "browser-pass")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(f"#whoami:has-text('{email}')")
    assert "shop_token" not in page.evaluate("document.cookie")  # the JWT is HttpOnly
    page.click("nav >> text=Shop")
    grinder = page.locator("article.product[data-id=grinder]")
    grinder.locator("button.add").click()
    grinder.locator("button.add").click()
    page.locator("article.product[data-id=filters] button.add").click()
    assert page.inner_text("#cart-count") == "3"
    page.click("nav >> text=Cart")
    page.locator("#cart-lines li").nth(1).wait_for()  # the cart view paints after the route change
    assert page.locator("#cart-lines li").count() == 2
    page.click("#place-order")
    page.wait_for_selector("text=Thank you! Your order is paid.")
    result = page.locator(".order-result")
    assert "Confirmation email sent" in result.inner_text()
    # the mesh panel names every pod the order went through
    row = mesh_row(page, "POST /api/orders")
    assert row.locator(".mesh-status").inner_text() == "201"
    served = set(row.locator(".hop").evaluate_all("hops => hops.map(h => h.dataset.service)"))
    assert served >= {"frontend", "api-gateway", "order", "product", "payment", "notification"}
    page.click("nav >> text=Orders")
    first = page.locator("#order-list li").first
    first.wait_for()
    assert "Paid" in first.inner_text() and "Confirmation email sent" in first.inner_text()
    # ...and it all went through the ingress gateway
    time.sleep(0.3)
    orders = [
        e
        for e in shop.gateway_log()
        if e.get("path") == "/api/orders" and e.get("method") == "POST"
    ]
    assert [e.get("response_code") for e in orders] == [201], orders


def test_a_live_traffic_shift_to_product_v2_shows_v2_and_its_ratings_on_the_page(
    shop: Shop, page: Any
) -> None:
    shop.route(SUBSETS, product_route("v1"))
    open_shop(page, shop.url)
    assert badges(page) == {"product v1"}
    assert page.locator("article.product .rating").count() == 0
    shop.route(SUBSETS, product_route("v2"))  # kubectl apply, while the page is open

    def shows_v2() -> bool:
        reload(page)
        return badges(page) == {"product v2"}

    until(shows_v2, "the catalogue from product v2")
    assert page.locator("article.product .rating").count() == 8
    assert "4.8 (431 ratings)" in page.locator("article.product[data-id=grinder]").inner_text()
    hop = mesh_row(page, "GET / (page)").locator(".hop[data-service=product]")
    assert hop.get_attribute("data-version") == "v2"
    assert "product-v2-0" in hop.inner_text()


def test_an_envoy_fault_on_product_shows_a_friendly_error_and_the_page_recovers(
    shop: Shop, page: Any
) -> None:
    shop.route(SUBSETS, product_route("v1", ABORT_ALL))

    def failing() -> bool:
        open_shop(page, shop.url)
        return page.locator("[role=alert]").count() > 0

    until(failing, "the fault to reach the page")
    alert = page.locator("[role=alert]")
    assert alert.locator(".notice-text").inner_text() == (
        "We could not load the catalogue: part of the shop is unavailable right now. "
        "Please try again in a moment."
    )
    assert "HTTP 503" in alert.inner_text()
    assert page.locator("article.product").count() == 0
    assert page.locator("header.top").is_visible()  # the rest of the page is there
    assert mesh_row(page, "GET / (page)").locator(".mesh-status").inner_text() == "503"
    shop.route(SUBSETS, product_route("v1"))  # the fault is removed
    alert.locator("button", has_text="Try again").click()
    page.locator("article.product").first.wait_for()
    assert page.locator("[role=alert]").count() == 0
    assert mesh_row(page, "GET /api/products").locator(".mesh-status").inner_text() == "200"


def _differing_fraction(page: Any, got: bytes, want: bytes) -> float:
    """The share of pixels where any channel differs by more than 24 (of 255), computed in the
    browser's canvas; 1.0 when the sizes differ."""
    urls = ["data:image/png;base64," + base64.b64encode(b).decode() for b in (got, want)]
    fraction: float = page.evaluate(
        """async ([a, b]) => {
            const load = (src) => new Promise((ok, fail) => {
                const img = new Image(); img.onload = () => ok(img); img.onerror = fail; img.src = src;
            });
            const [x, y] = await Promise.all([load(a), load(b)]);
            if (x.width !== y.width || x.height !== y.height) return 1.0;
            const pixels = (img) => {
                const c = document.createElement("canvas");
                c.width = img.width; c.height = img.height;
                const g = c.getContext("2d"); g.drawImage(img, 0, 0);
                return g.getImageData(0, 0, img.width, img.height).data;
            };
            const p = pixels(x), q = pixels(y);
            let differing = 0;
            for (let i = 0; i < p.length; i += 4) {
                if (Math.abs(p[i] - q[i]) > 24 || Math.abs(p[i + 1] - q[i + 1]) > 24
                    || Math.abs(p[i + 2] - q[i + 2]) > 24) differing++;
            }
            return differing / (p.length / 4);
        }""",
        urls,
    )
    return fraction


def test_the_storefront_looks_as_recorded(
    shop: Shop, page: Any, request: pytest.FixtureRequest
) -> None:
    """A visual snapshot of the catalogue on product v1 (stock numbers masked: orders change
    them). At most 1 % of the pixels may differ; `pytest --snapshot-update` records it anew."""
    shop.route(SUBSETS, product_route("v1"))
    open_shop(page, shop.url)

    def shows_v1() -> bool:
        if badges(page) == {"product v1"}:
            return True
        reload(page)
        return False

    until(shows_v1, "the catalogue from product v1")
    page.click("#mesh-panel .mesh-toggle")  # fold the panel: its timings change every run
    got = page.screenshot(
        full_page=True, animations="disabled", caret="hide", mask=[page.locator(".stock")]
    )
    if request.config.getoption("--snapshot-update", default=False) or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_bytes(got)
        if not request.config.getoption("--snapshot-update", default=False):
            pytest.fail(f"no snapshot was recorded yet: wrote {SNAPSHOT}; check it and commit it")
    difference = _differing_fraction(page, got, SNAPSHOT.read_bytes())
    if difference > 0.01:
        failed = SNAPSHOT.with_name(SNAPSHOT.stem + ".actual.png")
        failed.write_bytes(got)
        pytest.fail(f"{difference:.1%} of the pixels differ from {SNAPSHOT.name} (see {failed})")
    # the comparison is sharp enough to see a version change (badges and star ratings)
    shop.route(SUBSETS, product_route("v2"))

    def shows_v2() -> bool:
        reload(page)
        return badges(page) == {"product v2"}

    until(shows_v2, "the catalogue from product v2")
    page.click("#mesh-panel .mesh-toggle")
    v2 = page.screenshot(full_page=True, animations="disabled", caret="hide",
                         mask=[page.locator(".stock")])  # fmt: skip
    assert _differing_fraction(page, v2, SNAPSHOT.read_bytes()) > 0.01
