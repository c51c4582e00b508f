"""Istio's security semantics, without Envoy: PeerAuthentication precedence and chains, auto mTLS,
AuthorizationPolicy translation and evaluation (reference §21 items 49-62), JWT, rate limit and
NetworkPolicy."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import jwt as pyjwt
import pytest

from mesh.model import MutualTLSMode, Resource, TLSMode
from mesh.model.destination_rule import ClientTLSSettings
from mesh.security import (
    ClientTLS,
    InboundRequest,
    JwtStatus,
    NetworkPolicies,
    TokenBucket,
    UpstreamEndpoint,
    authenticate,
    build_http_rbac,
    build_network_rbac,
    check_request,
    client_tls_decision,
    inbound_filter_chains,
    jwt_authn_filter,
    peer_authentication_of,
)
from mesh.security.jwt_verify import SignatureCheck, rs256_verifier
from mesh.security.ratelimit import normalize_local_ratelimit
from mesh.security.rbac import parse_policy_name, policy_name
from mesh.security.selection import authorization_policies_for
from mesh.source import load_text
from mesh.topology import Topology, build_topology
from tests.mesh.security.tokens import Signer

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
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
      containers: [{name: app, image: p, ports: [{name: http, containerPort: 8080}, {containerPort: 9090}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: shop}
spec:
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      serviceAccountName: curl
      containers: [{name: app, image: c}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other, namespace: shop}
spec:
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      serviceAccountName: other
      containers: [{name: app, image: o}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: old, namespace: legacy}
spec:
  selector: {matchLabels: {app: old}}
  template:
    metadata: {labels: {app: old}}
    spec:
      containers: [{name: app, image: o}]
"""


def _world(extra: str = "") -> tuple[list[Resource], Topology]:
    loaded = load_text(APP + ("---\n" + extra if extra else ""), "t.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    resources = list(loaded.resources)
    return resources, build_topology(resources)


def _verdict(extra: str, source: str | None, method: str = "GET", path: str = "/", **kw: object):  # type: ignore[no-untyped-def]
    resources, topo = _world(extra)
    server = topo.pod("product-v1-0")
    client = topo.pod(f"{source}-0") if source else None
    assert server is not None
    request = InboundRequest(method=method, path=path, port=8080, source=client, **kw)  # type: ignore[arg-type]
    return check_request(server, request, resources, topo, now=time.time())


def _pa(name: str, ns: str, mode: str, selector: str = "", ports: str = "") -> str:
    sel = f"selector: {{matchLabels: {{{selector}}}}}" if selector else ""
    port_level = f"portLevelMtls: {{{ports}}}" if ports else ""
    return f"""apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {ns}}}
spec:
  {sel}
  mtls: {{mode: {mode}}}
  {port_level}
"""


# -- PeerAuthentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policies", "expected", "port_9090"),
    [
        ([], MutualTLSMode.PERMISSIVE, MutualTLSMode.PERMISSIVE),
        ([_pa("default", "istio-system", "STRICT")], MutualTLSMode.STRICT, MutualTLSMode.STRICT),
        ([_pa("m", "istio-system", "STRICT"), _pa("n", "shop", "DISABLE")], MutualTLSMode.DISABLE, MutualTLSMode.DISABLE),
        ([_pa("n", "shop", "STRICT"), _pa("w", "shop", "PERMISSIVE", "app: product")], MutualTLSMode.PERMISSIVE, MutualTLSMode.PERMISSIVE),
        ([_pa("n", "shop", "STRICT"), _pa("w", "shop", "UNSET", "app: product")], MutualTLSMode.STRICT, MutualTLSMode.STRICT),
        ([_pa("n", "shop", "STRICT"), _pa("w", "shop", "UNSET", "app: product", "9090: {mode: DISABLE}")], MutualTLSMode.STRICT, MutualTLSMode.DISABLE),
        ([_pa("old", "shop", "STRICT"), _pa("new", "shop", "DISABLE")], MutualTLSMode.STRICT, MutualTLSMode.STRICT),
        ([_pa("n", "shop", "STRICT"), _pa("rootsel", "istio-system", "DISABLE", "app: product")], MutualTLSMode.STRICT, MutualTLSMode.STRICT),
    ],
    ids=["none-permissive", "mesh", "namespace-beats-mesh", "workload-beats-namespace",
         "unset-inherits", "port-level", "oldest-wins", "root-selector-ignored"],
)  # fmt: skip
def test_peer_authentication_precedence(
    policies: list[str], expected: MutualTLSMode, port_9090: MutualTLSMode
) -> None:
    resources, topo = _world("---\n".join(policies))
    pod = topo.pod("product-v1-0")
    assert pod is not None
    mode = peer_authentication_of(pod, resources, topo)
    assert (mode.for_port(8080), mode.for_port(9090)) == (expected, port_9090)


