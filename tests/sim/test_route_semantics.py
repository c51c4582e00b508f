"""Envoy's route semantics in the simulator beyond what Istio's translation emits: the
protobuf-JSON spellings Envoy accepts, RE2 patterns, header value formatters, virtual host
selection and ``require_tls`` (Gateway ``httpsRedirect``) on a gateway.

The same code answers ``meshplay route-check``; its corpus under tests/playground/testdata
is checked against real Envoy by tests/cluster/local/test_route_check_envoy.py.
"""

from __future__ import annotations

import re

import pytest

from sim.protojson import INVALID, NOT_MODELLED, Issue, canonical, enum_name
from sim.re2 import RegexError, compile_re2, substitution
from sim.xds import compile_route_config
from sim.xds.decide import RouteInput, decide
from sim.xds.formatters import FormatContext, FormatterError, apply_header_ops, format_value
from sim.xds.values import parse_duration
from tests.sim.harness import make_world, one_request


def test_camel_case_keys_become_proto_names_but_map_keys_and_structs_stay() -> None:
    rc = canonical(
        {
            "virtualHosts": [{"requireTls": "ALL"}],
            "typedPerFilterConfig": {"envoy.filters.http.fault": {"@type": "x", "abortPercent": 1}},
            "metadata": {"filterMetadata": {"istio": {"someKey": {"innerKey": 1}}}},
        }
    )
    assert rc["virtual_hosts"] == [{"require_tls": "ALL"}]
    assert rc["typed_per_filter_config"] == {
        "envoy.filters.http.fault": {"@type": "x", "abort_percent": 1}
    }
    assert rc["metadata"]["filter_metadata"] == {"istio": {"someKey": {"innerKey": 1}}}


def test_durations_wrappers_and_enums_in_every_json_form() -> None:
    assert parse_duration({"seconds": 2, "nanos": 500_000_000}) == 2.5
    assert parse_duration("0.250s") == 0.25
    assert enum_name(2, ("A", "B", "C"), "A") == enum_name("2", ("A", "B", "C"), "A") == "C"
    with pytest.raises(ValueError, match="out of range"):
        enum_name(7, ("A", "B"), "A")
    table = compile_route_config(
        {"virtualHosts": [{"name": "v", "domains": ["*"], "routes": [
            {"match": {"prefix": "/", "caseSensitive": {"value": False}},
             "route": {"cluster": "c", "timeout": {"seconds": 3},
                       "retryPolicy": {"numRetries": {"value": 4}, "retryOn": "5xx"}}}]}]}
    )  # fmt: skip
    route = table.vhosts[0].routes[0]
    assert (route.path.case_sensitive, route.timeout) == (False, 3.0)
    assert route.retry is not None and route.retry.num_retries == 4


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("/word/\\w+", "/word/café", False),  # RE2's \w is ASCII only
        ("/word/\\w+", "/word/cafe_1", True),
        ("/n/[[:digit:]]+", "/n/42", True),  # POSIX classes
        ("/(?<id>[0-9]+)", "/7", True),  # RE2's named group spelling
        ("/a{,2}", "/a{,2}", True),  # a literal in RE2, a repetition in Python
        ("/end\\z", "/end", True),
    ],
)
def test_re2_patterns_behave_as_re2(pattern: str, text: str, matches: bool) -> None:
    assert (compile_re2(pattern).fullmatch(text) is not None) is matches


@pytest.mark.parametrize(
    ("pattern", "rejected"),
    [
        ("/(?=a)", True),
        ("/(?<!a)b", True),
        ("/(a)\\1", True),
        ("/\\pL", False),
        ("/\\Qa\\E", False),
    ],
)
def test_re2_refusals_say_whether_envoy_rejects_or_meshplay_does_not_model(
    pattern: str, rejected: bool
) -> None:
    with pytest.raises(RegexError) as info:
        compile_re2(pattern)
    assert info.value.rejected is rejected


def test_re2_substitution_uses_groups_and_escaped_backslashes() -> None:
    replace = substitution("/\\2/\\1\\\\x")
    assert re.sub(compile_re2("^/api/(v[0-9])/(.*)$"), replace, "/api/v1/users") == "/users/v1\\x"


def test_header_formatters_and_append_actions() -> None:
    ctx = FormatContext({"x-user": "bob", ":path": "/long/path"}, remote="10.1.2.3:4567")
    assert format_value("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", ctx) == "10.1.2.3"
    assert format_value("%DOWNSTREAM_REMOTE_ADDRESS%", ctx) == "10.1.2.3:4567"
    assert format_value("%REQ(X-USER)%-%REQ(:PATH):5%-100%%", ctx) == "bob-/long-100%"
    assert format_value("%REQ(x-none?x-user)%", ctx) == "bob"
    out = apply_header_ops(
        {"a": "1", "b": "2"},
        ("b",),
        (
            ("a", "2", "APPEND_IF_EXISTS_OR_ADD", False),
            ("c", "%REQ(x-missing)%", "OVERWRITE_IF_EXISTS_OR_ADD", False),  # empty: not added
            ("d", "%REQ(x-missing)%", "OVERWRITE_IF_EXISTS_OR_ADD", True),
            ("a", "never", "ADD_IF_ABSENT", False),
            ("e", "never", "OVERWRITE_IF_EXISTS", False),
        ),
        ctx,
    )
    assert out == {"a": "1,2", "d": ""}
    with pytest.raises(FormatterError, match="not modelled") as info:
        format_value("%START_TIME%", ctx)
    assert not info.value.rejected


