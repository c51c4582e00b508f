"""The server sidecar's decisions come from its translated ``virtualInbound`` listener, not from the
Istio resources: hand-edit the Envoy JSON and the simulator follows the edit (sim/inbound.py,
sim/httpfilters.py). Each test changes a filter the translator emitted (or adds one no resource
asks for) and checks what Envoy would then answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.type_urls import LOCAL_RATELIMIT, RBAC
from sim.tokens import UserTokens
from tests.sim.harness import Listener, by, drive, dst, make_edited_world, src

DENY_ADMIN = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: t}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
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
Filters = list[dict[str, Any]]


def on_reviews_http_filters(change: Callable[[Filters], Filters]) -> Callable[..., Listener]:
    """An edit of every reviews pod's inbound HCMs: ``change`` gets their ``http_filters``."""

    def edit(pod: str, listener: Listener) -> Listener:
        if not pod.startswith("reviews-") or listener["name"] != "virtualInbound":
            return listener
        seen: list[object] = []  # the mTLS and the plaintext chain of a port share their HCM
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                if f["name"] == tu.FILTER_HCM and all(f["typed_config"] is not s for s in seen):
                    config = f["typed_config"]
                    seen.append(config)
                    config["http_filters"] = change(config["http_filters"])
        return listener

    return edit


def _before_router(extra: dict[str, Any]) -> Callable[[Filters], Filters]:
    return lambda filters: [*filters[:-1], extra, filters[-1]]


def _paths(records: list[Any]) -> set[tuple[str, int]]:
    return {(r.path, r.response_code) for r in dst(records)}


def test_an_rbac_filter_no_authorization_policy_asks_for_is_enforced() -> None:
    deny_secret = {
        "name": tu.FILTER_RBAC,
        "typed_config": {
            "@type": RBAC,
            "rules": {
                "action": "DENY",
                "policies": {
                    "hand-written": {
                        "permissions": [{"url_path": {"path": {"prefix": "/secret"}}}],
                        "principals": [{"any": True}],
                    }
                },
            },
        },
    }
    world = make_edited_world(edit=on_reviews_http_filters(_before_router(deny_secret)))
    records = drive(world, requests=(("GET", "/secret"), ("GET", "/r")), count=20, rate=20)
    assert _paths(records) == {("/secret", 403), ("/r", 200)}
    assert {r.response_code_details for r in dst(records) if r.response_code == 403} == {
        "rbac_access_denied_matched_policy[hand-written]"
    }


def test_removing_the_translated_rbac_filter_lifts_the_authorization_policy() -> None:
    requests = (("GET", "/admin"), ("GET", "/r"))
    as_translated = make_edited_world(DENY_ADMIN)
    assert _paths(drive(as_translated, requests=requests, count=20, rate=20)) == {
        ("/admin", 403),
        ("/r", 200),
    }
    without = on_reviews_http_filters(lambda fs: [f for f in fs if f["name"] != tu.FILTER_RBAC])
    edited = make_edited_world(DENY_ADMIN, without)
    assert _paths(drive(edited, requests=requests, count=20, rate=20)) == {
        ("/admin", 200),
        ("/r", 200),
    }


def test_an_edited_rbac_path_moves_the_denial() -> None:
    def to_r(filters: Filters) -> Filters:
        for f in filters:
            if f["name"] == tu.FILTER_RBAC:
                (policy,) = f["typed_config"]["rules"]["policies"].values()
                policy["permissions"] = [{"url_path": {"path": {"exact": "/r"}}}]
        return filters

    world = make_edited_world(DENY_ADMIN, on_reviews_http_filters(to_r))
    records = drive(world, requests=(("GET", "/admin"), ("GET", "/r")), count=20, rate=20)
    assert _paths(records) == {("/admin", 200), ("/r", 403)}


def test_jwt_authn_follows_an_edited_issuer() -> None:
    token = UserTokens("t").token("alice@shop.example")
    bearer = {"authorization": f"Bearer {token}"}

    def other_issuer(filters: Filters) -> Filters:
        for f in filters:
            if f["name"] == tu.FILTER_JWT_AUTHN:
                for provider in f["typed_config"]["providers"].values():
                    provider["issuer"] = "https://issuer.example"
        return filters

    translated = make_edited_world(TOKENS)
    assert _paths(drive(translated, requests=(("GET", "/t", bearer),), count=5, rate=20)) == {
        ("/t", 200)
    }
    edited = make_edited_world(TOKENS, on_reviews_http_filters(other_issuer))
    records = drive(edited, requests=(("GET", "/t", bearer),), count=5, rate=20)
    assert {(r.response_code, r.response_code_details) for r in dst(records)} == {
        (401, "jwt_authn_access_denied{Jwt_issuer_is_not_configured}")
    }
    assert {r.response_flags for r in src(records)} == {()}


def test_a_hand_written_local_rate_limit_filter_limits_each_sidecar() -> None:
    limit = {
        "name": tu.FILTER_LOCAL_RATELIMIT,
        "typed_config": {
            "@type": LOCAL_RATELIMIT,
            "stat_prefix": "rl",
            "token_bucket": {"max_tokens": 2, "tokens_per_fill": 1, "fill_interval": "3600s"},
            "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        },
    }
    world = make_edited_world(edit=on_reviews_http_filters(_before_router(limit)))
    records = dst(drive(world, source="outside", count=30, rate=30))
    passed = by([r for r in records if r.response_code == 200], "destination_workload")
    # a bucket of two per sidecar, no refill within the run: exactly two per reviews pod
    assert passed == {"reviews-v1": 2, "reviews-v2": 2, "reviews-v3": 2}
    limited = [r for r in records if r.response_code == 429]
    assert len(limited) == 24
    assert {(r.response_flags, r.response_code_details) for r in limited} == {
        (("RL",), "local_rate_limited")
    }


def test_a_per_route_bucket_replaces_the_filters_own() -> None:
    # a filter without a bucket limits nothing; the inbound route's typed_per_filter_config
    # gives it one (how an EnvoyFilter HTTP_ROUTE patch lands)
    no_bucket = {
        "name": tu.FILTER_LOCAL_RATELIMIT,
        "typed_config": {"@type": LOCAL_RATELIMIT, "stat_prefix": "rl"},
    }
    unlimited = make_edited_world(edit=on_reviews_http_filters(_before_router(no_bucket)))
    assert by(dst(drive(unlimited, source="outside", count=12, rate=30)), "response_code") == {
        200: 12
    }
    world = make_edited_world(edit=on_reviews_http_filters(_before_router(no_bucket)))
    bucket = {
        "@type": LOCAL_RATELIMIT,
        "stat_prefix": "rl",
        "token_bucket": {"max_tokens": 1, "tokens_per_fill": 1, "fill_interval": "3600s"},
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
    }
    for name, proxy in world.proxies.items():
        if name.startswith("reviews-"):
            (vhost,) = proxy.tables.route_configs["inbound|9080||"].vhosts
            for route in vhost.routes:
                route.per_filter = {**route.per_filter, tu.FILTER_LOCAL_RATELIMIT: bucket}
    codes = by(dst(drive(world, source="outside", count=12, rate=30)), "response_code")
    assert codes == {200: 3, 429: 9}
