"""calibrate: sim latency parameters fitted from a real run's records and written back."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from cluster.calibrate import calibrate, write_calibration
from mesh.app import load_behavior
from mesh.records import Reporter, RequestRecord

ROOT = Path(__file__).resolve().parents[2]


def rec(*, reporter: Reporter, rid: str, ms: float) -> RequestRecord:
    return RequestRecord(
        start_time=0.0, duration_ms=ms, reporter=reporter,
        source_workload="api-gateway-v1", source_namespace="shop", source_principal="",
        source_app="api-gateway", destination_service="product.shop.svc.cluster.local",
        destination_workload="product-v1", destination_namespace="shop",
        destination_version="v1", destination_app="product", path="/products",
        response_code=200, request_id=rid,
    )  # fmt: skip


def test_calibration_fits_hops_and_service_times_and_rewrites_behavior(tmp_path: Path) -> None:
    app = tmp_path / "ecommerce"
    shutil.copytree(ROOT / "lessons" / "apps" / "ecommerce", app)
    records = []
    for i in range(40):
        rid = f"r{i}"
        records.append(rec(reporter=Reporter.SOURCE, rid=rid, ms=9.0))  # client side: 9 ms
        records.append(rec(reporter=Reporter.DESTINATION, rid=rid, ms=7.0))  # server: 7 ms
    behavior = load_behavior(app / "behavior.yaml")
    fit = calibrate(records, behavior)
    assert fit.hop is not None and fit.hop.median_ms == 1.0 and fit.hop.samples == 40
    assert fit.service_times[("product", "GET /products")].median_ms == 7.0
    assert write_calibration(app / "behavior.yaml", fit) == 2
    again = load_behavior(app / "behavior.yaml")
    assert math.isclose(again.network.hop_latency.median.seconds, 0.001)
    product = again.service("product")
    assert product is not None
    endpoint = product.endpoint("GET", "/products")
    assert endpoint is not None and endpoint.service_time is not None
    assert math.isclose(endpoint.service_time.median.seconds, 0.007)
    v2 = product.endpoint("GET", "/products", "v2")
    assert v2 is not None and v2.service_time is not None
    assert math.isclose(v2.service_time.median.seconds, 0.0008)  # version overrides untouched
