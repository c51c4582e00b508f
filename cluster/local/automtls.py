"""Auto mTLS for the local runner, until the translator emits it (docs/translation.md, "TLS").

Istio's default: a client sidecar sends mutual TLS (ISTIO_MUTUAL: its SPIFFE certificate,
the server's SAN checked, SNI ``outbound_.<port>_.<subset>_.<host>``) to every endpoint that has
a sidecar, and plaintext to the rest; a server sidecar in PERMISSIVE mode (the default
PeerAuthentication) accepts both, telling them apart with the TLS inspector. The translator
already marks sidecar endpoints with ``envoy.transport_socket_match: {tlsMode: istio}`` but does
not yet emit the client and server TLS contexts (PeerAuthentication is issue 7). This pass adds
exactly those two pieces to a translated proxy config:

* every outbound cluster without TLS of its own gets ``transport_socket_matches``:
  ``tlsMode-istio`` -> ``UpstreamTlsContext`` with SDS ``default``/``ROOTCA`` and the SANs of
  the cluster's endpoints, anything else -> plaintext; a DestinationRule that sets ``tls`` (any
  mode, DISABLE included) is respected by leaving the cluster alone;
* every HTTP chain of ``virtualInbound`` is split into a TLS chain (``DownstreamTlsContext``,
  client certificate required, SAN under ``spiffe://<trust domain>/``) and a plaintext chain.

It steps aside as soon as the translator's output carries any TLS of its own on the inbound side.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from cluster.local.xds import ProxyResources
from mesh.envoy.names import Direction, parse_cluster_name, sni_name

__all__ = ["add_auto_mtls", "translator_has_inbound_tls"]

_T = "type.googleapis.com/"
UPSTREAM_TLS = _T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
DOWNSTREAM_TLS = _T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
RAW_BUFFER = _T + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
TLS_INSPECTOR = _T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
ADS: dict[str, Any] = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}


def _sds(name: str) -> dict[str, Any]:
    return {"name": name, "sds_config": ADS}


def _common(sans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tls_certificate_sds_secret_configs": [_sds("default")],
        "combined_validation_context": {
            "default_validation_context": {"match_typed_subject_alt_names": sans} if sans else {},
            "validation_context_sds_secret_config": _sds("ROOTCA"),
        },
        "tls_params": {
            "tls_minimum_protocol_version": "TLSv1_2",
            "tls_maximum_protocol_version": "TLSv1_3",
        },
    }


def translator_has_inbound_tls(resources: ProxyResources) -> bool:
    """Whether the translation already terminates TLS on an inbound chain."""
    return any(
        "transport_socket" in chain
        for listener in resources.listeners
        if listener.get("traffic_direction") == "INBOUND"
        for chain in listener.get("filter_chains", [])
    )


def _identities(assignment: dict[str, Any] | None) -> list[str]:
    out = set()
    for group in (assignment or {}).get("endpoints", []):
        for ep in group.get("lb_endpoints", []):
            meta = ep.get("metadata", {}).get("filter_metadata", {})
            if meta.get("envoy.transport_socket_match", {}).get("tlsMode") == "istio":
                identity = meta.get("istio", {}).get("identity")
                if identity:
                    out.add(str(identity))
    return sorted(out)


def add_auto_mtls(
    resources: ProxyResources,
    *,
    trust_domain: str = "cluster.local",
    dr_sets_tls: Callable[[str], bool] = lambda _cluster: False,
) -> ProxyResources:
    """A copy of ``resources`` with Istio's default mutual TLS between sidecars."""
    if translator_has_inbound_tls(resources):
        return resources
    loads = {str(e.get("cluster_name")): e for e in resources.endpoints}
    clusters = []
    for cluster in resources.clusters:
        name = str(cluster.get("name", ""))
        parsed = parse_cluster_name(name)
        eds = cluster.get("eds_cluster_config") or {}
        assignment = loads.get(str(eds.get("service_name") or name)) or cluster.get(
            "load_assignment"
        )
        sans = _identities(assignment)
        if (
            parsed is None
            or parsed.direction is not Direction.OUTBOUND
            or "transport_socket" in cluster
            or "transport_socket_matches" in cluster
            or not sans
            or dr_sets_tls(name)
        ):
            clusters.append(cluster)
            continue
        matchers = [{"san_type": "URI", "matcher": {"exact": s}} for s in sans]
        context = _common(matchers)
        context["alpn_protocols"] = ["istio-peer-exchange", "istio"]
        tls = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": UPSTREAM_TLS,
                "common_tls_context": context,
                "sni": sni_name(parsed.port, parsed.subset, parsed.host),
            },
        }
        plain = {"name": "envoy.transport_sockets.raw_buffer", "typed_config": {"@type": RAW_BUFFER}}
        clusters.append(
            {
                **cluster,
                "transport_socket_matches": [
                    {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": tls},
                    {"name": "tlsMode-disabled", "match": {}, "transport_socket": plain},
                ],
            }
        )
    listeners = [_permissive(x, trust_domain) for x in resources.listeners]
    return ProxyResources(listeners, resources.routes, clusters, resources.endpoints, resources.secrets)


def _permissive(listener: dict[str, Any], trust_domain: str) -> dict[str, Any]:
    """PERMISSIVE inbound: each HTTP chain becomes a TLS chain and a plaintext chain."""
    if listener.get("traffic_direction") != "INBOUND":
        return listener
    chains = []
    split = False
    for chain in listener.get("filter_chains", []):
        filters = chain.get("filters", [])
        is_http = any(f.get("name") == "envoy.filters.network.http_connection_manager" for f in filters)
        if not is_http:
            chains.append(chain)
            continue
        split = True
        match = dict(chain.get("filter_chain_match", {}))
        tls_chain = copy.deepcopy(chain)
        tls_chain["filter_chain_match"] = {**match, "transport_protocol": "tls"}
        tls_chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": DOWNSTREAM_TLS,
                "require_client_certificate": True,
                "common_tls_context": {
                    **_common(
                        [{"san_type": "URI", "matcher": {"prefix": f"spiffe://{trust_domain}/"}}]
                    ),
                    "alpn_protocols": ["istio-peer-exchange", "h2", "http/1.1"],
                },
            },
        }
        plain_chain = {**chain, "filter_chain_match": {**match, "transport_protocol": "raw_buffer"}}
        plain_chain["name"] = f"{chain.get('name', '')}-plaintext"
        chains += [tls_chain, plain_chain]
    if not split:
        return listener
    filters = list(listener.get("listener_filters", []))
    if not any(f.get("name") == "envoy.filters.listener.tls_inspector" for f in filters):
        filters.append(
            {"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": TLS_INSPECTOR}}
        )
    return {**listener, "listener_filters": filters, "filter_chains": chains}
