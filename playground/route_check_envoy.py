"""``meshplay route-check --envoy``: the same tests on the real Envoy binary, and where it and
meshplay's matcher disagree.

The route configuration is copied with three additions per route, so that Envoy's answer says
what it matched: response headers ``x-mpy-route: <vhost index>.<route index>``,
``x-mpy-cluster: %UPSTREAM_CLUSTER%`` and ``x-mpy-vcluster: %VIRTUAL_CLUSTER_NAME%``. Weighted
clusters read the test's ``random_value`` from a request header (``header_name``), since Envoy
draws its own random number otherwise. Every cluster points at an echo listener that reports the
request as it arrived upstream (rewritten ``:path`` and ``:authority``, and the headers the test
checks). ``ssl`` is sent as ``x-forwarded-proto: https``; ``internal`` requests go to a listener
that counts 127.0.0.1 as internal, where Envoy itself sets ``x-envoy-internal`` (over TLS when
``ssl`` too, so that Envoy sets ``x-forwarded-proto: https`` itself).

Not comparable, and said so: a request that meets a ``runtime_fraction`` strictly between 0 and
100 % on its way through the routes (Envoy's random value cannot be chosen from outside);
``path_redirect`` of a plain ``direct_response`` (Envoy sends no ``location`` for it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from cluster.local.route_probe import ECHO_PREFIX, ProbeRequest, ProbeResponse, probe_routes
from playground.route_tests import Observed, RouteTest
from sim.matchers import header_list, split_path
from sim.xds import RouteTable
from sim.xds.decide import decide

__all__ = ["compare_with_envoy", "instrument"]

RANDOM_HEADER = "x-mpy-random"
_MARK = {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, **_MARK}


def instrument(rc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of the (canonical) route configuration that reports what it matched, and the
    cluster names it uses."""
    out: dict[str, Any] = copy.deepcopy(dict(rc))
    clusters: list[str] = []
    for v, vh in enumerate(out.get("virtual_hosts") or ()):
        for r, route in enumerate(vh.get("routes") or ()):
            added = list(route.get("response_headers_to_add") or ())
            added.append(_header("x-mpy-route", f"{v}.{r}"))
            action = route.get("route")
            if action is not None:
                added.append(_header("x-mpy-cluster", "%UPSTREAM_CLUSTER%"))
                added.append(_header("x-mpy-vcluster", "%VIRTUAL_CLUSTER_NAME%"))
                if "cluster" in action:
                    clusters.append(str(action["cluster"]))
                wc = action.get("weighted_clusters")
                if wc is not None:
                    clusters.extend(str(c["name"]) for c in wc.get("clusters") or ())
                    wc.setdefault("header_name", RANDOM_HEADER)
                clusters.extend(
                    str(m["cluster"]) for m in action.get("request_mirror_policies") or ()
                )
            route["response_headers_to_add"] = added
    return out, clusters


def _not_comparable(table: RouteTable, test: RouteTest) -> str:
    req = test.request
    d = decide(table, req)
    if d.vhost is None:
        return ""
    last = d.route.index if d.route is not None else len(d.vhost.routes) - 1
    base, query = split_path(req.path)
    headers = req.request_headers()
    for route in d.vhost.routes[: last + 1]:
        fractional = route.runtime is not None and 0 < route.runtime[0] < route.runtime[1]
        # random value 0 passes any runtime_fraction above 0: does the rest of the match hold?
        if fractional and route.runtime is not None and route.matches(base, query, headers, 0):
            return f"runtime_fraction {route.runtime[0]}/{route.runtime[1]}: Envoy draws its own random value"
    return ""


def _probe_request(test: RouteTest) -> ProbeRequest:
    req = test.request
    headers = list(req.headers)
    if req.ssl and not req.internal:  # the internal listener sets it from the TLS connection
        headers.append(("x-forwarded-proto", "https"))
    headers.append((RANDOM_HEADER, str(req.random_value)))
    return ProbeRequest(
        req.method, req.path, req.authority, tuple(headers), internal=req.internal, tls=req.ssl
    )


