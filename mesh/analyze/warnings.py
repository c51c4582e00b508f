"""Warnings of Istio's validation webhook (IST0133 SchemaWarning) and deprecated fields (IST0002).

istiod accepts these resources but warns (``pkg/config/validation``); istioctl reports each warning
as ``Schema validation warning: <text>`` with istiod's own text. Only warnings about fields meshplay
models are checked; the list is in docs/diagnostics.md.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Sequence

from mesh.analyze.common import Path, diag, go_quote, of_kind
from mesh.diagnostics import Diagnostic
from mesh.model import (
    AuthorizationPolicy,
    AuthorizationPolicyAction,
    DestinationRule,
    Gateway,
    PeerAuthentication,
    RequestAuthentication,
    Resource,
    ServiceEntry,
    ServiceEntryResolution,
    Sidecar,
    TrafficPolicy,
    VirtualService,
)
from mesh.topology import Topology

__all__ = [
    "check_deprecated_fields",
    "check_gateway_warnings",
    "check_policy_warnings",
    "check_routing_warnings",
    "check_service_entry_warnings",
    "check_sidecar_warnings",
]

HTTP_PROTOCOLS = {"http", "http2", "http_proxy", "grpc", "grpc-web"}
TCP_PROTOCOLS = {"tcp", "https", "tls", "mongo", "redis", "mysql"}
NO_LABELS = "workload selector specified without labels"
LARGE_DIRECT_RESPONSE = 100 * 1024


def _warn(r: Resource, path: Path, text: str, hint: str = "") -> Diagnostic:
    return diag("IST0133", r, path, f"Schema validation warning: {text}", hint)


def check_deprecated_fields(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0002: ``fault.delay.percent`` (use ``percentage``); Sidecar ``egressProxy`` (ignored)."""
    del topo
    for vs in of_kind(resources, VirtualService):
        for i, http in enumerate(vs.http):
            delay = http.fault.delay if http.fault is not None else None
            if delay is not None and (delay.percent or 0) > 0:
                yield diag("IST0002", vs, ("spec", "http", i, "fault", "delay", "percent"),
                           "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use "
                           "HTTPRoute.fault.delay.percentage",
                           f"write percentage: {{value: {delay.percent}}}")  # fmt: skip
    for s in of_kind(resources, Sidecar):
        policy = s.outbound_traffic_policy
        if policy is not None and policy.egress_proxy is not None:
            yield diag("IST0002", s, ("spec", "outboundTrafficPolicy", "egressProxy"),
                       "Deprecated: OutboundTrafficPolicy.EgressProxy ignored",
                       "route external traffic through an egress gateway with a VirtualService")  # fmt: skip


