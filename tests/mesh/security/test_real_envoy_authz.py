"""The acceptance at filter level: for a table of requests, what a real Envoy running the
translated jwt_authn + RBAC filters answers is exactly what the pure evaluators decide (status
and body), over mTLS identities, plaintext, hosts, methods, paths, headers and JWT claims."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cluster.local.ca import LocalCA
from mesh.model import FrozenMap, MutualTLSMode
from mesh.security import (
    RequestContext,
    authenticate,
    build_http_rbac,
    evaluate_rbac_filters,
    jwt_authn_filter,
)
from mesh.security.selection import authorization_policies_for, request_authentications_for
from mesh.source import load_text
from mesh.topology import build_topology
from tests.mesh.envoy.real_envoy import free_port
from tests.mesh.security.harness import (
    client_context,
    inbound_bootstrap,
    running_envoy,
    send,
    static_secrets,
)
from tests.mesh.security.tokens import ISSUER, Signer

APP = """
apiVersion: v1
kind: Service
metadata: {name: product, namespace: shop}
spec:
  selector: {app: product}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: product-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  template:
    metadata: {labels: {app: product, version: v1}}
    spec:
      serviceAccountName: product
      containers: [{name: app, image: product, ports: [{containerPort: 8080}]}]
"""

POLICIES = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: product-access, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/api-gateway"]}}]
    to: [{operation: {methods: ["GET", "HEAD"], paths: ["/products", "/products/*"]}}]
  - from: [{source: {namespaces: ["shop"]}}]
    to: [{operation: {methods: ["POST"], paths: ["/orders"], hosts: ["product.shop*"]}}]
  - from: [{source: {requestPrincipals: ["http://user.shop.svc.cluster.local/*"]}}]
    to: [{operation: {paths: ["/me"]}}]
  - to: [{operation: {paths: ["/reports"]}}]
    when: [{key: "request.auth.claims[groups]", values: ["admin"]}]
  - to: [{operation: {paths: ["/ops"]}}]
    when: [{key: "request.auth.claims[role]", values: ["ops"]}]
  - from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]
    to: [{operation: {paths: ["/internal"]}}]
  - from: [{source: {principals: ["*"], notPrincipals: ["cluster.local/ns/shop/sa/frontend"]}}]
    to: [{operation: {paths: ["/status"], notMethods: ["DELETE"]}}]
"""


def _request_auth(jwks: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: user-jwt, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: product}}}}
  jwtRules:
  - issuer: {ISSUER}
    audiences: [shop]
    jwks: '{jwks}'
