"""``meshplay logs``' timeline: access-log lines of every proxy and app-log lines merged in time
order; one request's lines chosen by request id (whatever Envoy wrote into its version digit)
with the app lines logged on its pods while it was there."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

from cluster.local.logs import MeshLogs, same_request, select

RID = "00000000-0000-4000-8000-000000000007"


def entry(start: str, rid: str, reporter: str, workload: str) -> str:
    return (
        json.dumps(
            {
                "start_time": start,
                "duration_us": 30000,
                "reporter": reporter,
                "source_workload": "api-gateway-v1",
                "request_id": rid,
                "destination_workload": f"{workload};shop;x;v1;Kubernetes",
                "upstream_cluster": "outbound|8080||product.shop.svc.cluster.local",
                "method": "GET",
                "path": "/products",
                "response_code": 500,
            }
        )
        + "\n"
    )


def test_one_requests_lines_across_pods_with_its_apps_lines(tmp_path: Path) -> None:
    (tmp_path / "access").mkdir()
    (tmp_path / "logs").mkdir()
    sampled = RID[:14] + "9" + RID[15:]
    (tmp_path / "access" / "api-gateway-v1-0.log").write_text(
        entry("2026-01-01T00:00:00.000Z", sampled, "source", "product-v1")
        + entry("2026-01-01T00:00:01.000Z", "other", "source", "product-v1")
    )
    (tmp_path / "access" / "product-v1-0.log").write_text(
        entry("2026-01-01T00:00:00.002Z", sampled, "destination", "product-v1")
    )
    from datetime import datetime

    local = datetime(2026, 1, 1, tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    (tmp_path / "logs" / "app-product-v1-0.log").write_text(
        f"{local},010 product-v1 ERROR unhandled error on GET /products\n"
        "Traceback (most recent call last):\n"
        f"{local},900 product-v1 INFO later, another request\n"
    )
    logs = MeshLogs.of_workdir(tmp_path, ["api-gateway-v1-0", "product-v1-0"])
    lines = logs.read()
    assert [line.time for line in lines] == sorted(line.time for line in lines)
    assert len(lines) == 6
    mine = select(lines, request_id=RID)
    assert [(line.pod, line.source) for line in mine] == [
        ("api-gateway-v1-0", "envoy"),
        ("product-v1-0", "envoy"),
        ("product-v1-0", "app"),
        ("product-v1-0", "app"),
    ]
    assert "unhandled error" in mine[2].text and mine[3].text.startswith("Traceback")
    assert select(lines, proxy="product") == [line for line in lines if line.pod == "product-v1-0"]
    assert logs.read() == []  # nothing new


def test_request_ids_match_whatever_the_version_digit() -> None:
    assert same_request(RID, RID[:14] + "9" + RID[15:])
    assert not same_request(RID, RID[:20] + "9" + RID[21:])
    assert same_request("custom-id", "custom-id") and not same_request("a", "b")
