"""The local mesh's exporter and trace collector, as Prometheus and Envoy talk to them.

Exporter: a scrape of ``/metrics/<pod>`` counts what that proxy logged since the last scrape;
a new series is shown at 0 once, then with its count; samples are stamped on whole seconds.
Collector: Envoy's chunked ``POST /api/v2/spans`` is stored and read back through Zipkin's API.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.local.collector import SpanStore, read_new_spans, read_spans_file
from cluster.local.collector import serve as serve_collector
from cluster.local.exporter import ProxyTarget
from cluster.local.exporter import serve as serve_exporter
from cluster.local.ports import free_ports

LINE = {
    "start_time": "2026-01-01T00:00:00.000Z",
    "duration_us": 2500,
    "reporter": "source",
    "source_workload": "api-gateway-v1",
    "source_namespace": "shop",
    "source_app": "api-gateway",
    "source_version": "v1",
    "destination_workload": "product-v2;shop;product;v2;Kubernetes",
    "upstream_cluster": "outbound|8080||product.shop.svc.cluster.local",
    "method": "GET",
    "path": "/products",
    "response_code": 200,
    "response_flags": "-",
    "bytes_sent": 120,
}


def requests_total(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("istio_requests_total{")]


def test_a_scrape_counts_the_log_since_the_last_one(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(json.dumps(LINE) + "\n" + json.dumps(LINE) + "\n")
    target = ProxyTarget("api-gateway-v1-0", log)
    (first,) = requests_total(target.scrape(now=100.7))
    assert 'destination_version="v2"' in first and 'destination_service_name="product"' in first
    assert first.endswith(" 0 100000")  # new: shown at 0, stamped on the whole second
    (second,) = requests_total(target.scrape(now=101.2))
    assert second.endswith(" 2 101000")
    with log.open("a") as fh:
        fh.write(json.dumps({**LINE, "response_code": 503}) + "\n" + json.dumps(LINE)[:40])
    lines = requests_total(target.scrape(now=102.0))
    # the 503 is a new series (0); the half-written line waits for its end
    assert [line.rsplit(" ", 2)[1] for line in lines] == ["2", "0"]
    assert 'response_code="503"' in lines[1]
    with log.open("a") as fh:
        fh.write(json.dumps(LINE)[40:] + "\n")
    lines = requests_total(target.scrape(now=103.0))
    assert [line.rsplit(" ", 2)[1] for line in lines] == ["3", "1"]


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "a.log"
    log.write_text(json.dumps(LINE) + "\n")
    (port,) = free_ports(1)
    server = serve_exporter(port, [ProxyTarget("a-0", log)])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_exporter_serves_one_target_per_proxy(exporter: str) -> None:
    code, text = _get(f"{exporter}/metrics/a-0")
    assert code == 200 and "# TYPE istio_requests_total counter" in text
    code, text = _get(f"{exporter}/metrics/nobody")
    assert code == 404 and "a-0" in text


def test_the_collector_takes_chunked_posts_and_answers_zipkins_api(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    store = SpanStore(tmp_path / "spans.jsonl")
    server = serve_collector(port, store)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spans = [
            {
                "traceId": "ab" * 16,
                "id": "1" * 16,
                "kind": "SERVER",
                "name": "x",
                "localEndpoint": {"serviceName": "api-gateway-v1.shop"},
            },
            {
                "traceId": "ab" * 16,
                "id": "2" * 16,
                "parentId": "1" * 16,
                "kind": "CLIENT",
                "name": "y",
                "localEndpoint": {"serviceName": "api-gateway-v1.shop"},
            },
        ]
        body = json.dumps(spans).encode()
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 50]), body[i : i + 50])
            for i in range(0, len(body), 50)
        )
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.putrequest("POST", "/api/v2/spans")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(chunks + b"0\r\n\r\n")
        assert conn.getresponse().status == 202
        conn.close()
        base = f"http://127.0.0.1:{port}"
        assert json.loads(_get(f"{base}/api/v2/services")[1]) == ["api-gateway-v1.shop"]
        (trace,) = json.loads(_get(f"{base}/api/v2/traces?limit=5")[1])
        assert [s["id"] for s in trace] == ["1" * 16, "2" * 16]
        counted = {"count": 2, "batches": {"zipkin": 1}}
        assert json.loads(_get(f"{base}/api/v2/spans/count")[1]) == counted
        assert _get(f"{base}/api/v2/trace/{'cd' * 16}")[0] == 404
        assert len(json.loads(_get(f"{base}/api/v2/trace/{'ab' * 16}")[1])) == 2
        assert read_spans_file(tmp_path / "spans.jsonl") == spans
    finally:
        server.shutdown()
        server.server_close()


def test_the_fast_path_counts_what_the_records_would() -> None:
    """Labels looked up by the access-log fields they come from equal the labels of the parsed
    record, whatever varies between lines."""
    from mesh.envoy.accesslog import record_from_access_log
    from mesh.observe.istio_metrics import ProxyMetrics

    variants = [
        LINE,
        {**LINE, "response_code": 503, "response_flags": "UO"},
        {
            **LINE,
            "reporter": "destination",
            "upstream_cluster": "inbound|8080||",
            "destination_service": "product.shop.svc.cluster.local",
            "connection_security_policy": "TLSv1.3",
            "source_principal": "spiffe://cluster.local/ns/shop/sa/api-gateway",
        },
        {**LINE, "destination_workload": None, "upstream_cluster": "PassthroughCluster"},
        {**LINE, "request_protocol": "tcp", "method": None, "bytes_received": 10},
        {**LINE, "duration_us": None, "duration_ms": 7},
    ]
    target = ProxyTarget("p", Path("/nonexistent"))
    slow = ProxyMetrics()
    for entry in variants * 3:
        target._count(dict(entry))
        slow.add(record_from_access_log(entry))
    assert target.metrics.exposition() == slow.exposition()
    assert len(target.labels) == len(variants) - 1  # the last differs in duration only


def test_new_spans_are_read_batch_by_batch_and_a_half_written_batch_waits(tmp_path: Path) -> None:
    """What a step hands the traces view: the spans stored since the last step's, whole lines
    only (the collector may be writing the next batch)."""
    store = SpanStore(tmp_path / "spans.jsonl")
    one = {"traceId": "ab" * 16, "id": "1" * 16, "kind": "SERVER", "timestamp": 5}
    two = {"traceId": "cd" * 16, "id": "2" * 16, "kind": "CLIENT", "timestamp": 9}
    store.add([one])
    spans, offset = read_new_spans(tmp_path / "spans.jsonl", 0)
    assert [s.id for s in spans] == ["1" * 16] and spans[0].timestamp_us == 5
    store.add([two])
    with (tmp_path / "spans.jsonl").open("ab") as f:
        f.write(b'[{"traceId": "ef')  # a batch being written
    spans, offset2 = read_new_spans(tmp_path / "spans.jsonl", offset)
    assert [s.id for s in spans] == ["2" * 16] and spans[0].kind == "CLIENT"
    assert read_new_spans(tmp_path / "spans.jsonl", offset2) == ([], offset2)
    assert read_new_spans(tmp_path / "missing.jsonl", 0) == ([], 0)
