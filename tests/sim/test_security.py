"""The security half on the simulator (docs/security.md "Simulator"): PeerAuthentication,
jwt_authn, RBAC, the local rate limit and NetworkPolicy, each with what Envoy answers and logs."""

from __future__ import annotations

import pytest

from mesh.records import ConnectionSecurityPolicy
from sim.tokens import SIM_EPOCH, UserTokens
from tests.sim.harness import by, drive, dst, make_world, src

STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: t}
spec:
  mtls: {mode: STRICT}
"""
PLAINTEXT_CLIENT = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: t}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: DISABLE}
"""
TOKENS = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: tokens, namespace: t}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: http://user.t.svc.cluster.local
    audiences: [shop]
    jwksUri: http://user.t.svc.cluster.local:8080/.well-known/jwks.json
"""
REQUIRE_TOKEN = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-token, namespace: t}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["http://user.t.svc.cluster.local/*"]}}]
"""


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_plaintext_from_outside_to_strict_is_closed_without_any_record() -> None:
    world = make_world(STRICT)
    assert drive(world, source="outside", count=20, rate=20) == []


def test_plaintext_client_sidecar_to_strict_gets_503_uc_and_the_server_logs_nothing() -> None:
    world = make_world(STRICT + "---" + PLAINTEXT_CLIENT)
    records = drive(world, count=10, rate=20)
    client = src(records)
    assert {(r.response_code, r.response_flags) for r in client} == {(503, ("UC",))}
    assert {r.response_code_details for r in client} == {
        "upstream_reset_before_response_started{connection_termination}"
    }
    assert dst(records) == []


def test_sidecars_keep_working_under_strict_with_auto_mtls() -> None:
    records = drive(make_world(STRICT), count=20, rate=20)
    assert by(src(records), "response_code") == {200: 20}
    assert {r.connection_security_policy for r in dst(records)} == {
        ConnectionSecurityPolicy.MUTUAL_TLS
    }


def test_permissive_accepts_plaintext_and_mtls_and_records_which() -> None:
    outside = dst(drive(make_world(), source="outside", count=10, rate=20))
    assert by(outside, "response_code") == {200: 10}
    assert {(r.connection_security_policy, r.source_principal) for r in outside} == {
        (ConnectionSecurityPolicy.NONE, "unknown")
    }
    inside = dst(drive(make_world(), count=10, rate=20))
    assert by(inside, "response_code") == {200: 10}
    assert {(r.connection_security_policy, r.source_principal) for r in inside} == {
        (ConnectionSecurityPolicy.MUTUAL_TLS, "spiffe://cluster.local/ns/t/sa/client")
    }
    plain = dst(drive(make_world(PLAINTEXT_CLIENT), count=10, rate=20))
    assert {
        (r.connection_security_policy, r.source_principal, r.source_workload) for r in plain
    } == {(ConnectionSecurityPolicy.NONE, "unknown", "client-v1")}


def test_forged_and_expired_tokens_get_401_with_envoys_bodies() -> None:
    tokens = UserTokens("t")
    good = tokens.token("alice@shop.example")
    other = tokens.token("bob@shop.example")
    forged = good.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]  # bob's signature on alice
    expired = UserTokens.mint(
        {**tokens.claims("alice@shop.example"), "iat": 1_600_000_000, "exp": 1_600_003_600}
    )
    assert SIM_EPOCH > 1_600_003_600 + 60
    world = make_world(TOKENS)
    records = dst(
        drive(
            world,
            requests=(
                ("GET", "/forged", _bearer(forged)),
                ("GET", "/expired", _bearer(expired)),
                ("GET", "/good", _bearer(good)),
                ("GET", "/none"),
            ),
            count=40,
            rate=20,
        )
    )
    seen = {(r.path, r.response_code, r.response_code_details) for r in records}
    assert seen == {
        ("/forged", 401, "jwt_authn_access_denied{Jwt_verification_fails}"),
        ("/expired", 401, "jwt_authn_access_denied{Jwt_is_expired}"),
        ("/good", 200, "via_upstream"),
        ("/none", 200, "via_upstream"),
    }
    client = {r.path: r for r in src(world.records)}
    assert client["/expired"].response_flags == ()


