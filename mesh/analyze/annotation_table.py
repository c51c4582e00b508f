"""The Istio annotations istioctl knows (istio/api ``annotation/annotations.yaml``, 2026-07):
for each, the kinds it may be put on and whether it is deprecated.

istioctl's annotation analyzer treats every annotation whose prefix (before ``/``) ends with
``istio.io`` as an Istio annotation; one missing from this table is unknown (IST0108).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALWAYS_IGNORED", "ANNOTATIONS", "AnnotationInfo"]


@dataclass(frozen=True, slots=True)
class AnnotationInfo:
    """Where an annotation may be set, and whether Istio has deprecated it."""

    resources: tuple[str, ...]
    deprecated: bool = False


_POD = ("Pod",)
_SERVICE = ("Service",)
_WORKLOAD_ENTRY = ("WorkloadEntry",)

ANNOTATIONS: dict[str, AnnotationInfo] = {
    "alpha.istio.io/canonical-serviceaccounts": AnnotationInfo(_SERVICE, deprecated=True),
    "alpha.istio.io/kubernetes-serviceaccounts": AnnotationInfo(_SERVICE, deprecated=True),
    "ambient.istio.io/bypass-inbound-capture": AnnotationInfo(_POD),
    "ambient.istio.io/dns-capture": AnnotationInfo(_POD),
    "ambient.istio.io/redirection": AnnotationInfo(_POD),
    "ambient.istio.io/waypoint-inbound-binding": AnnotationInfo(("GatewayClass", "Gateway")),
    "galley.istio.io/analyze-suppress": AnnotationInfo(("Any",)),
    "gateway.istio.io/controller-version": AnnotationInfo(("Any",)),
    "gateway.istio.io/name-override": AnnotationInfo(("Gateway",)),
    "gateway.istio.io/service-account": AnnotationInfo(("Gateway",)),
    "inject.istio.io/templates": AnnotationInfo(_POD),
    "istio.io/autoRegistrationGroup": AnnotationInfo(_WORKLOAD_ENTRY),
    "istio.io/connectedAt": AnnotationInfo(_WORKLOAD_ENTRY),
    "istio.io/disconnectedAt": AnnotationInfo(_WORKLOAD_ENTRY),
    "istio.io/dry-run": AnnotationInfo(("AuthorizationPolicy",)),
    "istio.io/reroute-virtual-interfaces": AnnotationInfo(_POD),
    "istio.io/rev": AnnotationInfo(_POD),
    "istio.io/use-waypoint-canary-weight": AnnotationInfo(("Service", "ServiceEntry", "Namespace")),
    "istio.io/workloadController": AnnotationInfo(_WORKLOAD_ENTRY),
    "kubernetes.io/ingress.class": AnnotationInfo(("Ingress",)),
    "networking.istio.io/exportTo": AnnotationInfo(_SERVICE),
    "networking.istio.io/service-type": AnnotationInfo(("Gateway",)),
    "networking.istio.io/traffic-distribution": AnnotationInfo(
        ("Namespace", "Service", "ServiceEntry")
    ),
    "prometheus.istio.io/merge-metrics": AnnotationInfo(_POD),
    "proxy.istio.io/config": AnnotationInfo(_POD),
    "proxy.istio.io/overrides": AnnotationInfo(_POD),
    "readiness.status.sidecar.istio.io/applicationPorts": AnnotationInfo(_POD),
    "readiness.status.sidecar.istio.io/failureThreshold": AnnotationInfo(_POD),
    "readiness.status.sidecar.istio.io/initialDelaySeconds": AnnotationInfo(_POD),
    "readiness.status.sidecar.istio.io/periodSeconds": AnnotationInfo(_POD),
    "sidecar.istio.io/agentLogLevel": AnnotationInfo(_POD),
    "sidecar.istio.io/bootstrapOverride": AnnotationInfo(_POD),
    "sidecar.istio.io/componentLogLevel": AnnotationInfo(_POD),
    "sidecar.istio.io/discoveryAddress": AnnotationInfo(_POD, deprecated=True),
    "sidecar.istio.io/extraStatTags": AnnotationInfo(_POD, deprecated=True),
    "sidecar.istio.io/inject": AnnotationInfo(_POD, deprecated=True),
    "sidecar.istio.io/interceptionMode": AnnotationInfo(_POD),
    "sidecar.istio.io/logLevel": AnnotationInfo(_POD),
    "sidecar.istio.io/nativeSidecar": AnnotationInfo(_POD),
    "sidecar.istio.io/proxyCPU": AnnotationInfo(_POD),
    "sidecar.istio.io/proxyCPULimit": AnnotationInfo(_POD),
    "sidecar.istio.io/proxyImage": AnnotationInfo(_POD),
    "sidecar.istio.io/proxyImageType": AnnotationInfo(_POD),
    "sidecar.istio.io/proxyMemory": AnnotationInfo(_POD),
    "sidecar.istio.io/proxyMemoryLimit": AnnotationInfo(_POD),
    "sidecar.istio.io/rewriteAppHTTPProbers": AnnotationInfo(_POD),
    "sidecar.istio.io/statsCompression": AnnotationInfo(_POD, deprecated=True),
    "sidecar.istio.io/statsEvictionInterval": AnnotationInfo(_POD),
    "sidecar.istio.io/statsFlushInterval": AnnotationInfo(_POD),
    "sidecar.istio.io/statsHistogramBins": AnnotationInfo(_POD),
    "sidecar.istio.io/statsHistogramBuckets": AnnotationInfo(_POD),
    "sidecar.istio.io/statsInclusionPrefixes": AnnotationInfo(_POD, deprecated=True),
    "sidecar.istio.io/statsInclusionRegexps": AnnotationInfo(_POD, deprecated=True),
    "sidecar.istio.io/statsInclusionSuffixes": AnnotationInfo(_POD, deprecated=True),
    "sidecar.istio.io/status": AnnotationInfo(_POD),
    "sidecar.istio.io/userVolume": AnnotationInfo(_POD),
    "sidecar.istio.io/userVolumeMount": AnnotationInfo(_POD),
    "status.sidecar.istio.io/port": AnnotationInfo(_POD),
    "topology.istio.io/controlPlaneClusters": AnnotationInfo(("Namespace",)),
    "traffic.istio.io/nodeSelector": AnnotationInfo(_SERVICE),
    "traffic.sidecar.istio.io/excludeInboundPorts": AnnotationInfo(_POD),
    "traffic.sidecar.istio.io/excludeInterfaces": AnnotationInfo(_POD),
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": AnnotationInfo(_POD),
    "traffic.sidecar.istio.io/excludeOutboundPorts": AnnotationInfo(_POD),
    "traffic.sidecar.istio.io/includeInboundPorts": AnnotationInfo(_POD),
    "traffic.sidecar.istio.io/includeOutboundIPRanges": AnnotationInfo(_POD),
    "traffic.sidecar.istio.io/includeOutboundPorts": AnnotationInfo(_POD),
    "traffic.sidecar.istio.io/kubevirtInterfaces": AnnotationInfo(_POD, deprecated=True),
}

ALWAYS_IGNORED = frozenset(
    {"sidecar.istio.io/status", "gateway.istio.io/controller-version", "istio.io/rev"}
)
"""Annotations istioctl never reports (set by Istio itself)."""