def test_route_config_issues_are_collected_with_their_paths() -> None:
    issues: list[Issue] = []
    compile_route_config(
        {"virtual_hosts": [
            {"name": "a", "domains": ["x"], "routes": [
                {"match": {"safe_regex": {"regex": "(?=a)"}}, "route": {"cluster": "c"}},
                {"match": {"prefix": "/", "tls_context": {"presented": True}}, "route": {"cluster": "c"}},
            ]},
            {"name": "b", "domains": ["X"], "routes": []},
        ]},
        issues,
    )  # fmt: skip
    assert {(i.code, i.path) for i in issues} == {
        (INVALID, ("virtual_hosts", 0, "routes", 0, "match", "safe_regex", "regex")),
        (NOT_MODELLED, ("virtual_hosts", 0, "routes", 1, "match", "tls_context")),
        (INVALID, ("virtual_hosts", 1, "domains", 0)),
    }


def _vhost_of(domains: dict[str, list[str]], authority: str, ignore_port: bool = False) -> str:
    table = compile_route_config(
        {
            "ignore_port_in_host_matching": ignore_port,
            "virtual_hosts": [{"name": n, "domains": d, "routes": []} for n, d in domains.items()],
        }
    )
    vh = table.vhost(authority)
    return vh.name if vh is not None else ""


def test_virtual_host_selection_as_envoy_orders_it() -> None:
    domains = {
        "exact": ["a.example.com"],
        "long": ["*.b.example.com"],
        "short": ["*.example.com"],
        "prefix": ["api.*"],
        "any": ["*"],
    }
    assert _vhost_of(domains, "A.Example.COM") == "exact"
    assert _vhost_of(domains, "x.b.example.com") == "long"
    assert _vhost_of(domains, "x.example.com") == "short"
    assert _vhost_of(domains, ".example.com") == "any"  # a wildcard matches one char or more
    assert _vhost_of(domains, "api.internal") == "prefix"
    assert _vhost_of(domains, "a.example.com:80") == "any"  # Envoy's default keeps the port
    assert _vhost_of(domains, "a.example.com:80", ignore_port=True) == "exact"
    assert _vhost_of(domains, "[::1]:80", ignore_port=True) == "any"
    assert _vhost_of({"v6": ["[::1]"]}, "[::1]:8080", ignore_port=True) == "v6"


def test_require_tls_and_redirect_locations() -> None:
    table = compile_route_config(
        {"virtual_hosts": [{"name": "s", "domains": ["*"], "require_tls": "ALL", "routes": [
            {"match": {"prefix": "/r"}, "redirect": {"https_redirect": True}},
            {"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]}
    )  # fmt: skip
    plain = decide(table, RouteInput("s.test:8080", "/a?b=1"))
    assert (plain.kind, plain.code, plain.location) == (
        "tls_redirect",
        301,
        "https://s.test:8080/a?b=1",
    )
    secure = decide(table, RouteInput("s.test", "/a", ssl=True))
    assert (secure.kind, secure.cluster) == ("route", "c")
    redirect = decide(table, RouteInput("s.test:443", "/r", ssl=True))
    assert redirect.location == "https://s.test:443/r"  # same scheme: the port stays


GATEWAY_HTTPS_REDIRECT = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: t}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: via-gateway, namespace: t}
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{route: [{destination: {host: reviews}}]}]
"""


def test_gateway_https_redirect_answers_plaintext_with_301_in_the_sim() -> None:
    # Gateway httpsRedirect -> the virtual host's require_tls: ALL; Envoy answers a plaintext
    # request itself with 301 to https (before any route), and nothing reaches reviews
    world = make_world(GATEWAY_HTTPS_REDIRECT)
    resp, lines = one_request(world, source="ingress", path="/r?x=1")
    assert resp.status == 301
    assert (resp.headers or {}).get("location", "").startswith("https://")
    assert (resp.headers or {})["location"].endswith("/r?x=1")
    assert any("require_tls" in line for line in lines)
    assert not [r for r in world.records if r.reporter.name.lower() == "destination"]


def test_a_virtual_service_redirect_carries_envoys_location_in_the_sim() -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: moved, namespace: t}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /r}}]
    redirect: {uri: /moved, authority: elsewhere.t, redirectCode: 308}
"""
    resp, _ = one_request(make_world(vs), path="/r?keep=1")
    assert resp.status == 308
    assert (resp.headers or {}).get("location") == "http://elsewhere.t/moved?keep=1"