def check_gateway_warnings(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0133: httpsRedirect on a non-HTTP server; certificates on a passthrough server."""
    del topo
    for gw in of_kind(resources, Gateway):
        for i, server in enumerate(gw.servers):
            tls = server.tls
            if tls is None:
                continue
            base: Path = ("spec", "servers", i, "tls")
            if tls.https_redirect and server.port.protocol.lower() not in HTTP_PROTOCOLS:
                yield _warn(gw, (*base, "httpsRedirect"),
                            "tls.httpsRedirect should only be used with http servers",
                            "set httpsRedirect on the port 80 HTTP server instead")  # fmt: skip
            certs = tls.server_certificate or tls.private_key or tls.ca_certificates
            if tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and (certs or tls.credential_name):
                yield _warn(gw, (*base, "mode"),
                            f"{tls.mode} mode does not use certificates, they will be ignored",
                            "the backend terminates TLS in passthrough mode")  # fmt: skip


def _traffic_policy_warnings(
    dr: DestinationRule, policy: TrafficPolicy | None, base: Path
) -> Iterator[Diagnostic]:
    if policy is None:
        return
    outlier, lb = policy.outlier_detection, policy.load_balancer
    if outlier is not None and outlier.consecutive_errors:
        yield _warn(dr, (*base, "outlierDetection", "consecutiveErrors"),
                    "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors "
                    "or consecutive5xxErrors instead")  # fmt: skip
    hashing = lb.consistent_hash if lb is not None else None
    if hashing is not None and hashing.minimum_ring_size:
        yield _warn(dr, (*base, "loadBalancer", "consistentHash", "minimumRingSize"),
                    "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash "
                    "configuration instead", "write ringHash: {minimumRingSize: N}")  # fmt: skip
    locality = lb.locality_lb_setting if lb is not None else None
    if (
        locality is not None
        and (locality.failover or locality.failover_priority)
        and outlier is None
    ):
        yield _warn(dr, (*base, "loadBalancer", "localityLbSetting"),
                    "outlier detection policy must be provided for failover",
                    "failover only happens when outlier detection ejects unhealthy endpoints")  # fmt: skip


def _private_jwks(jwks: str) -> list[int]:
    """Indexes of keys carrying private material (``d`` of RSA/EC/OKP, or a symmetric key)."""
    try:
        keys = json.loads(jwks).get("keys", [])
    except (ValueError, AttributeError):
        return []
    return [
        i for i, k in enumerate(keys)
        if isinstance(k, dict) and ("d" in k or k.get("kty") == "oct")
    ]  # fmt: skip


def _deny_all_tcp(p: AuthorizationPolicy) -> list[int]:
    """Rules of a DENY policy made only of HTTP attributes: on TCP ports they match everything."""
    found = []
    for i, rule in enumerate(p.rules or ()):
        tcp_from = any(
            s.principals or s.not_principals or s.ip_blocks or s.not_ip_blocks or s.namespaces
            or s.not_namespaces or s.remote_ip_blocks or s.not_remote_ip_blocks
            or s.service_accounts or s.not_service_accounts
            for s in (f.source for f in rule.from_)
        )  # fmt: skip
        tcp_to = any(t.operation.ports or t.operation.not_ports for t in rule.to)
        if (rule.from_ and not rule.to and not tcp_from) or (rule.to and not tcp_to):
            found.append(i)
    return found


def check_policy_warnings(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0133 on DestinationRules and security policies: deprecated settings, failover without
    outlier detection, selectors without labels, DENY rules of HTTP attributes only, private JWKS."""
    del topo
    for r in resources:
        if isinstance(r, DestinationRule):
            yield from _traffic_policy_warnings(r, r.traffic_policy, ("spec", "trafficPolicy"))
            for i, subset in enumerate(r.subsets):
                yield from _traffic_policy_warnings(r, subset.traffic_policy,
                                                    ("spec", "subsets", i, "trafficPolicy"))  # fmt: skip
            if r.workload_selector is not None and not r.workload_selector.match_labels:
                yield _warn(r, ("spec", "workloadSelector"), NO_LABELS)
        elif (
            isinstance(r, AuthorizationPolicy | PeerAuthentication | RequestAuthentication)
            and r.selector is not None
            and not r.selector.match_labels
        ):
            yield _warn(r, ("spec", "selector"), NO_LABELS,
                        "remove the selector to apply to the whole namespace")  # fmt: skip
        if isinstance(r, AuthorizationPolicy) and r.action is AuthorizationPolicyAction.DENY:
            for i in _deny_all_tcp(r):
                yield _warn(r, ("spec", "rules", i),
                            "configured AuthorizationPolicy will deny all traffic to TCP ports under "
                            "its scope due to the use of only HTTP attributes in a DENY rule; it is "
                            "recommended to explicitly specify the port",
                            'add to.operation.ports (e.g. ports: ["8080"])')  # fmt: skip
        if isinstance(r, RequestAuthentication):
            for i, jwt in enumerate(r.jwt_rules):
                for k in _private_jwks(jwt.jwks):
                    yield _warn(r, ("spec", "jwtRules", i, "jwks"),
                                f"jwks key at index {k} contains private key material; only public "
                                "keys are used for verification", "publish only the public keys")  # fmt: skip


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_routing_warnings(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0133 on VirtualServices: legacy gateway names, IP SNI hosts, aborts without an error,
    large direct responses."""
    del topo
    for vs in of_kind(resources, VirtualService):
        refs: list[tuple[Path, str]] = [
            (("spec", "gateways", i), g) for i, g in enumerate(vs.gateways)
        ]
        for i, http in enumerate(vs.http):
            for j, m in enumerate(http.match):
                refs += [
                    (("spec", "http", i, "match", j, "gateways", k), g)
                    for k, g in enumerate(m.gateways)
                ]
        for i, tls_rule in enumerate(vs.tls):
            for j, tls_match in enumerate(tls_rule.match):
                refs += [
                    (("spec", "tls", i, "match", j, "gateways", k), g)
                    for k, g in enumerate(tls_match.gateways)
                ]
        for i, tcp_rule in enumerate(vs.tcp):
            for j, tcp_match in enumerate(tcp_rule.match):
                refs += [
                    (("spec", "tcp", i, "match", j, "gateways", k), g)
                    for k, g in enumerate(tcp_match.gateways)
                ]
        for path, ref in refs:
            if "/" not in ref and "." in ref:
                parts = ref.split(".")
                yield _warn(vs, path,
                            f"using legacy gatewayName format {go_quote(ref)}; prefer the "
                            f"<namespace>/<name> format: {go_quote(f'{parts[1]}/{parts[0]}')}")  # fmt: skip
        for i, tls_route in enumerate(vs.tls):
            for j, tls_match in enumerate(tls_route.match):
                for k, sni in enumerate(tls_match.sni_hosts):
                    if _is_ip(sni):
                        yield _warn(vs, ("spec", "tls", i, "match", j, "sniHosts", k),
                                    f"using an IP address ({go_quote(sni)}) goes against SNI spec and "
                                    "most clients do not support this")  # fmt: skip
        for i, http in enumerate(vs.http):
            abort = http.fault.abort if http.fault is not None else None
            if (
                abort is not None
                and abort.http_status is None
                and not abort.grpc_status
                and not abort.http2_error
            ):
                yield _warn(vs, ("spec", "http", i, "fault", "abort"),
                            "abort configured, but error type not set", "set httpStatus")  # fmt: skip
            body = http.direct_response.body if http.direct_response is not None else None
            size = len((body.string or body.bytes or "").encode()) if body is not None else 0
            if size > LARGE_DIRECT_RESPONSE:
                yield _warn(vs, ("spec", "http", i, "directResponse", "body"),
                            "large direct_responses may impact control plane performance")  # fmt: skip


def check_sidecar_warnings(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0133 on Sidecars: a workloadSelector without labels; duplicated egress hosts."""
    del topo
    for s in of_kind(resources, Sidecar):
        if s.workload_selector is not None and not s.workload_selector.labels:
            yield _warn(s, ("spec", "workloadSelector"),
                        f"sidecar: {NO_LABELS}, will be applied to all services in namespace")  # fmt: skip
        for i, listener in enumerate(s.egress):
            seen: dict[str, set[str]] = {}
            for j, entry in enumerate(listener.hosts):
                ns, slash, host = entry.partition("/")
                if not slash or ns.startswith("~"):
                    continue
                ns = s.namespace if ns == "." else ns
                known = seen.setdefault(ns, set())
                if (host != "*" and (host in known or "*" in known)) or (host == "*" and known):
                    yield _warn(
                        s, ("spec", "egress", i, "hosts", j), f"duplicated egress host: {entry}"
                    )
                known.add(host)
            if "*" in seen.get("*", set()) and len(seen) != 1:
                yield _warn(s, ("spec", "egress", i, "hosts"),
                            "`*/*` host select all resources, no other hosts can be added")  # fmt: skip


def check_service_entry_warnings(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0133 on ServiceEntries: selectors without labels or with resolution NONE, partial
    wildcards, TCP ports without addresses, several hosts sharing an address and a TCP port."""
    del topo
    for se in of_kind(resources, ServiceEntry):
        selector = se.workload_selector
        if selector is not None and not selector.labels:
            yield _warn(se, ("spec", "workloadSelector"),
                        f"service entry: {NO_LABELS}, will be applied to all services in namespace")  # fmt: skip
        for i, host in enumerate(se.hosts):
            if "*" in host and host != "*" and not host.startswith("*."):
                yield _warn(
                    se, ("spec", "hosts", i), f"partial wildcard {go_quote(host)} not allowed"
                )
        opted_out = se.metadata.labels.get("networking.istio.io/enable-autoallocate-ip", "").lower()
        auto = se.resolution is not ServiceEntryResolution.NONE and opted_out != "false"
        for i, port in enumerate(se.ports):
            if not se.addresses and not auto and port.protocol in ("", "TCP"):
                yield _warn(se, ("spec", "ports", i),
                            "addresses are required for ports serving TCP (or unset) protocol when IP "
                            "Autoallocation is not enabled")  # fmt: skip
        if se.resolution is ServiceEntryResolution.NONE and selector is not None:
            yield _warn(se, ("spec", "workloadSelector"),
                        "workloadSelector should not be set when resolution mode is NONE")  # fmt: skip
        dns = se.resolution in (ServiceEntryResolution.DNS, ServiceEntryResolution.DNS_ROUND_ROBIN)
        tcp = any(p.protocol.lower() in TCP_PROTOCOLS for p in se.ports)
        if dns and se.addresses and tcp and len(se.hosts) > 1:
            yield _warn(se, ("spec", "hosts"),
                        "service entry can not have more than one host specified simultaneously with "
                        "address and tcp port")  # fmt: skip
