"""Hand-written Envoy configs in the translator's shapes (istiod names, ADS config sources,
JSON access log of mesh.envoy.accesslog), to test the local runner's machinery on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cluster.local.xds import ProxyResources
from mesh.envoy.accesslog import LogIdentity, access_log, json_format
from mesh.records import Reporter

ADS: dict[str, Any] = {"ads": {}, "resource_api_version": "V3"}
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
UP_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
DOWN_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
HOST = "product.shop.svc.cluster.local"


def _addr(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _hcm(prefix: str, route: str, log: Path, fmt: dict[str, str], inbound: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@type": HCM,
        "stat_prefix": prefix,
        "rds": {"route_config_name": route, "config_source": ADS},
        "access_log": access_log(str(log), fmt),
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    if inbound:
        body["forward_client_cert_details"] = "APPEND_FORWARD"
        body["set_current_client_cert_details"] = {"uri": True}
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": body}


def _tls_context() -> dict[str, Any]:
    return {
        "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": ADS}],
        "combined_validation_context": {
            "default_validation_context": {},
            "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": ADS},
        },
    }


def client_sidecar(
    me: LogIdentity,
    log: Path,
    listen_port: int,
    endpoints: dict[str, tuple[int, str]],
    weights: dict[str, int],
    *,
    mtls: bool = False,
    server_identity: str = "",
    secrets: list[dict[str, Any]] | None = None,
) -> ProxyResources:
    """An outbound sidecar: listener 0.0.0.0_8080 bound on ``listen_port``, route config "8080"
    with vhost product:8080 splitting ``weights`` over subsets; ``endpoints`` subset -> (port,
    istio workload metadata)."""
    listener = {
        "name": "0.0.0.0_8080",
        "address": _addr(listen_port),
        "enable_reuse_port": False,
        "traffic_direction": "OUTBOUND",
        "filter_chains": [
            {
                "filters": [
                    _hcm(
                        "outbound_0.0.0.0_8080",
                        "8080",
                        log,
                        json_format(Reporter.SOURCE, me),
                        False,
                    )
                ]
            }
        ],
    }
    route = {
        "name": "8080",
        "virtual_hosts": [
            {
                "name": f"{HOST}:8080",
                "domains": [HOST, f"{HOST}:8080", "product", "product:8080"],
                "routes": [
                    {
                        "name": "default",
                        "match": {"prefix": "/"},
                        "route": {
                            "weighted_clusters": {
                                "clusters": [
                                    {"name": f"outbound|8080|{s}|{HOST}", "weight": w}
                                    for s, w in weights.items()
                                ]
                            }
                        },
                    }
                ],
            }
        ],
    }
    clusters = []
    loads = []
    for subset, (port, workload) in endpoints.items():
        name = f"outbound|8080|{subset}|{HOST}"
        cluster: dict[str, Any] = {
            "name": name,
            "type": "EDS",
            "connect_timeout": "1s",
            "eds_cluster_config": {"eds_config": ADS, "service_name": name},
        }
        if mtls:
            context = _tls_context()
            context["combined_validation_context"]["default_validation_context"] = {
                "match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": {"exact": server_identity}}
                ]
            }
            cluster["transport_socket"] = {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": UP_TLS,
                    "sni": f"outbound_.8080_.{subset}_.{HOST}",
                    "common_tls_context": context,
                },
            }
        clusters.append(cluster)
        loads.append(
            {
                "cluster_name": name,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {"address": _addr(port)},
                                "metadata": {"filter_metadata": {"istio": {"workload": workload}}},
                            }
                        ]
                    }
                ],
            }
        )
    return ProxyResources(
        listeners=[listener], routes=[route], clusters=clusters, endpoints=loads,
        secrets=secrets or [],
    )  # fmt: skip


def server_sidecar(
    me: LogIdentity,
    log: Path,
    inbound_port: int,
    app_port: int,
    *,
    mtls: bool = False,
    secrets: list[dict[str, Any]] | None = None,
) -> ProxyResources:
    """An inbound sidecar: listener on ``inbound_port`` -> ``inbound|8080||`` -> the app."""
    chain: dict[str, Any] = {
        "filters": [
            _hcm("inbound_0.0.0.0_8080", "inbound|8080||", log,
                 json_format(Reporter.DESTINATION, me, HOST), True)
        ]
    }  # fmt: skip
    if mtls:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": DOWN_TLS,
                "require_client_certificate": True,
                "common_tls_context": _tls_context(),
            },
        }
    listener = {
        "name": "virtualInbound",
        "address": _addr(inbound_port),
        "enable_reuse_port": False,
        "traffic_direction": "INBOUND",
        "filter_chains": [chain],
    }
    route = {
        "name": "inbound|8080||",
        "virtual_hosts": [
            {
                "name": "inbound|http|8080",
                "domains": ["*"],
                "routes": [
                    {
                        "name": "default",
                        "match": {"prefix": "/"},
                        "route": {"cluster": "inbound|8080||", "timeout": "0s"},
                    }
                ],
            }
        ],
    }
    cluster = {
        "name": "inbound|8080||",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "inbound|8080||",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(app_port)}}]}],
        },
    }
    return ProxyResources(
        listeners=[listener], routes=[route], clusters=[cluster], secrets=secrets or []
    )
