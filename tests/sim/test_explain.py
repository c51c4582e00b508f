"""``meshplay explain``: one request's path, with the decisions that shaped it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.lesson import load_lesson
from sim.explain import explain, parse_request

LESSONS = Path(__file__).resolve().parents[2] / "lessons"


def test_parse_request_reads_method_path_and_headers() -> None:
    spec = parse_request("post /api/orders -H 'End-User: jason' -H x:1")
    assert (spec.method, spec.path, dict(spec.headers)) == (
        "POST",
        "/api/orders",
        {"end-user": "jason", "x": "1"},
    )
    with pytest.raises(ValueError, match="name: value"):
        parse_request("GET / -H broken")


def test_explain_names_the_matched_rule_and_subset() -> None:
    lesson = load_lesson(LESSONS / "03-ab-testing-by-header")
    result = explain(lesson, parse_request("GET /products -H end-user:alice"))
    text = result.render()
    assert result.response.status == 200
    assert "matched route testers" in text
    assert "virtual-service/product" in text
    assert "outbound|8080|v2|product.shop.svc.cluster.local" in text
    assert "product-v2-0" in text


def test_explain_gives_the_chain_of_causes_of_a_timeout() -> None:
    lesson = load_lesson(LESSONS / "05-request-timeouts")
    result = explain(lesson, parse_request("GET /products"), step=2)
    text = result.render()
    assert (result.response.status, result.response.flags) == (504, ("UT",))
    assert "UT (UpstreamRequestTimeout)" in text
    assert "route timeout expired" in text
    assert "0 DC (DownstreamConnectionTermination)" in text


def test_explain_follows_a_tcp_connection_to_the_passthrough_cluster() -> None:
    import dataclasses

    from mesh.lesson import TrafficSpec

    lesson = load_lesson(LESSONS / "01-request-routing")
    step = dataclasses.replace(
        lesson.steps[0],
        traffic=TrafficSpec(from_="order", to="203.0.113.9:5555", protocol="tcp", send_bytes=9),
    )
    lesson = dataclasses.replace(lesson, spec=dataclasses.replace(lesson.spec, steps=(step,)))
    result = explain(lesson, parse_request("GET /"))
    text = result.render()
    assert result.response.upstream_cluster == "PassthroughCluster"
    assert "listener virtualOutbound, filter chain virtualOutbound-catchall-tcp" in text
    assert "to the original destination 203.0.113.9:5555" in text
    assert text.startswith("TCP 9 bytes")


def test_explain_names_the_inbound_chain_and_the_filter_that_answered() -> None:
    lesson = load_lesson(LESSONS / "12-http-authorization")
    result = explain(lesson, parse_request("POST /products/grinder/release"), source="order")
    text = result.render()
    assert result.response.status == 403
    assert "listener virtualInbound, filter chain 0.0.0.0_8080 [Trans: tls" in text
    assert "route config 'inbound|8080||'" in text
    assert "HTTP filter envoy.filters.http.rbac answered 403" in text
    assert "ns[shop]-policy[deny-release]-rule[0]" in text
    assert (
        "listener 0.0.0.0_8080, filter chain #0 [Trans: raw_buffer; App: http/1.1,h2c]"
        " -> route config '8080'" in text
    )