def test_inbound_chains_per_mode_match_tls_or_plaintext() -> None:
    def shape(mode: MutualTLSMode, http: bool = True) -> list[tuple[str, bool]]:
        chains = inbound_filter_chains(mode, target_port=8080, match_port=8080, http=http,
                                       network_filters=lambda _m: [])  # fmt: skip
        return [
            (c["filter_chain_match"]["transport_protocol"], "transport_socket" in c) for c in chains
        ]

    assert shape(MutualTLSMode.STRICT) == [("tls", True)]
    assert shape(MutualTLSMode.PERMISSIVE) == [("tls", True), ("raw_buffer", False)]
    assert shape(MutualTLSMode.DISABLE) == [("raw_buffer", False)]
    assert shape(MutualTLSMode.PERMISSIVE, http=False) == [
        ("tls", True),
        ("tls", False),
        ("raw_buffer", False),
    ]
    strict = inbound_filter_chains(MutualTLSMode.STRICT, target_port=8080, match_port=15080, http=True,
                                   network_filters=lambda _m: [])[0]  # fmt: skip
    tls = strict["transport_socket"]["typed_config"]
    assert tls["require_client_certificate"] is True
    assert strict["filter_chain_match"]["destination_port"] == 15080
    assert [s["name"] for s in tls["common_tls_context"]["tls_certificate_sds_secret_configs"]] == [
        "default"
    ]


def test_auto_mtls_client_decisions() -> None:
    sidecar = UpstreamEndpoint(
        "spiffe://cluster.local/ns/shop/sa/p", True, MutualTLSMode.PERMISSIVE
    )
    plain = UpstreamEndpoint(
        "spiffe://cluster.local/ns/legacy/sa/default", False, MutualTLSMode.PERMISSIVE
    )
    disabled = UpstreamEndpoint("spiffe://cluster.local/ns/shop/sa/p", True, MutualTLSMode.DISABLE)
    assert client_tls_decision([sidecar], None) is ClientTLS.ISTIO_MUTUAL
    assert client_tls_decision([sidecar, plain], None) is ClientTLS.AUTO
    assert client_tls_decision([plain], None) is ClientTLS.PLAINTEXT
    assert client_tls_decision([disabled], None) is ClientTLS.PLAINTEXT
    assert (
        client_tls_decision([sidecar], None, namespace_mode=MutualTLSMode.DISABLE)
        is ClientTLS.PLAINTEXT
    )
    assert client_tls_decision([sidecar], None, mesh_external=True) is ClientTLS.PLAINTEXT
    assert (
        client_tls_decision([plain], ClientTLSSettings(mode=TLSMode.ISTIO_MUTUAL))
        is ClientTLS.ISTIO_MUTUAL
    )
    assert (
        client_tls_decision([sidecar], ClientTLSSettings(mode=TLSMode.DISABLE))
        is ClientTLS.PLAINTEXT
    )


def test_strict_refuses_plaintext_but_not_sidecars() -> None:
    strict = _pa("n", "shop", "STRICT")
    assert _verdict(strict, None).stage == "mtls"
    assert _verdict(strict, None).status == 0
    assert _verdict(strict, "curl").allowed
    assert _verdict(strict, "old").stage == "mtls", "a pod without sidecar sends plaintext"
    dr = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: p, namespace: shop}
spec: {host: product, trafficPolicy: {tls: {mode: DISABLE}}}
"""
    assert _verdict(strict + "---\n" + dr, "curl").stage == "mtls", (
        "DR DISABLE -> plaintext -> refused"
    )


# -- AuthorizationPolicy -----------------------------------------------------------------------


def _ap(name: str, spec: str, action: str = "ALLOW", ns: str = "shop") -> str:
    return f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: product}}}}
  action: {action}
  {spec}
"""


