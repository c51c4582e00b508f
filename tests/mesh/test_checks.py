"""Expectations measure the same way on every runner: shares, rates, latencies over records."""

from __future__ import annotations

import math

from mesh.checks import Verdict, evaluate
from mesh.lesson import Expectation, Selector
from mesh.metrics import edge_stats, percentile, prometheus_text
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord


def _rec(
    version: str, code: int = 200, *, reporter: Reporter = Reporter.SOURCE, source: str = "api-gateway",
    flags: tuple[str, ...] = (), duration: float = 10.0, path: str = "/products",
) -> RequestRecord:  # fmt: skip
    return RequestRecord(
        start_time=0.0,
        duration_ms=duration,
        reporter=reporter,
        source_workload=f"{source}-v1" if source != "unknown" else "unknown",
        source_namespace="shop",
        source_principal="",
        source_app=source if source != "unknown" else "",
        destination_service="product.shop.svc.cluster.local",
        destination_workload=f"product-{version}",
        destination_namespace="shop",
        destination_version=version,
        upstream_cluster=f"outbound|8080|{version}|product.shop.svc.cluster.local",
        path=path,
        response_code=code,
        response_flags=flags,
        connection_security_policy=ConnectionSecurityPolicy.MUTUAL_TLS,
    )


RECORDS = [_rec("v1")] * 90 + [_rec("v2")] * 8 + [_rec("v2", 503, flags=("UO",))] * 2


def test_share_counts_where_requests_landed() -> None:
    exp = Expectation(
        share=Selector(edge="api-gateway->product", version="v2"), between=(0.07, 0.13)
    )
    result = evaluate(exp, RECORDS, 10.0)
    assert math.isclose(result.value, 0.10)
    assert result.samples == 100
    assert result.verdict is Verdict.PASS


def test_subset_share_reads_the_cluster_name() -> None:
    exp = Expectation(share=Selector(service="product", subset="v1"), at_least=0.95)
    result = evaluate(exp, RECORDS, 10.0)
    assert math.isclose(result.value, 0.90)
    assert result.verdict is Verdict.FAIL


def test_rate_of_a_flag_and_success_rate() -> None:
    uo = evaluate(
        Expectation(rate=Selector(service="product", flag="UO"), at_most=0.05), RECORDS, 10
    )
    assert math.isclose(uo.value, 0.02) and uo.passed
    ok = evaluate(Expectation(success_rate=Selector(service="product"), at_least=0.99), RECORDS, 10)
    assert math.isclose(ok.value, 0.98) and not ok.passed


def test_outside_clients_are_measured_on_the_server_side() -> None:
    """A client outside the mesh has no sidecar: its requests exist only as destination records."""
    records = [_rec("v1", reporter=Reporter.DESTINATION, source="unknown")] * 5 + [_rec("v1")] * 7
    exp = Expectation(count=Selector(edge="outside->product"), equals=5)
    assert evaluate(exp, records, 1.0).passed


def test_no_matching_requests_is_no_data_not_a_pass() -> None:
    exp = Expectation(success_rate=Selector(edge="frontend->product"), at_least=0.0)
    assert evaluate(exp, RECORDS, 10.0).verdict is Verdict.NO_DATA


def test_latency_percentiles_and_edge_table() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    rows = edge_stats(RECORDS, 10.0)
    assert [r.name for r in rows] == ["api-gateway->product"]
    assert rows[0].rps == 10.0
    assert dict(rows[0].versions) == {"v1": 90, "v2": 10}
    assert dict(rows[0].flags) == {"UO": 2}
    assert rows[0].mtls == 1.0


def test_prometheus_text_uses_istio_names_and_labels() -> None:
    text = prometheus_text(RECORDS[:1])
    assert 'istio_requests_total{reporter="source",' in text
    assert 'destination_version="v1"' in text and 'response_code="200"' in text
    assert "istio_request_duration_milliseconds_bucket{" in text and 'le="10"} 1' in text


def test_proxy_config_is_graded_on_the_steps_configuration() -> None:
    """``proxy_config`` asks the step's translated configuration, not the records; without a
    measure (or for a pod without a sidecar) it is no data, never a pass."""
    from mesh.lesson import ConfigSelector

    exp = Expectation(proxy_config=ConfigSelector(workload="api-gateway-v1"), at_most=8)
    sizes = {("api-gateway-v1", "clusters"): 7.0}

    def measure(workload: str, what: str) -> float:
        return sizes.get((workload, what), math.nan)

    assert evaluate(exp, [], 1.0, config=measure).verdict is Verdict.PASS
    sizes[("api-gateway-v1", "clusters")] = 15.0
    assert evaluate(exp, [], 1.0, config=measure).verdict is Verdict.FAIL
    assert evaluate(exp, [], 1.0).verdict is Verdict.NO_DATA
    other = Expectation(proxy_config=ConfigSelector(workload="postgres"), at_most=8)
    assert evaluate(other, [], 1.0, config=measure).verdict is Verdict.NO_DATA
    assert exp.describe() == "proxy_config(api-gateway-v1 clusters) <= 8"


def test_a_baseline_is_subtracted_from_the_same_metric_of_the_same_step() -> None:
    """``baseline`` grades a difference measured in one run: p50 of the requests that reached
    v2 minus p50 of those that reached v1 (the cost of what differs between the two paths);
    no data when the baseline selects nothing, never the bare value."""
    records = [_rec("v1", duration=1.0)] * 50 + [_rec("v2", duration=1.4)] * 50
    exp = Expectation(
        latency_p50_ms=Selector(edge="api-gateway->product", workload="product-v2"),
        baseline=Selector(edge="api-gateway->product", workload="product-v1"),
        between=(0.3, 0.5),
    )
    result = evaluate(exp, records, 10.0)
    assert math.isclose(result.value, 0.4) and result.truth == 1.0
    assert result.verdict is Verdict.PASS and result.samples == 50
    assert "- latency_p50_ms(api-gateway->product product-v1)" in exp.describe()
    assert "(baseline 1)" in result.describe()
    missing = evaluate(exp, [r for r in records if r.destination_version == "v2"], 10.0)
    assert missing.verdict is Verdict.NO_DATA
    slower_baseline = evaluate(exp, [_rec("v1", duration=2.0)] * 5 + records[50:], 10.0)
    assert math.isclose(slower_baseline.value, -0.6)
    assert slower_baseline.verdict is Verdict.FAIL