def _envoy_observed(rc: Mapping[str, Any], resp: ProbeResponse, echo: Sequence[str]) -> Observed:
    h = resp.headers
    obs = Observed(code_redirect="0")
    mark = h.get("x-mpy-route")
    if mark is not None:
        v, r = (int(x) for x in mark.split(".")[:2])
        obs.route = (v, r)
    echoed = ECHO_PREFIX + "path" in h
    obs.response_headers = {k: v for k, v in h.items() if not k.startswith("x-mpy-")}
    if echoed and obs.route is not None:
        vh = (rc.get("virtual_hosts") or [])[obs.route[0]]
        obs.cluster_name = h.get("x-mpy-cluster", "")
        vcluster = h.get("x-mpy-vcluster", "")
        if vcluster in ("", "-") and vh.get("virtual_clusters"):
            vcluster = "other"  # the formatter names no catch-all; router_check_tool says "other"
        obs.virtual_cluster_name = "" if vcluster == "-" else vcluster
        obs.virtual_host_name = str(vh.get("name", ""))
        obs.host_rewrite = h.get(ECHO_PREFIX + "authority", "")
        obs.path_rewrite = h.get(ECHO_PREFIX + "path", "")
        obs.request_headers = {
            n: header_list(tuple(resp.values[ECHO_PREFIX + n.lstrip(":")]))
            for n in echo
            if ECHO_PREFIX + n.lstrip(":") in resp.values
        }
        for k in list(obs.response_headers):
            if k in ("content-length", "date", "server", "x-envoy-upstream-service-time"):
                del obs.response_headers[k]
        return obs
    route = None
    if obs.route is not None:
        route = (rc.get("virtual_hosts") or [])[obs.route[0]]["routes"][obs.route[1]]
    if route is not None and "route" in route:  # forwarded, but no cluster answered (NC)
        obs.cluster_name = h.get("x-mpy-cluster", "")
        obs.virtual_cluster_name = obs.virtual_host_name = None
        obs.host_rewrite = obs.path_rewrite = None
        return obs
    if route is not None or (resp.status == 301 and "location" in h):
        obs.code_redirect = str(resp.status)
        obs.path_redirect = h.get("location") if route is None or "redirect" in route else None
    return obs


def _describe(where: tuple[int, int] | None) -> str:
    return "no route" if where is None else f"virtual host {where[0]} route {where[1]}"


def _compare(test: RouteTest, sim: Observed, envoy: Observed, envoy_ok: bool) -> list[str]:
    lines: list[str] = []
    if sim.route != envoy.route:
        lines.append(f"route: meshplay [{_describe(sim.route)}], envoy [{_describe(envoy.route)}]")
    for check in test.checks:
        if check.matcher is not None:
            request = check.kind.startswith("request")
            if request and not envoy_ok:
                continue
            sim_h = sim.request_headers if request else sim.response_headers
            env_h = envoy.request_headers if request else envoy.response_headers
            m = check.matcher
            if m.matches(sim_h) != m.matches(env_h):
                lines.append(f"{check.kind} {m.describe()}: meshplay [{sim_h.get(m.name)}], "
                             f"envoy [{env_h.get(m.name)}]")  # fmt: skip
        elif check.kind.endswith("_header_fields"):
            request = check.kind.startswith("request")
            if request and not envoy_ok:
                continue
            name = str(check.raw["key"])
            mine = (sim.request_headers if request else sim.response_headers).get(name, "")
            theirs = (envoy.request_headers if request else envoy.response_headers).get(name, "")
            if mine != theirs:
                lines.append(f"{check.kind} {name}: meshplay [{mine}], envoy [{theirs}]")
        elif hasattr(sim, check.kind):
            mine, theirs = getattr(sim, check.kind), getattr(envoy, check.kind)
            if theirs is not None and mine != theirs:
                lines.append(f"{check.kind}: meshplay [{mine}], envoy [{theirs}]")
    return lines


def compare_with_envoy(
    table: RouteTable, rc: Mapping[str, Any], tests: Sequence[RouteTest], sim: Sequence[Observed]
) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """Run ``tests`` on Envoy; returns (tests where Envoy and meshplay disagree, with what
    differs; tests not comparable, with why)."""
    config, clusters = instrument(rc)
    for test in tests:
        clusters.extend(c.expected for c in test.checks if c.kind == "cluster_name" and c.expected)
        clusters.extend(v for _, v in test.request.headers if v)
    skipped: list[tuple[str, str]] = []
    runnable: list[tuple[RouteTest, Observed]] = []
    for test, obs in zip(tests, sim, strict=True):
        why = _not_comparable(table, test)
        if why:
            skipped.append((test.name, why))
        else:
            runnable.append((test, obs))
    echo = sorted({n for t, _ in runnable for n in t.header_names()})
    answers = probe_routes(
        config,
        sorted({c for c in clusters if c and "\n" not in c}),
        [_probe_request(t) for t, _ in runnable],
        echo_headers=echo,
    )
    disagreements: list[tuple[str, list[str]]] = []
    for (test, obs), resp in zip(runnable, answers, strict=True):
        if resp.error:
            disagreements.append((test.name, [f"envoy did not answer: {resp.error}"]))
            continue
        envoy = _envoy_observed(config, resp, echo)
        lines = _compare(test, obs, envoy, ECHO_PREFIX + "path" in resp.headers)
        if lines:
            disagreements.append((test.name, lines))
    return disagreements, skipped