ALLOW_CURL = _ap(
    "curl-only", 'rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/curl"]}}]}]'
)


def test_principal_allow_list_checklist_56() -> None:
    assert _verdict(ALLOW_CURL, "curl").allowed
    denied = _verdict(ALLOW_CURL, "other")
    assert (denied.allowed, denied.status, denied.body) == (False, 403, "RBAC: access denied")
    assert not _verdict(ALLOW_CURL, None).allowed, "plaintext (PERMISSIVE) has no principal"
    assert _verdict(ALLOW_CURL, "curl").policy == ("shop", "curl-only", 0)


def test_empty_rules_semantics_checklist_57_58() -> None:
    nothing = _ap("nothing", "")
    everything = _ap("everything", "rules: [{}]")
    deny_all = _ap("deny-all", "rules: [{}]", "DENY")
    assert _verdict("", "curl").allowed, "no policy: allow"
    assert not _verdict(nothing, "curl").allowed, "ALLOW without rules: deny all"
    assert _verdict(everything, "other").allowed
    assert not _verdict(everything + "---\n" + deny_all, "curl").allowed, "DENY before ALLOW"
    assert _verdict(_ap("noop", "", "DENY"), "curl").allowed, "DENY without rules: no effect"


def test_paths_hosts_and_methods_follow_istio_wildcards() -> None:
    policy = _ap(
        "p",
        """rules:
  - to: [{operation: {paths: ["/api/*", "*.css", "/exact"], methods: ["GET"], hosts: ["shop.example", "*.example.org"]}}]""",
    )
    ok = {"authority": "shop.example"}
    assert _verdict(policy, "curl", path="/api/x", **ok).allowed
    assert not _verdict(policy, "curl", path="/api", **ok).allowed, (
        "/api/* is the string prefix /api/"
    )
    assert _verdict(policy, "curl", path="/site/a.css?v=1", **ok).allowed
    assert not _verdict(policy, "curl", path="/exact/", **ok).allowed
    assert not _verdict(policy, "curl", method="POST", path="/exact", **ok).allowed
    assert _verdict(policy, "curl", path="/exact", authority="SHOP.example").allowed
    assert not _verdict(policy, "curl", path="/exact", authority="shop.example:8080").allowed
    assert _verdict(policy, "curl", path="/exact", authority="a.example.org").allowed


def test_policy_names_and_translation_shapes() -> None:
    assert policy_name("shop", "p", 2) == "ns[shop]-policy[p]-rule[2]"
    assert parse_policy_name("ns[shop]-policy[a-b]-rule[10]") == ("shop", "a-b", 10)
    resources, topo = _world("---\n".join([
        _ap("audit", "rules: [{}]", "AUDIT"),
        _ap("ext", "provider: {name: opa}\n  rules: [{}]", "CUSTOM"),
        _ap("deny", 'rules: [{to: [{operation: {methods: ["POST"]}}]}]', "DENY"),
        _ap("allow", 'rules: [{from: [{source: {namespaces: ["shop"]}}], to: [{operation: {paths: ["/a"]}}]}]'),
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: dry, namespace: shop, annotations: {istio.io/dry-run: 'true'}}\nspec: {action: DENY, rules: [{}]}\n",
    ]))  # fmt: skip
    pod = topo.pod("product-v1-0")
    assert pod is not None
    policies = authorization_policies_for(pod, resources, "istio-system")
    http = build_http_rbac(policies)
    assert [f["typed_config"]["rules"].get("action", "ALLOW") for f in http.filters] == [
        "LOG",
        "DENY",
        "ALLOW",
    ]
    assert http.not_modelled == ("AuthorizationPolicy shop/ext",)
    deny = http.filters[1]["typed_config"]
    assert list(deny["shadow_rules"]["policies"]) == ["ns[shop]-policy[dry]-rule[0]"]
    ns_regex = json.dumps(http.filters[2])
    assert ".*/ns/shop/.*" in ns_regex and '"prefix": "spiffe://' not in ns_regex
    tcp = build_network_rbac(policies)
    tcp_deny, tcp_allow = (
        tcp.filters[1]["typed_config"]["rules"],
        tcp.filters[2]["typed_config"]["rules"],
    )
    assert tcp_deny["policies"]["ns[shop]-policy[deny]-rule[0]"]["permissions"] == [
        {"and_rules": {"rules": [{"any": True}]}}
    ], "DENY drops the HTTP-only method: it denies every TCP connection"
    assert tcp_allow["policies"] == {}, "ALLOW skips a rule with HTTP-only fields: deny all on TCP"


