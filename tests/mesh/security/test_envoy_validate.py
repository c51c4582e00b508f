"""Every shape of security config the builders emit loads in the real Envoy
(``envoy --mode validate``): RBAC with every AuthorizationPolicy field and condition, AUDIT and
dry-run, network RBAC on TCP chains in every mTLS mode, jwt_authn with several providers and a
remote JWKS, both local rate limit forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cluster.local.ca import LocalCA
from mesh.envoy_api.type_urls import RBAC, SECURITY_TYPE_URLS
from mesh.model import MutualTLSMode
from mesh.security import (
    build_http_rbac,
    build_network_rbac,
    inbound_filter_chains,
    inbound_security_filters,
    inbound_tcp_security_filters,
    jwt_authn_filter,
    tls_inspector,
)
from mesh.security.jwt import jwks_cluster
from mesh.source import load_text
from mesh.topology import build_topology
from tests.mesh.envoy.real_envoy import free_port
from tests.mesh.security.harness import hcm, inbound_bootstrap, static_secrets, validate
from tests.mesh.security.tokens import Signer

Json = dict[str, Any]

POLICIES = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: product-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  template:
    metadata: {labels: {app: product}}
    spec:
      containers: [{name: app, image: product, ports: [{containerPort: 8080}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: everything, namespace: shop}
spec:
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/a", "cluster.local/ns/shop/*", "*/sa/b", "*"]
        notPrincipals: ["cluster.local/ns/shop/sa/x"]
        requestPrincipals: ["https://iss/sub", "https://iss/*", "*/sub", "*", "iss-prefix*"]
        notRequestPrincipals: ["https://bad/x"]
        namespaces: ["shop", "shop-*", "*-dev", "*"]
        notNamespaces: ["kube-system"]
        ipBlocks: ["10.0.0.0/8", "192.168.1.1"]
        notIpBlocks: ["10.1.0.0/16"]
        remoteIpBlocks: ["1.2.3.0/24"]
        notRemoteIpBlocks: ["1.2.3.4"]
    - source: {serviceAccounts: ["shop/frontend", "api-gateway"]}
    to:
    - operation:
        hosts: ["product.shop", "*.example.com", "api.*", "*"]
        notHosts: ["evil.com"]
        ports: ["8080", "9090"]
        notPorts: ["15000"]
        methods: ["GET", "HEAD", "*"]
        notMethods: ["DELETE"]
        paths: ["/exact", "/prefix/*", "*.html", "*", "/items/{*}/reviews", "/{**}/raw"]
        notPaths: ["/admin*"]
    when:
    - {key: "request.headers[x-tenant]", values: ["acme", "beta-*", "*-corp", "*"], notValues: ["evil"]}
    - {key: source.ip, values: ["10.0.0.0/8"]}
    - {key: remote.ip, values: ["1.2.3.4"]}
    - {key: source.namespace, values: ["shop"]}
    - {key: source.principal, values: ["cluster.local/ns/shop/sa/a"]}
    - {key: request.auth.principal, values: ["https://iss/sub"]}
    - {key: request.auth.audiences, values: ["shop"]}
    - {key: request.auth.presenter, values: ["web"]}
    - {key: "request.auth.claims[groups]", values: ["admin"]}
    - {key: "request.auth.claims[realm][role]", values: ["ops"]}
    - {key: destination.ip, values: ["10.0.0.1"]}
    - {key: destination.port, values: ["8080"]}
    - {key: connection.sni, values: ["outbound_.8080_._.product.shop.svc.cluster.local"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-post, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [POST]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-all, namespace: shop}
spec:
  action: AUDIT
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: trial, namespace: shop, annotations: {istio.io/dry-run: "true"}}
spec:
  action: DENY
  rules: [{from: [{source: {namespaces: [other]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nothing, namespace: shop}
spec: {}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: rl, namespace: shop}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND, listener: {portNumber: 8080}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: rl
          token_bucket: {max_tokens: 10, tokens_per_fill: 10, fill_interval: 60s}
          filter_enabled: {default_value: {numerator: 100, denominator: HUNDRED}, runtime_key: a}
          filter_enforced: {default_value: {numerator: 100, denominator: HUNDRED}, runtime_key: b}
          response_headers_to_add: [{append_action: OVERWRITE_IF_EXISTS_OR_ADD, header: {key: x-rl, value: "1"}}]
"""