"""


@pytest.mark.envoy
def test_real_envoy_and_evaluators_agree_on_every_request(tmp_path: Path) -> None:
    signer, stranger = Signer("k1"), Signer("k1")
    loaded = load_text(APP + "---" + POLICIES + "---" + _request_auth(signer.jwks), "p.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    resources = loaded.resources
    topology = build_topology(resources, include_istio_system=False)
    pod = topology.pod("product-v1-0")
    assert pod is not None
    jwt_filter = jwt_authn_filter(request_authentications_for(pod, resources, "istio-system"))
    assert jwt_filter is not None
    rbac = build_http_rbac(authorization_policies_for(pod, resources, "istio-system"))
    assert [f["typed_config"]["rules"].get("action", "ALLOW") for f in rbac.filters] == [
        "DENY",
        "ALLOW",
    ]

    ca = LocalCA(tmp_path / "ca")
    server = ca.issue("shop", "product")
    certs = {"gateway": ca.issue("shop", "api-gateway"), "frontend": ca.issue("shop", "frontend")}
    port, admin = free_port(), free_port()
    config = inbound_bootstrap(
        port=port, admin_port=admin, mode=MutualTLSMode.PERMISSIVE,
        http_filters=[jwt_filter, *rbac.filters], secrets=static_secrets(server),
    )  # fmt: skip

    alice = signer.token("alice", groups=["admin", "dev"], role="dev")
    bob = signer.token("bob", role="ops")
    table: list[tuple[str, str, str, dict[str, str]]] = [
        ("gateway", "GET", "/products", {}),
        ("gateway", "GET", "/products/grinder", {}),
        ("gateway", "GET", "/products?page=2", {}),
        ("gateway", "GET", "/productsX", {}),
        ("gateway", "POST", "/products", {}),
        ("frontend", "GET", "/products", {}),
        ("plain", "GET", "/products", {}),
        ("frontend", "POST", "/orders", {"host": "product.shop:8080"}),
        ("frontend", "POST", "/orders", {"host": "PRODUCT.SHOP.svc.cluster.local"}),
        ("frontend", "POST", "/orders", {"host": "other.shop"}),
        ("plain", "POST", "/orders", {"host": "product.shop"}),
        ("gateway", "GET", "/admin/users", {}),
        ("gateway", "GET", "/products", {"x-block": "yes"}),
        ("gateway", "GET", "/products", {"x-block": "no"}),
        ("plain", "GET", "/me", {"authorization": f"Bearer {alice}"}),
        ("plain", "GET", "/me", {}),
        ("plain", "GET", "/me", {"authorization": f"Bearer {signer.token(ttl=-3600)}"}),
        ("plain", "GET", "/me", {"authorization": f"Bearer {stranger.token()}"}),
        ("plain", "GET", "/me", {"authorization": f"Bearer {signer.token(aud='other')}"}),
        ("plain", "GET", "/me", {"authorization": f"Bearer {signer.token(iss='https://evil')}"}),
        ("plain", "GET", "/me", {"authorization": "Bearer not.a.jwt"}),
        ("plain", "GET", "/reports", {"authorization": f"Bearer {alice}"}),
        ("plain", "GET", "/reports", {"authorization": f"Bearer {bob}"}),
        ("plain", "GET", "/ops", {"authorization": f"Bearer {bob}"}),
        ("plain", "GET", "/ops", {"authorization": f"Bearer {alice}"}),
        ("gateway", "GET", "/admin", {"authorization": f"Bearer {alice}"}),
        ("gateway", "GET", "/internal", {}),
        ("gateway", "GET", "/status", {}),
        ("gateway", "DELETE", "/status", {}),
        ("frontend", "GET", "/status", {}),
        ("plain", "GET", "/status", {}),
    ]
    observed: list[tuple[int, str]] = []
    with running_envoy(config, tmp_path, admin):
        for who, method, path, headers in table:
            tls = None if who == "plain" else client_context(certs[who], ca.root_file)
            reply = send(port, method, path, headers, tls)
            if reply.status == 401:
                assert "www-authenticate" in reply.headers
            observed.append((reply.status, reply.body))

    expected: list[tuple[int, str]] = []
    for who, method, path, headers in table:
        lowered = {k.lower(): v for k, v in headers.items()}
        lowered.setdefault("host", f"127.0.0.1:{port}")
        outcome = authenticate(jwt_filter["typed_config"], lowered, path, now=time.time())
        if not outcome.allowed:
            expected.append((outcome.http_status, outcome.body))
            continue
        ctx = RequestContext(
            method=method, path=path, authority=lowered["host"], headers=FrozenMap(lowered),
            destination_port=port, destination_ip="127.0.0.1", source_ip="127.0.0.1",
            peer_principal="" if who == "plain" else certs[who].identity,
            metadata=FrozenMap(outcome.metadata),
        )  # fmt: skip
        decision = evaluate_rbac_filters(rbac.filters, ctx)
        expected.append((200, "ok") if decision.allowed else (403, decision.body))

    rows = [
        f"{who:8} {method:6} {path:18} envoy={got} evaluator={want}"
        for (who, method, path, _), got, want in zip(table, observed, expected, strict=True)
        if got != want
    ]
    assert not rows, "\n".join(rows)
    statuses = [s for s, _ in observed]
    assert statuses.count(200) >= 8 and statuses.count(403) >= 8 and statuses.count(401) >= 4
