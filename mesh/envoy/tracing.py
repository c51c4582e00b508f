"""Envoy's tracer, configured on every HTTP connection manager as istiod configures it.

With a Telemetry ``tracing`` provider (Istio's ``zipkin`` extension provider, what the demo
profile and the Zipkin/Jaeger add-ons use), istiod gives every HCM a ``tracing`` block
(``pilot/pkg/networking/core/tracing.go``):

* ``client_sampling`` and ``overall_sampling`` 100 %, ``random_sampling`` the Telemetry
  ``randomSamplingPercentage`` (the lesson's ``tracing.sampling``; default 100 here);
* ``custom_tags``, sorted by tag: the proxy's ``istio.canonical_revision``,
  ``istio.canonical_service``, ``istio.cluster_id``, ``istio.mesh_id`` and ``istio.namespace``
  as literals;
* the ``envoy.tracers.zipkin`` provider: ``ZipkinConfig`` posting v2 JSON
  (``collector_endpoint_version: HTTP_JSON``) to ``/api/v2/spans`` on the collector's cluster
  (``outbound|9411||zipkin.istio-system.svc.cluster.local``), 128-bit trace ids, no shared span
  context, B3 propagation (``trace_context_option: USE_B3``, for proxies of Istio 1.28+);

With Istio's ``opentelemetry`` extension provider (MeshConfig ``extensionProviders: [{name: otel,
opentelemetry: {service, port, http: {path, timeout}}}]``, chosen by a Telemetry's
``tracing.providers``), the provider is ``envoy.tracers.opentelemetry`` instead, configured as
istiod's ``otelConfig`` does: ``OpenTelemetryConfig`` with the node's cluster as
``service_name`` and, since the provider sets ``http``, an ``http_service`` whose ``http_uri`` is
the service host joined with the path (``<host>/v1/traces``) on the collector's cluster (Envoy
then POSTs OTLP/HTTP: a protobuf ``ExportTraceServiceRequest``, ``application/x-protobuf``);
without ``http`` istiod configures a ``grpc_service`` (OTLP/gRPC), which meshplay does not, as its
collector speaks HTTP only. The OpenTelemetry tracer propagates W3C ``traceparent``, not B3.

and a ``request_id_extension`` (``UuidRequestIdConfig``, ``use_request_id_for_trace_sampling``)
so the sampling decision travels in ``x-request-id``. Span names come from each route's
``decorator`` (already part of every route), the span's service from the node's cluster.

Tracing is off unless :class:`TracingOptions` are given (the translation, and its goldens, do
not change otherwise). On the local runner the collector is a process on 127.0.0.1, so the
collector cluster is emitted as a STATIC cluster with that address under Istio's name.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import Direction, cluster_name
from mesh.envoy_api.values import socket_address
from mesh.topology import Pod

__all__ = [
    "OPENTELEMETRY",
    "OTLP_TRACES_PATH",
    "ZIPKIN",
    "ZIPKIN_PATH",
    "TracingOptions",
    "collector_cluster",
    "hcm_tracing",
    "with_tracing",
]

ZIPKIN_PATH = "/api/v2/spans"
OTLP_TRACES_PATH = "/v1/traces"
"""Where an OTLP/HTTP collector takes spans (the OpenTelemetry collector's default)."""
ZIPKIN = "zipkin"
OPENTELEMETRY = "opentelemetry"
DEFAULT_CLUSTER_ID = "Kubernetes"


@dataclass(frozen=True, slots=True)
class TracingOptions:
    """A tracing provider (``zipkin``, or ``opentelemetry`` over OTLP/HTTP: see
    :meth:`opentelemetry`) and its sampling, as a Telemetry resource would set them.

    ``collector_address`` is where the collector really listens (``(ip, port)``): given, the
    collector's cluster is emitted as STATIC with that endpoint (the local runner); absent, the
    cluster is the registry's own (a mesh where ``zipkin.istio-system`` is a Service).
    """

    sampling: float = 100.0
    service: str = "zipkin.istio-system.svc.cluster.local"
    port: int = 9411
    collector_address: tuple[str, int] | None = None
    mesh_id: str = "cluster.local"
    cluster_id: str = DEFAULT_CLUSTER_ID
    provider: str = ZIPKIN
    timeout_s: float = 5.0
    """The OTLP/HTTP export's timeout (the provider's ``http.timeout``; Envoy requires one)."""

    @classmethod
    def opentelemetry(
        cls, sampling: float = 100.0, collector_address: tuple[str, int] | None = None
    ) -> TracingOptions:
        """An ``opentelemetry`` provider exporting OTLP/HTTP to the OpenTelemetry collector at
        ``opentelemetry-collector.observability:4318`` (Istio's docs' example), path
        ``/v1/traces``."""
        return cls(
            sampling=sampling,
            service="opentelemetry-collector.observability.svc.cluster.local",
            port=4318,
            collector_address=collector_address,
            provider=OPENTELEMETRY,
        )

    @property
    def cluster(self) -> str:
        """The collector's cluster name, as istiod looks it up."""
        return cluster_name(Direction.OUTBOUND, self.port, "", self.service)


def _literal(tag: str, value: str) -> dict[str, Any]:
    return {"literal": {"value": value}, "tag": tag}


def hcm_tracing(pod: Pod, options: TracingOptions) -> dict[str, Any]:
    """The HCM ``tracing`` block of one proxy."""
    revision = pod.labels.get("service.istio.io/canonical-revision") or pod.labels.get(
        "version", "latest"
    )
    service = pod.labels.get("service.istio.io/canonical-name") or pod.labels.get(
        "app", pod.workload
    )
    tags = [
        _literal("istio.canonical_revision", revision or "latest"),
        _literal("istio.canonical_service", service or "unknown"),
        _literal("istio.cluster_id", options.cluster_id),
        _literal("istio.mesh_id", options.mesh_id),
        _literal("istio.namespace", pod.namespace or "default"),
    ]
    return {
        "client_sampling": {"value": 100.0},
        "custom_tags": sorted(tags, key=lambda t: str(t["tag"])),
        "overall_sampling": {"value": 100.0},
        "provider": _provider(pod, options),
        "random_sampling": {"value": float(options.sampling)},
    }


def _provider(pod: Pod, options: TracingOptions) -> dict[str, Any]:
    """The HCM tracing ``provider``: Envoy's Zipkin or OpenTelemetry tracer."""
    if options.provider == OPENTELEMETRY:
        otel = tu.typed(
            tu.OPENTELEMETRY_CONFIG,
            http_service={
                "http_uri": {
                    "cluster": options.cluster,
                    "timeout": f"{options.timeout_s:g}s",
                    "uri": f"{options.service}{OTLP_TRACES_PATH}",
                }
            },
            service_name=f"{pod.workload}.{pod.namespace}",
        )
        return {"name": tu.TRACER_OPENTELEMETRY, "typed_config": otel}
    zipkin = tu.typed(
        tu.ZIPKIN_CONFIG,
        collector_cluster=options.cluster,
        collector_endpoint=ZIPKIN_PATH,
        collector_endpoint_version="HTTP_JSON",
        collector_hostname=options.service,
        shared_span_context=False,
        trace_context_option="USE_B3",
        trace_id_128bit=True,
    )
    return {"name": tu.TRACER_ZIPKIN, "typed_config": zipkin}


def _request_id_extension() -> dict[str, Any]:
    return {"typed_config": tu.typed(tu.UUID_REQUEST_ID, use_request_id_for_trace_sampling=True)}


def _traced_chain(chain: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    filters = []
    changed = False
    for f in chain.get("filters", []):
        typed = f.get("typed_config", {})
        if typed.get("@type") != tu.HCM:
            filters.append(f)
            continue
        typed = {
            **typed,
            "tracing": copy.deepcopy(block),
            "request_id_extension": _request_id_extension(),
        }
        filters.append({**f, "typed_config": dict(sorted(typed.items()))})
        changed = True
    return {**chain, "filters": filters} if changed else chain


def with_tracing(
    listeners: Sequence[dict[str, Any]], pod: Pod, options: TracingOptions
) -> list[dict[str, Any]]:
    """Copies of ``listeners`` whose HTTP connection managers trace (the inputs, which the
    translation may share between proxies, are not changed)."""
    block = hcm_tracing(pod, options)
    out = []
    for listener in listeners:
        new = dict(listener)
        if "filter_chains" in listener:
            new["filter_chains"] = [_traced_chain(c, block) for c in listener["filter_chains"]]
        if "default_filter_chain" in listener:
            new["default_filter_chain"] = _traced_chain(listener["default_filter_chain"], block)
        out.append(new)
    return out


def collector_cluster(options: TracingOptions, connect_timeout_s: float = 10.0) -> dict[str, Any]:
    """The collector's cluster (STATIC, at ``collector_address``)."""
    assert options.collector_address is not None
    host, port = options.collector_address
    return {
        "connect_timeout": f"{connect_timeout_s:g}s",
        "load_assignment": {
            "cluster_name": options.cluster,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}}]}
            ],
        },
        "name": options.cluster,
        "type": "STATIC",
    }
