"""PeerAuthentication modes and the client's (auto) mTLS on real Envoys: the inbound chains
``inbound_filter_chains`` builds for STRICT / PERMISSIVE / DISABLE, and outbound clusters whose TLS
comes from ``client_tls``, with SPIFFE certificates from the local CA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cluster.local.ca import LocalCA
from mesh.model import MutualTLSMode, TLSMode
from mesh.model.destination_rule import ClientTLSSettings
from mesh.security import UpstreamEndpoint, client_tls, inbound_filter_chains, tls_inspector
from tests.mesh.envoy.real_envoy import free_port
from tests.mesh.security.harness import (
    ROUTER,
    client_context,
    hcm,
    running_envoy,
    send,
    static_secrets,
    strip_sds,
)

Json = dict[str, Any]
PRODUCT = "spiffe://cluster.local/ns/shop/sa/product"


def _inbound(name: str, port: int, mode: MutualTLSMode) -> Json:
    chains = inbound_filter_chains(
        mode, target_port=8080, match_port=port, http=True, network_filters=lambda _m: [hcm([])]
    )
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "enable_reuse_port": False,
        "listener_filters": [tls_inspector()],
        "filter_chains": chains,
    }


def _cluster(name: str, port: int, tls: Json, *, tagged: bool = True) -> Json:
    endpoint: Json = {
        "endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}
    }
    if tagged:
        endpoint["metadata"] = {
            "filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}
        }
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
        **tls,
    }


def _client_listener(port: int, clusters: list[str]) -> Json:
    routes = [{"match": {"prefix": f"/{c}"}, "route": {"cluster": c}} for c in clusters]
    return {
        "name": "outbound",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "enable_reuse_port": False,
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": hcm([])["typed_config"]["@type"],
                            "stat_prefix": "outbound",
                            "route_config": {
                                "virtual_hosts": [
                                    {"name": "all", "domains": ["*"], "routes": routes}
                                ]
                            },
                            "http_filters": [ROUTER],
                        },
                    }
                ]
            }
        ],
    }


def _bootstrap(
    admin: int, listeners: list[Json], clusters: list[Json], secrets: list[Json]
) -> Json:
    return strip_sds(
        {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "node": {"id": "sidecar~127.0.0.1~t.shop~shop.svc.cluster.local", "cluster": "t.shop"},
            "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": secrets},
        }
    )


def _tls(
    mode: MutualTLSMode, dr: ClientTLSSettings | None, *, sidecars: tuple[bool, ...] = (True,)
) -> Json:
    endpoints = [UpstreamEndpoint(PRODUCT, s, mode) for s in sidecars]
    return client_tls(
        endpoints, dr, port=8080, subset="", hostname="product.shop.svc.cluster.local"
    )


@pytest.mark.envoy
def test_peer_authentication_modes_and_client_tls_on_real_envoy(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "ca")
    product, frontend = ca.issue("shop", "product"), ca.issue("shop", "frontend")
    strict, permissive, disable = free_port(), free_port(), free_port()
    out, server_admin, client_admin = free_port(), free_port(), free_port()
    server = _bootstrap(
        server_admin,
        [
            _inbound("strict", strict, MutualTLSMode.STRICT),
            _inbound("permissive", permissive, MutualTLSMode.PERMISSIVE),
            _inbound("disable", disable, MutualTLSMode.DISABLE),
        ],
        [],
        static_secrets(product),
    )
    plaintext = ClientTLSSettings(mode=TLSMode.DISABLE)
    wrong_san = ClientTLSSettings(
        mode=TLSMode.ISTIO_MUTUAL, subject_alt_names=("cluster.local/ns/shop/sa/other",)
    )
    forced = ClientTLSSettings(mode=TLSMode.ISTIO_MUTUAL)
    auto_strict = _tls(MutualTLSMode.STRICT, None)
    assert "transport_socket" in auto_strict
    mixed = _tls(MutualTLSMode.STRICT, None, sidecars=(True, False))
    assert [m["name"] for m in mixed["transport_socket_matches"]] == [
        "tlsMode-istio",
        "tlsMode-disabled",
    ]
    clusters = [
        _cluster("strict-auto", strict, auto_strict),
        _cluster("strict-mixed-tagged", strict, mixed),
        _cluster("strict-mixed-untagged", strict, mixed, tagged=False),
        _cluster("strict-plaintext", strict, _tls(MutualTLSMode.STRICT, plaintext)),
        _cluster("strict-wrong-san", strict, _tls(MutualTLSMode.STRICT, wrong_san)),
        _cluster("permissive-auto", permissive, _tls(MutualTLSMode.PERMISSIVE, None)),
        _cluster("permissive-plaintext", permissive, _tls(MutualTLSMode.PERMISSIVE, plaintext)),
        _cluster("disable-auto", disable, _tls(MutualTLSMode.DISABLE, None)),
        _cluster("disable-forced", disable, _tls(MutualTLSMode.DISABLE, forced)),
    ]
    assert _tls(MutualTLSMode.DISABLE, None) == {}, "auto mTLS never sends mTLS to DISABLE"
    client = _bootstrap(
        client_admin,
        [_client_listener(out, [c["name"] for c in clusters])],
        clusters,
        static_secrets(frontend),
    )
    with (
        running_envoy(server, tmp_path, server_admin),
        running_envoy(client, tmp_path, client_admin),
    ):
        via_sidecar = {c["name"]: send(out, "GET", f"/{c['name']}") for c in clusters}
        direct = {
            "strict plaintext": send(strict),
            "strict mtls": send(strict, tls=client_context(frontend, ca.root_file)),
            "permissive plaintext": send(permissive),
            "permissive mtls": send(permissive, tls=client_context(frontend, ca.root_file)),
            "disable plaintext": send(disable),
            "disable mtls": send(disable, tls=client_context(frontend, ca.root_file)),
        }
    got = {name: r.status for name, r in via_sidecar.items()}
    assert got == {
        "strict-auto": 200,
        "strict-mixed-tagged": 200,
        "strict-mixed-untagged": 503,
        "strict-plaintext": 503,
        "strict-wrong-san": 503,
        "permissive-auto": 200,
        "permissive-plaintext": 200,
        "disable-auto": 200,
        "disable-forced": 503,
    }
    assert "connection termination" in via_sidecar["strict-plaintext"].body  # 503 UC
    assert "connection failure" in via_sidecar["strict-wrong-san"].body  # 503 UF (SAN check)
    assert {name: r.status for name, r in direct.items()} == {
        "strict plaintext": 0,  # closed without a response: curl's "Empty reply from server"
        "strict mtls": 200,
        "permissive plaintext": 200,
        "permissive mtls": 200,
        "disable plaintext": 200,
        "disable mtls": 0,
    }
