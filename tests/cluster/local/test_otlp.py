"""OTLP trace exports read into Zipkin v2 spans: the protobuf Envoy's OpenTelemetry tracer posts
and the OTLP/JSON ``meshplay traces --export otlp`` writes (read back to the same spans)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from cluster.local.collector import SpanStore, answer, read_spans_file
from cluster.local.otlp import OtlpError, spans_from_otlp_json, spans_from_otlp_protobuf
from mesh.observe.spans import span_from_json, spans_from_records, to_otlp
from tests.mesh.observe.test_spans import hop


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fixed64(number: int, value: int) -> bytes:
    return _varint(number << 3 | 1) + value.to_bytes(8, "little")


def _num(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _attr(key: str, value: bytes) -> bytes:
    return _len(1, key.encode()) + _len(2, value)


def test_a_protobuf_export_is_read_into_zipkin_spans() -> None:
    trace, span, parent = bytes(range(16)), bytes(range(8)), bytes(range(8, 16))
    otel_span = b"".join(
        (
            _len(1, trace),
            _len(2, span),
            _len(4, parent),
            _len(5, b"product.shop.svc.cluster.local:8080/*"),
            _num(6, 3),  # SPAN_KIND_CLIENT
            _fixed64(7, 1_700_000_000_000_000_000),
            _fixed64(8, 1_700_000_000_002_500_000),
            _len(9, _attr("http.status_code", _len(1, b"503"))),
            _len(9, _attr("retries", _num(3, (1 << 64) - 2))),  # int64 -2
            _len(9, _attr("sampled", _num(2, 1))),
            _len(9, _attr("ratio", _varint(4 << 3 | 1) + struct.pack("<d", 0.25))),
            _len(77, b"an unknown field"),
            _len(15, _num(3, 2)),  # status ERROR
        )
    )
    resource = _len(1, _attr("service.name", _len(1, b"api-gateway-v1.shop")))
    body = _len(1, _len(1, resource) + _len(2, _len(1, b"scope") + _len(2, otel_span)))
    (got,) = spans_from_otlp_protobuf(body)
    assert got == {
        "traceId": trace.hex(),
        "id": span.hex(),
        "parentId": parent.hex(),
        "name": "product.shop.svc.cluster.local:8080/*",
        "kind": "CLIENT",
        "timestamp": 1_700_000_000_000_000,
        "duration": 2500,
        "localEndpoint": {"serviceName": "api-gateway-v1.shop"},
        "tags": {
            "http.status_code": "503",
            "retries": "-2",
            "sampled": "true",
            "ratio": "0.25",
            "error": "true",
        },
    }
    with pytest.raises(OtlpError):
        spans_from_otlp_protobuf(body[:-3])  # cut short


def test_otlp_json_export_reads_back_to_the_same_spans() -> None:
    records = hop("frontend", "api-gateway", 0.0, 12.0) + hop(
        "api-gateway", "product", 0.002, 5.0, 503
    )
    spans = spans_from_records(records, epoch=1_700_000_000.0)
    assert len(spans) == 4 and any(s.error for s in spans)
    back = [span_from_json(s) for s in spans_from_otlp_json(to_otlp(spans))]
    assert sorted(back, key=lambda s: s.id) == sorted(spans, key=lambda s: s.id)


def test_the_collector_stores_otlp_posts_as_zipkin_spans(tmp_path: Path) -> None:
    store = SpanStore(tmp_path / "spans.jsonl")
    spans = spans_from_records(hop("api-gateway", "product", 0.0, 5.0), epoch=1_700_000_000.0)
    body = json.dumps(to_otlp(spans)).encode()
    assert answer(store, "POST", "/v1/traces", body, "application/json") == (200, {})
    assert answer(store, "POST", "/v1/traces", b"\xff\xff", "application/x-protobuf")[0] == 400
    stored = [span_from_json(s) for s in read_spans_file(tmp_path / "spans.jsonl")]
    assert sorted(stored, key=lambda s: s.id) == sorted(spans, key=lambda s: s.id)
    counted = {"count": len(spans), "batches": {"otlp-json": 1}}  # the refused one is not counted
    assert answer(store, "GET", "/api/v2/spans/count", b"") == (200, counted)
