"""The dashboard's signals: per service and per second, requests, error ratio and latency
percentiles of the requests as their callers saw them, whatever order batches arrive in."""

from __future__ import annotations

import math
from dataclasses import replace

from mesh.observe.dashboard import Dashboard, sparkline
from mesh.records import Reporter
from tests.fakes import record


def test_signals_per_service_per_second() -> None:
    late = [
        replace(record(start=2.2 + i / 10, code=500 if i < 5 else 200), duration_ms=40.0)
        for i in range(10)
    ]
    early = [record(start=0.1 * i) for i in range(10)]
    server_copy = [replace(r, reporter=Reporter.DESTINATION) for r in early]  # counted once
    dashboard = Dashboard()
    dashboard.add(late)
    dashboard.add([*early, *server_copy, record(start=0.5, service="user")])
    product, user = dashboard.signals()
    assert product.service == "product" and user.service == "user"
    assert product.rate == (10.0, 0.0, 8.0, 2.0)
    assert product.errors[0] == 0.0 and math.isnan(product.errors[1]) and product.errors[2] == 5 / 8
    assert product.p99[0] == 2.0 and product.p50[2] == 40.0
    assert product.requests == 20 and product.error_ratio == 0.25
    assert product.rps == 8.0  # the last complete second
    assert user.rate == (1.0, 0.0, 0.0, 0.0)


def test_sparklines_scale_and_show_gaps() -> None:
    assert sparkline([0, 1, 2, 4], 4) == "▁▃▅█"
    assert sparkline([0.5, math.nan], 4, top=1.0) == "  ▅ "
    assert sparkline([], 3) == "   "