def test_a_missing_token_passes_jwt_authn_but_rbac_with_request_principals_denies() -> None:
    good = UserTokens("t").token("alice@shop.example")
    world = make_world(TOKENS + "---" + REQUIRE_TOKEN)
    records = dst(
        drive(
            world, requests=(("GET", "/none"), ("GET", "/good", _bearer(good))), count=20, rate=20
        )
    )
    seen = {(r.path, r.response_code, r.response_code_details) for r in records}
    assert seen == {
        ("/none", 403, "rbac_access_denied_matched_policy[none]"),
        ("/good", 200, "via_upstream"),
    }


def test_jwks_of_the_user_service_comes_from_the_simulated_issuer() -> None:
    token = UserTokens("t").token("carol@shop.example")
    world = make_world(TOKENS + "---" + REQUIRE_TOKEN)
    (rec,) = dst(drive(world, requests=(("GET", "/x", _bearer(token)),), count=1, rate=10))
    assert rec.response_code == 200


@pytest.mark.parametrize(
    ("principal", "expected"),
    [("cluster.local/ns/t/sa/client", 200), ("cluster.local/ns/t/sa/other", 403)],
)
def test_allow_policy_lets_only_the_named_identity_in(principal: str, expected: int) -> None:
    policy = f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: readers, namespace: t}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{principals: ["{principal}"]}}}}]
"""
    records = drive(make_world(policy), count=10, rate=20)
    client = src(records)
    assert by(client, "response_code") == {expected: 10}
    if expected == 403:
        assert {r.response_flags for r in client} == {()}
        server = dst(records)
        assert {r.response_code_details for r in server} == {
            "rbac_access_denied_matched_policy[none]"
        }


def test_deny_is_evaluated_before_allow() -> None:
    policies = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all-reads, namespace: t}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: [GET]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: t}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
"""
    records = dst(
        drive(make_world(policies), requests=(("GET", "/admin"), ("GET", "/r")), count=20, rate=20)
    )
    seen = {(r.path, r.response_code, r.response_code_details) for r in records}
    assert seen == {
        ("/admin", 403, "rbac_access_denied_matched_policy[ns[t]-policy[deny-admin]-rule[0]]"),
        ("/r", 200, "via_upstream"),
    }


def test_local_rate_limit_bucket_enforces_its_rate() -> None:
    limit = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: limit, namespace: t}
spec:
  workloadSelector: {labels: {app: reviews, version: v1}}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: rl
          token_bucket: {max_tokens: 5, tokens_per_fill: 5, fill_interval: 1s}
          filter_enabled: {default_value: {numerator: 100, denominator: HUNDRED}}
          filter_enforced: {default_value: {numerator: 100, denominator: HUNDRED}}
"""
    world = make_world(limit)
    v1 = [
        r
        for r in dst(drive(world, source="outside", duration=4.0, rate=60))
        if "v1" in r.destination_workload
    ]
    passed = [r for r in v1 if r.response_code == 200]
    limited = [r for r in v1 if r.response_code == 429]
    assert {r.response_flags for r in limited} == {("RL",)}
    assert {r.response_code_details for r in limited} == {"local_rate_limited"}
    # a full bucket of 5, then 5 per second for 4 s: about 25 pass whatever the offered load
    assert 20 <= len(passed) <= 27 < len(limited)


def test_network_policy_default_deny_drops_connections_to_503_uf() -> None:
    deny = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: reviews-default-deny, namespace: t}
spec:
  podSelector: {matchLabels: {app: reviews}}
  policyTypes: [Ingress]
"""
    world = make_world(deny)
    records = drive(world, count=2, rate=10)
    client = src(records)
    assert {(r.response_code, r.response_flags) for r in client} == {(503, ("UF", "URX"))}
    assert dst(records) == []
    # every attempt waited for the 10 s connect timeout: 3 attempts per request
    assert all(r.duration_ms >= 3 * 10_000 for r in client)
