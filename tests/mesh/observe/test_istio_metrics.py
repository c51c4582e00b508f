"""Istio's standard metrics counted from records: the labels Istio's stats filter sets, one
count per record at the reporting proxy, histograms in Envoy's default buckets, TCP connections
in the TCP counters, and an exposition Prometheus can parse."""

from __future__ import annotations

from dataclasses import replace

from mesh.observe.istio_metrics import ISTIO_LABELS, ProxyMetrics, istio_labels
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from tests.fakes import record


def server_side(r: RequestRecord) -> RequestRecord:
    return replace(
        r,
        reporter=Reporter.DESTINATION,
        upstream_cluster="inbound|8080||",
        connection_security_policy=ConnectionSecurityPolicy.MUTUAL_TLS,
    )


def test_labels_are_istios_full_set_with_its_defaults() -> None:
    labels = dict(istio_labels(record(version="v2", code=503, flags=("UO",))))
    assert tuple(dict(istio_labels(record())).keys()) == ISTIO_LABELS
    assert labels["reporter"] == "source"
    assert labels["source_workload"] == "api-gateway-v1"
    assert labels["source_canonical_service"] == "api-gateway"
    assert labels["source_canonical_revision"] == "latest"  # the fake client has no version
    assert labels["destination_canonical_revision"] == "v2"
    assert labels["destination_service"] == "product.shop.svc.cluster.local"
    assert labels["destination_service_name"] == "product"
    assert labels["destination_service_namespace"] == "shop"
    assert labels["source_principal"] == "spiffe://cluster.local/ns/shop/sa/api-gateway"
    assert labels["destination_principal"] == "unknown"
    assert labels["destination_cluster"] == "Kubernetes"
    assert labels["response_code"] == "503"
    assert labels["response_flags"] == "UO"
    assert labels["grpc_response_status"] == ""
    assert labels["connection_security_policy"] == "unknown"  # the client side never knows


def test_a_caller_outside_the_mesh_is_unknown_with_revision_latest() -> None:
    outside = replace(
        server_side(record()),
        source_workload="unknown",
        source_namespace="unknown",
        source_principal="unknown",
        source_app="unknown",
    )
    labels = dict(istio_labels(outside))
    assert labels["source_workload"] == "unknown"
    assert labels["source_canonical_service"] == "unknown"
    assert labels["source_canonical_revision"] == "latest"
    assert labels["source_cluster"] == "unknown"
    assert labels["connection_security_policy"] == "mutual_tls"


def test_each_record_counts_once_in_its_series_and_its_histograms() -> None:
    metrics = ProxyMetrics()
    for r in [record(), record(), record(version="v2"), replace(record(), duration_ms=700.0)]:
        metrics.add(r)
    text = metrics.exposition()
    v1 = [
        line
        for line in text.splitlines()
        if line.startswith("istio_requests_total{") and 'destination_version="v1"' in line
    ]
    assert len(v1) == 1 and v1[0].endswith(" 3")
    le_500 = [
        line
        for line in text.splitlines()
        if line.startswith("istio_request_duration_milliseconds_bucket")
        and 'destination_version="v1"' in line
        and 'le="500"' in line
    ]
    le_1000 = [
        line
        for line in text.splitlines()
        if line.startswith("istio_request_duration_milliseconds_bucket")
        and 'destination_version="v1"' in line
        and 'le="1000"' in line
    ]
    assert le_500[0].endswith(" 2") and le_1000[0].endswith(" 3")
    assert "# TYPE istio_request_bytes histogram" in text
    assert "# TYPE istio_response_bytes histogram" in text
    assert "istio_tcp_connections_opened_total" not in text


def test_tcp_connections_go_to_the_tcp_counters_with_their_bytes() -> None:
    tcp = replace(
        record(),
        request_protocol="tcp",
        response_code=0,
        method="",
        path="",
        bytes_sent=300,
        bytes_received=40,
    )
    metrics = ProxyMetrics()
    metrics.add(tcp)
    metrics.add(tcp)
    text = metrics.exposition()
    assert "istio_requests_total{" not in text
    assert any(
        line.startswith("istio_tcp_connections_opened_total{") and line.endswith(" 2")
        for line in text.splitlines()
    )
    assert any(
        line.startswith("istio_tcp_sent_bytes_total{") and line.endswith(" 600")
        for line in text.splitlines()
    )
    assert 'request_protocol="tcp"' in text


def test_zero_shows_a_series_at_zero_and_timestamps_stamp_every_sample() -> None:
    metrics = ProxyMetrics()
    key = metrics.add(record())
    text = metrics.exposition(extra=(("pod", "a-0"),), zero={key}, timestamp_ms=1_000)
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples and all(line.endswith(" 0 1000") for line in samples)
    assert all('pod="a-0"' in line for line in samples)


def test_label_values_are_escaped() -> None:
    weird = replace(record(), destination_service='x"y\\z')
    text = ProxyMetrics().exposition() + _one(weird)
    assert 'destination_service="x\\"y\\\\z"' in text


def _one(r: RequestRecord) -> str:
    metrics = ProxyMetrics()
    metrics.add(r)
    return metrics.exposition()
