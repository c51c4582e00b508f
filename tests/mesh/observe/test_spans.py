"""Spans derived from records have the parent links Envoy's tracer gives real spans: the
server span of a hop under its client span, a client span under the server span of the call
its app was serving, retries as sibling server spans; names are the routes' decorators."""

from __future__ import annotations

from dataclasses import replace

from mesh.lesson import load_lesson
from mesh.observe.spans import span_from_json, spans_from_records, to_otlp
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from mesh.runner import RunOptions
from sim import SimRunner
from tests.fakes import record

TRACE = "0123456789abcdef0123456789abcdef"


def hop(client: str, service: str, start: float, ms: float, code: int = 200) -> list[RequestRecord]:
    """The client sidecar's record and the server sidecar's record of one call."""
    out = record(client=client, service=service, start=start, code=code)
    out = replace(
        out, duration_ms=ms, trace_id=TRACE, request_id="rid", source_workload=f"{client}-v1"
    )
    server = replace(
        out,
        reporter=Reporter.DESTINATION,
        start_time=start + 0.0005,
        duration_ms=ms - 1,
        upstream_cluster="inbound|8080||",
        connection_security_policy=ConnectionSecurityPolicy.MUTUAL_TLS,
    )
    return [out, server]


def test_one_request_tree_links_every_hop() -> None:
    entry = replace(hop("outside", "api-gateway", 0.0, 30.0)[1], source_workload="unknown")
    calls = hop("api-gateway", "product", 0.005, 10.0) + hop("api-gateway", "order", 0.016, 8.0)
    spans = {(s.kind, s.name): s for s in spans_from_records([entry, *calls], epoch=100.0)}
    root = spans[("SERVER", "api-gateway.shop.svc.cluster.local:8080/*")]
    to_product = spans[("CLIENT", "product.shop.svc.cluster.local:8080/*")]
    at_product = spans[("SERVER", "product.shop.svc.cluster.local:8080/*")]
    at_order = spans[("SERVER", "order.shop.svc.cluster.local:8080/*")]
    assert root.parent_id == ""
    assert to_product.parent_id == root.id
    assert at_product.parent_id == to_product.id
    assert spans[("CLIENT", "order.shop.svc.cluster.local:8080/*")].parent_id == root.id
    assert at_order.parent_id != at_product.parent_id
    assert root.timestamp_us == 100_000_500 and root.duration_us == 29_000
    assert root.service == "api-gateway-v1.shop" and to_product.service == "api-gateway-v1.shop"
    assert len({s.trace_id for s in spans.values()}) == 1


def test_retries_are_sibling_server_spans_under_one_client_span() -> None:
    client, first = hop("api-gateway", "product", 0.0, 40.0, code=200)
    second = replace(first, start_time=0.02)
    failed = replace(first, response_code=503, duration_ms=2.0)
    spans = spans_from_records([client, failed, second])
    servers = [s for s in spans if s.kind == "SERVER"]
    (client_span,) = [s for s in spans if s.kind == "CLIENT"]
    assert len(servers) == 2 and {s.parent_id for s in servers} == {client_span.id}
    assert any(s.error for s in servers)


def test_spans_round_trip_through_zipkin_json_and_render_as_otlp() -> None:
    spans = spans_from_records(hop("api-gateway", "product", 0.0, 5.0))
    assert [span_from_json(s.to_json()) for s in spans] == spans
    otlp = to_otlp(spans)
    names = [r["resource"]["attributes"][0]["value"]["stringValue"] for r in otlp["resourceSpans"]]
    assert names == ["api-gateway-v1.shop", "product-v1.shop"]
    child = otlp["resourceSpans"][1]["scopeSpans"][0]["spans"][0]
    assert child["parentSpanId"] == spans[0].id and child["kind"] == 2


def test_a_simulated_run_gives_connected_trees_with_stable_ids() -> None:
    lesson = load_lesson("lessons/01-request-routing")
    run = SimRunner().run(lesson, RunOptions(seed=3, until_step=1))
    spans = spans_from_records(run.records)
    assert spans == spans_from_records(run.records)  # seeded: the same spans every time
    by_trace: dict[str, list[str]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, []).append(s.parent_id)
    # outside -> api-gateway -> product: one root and two linked spans per request
    assert all(parents.count("") == 1 and len(parents) == 3 for parents in by_trace.values())
    ids = {s.id for s in spans}
    assert all(s.parent_id in ids for s in spans if s.parent_id)
