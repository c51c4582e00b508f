"""Envoy's tracer as istiod configures it: off unless asked (the translation is unchanged), then
on every HTTP connection manager of every proxy with Istio's sampling, tags and Zipkin provider,
plus the collector's cluster; and real Envoy 1.40 accepts the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesh.envoy import TranslateOptions, bootstrap, translate
from mesh.envoy.tracing import TracingOptions
from mesh.envoy_api import type_urls as tu
from mesh.lesson import load_lesson
from mesh.topology import build_topology
from tests.mesh.envoy.test_golden import _test_secrets, validate

LESSON = Path(__file__).resolve().parents[3] / "lessons" / "01-request-routing"
TRACING = TracingOptions(sampling=25.0, collector_address=("127.0.0.1", 29411))


def _hcms(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if node.get("@type") == tu.HCM:
            found.append(node)
        for value in node.values():
            found.extend(_hcms(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_hcms(item))
    return found


def _configs(tracing: TracingOptions | None) -> dict[str, Any]:
    resources = load_lesson(LESSON).app.resources
    topology = build_topology(resources)
    return dict(translate(resources, topology, TranslateOptions(tracing=tracing)).items())


def test_without_tracing_no_hcm_traces_and_no_collector_cluster() -> None:
    for proxy in _configs(None).values():
        assert all("tracing" not in h for h in _hcms(list(proxy.listeners)))
        assert not any("zipkin" in c["name"] for c in proxy.clusters)


def test_every_hcm_of_every_proxy_traces_as_istiod_configures_it() -> None:
    configs = _configs(TRACING)
    sidecar = configs["product-v2-0"]
    for proxy in configs.values():
        hcms = _hcms(list(proxy.listeners))
        assert all("tracing" in h for h in hcms)
        collector = proxy.cluster("outbound|9411||zipkin.istio-system.svc.cluster.local")
        assert collector is not None and collector["type"] == "STATIC"
    assert len(_hcms(list(sidecar.listeners))) >= 2  # outbound and inbound
    tracing = _hcms(list(sidecar.listeners))[0]["tracing"]
    assert tracing["random_sampling"] == {"value": 25.0}
    assert tracing["client_sampling"] == tracing["overall_sampling"] == {"value": 100.0}
    tags = {t["tag"]: t["literal"]["value"] for t in tracing["custom_tags"]}
    assert tags == {
        "istio.canonical_revision": "v2",
        "istio.canonical_service": "product",
        "istio.cluster_id": "Kubernetes",
        "istio.mesh_id": "cluster.local",
        "istio.namespace": "shop",
    }
    assert [t["tag"] for t in tracing["custom_tags"]] == sorted(tags)
    zipkin = tracing["provider"]["typed_config"]
    assert tracing["provider"]["name"] == "envoy.tracers.zipkin"
    assert zipkin["collector_cluster"] == "outbound|9411||zipkin.istio-system.svc.cluster.local"
    assert zipkin["collector_endpoint"] == "/api/v2/spans"
    assert zipkin["collector_endpoint_version"] == "HTTP_JSON"
    assert zipkin["trace_id_128bit"] is True and zipkin["shared_span_context"] is False
    request_id = _hcms(list(sidecar.listeners))[0]["request_id_extension"]["typed_config"]
    assert request_id["use_request_id_for_trace_sampling"] is True


def test_tracing_leaves_the_untraced_translation_untouched() -> None:
    before = {n: json.dumps(p.listeners, sort_keys=True) for n, p in _configs(None).items()}
    _configs(TRACING)
    after = {n: json.dumps(p.listeners, sort_keys=True) for n, p in _configs(None).items()}
    assert before == after


@pytest.mark.envoy
def test_real_envoy_accepts_the_traced_config(tmp_path: Path) -> None:
    secrets = _test_secrets(tmp_path)
    for name in ("product-v2-0", "api-gateway-v1-0"):
        proxy = _configs(TRACING)[name]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(bootstrap(proxy, admin_port=0, secrets=secrets)))
        code, out = validate(path)
        assert code == 0, out


OTEL = TracingOptions.opentelemetry(sampling=50.0, collector_address=("127.0.0.1", 24318))


def test_an_opentelemetry_provider_exports_otlp_http_as_istiod_configures_it() -> None:
    """istiod's otelConfig for a provider with ``http``: the node cluster as service name, an
    http_service whose URI is the service host joined with the path, on its outbound cluster."""
    sidecar = _configs(OTEL)["product-v2-0"]
    tracing = _hcms(list(sidecar.listeners))[0]["tracing"]
    assert tracing["random_sampling"] == {"value": 50.0}
    assert tracing["provider"]["name"] == "envoy.tracers.opentelemetry"
    cluster = "outbound|4318||opentelemetry-collector.observability.svc.cluster.local"
    assert tracing["provider"]["typed_config"] == {
        "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
        "http_service": {
            "http_uri": {
                "cluster": cluster,
                "timeout": "5s",
                "uri": "opentelemetry-collector.observability.svc.cluster.local/v1/traces",
            }
        },
        "service_name": "product-v2.shop",
    }
    collector = sidecar.cluster(cluster)
    assert collector is not None and collector["type"] == "STATIC"


@pytest.mark.envoy
def test_real_envoy_accepts_the_opentelemetry_config(tmp_path: Path) -> None:
    secrets = _test_secrets(tmp_path)
    proxy = _configs(OTEL)["api-gateway-v1-0"]
    path = tmp_path / "otel.json"
    path.write_text(json.dumps(bootstrap(proxy, admin_port=0, secrets=secrets)))
    code, out = validate(path)
    assert code == 0, out
