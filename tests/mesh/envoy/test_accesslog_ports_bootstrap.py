"""The access-log format and its inverse, PortMap addressing, and the file-xDS bootstrap."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mesh.envoy import PodPorts, PortMap, TranslateOptions, translate
from mesh.envoy.accesslog import (
    LogIdentity,
    json_format,
    record_from_access_log,
    tcp_json_format,
)
from mesh.model import FrozenMap
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from mesh.source import load_paths
from mesh.topology import build_topology

TESTDATA = Path(__file__).parent / "testdata"
ENVOY = Path(sys.executable).parent / "envoy"
ME = LogIdentity(
    "frontend-v1", "shop", "frontend", "v1", "spiffe://cluster.local/ns/shop/sa/frontend"
)

# What Envoy's command operators evaluate to for one request (as a JSON log line types them).
OPERATORS: dict[str, Any] = {
    "%START_TIME%": "2026-11-25T10:00:01.500Z",
    "%DURATION%": 12,
    "%COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%": 12345,
    "%ROUTE_NAME%": "canary",
    "%UPSTREAM_CLUSTER_RAW%": "outbound|8080|v2|product.shop.svc.cluster.local",
    "%UPSTREAM_HOST%": "127.10.0.3:8080",
    "%REQ(:METHOD)%": "POST",
    "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%": "/api/products?id=1",
    "%REQ(:AUTHORITY)%": "product:8080",
    "%RESPONSE_CODE%": 503,
    "%RESPONSE_FLAGS%": "UF,URX",
    "%RESPONSE_CODE_DETAILS%": "upstream_reset_before_response_started{connection_failure}",
    "%UPSTREAM_REQUEST_ATTEMPT_COUNT%": 3,
    "%BYTES_RECEIVED%": 10,
    "%BYTES_SENT%": 91,
    "%REQ(X-REQUEST-ID)%": "7e1f0c2a-1111-4222-8333-944455556666",
    "%REQ(X-B3-TRACEID)%": None,
    "%REQ(TRACEPARENT)%": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "%UPSTREAM_METADATA(istio:workload)%": "product-v2;shop;product;v2;Kubernetes",
    "%UPSTREAM_PEER_URI_SAN%": None,
    "%REQ(X-MESHPLAY-SOURCE-WORKLOAD)%": "frontend-v1",
    "%REQ(X-MESHPLAY-SOURCE-NAMESPACE)%": "shop",
    "%REQ(X-MESHPLAY-SOURCE-APP)%": "frontend",
    "%REQ(X-MESHPLAY-SOURCE-VERSION)%": "v1",
    "%DOWNSTREAM_PEER_URI_SAN%": "spiffe://cluster.local/ns/shop/sa/frontend",
    "%DOWNSTREAM_LOCAL_URI_SAN%": "spiffe://cluster.local/ns/shop/sa/product",
    "%DOWNSTREAM_TLS_VERSION%": "TLSv1.3",
    "%CONNECTION_TERMINATION_DETAILS%": None,
    "%REQ(END-USER)%": "jason",
    "%REQ(USER-AGENT)%": None,
}


def envoy_line(fmt: dict[str, str]) -> dict[str, Any]:
    """What Envoy writes for ``fmt``: operators replaced, literal strings kept."""
    return {key: OPERATORS.get(value, value) for key, value in fmt.items()}


def test_every_request_record_field_comes_back_from_a_source_log_line() -> None:
    record = record_from_access_log(
        envoy_line(json_format(Reporter.SOURCE, ME)),
        run_started_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC).timestamp(),
    )
    assert record == RequestRecord(
        start_time=1.5,
        duration_ms=12.345,
        reporter=Reporter.SOURCE,
        source_workload="frontend-v1",
        source_namespace="shop",
        source_principal="cluster.local/ns/shop/sa/frontend",
        source_app="frontend",
        source_version="v1",
        destination_service="product.shop.svc.cluster.local",
        destination_workload="product-v2",
        destination_namespace="shop",
        destination_app="product",
        destination_version="v2",
        destination_principal="unknown",
        route_name="canary",
        upstream_cluster="outbound|8080|v2|product.shop.svc.cluster.local",
        upstream_host="127.10.0.3:8080",
        method="POST",
        path="/api/products?id=1",
        authority="product:8080",
        response_code=503,
        response_flags=("UF", "URX"),
        attempts=3,
        bytes_received=10,
        bytes_sent=91,
        request_id="7e1f0c2a-1111-4222-8333-944455556666",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        connection_security_policy=ConnectionSecurityPolicy.UNKNOWN,
        response_code_details="upstream_reset_before_response_started{connection_failure}",
        request_headers=(("end-user", "jason"),),
    )


def test_a_tcp_log_line_becomes_a_tcp_record_without_method_path_or_status() -> None:
    line = envoy_line(tcp_json_format(Reporter.SOURCE, ME))
    assert not any(k in line for k in ("method", "path", "response_code", "attempts"))
    record = record_from_access_log(line)
    assert (record.request_protocol, record.method, record.path) == ("tcp", "", "")
    assert (record.response_code, record.attempts, record.duration_ms) == (0, 1, 12.0)
    assert (record.bytes_received, record.bytes_sent) == (10, 91)
    assert record.upstream_cluster == "outbound|8080|v2|product.shop.svc.cluster.local"
    assert record.destination_service == "product.shop.svc.cluster.local"
    assert record.response_flags == ("UF", "URX") and not record.ok
    # network RBAC writes why it closed the connection into the termination details
    denied = {**line, "connection_termination_details": "rbac_access_denied_matched_policy[ns]"}
    assert record_from_access_log(denied).response_code_details == (
        "rbac_access_denied_matched_policy[ns]"
    )


def test_a_tcp_destination_line_has_the_peer_principal_and_the_served_service() -> None:
    me = LogIdentity("db-v1", "shop", "db", "v1", "spiffe://cluster.local/ns/shop/sa/db")
    line = envoy_line(tcp_json_format(Reporter.DESTINATION, me, "db.shop.svc.cluster.local"))
    record = record_from_access_log(line)
    assert record.reporter is Reporter.DESTINATION and record.is_tcp
    assert record.destination_service == "db.shop.svc.cluster.local"
    assert record.destination_workload == "db-v1"
    assert record.source_principal == "cluster.local/ns/shop/sa/frontend"
    assert record.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS


def test_an_http_line_without_request_protocol_stays_http() -> None:
    record = record_from_access_log(envoy_line(json_format(Reporter.SOURCE, ME)))
    assert (record.request_protocol, record.method) == ("http", "POST")


def test_durations_are_microseconds_with_whole_milliseconds_as_the_fallback() -> None:
    # %DURATION% is whole ms: a 0.6 ms hop logs 0 or 1; COMMON_DURATION(...:us) keeps 0.6 ms.
    # Without a last downstream byte (the client went away) Envoy writes null for it.
    line = envoy_line(json_format(Reporter.SOURCE, ME))
    assert record_from_access_log({**line, "duration_us": 612}).duration_ms == 0.612
    assert record_from_access_log({**line, "duration_us": None}).duration_ms == 12.0


def test_start_times_are_microseconds_when_the_line_has_start_us() -> None:
    # %START_TIME% is whole ms; the local runner's start_us (%START_TIME(%s.%6f)%) is not, and
    # a caller's start truncated to ms can end before the call it made.
    line = envoy_line(json_format(Reporter.SOURCE, ME))
    line = {**line, "start_time": "2026-12-05T08:00:00.123Z"}
    coarse = record_from_access_log(line)
    fine = record_from_access_log({**line, "start_us": "1796457600.123456"})
    assert coarse.start_time == pytest.approx(1796457600.123, abs=1e-6)
    assert fine.start_time == pytest.approx(1796457600.123456, abs=1e-6)
    assert record_from_access_log({**line, "start_us": None}).start_time == coarse.start_time


def test_destination_log_line_carries_the_caller_and_mtls() -> None:
    me = LogIdentity(
        "product-v2", "shop", "product", "v2", "spiffe://cluster.local/ns/shop/sa/product"
    )
    fmt = json_format(Reporter.DESTINATION, me, "product.shop.svc.cluster.local")
    record = record_from_access_log(envoy_line(fmt))
    assert record.reporter is Reporter.DESTINATION
    assert (record.source_workload, record.source_app) == ("frontend-v1", "frontend")
    assert record.source_principal == "cluster.local/ns/shop/sa/frontend"
    assert (record.destination_workload, record.destination_version) == ("product-v2", "v2")
    assert record.destination_service == "product.shop.svc.cluster.local"
    assert record.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS


def test_missing_values_become_unknown_or_empty() -> None:
    fmt = json_format(Reporter.DESTINATION, ME, "frontend.shop.svc.cluster.local")
    line = {k: (None if v.startswith("%") else v) for k, v in fmt.items()}
    record = record_from_access_log(line)
    assert record.source_workload == RequestRecord.UNKNOWN
    assert record.connection_security_policy is ConnectionSecurityPolicy.NONE
    assert (record.response_code, record.response_flags, record.attempts) == (0, (), 1)


def _case_config(case: str, options: TranslateOptions) -> Any:
    loaded = load_paths([TESTDATA / "base.yaml", TESTDATA / case / "input.yaml"])
    topology = build_topology(loaded.resources, include_istio_system=False)
    return translate(loaded.resources, topology, options)


def test_port_map_moves_sockets_but_not_semantics() -> None:
    plain = _case_config("weights", TranslateOptions())
    port_map = PortMap.of(
        {
            "frontend-v1-0": PodPorts(
                listeners=FrozenMap({8080: 41001}),
                inbound=FrozenMap({8080: 41002}),
                app=FrozenMap({8080: 41003}),
            ),
            "product-v2-0": PodPorts(
                inbound=FrozenMap({8080: 41012}), app=FrozenMap({8080: 41013})
            ),
        }
    )
    local = _case_config("weights", TranslateOptions(port_map=port_map))
    front, front_plain = local["frontend-v1-0"], plain["frontend-v1-0"]
    assert front.routes == front_plain.routes
    assert [c["name"] for c in front.clusters] == [c["name"] for c in front_plain.clusters]
    out = front.listener("0.0.0.0_8080")
    assert out is not None and out["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 41001,
    }
    assert "bind_to_port" not in out
    unmapped = front.listener("0.0.0.0_9080")
    assert unmapped is not None and unmapped["bind_to_port"] is False
    inbound = front.listener("virtualInbound")
    assert inbound is not None and inbound["address"]["socket_address"]["port_value"] == 41002
    chain = next(c for c in inbound["filter_chains"] if c["name"] == "0.0.0.0_8080")
    assert chain["filter_chain_match"]["destination_port"] == 41002
    app = front.cluster("inbound|8080||")
    assert app is not None
    assert app["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 41003}
    }
    v2 = front.load_assignment("outbound|8080|v2|product.shop.svc.cluster.local")
    assert v2 is not None
    sock = v2["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert sock == {"address": "127.0.0.1", "port_value": 41012}  # product-v2's sidecar


def test_without_port_map_sidecar_listeners_are_istio_shaped() -> None:
    front = _case_config("default-routing", TranslateOptions())["frontend-v1-0"]
    listeners = {x["name"]: x for x in front.listeners}
    assert set(listeners) == {"0.0.0.0_8080", "0.0.0.0_9080", "virtualInbound", "virtualOutbound"}
    assert listeners["0.0.0.0_8080"]["bind_to_port"] is False
    assert listeners["virtualOutbound"]["address"]["socket_address"]["port_value"] == 15001
    assert listeners["virtualInbound"]["address"]["socket_address"]["port_value"] == 15006
    assert all(x["enable_reuse_port"] is False for x in front.listeners)
    assert front.node == {"cluster": "frontend-v1.shop", "id": front.pod.proxy_id}


def test_access_log_path_is_per_pod() -> None:
    config = _case_config(
        "default-routing", TranslateOptions(access_log_path="/logs/{namespace}/{pod}.log")
    )
    hcm = config["product-v2-0"].listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["access_log"][0]["typed_config"]["path"] == "/logs/shop/product-v2-0.log"


def test_a_no_cluster_line_names_the_host_on_a_sidecar_and_unknown_on_a_gateway() -> None:
    """404 NR (no route, so no upstream cluster): Istio's sidecar outbound stats fall back to the
    Host header as sent; gateways (disable_host_header_fallback) report ``unknown``. The
    sidecar's format says so with a literal key; the gateway's has none."""
    no_cluster = {"%UPSTREAM_CLUSTER_RAW%": None, "%ROUTE_NAME%": None, "%RESPONSE_CODE%": 404,
                  "%RESPONSE_FLAGS%": "NR", "%REQ(:AUTHORITY)%": "reviews:9080"}  # fmt: skip

    def parsed(fmt: dict[str, str]) -> RequestRecord:
        line = {k: no_cluster.get(v, OPERATORS.get(v, v)) for k, v in fmt.items()}
        return record_from_access_log(line)

    sidecar = parsed(json_format(Reporter.SOURCE, ME, host_fallback=True))
    gateway = parsed(json_format(Reporter.SOURCE, ME))
    assert (sidecar.response_code, sidecar.upstream_cluster) == (404, "")
    assert sidecar.destination_service == "reviews:9080"
    assert gateway.destination_service == "unknown"
    # a line with a cluster keeps the cluster's service
    with_cluster = record_from_access_log(
        envoy_line(json_format(Reporter.SOURCE, ME, host_fallback=True))
    )
    assert with_cluster.destination_service == "product.shop.svc.cluster.local"