def test_unknown_when_key_skips_the_rule_and_is_reported() -> None:
    resources, topo = _world(_ap("bad", 'rules: [{when: [{key: "request.bogus", values: ["x"]}]}]'))
    pod = topo.pod("product-v1-0")
    assert pod is not None
    built = build_http_rbac(authorization_policies_for(pod, resources, "istio-system"))
    assert built.problems and "request.bogus" in built.problems[0]
    assert built.filters[0]["typed_config"]["rules"]["policies"] == {}


def test_root_namespace_policy_applies_to_every_namespace() -> None:
    mesh_wide = _ap("deny-all", "rules: [{}]", "DENY", ns="istio-system").replace(
        "selector: {matchLabels: {app: product}}", ""
    )
    assert not _verdict(mesh_wide, "curl").allowed


# -- JWT ---------------------------------------------------------------------------------------


def _ra(jwks: str, extra: str = "") -> str:
    return f"""apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: product}}}}
  jwtRules:
  - {{issuer: "http://user.shop.svc.cluster.local", audiences: [shop], jwks: '{jwks}'{extra}}}
"""


def test_jwt_checklist_61_62() -> None:
    signer = Signer()
    ra = _ra(signer.jwks)
    need_token = _ap("need", 'rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]')
    only_alice = _ap(
        "alice",
        'rules: [{from: [{source: {requestPrincipals: ["http://user.shop.svc.cluster.local/alice"]}}]}]',
    )

    def bearer(token: str) -> dict[str, object]:
        return {"headers": {"authorization": f"Bearer {token}"}}

    assert _verdict(ra, None).allowed, "no token: passes with no identity"
    missing = _verdict(ra + "---\n" + need_token, None)
    assert (missing.stage, missing.status) == ("rbac", 403)
    assert _verdict(ra + "---\n" + need_token, None, **bearer(signer.token())).allowed
    forged = _verdict(ra, None, **bearer(Signer().token()))
    assert (forged.stage, forged.status, forged.body) == ("jwt", 401, "Jwt verification fails")
    expired = _verdict(ra, None, **bearer(signer.token(ttl=-3600)))
    assert (expired.status, expired.body) == (401, "Jwt is expired")
    assert _verdict(ra, None, **bearer(signer.token(ttl=-30))).allowed, "60 s clock skew"
    assert _verdict(ra, None, **bearer(signer.token(aud="x"))).status == 403
    assert (
        _verdict(ra, None, **bearer(signer.token(iss="other"))).body
        == "Jwt issuer is not configured"
    )
    assert _verdict(ra + "---\n" + only_alice, None, **bearer(signer.token("alice"))).allowed
    assert not _verdict(ra + "---\n" + only_alice, None, **bearer(signer.token("bob"))).allowed


def test_jwt_filter_shape_follows_istio() -> None:
    signer = Signer()
    resources, _ = _world(
        _ra(
            signer.jwks,
            ", forwardOriginalToken: true, outputClaimToHeaders: [{header: x-sub, claim: sub}]",
        )
    )
    from mesh.model import RequestAuthentication

    ras = [r for r in resources if isinstance(r, RequestAuthentication)]
    single = jwt_authn_filter(ras)
    assert single is not None
    cfg = single["typed_config"]
    assert list(cfg["providers"]) == ["origins-0"]
    assert cfg["rules"][0]["requires"] == {
        "requires_any": {"requirements": [{"provider_name": "origins-0"}, {"allow_missing": {}}]}
    }
    provider = cfg["providers"]["origins-0"]
    assert provider["forward"] is True and provider["payload_in_metadata"] == "payload"
    ok = authenticate(cfg, {"authorization": f"Bearer {signer.token('alice')}"}, now=time.time())
    assert ok.allowed and ok.request_principal == "http://user.shop.svc.cluster.local/alice"
    assert ok.set_headers == {"x-sub": "alice"} and ok.remove_headers == ()
    double = jwt_authn_filter([*ras, *ras])
    assert double is not None
    assert "requires_all" in json.dumps(double["typed_config"]["rules"])
    garbage = authenticate(cfg, {"authorization": "Bearer a.b"}, now=time.time())
    assert garbage.status is JwtStatus.BAD_FORMAT