def _request_authentication(jwks: str) -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: two-issuers, namespace: shop}}
spec:
  jwtRules:
  - issuer: http://user.shop.svc.cluster.local
    audiences: [shop, web]
    jwks: '{jwks}'
    forwardOriginalToken: true
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{{header: x-sub, claim: sub}}]
  - issuer: https://accounts.example.com
    jwksUri: http://user.shop:8080/.well-known/jwks.json
    fromHeaders: [{{name: x-token, prefix: "Bearer "}}]
    fromParams: [token]
"""


def _types(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["@type"]} if "@type" in node else set()
        return found.union(*(_types(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_types(v) for v in node))
    return set()


@pytest.mark.envoy
def test_every_emitted_security_config_passes_envoy_validate(tmp_path: Path) -> None:
    loaded = load_text(POLICIES + _request_authentication(Signer().jwks), "all.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    resources = loaded.resources
    topology = build_topology(resources, include_istio_system=False)
    pod = topology.pod("product-v1-0")
    assert pod is not None
    http = inbound_security_filters(pod, resources, topology, port=8080)
    assert [f["name"] for f in http] == [
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.rbac",  # AUDIT (LOG)
        "envoy.filters.http.rbac",  # DENY (+ dry-run shadow)
        "envoy.filters.http.rbac",  # ALLOW
        "envoy.filters.http.local_ratelimit",
    ]
    tcp = inbound_tcp_security_filters(pod, resources, topology)
    jwks_uri_cluster = jwks_cluster("http://user.shop:8080/.well-known/jwks.json")
    assert jwks_uri_cluster == "outbound|8080||user.shop.svc.cluster.local"
    jwt_static = {
        "name": jwks_uri_cluster,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": jwks_uri_cluster, "endpoints": []},
    }
    tcp_proxy = {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "inbound|9000||",
            "cluster": jwks_uri_cluster,
        },
    }
    extra = []
    for mode in MutualTLSMode:
        for http_chain, filters in ((True, [hcm(http)]), (False, [*tcp, tcp_proxy])):
            chains = inbound_filter_chains(
                mode, target_port=9000, match_port=9000, http=http_chain,
                network_filters=lambda _m, f=filters: list(f),
            )  # fmt: skip
            extra.append(
                {
                    "name": f"{mode.value.lower()}-{'http' if http_chain else 'tcp'}",
                    "address": {
                        "socket_address": {"address": "127.0.0.1", "port_value": free_port()}
                    },
                    "enable_reuse_port": False,
                    "listener_filters": [tls_inspector()],
                    "filter_chains": chains,
                }
            )
    config = inbound_bootstrap(
        port=free_port(), admin_port=free_port(), mode=MutualTLSMode.STRICT, http_filters=http,
        secrets=static_secrets(LocalCA(tmp_path / "ca").issue("shop", "product")), extra_listeners=extra,
        clusters=[jwt_static],
    )  # fmt: skip
    rc, out = validate(config, tmp_path)
    assert rc == 0, out
    emitted = _types([*http, *tcp, *(c for x in extra for c in x["filter_chains"])])
    assert {t for t in emitted if "uri_template" not in t} <= SECURITY_TYPE_URLS | {
        hcm([])["typed_config"]["@type"],
        tcp_proxy["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    }


@pytest.mark.envoy
def test_envoy_validate_rejects_a_broken_rbac_config(tmp_path: Path) -> None:
    """The validation is not vacuous: a malformed permission makes Envoy refuse the config."""
    broken: Json = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": RBAC,
            "rules": {"policies": {"p": {"permissions": [{"url_path": {"path": {"exactly": "/"}}}],
                                         "principals": [{"any": True}]}}},
        },
    }  # fmt: skip
    config = inbound_bootstrap(
        port=free_port(), admin_port=free_port(), mode=MutualTLSMode.DISABLE, http_filters=[broken]
    )
    rc, out = validate(config, tmp_path)
    assert rc != 0 and "exactly" in out
    assert build_http_rbac([]).filters == build_network_rbac([]).filters == ()
    assert jwt_authn_filter([]) is None