def test_stdlib_rs256_agrees_with_pyjwt() -> None:
    signer, other = Signer("k1"), Signer("k1")
    good = signer.token()
    assert rs256_verifier(good, signer.jwks) is SignatureCheck.VALID
    assert (
        pyjwt.decode(good, signer.key.public_key(), algorithms=["RS256"], audience="shop")["sub"]
        == "alice"
    )
    assert rs256_verifier(other.token(), signer.jwks) is SignatureCheck.INVALID
    assert rs256_verifier(Signer("k2").token(), signer.jwks) is SignatureCheck.NO_MATCHING_KEY
    head, body, sig = good.split(".")
    assert rs256_verifier(f"{head}.{body}x.{sig}", signer.jwks) is SignatureCheck.INVALID


# -- rate limit ---------------------------------------------------------------------------------


def test_token_bucket_starts_full_and_refills_continuously() -> None:
    bucket = TokenBucket(10, 10, 60.0)
    assert sum(bucket.try_consume(0.0) for _ in range(15)) == 10
    assert not bucket.try_consume(5.0)
    assert bucket.try_consume(6.0), "one token every 6 s"
    assert sum(bucket.try_consume(600.0) for _ in range(15)) == 10, "never more than max_tokens"


def test_rate_limit_config_forms_normalize_to_the_same_filter() -> None:
    plain = {"@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
             "statPrefix": "rl", "tokenBucket": {"maxTokens": 5, "tokensPerFill": 5, "fillInterval": "1s"}}  # fmt: skip
    wrapped = {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
               "type_url": plain["@type"],
               "value": {"stat_prefix": "rl", "token_bucket": {"max_tokens": 5, "tokens_per_fill": 5, "fill_interval": "1s"}}}  # fmt: skip
    assert normalize_local_ratelimit(plain) == normalize_local_ratelimit(wrapped) is not None
    assert normalize_local_ratelimit({"@type": "type.googleapis.com/other"}) is None


# -- NetworkPolicy ------------------------------------------------------------------------------


def _np(name: str, spec: str) -> str:
    return f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {name}, namespace: shop}}
spec:
  {spec}
"""


def _allowed(policies: Sequence[str], source: str | None, port: int = 8080, ip: str = "") -> bool:
    resources, topo = _world("---\n".join(policies))
    server = topo.pod("product-v1-0")
    assert server is not None
    client = topo.pod(f"{source}-0") if source else None
    return bool(NetworkPolicies(resources, topo).allows(client, server, port, source_ip=ip))


def test_network_policy_semantics() -> None:
    deny = _np("deny", "podSelector: {matchLabels: {app: product}}\n  policyTypes: [Ingress]")
    from_curl = _np(
        "curl",
        "podSelector: {matchLabels: {app: product}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: curl}}}], ports: [{port: http}]}]",
    )
    from_legacy = _np(
        "legacy",
        "podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: legacy}}}]}]",
    )
    from_net = _np(
        "net",
        "podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]}]",
    )
    egress = _np("egress", "podSelector: {matchLabels: {app: curl}}\n  policyTypes: [Egress]")
    assert _allowed([], "curl") and _allowed([], None, ip="8.8.8.8")
    assert not _allowed([deny], "curl")
    assert _allowed([deny, from_curl], "curl") and not _allowed([deny, from_curl], "other")
    assert not _allowed([deny, from_curl], "curl", port=9090), "the named port http is 8080 only"
    assert _allowed([deny, from_legacy], "old") and not _allowed([deny, from_legacy], "curl")
    assert _allowed([deny, from_net], None, ip="10.2.3.4")
    assert not _allowed([deny, from_net], None, ip="10.1.3.4")
    assert not _allowed([egress], "curl"), "egress isolation of the client"
    assert _allowed([egress], "other")
