"""A RouteConfiguration dict (any protobuf-JSON spelling Envoy accepts) compiled into a
:class:`~sim.xds.vhosts.RouteTable`, optionally with the issues found on the way: fields Envoy
accepts that meshplay does not model (``MPY2101``) and what Envoy itself would reject
(``MPY1101``: duplicate domains, invalid RE2, malformed header formatters, bad enum values).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from mesh.envoy_api import type_urls as tu
from sim.matchers import HeaderMatcher, PathMatcher, header_matcher, query_matcher
from sim.protojson import (
    INVALID,
    NOT_MODELLED,
    Issue,
    canonical,
    enum_name,
    has_camel_case,
    wrapped_bool,
    wrapped_int,
)
from sim.re2 import RegexError, compile_re2, substitution
from sim.xds.formatters import FormatterError, compile_format
from sim.xds.route_fields import unknown_fields
from sim.xds.routes import (
    FaultSpec,
    HeaderOps,
    Json,
    MirrorSpec,
    RegexRewrite,
    RetrySpec,
    RouteSpec,
    redirect_status,
)
from sim.xds.values import fraction, fraction_parts, parse_duration
from sim.xds.vhosts import RouteTable, VirtualHostSpec

__all__ = ["compile_route_config"]


_NOT_MODELLED_FIELDS: dict[str, tuple[str, ...]] = {
    "route_config": ("vhds", "cluster_specifier_plugins", "most_specific_header_mutations_wins",
                     "internal_only_headers"),
    "virtual_host": ("matcher", "request_mirror_policies"),
    "route": ("filter_action", "non_forwarding_action"),
    "match": ("connect_matcher", "path_match_policy", "tls_context", "dynamic_metadata",
              "filter_state", "cookies"),
    "action": ("cluster_specifier_plugin", "inline_cluster_specifier_plugin", "path_rewrite_policy",
               "append_x_forwarded_host", ),
    "weighted_cluster": ("cluster_header", "request_headers_to_add", "request_headers_to_remove",
                         "response_headers_to_add", "response_headers_to_remove",
                         "host_rewrite_literal"),
}  # fmt: skip
"""Fields Envoy accepts that change routing or the routed request and that meshplay does not
model: reported as ``MPY2101`` by :func:`compile_route_config` when asked for issues."""


class _Issues:
    def __init__(self, sink: list[Issue] | None) -> None:
        self.sink = sink

    def not_modelled(
        self, where: str, item: Mapping[str, Any], path: tuple[str | int, ...]
    ) -> None:
        if self.sink is None:
            return
        for name in _NOT_MODELLED_FIELDS[where]:
            value = item.get(name)
            if value not in (None, False, [], {}, ""):
                self.sink.append(Issue((*path, name), NOT_MODELLED, f"{name} is not modelled"))

    def unknown(self, message: str, item: Any, path: tuple[str | int, ...]) -> None:
        if self.sink is None or not isinstance(item, Mapping):
            return
        for name, hint in unknown_fields(message, item):
            text = f"no such field {name!r} in {message}" + (f"; {hint}" if hint else "")
            self.sink.append(Issue((*path, name), INVALID, text))

    def add(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        if self.sink is None:
            raise ValueError(message)
        self.sink.append(Issue(path, code, message))


def _regex(issues: _Issues, path: tuple[str | int, ...], pattern: str) -> re.Pattern[str] | None:
    try:
        return compile_re2(pattern)
    except RegexError as exc:
        issues.add(path, INVALID if exc.rejected else NOT_MODELLED, str(exc))
        return None


def _rewrite(
    issues: _Issues, path: tuple[str | int, ...], rr: Mapping[str, Any]
) -> RegexRewrite | None:
    pattern = _regex(
        issues, (*path, "pattern", "regex"), str((rr.get("pattern") or {}).get("regex", ""))
    )
    if pattern is None:
        return None
    return pattern, substitution(str(rr.get("substitution", "")))


def _check_formats(issues: _Issues, path: tuple[str | int, ...], item: Mapping[str, Any]) -> None:
    for key in ("request_headers_to_add", "response_headers_to_add"):
        for i, h in enumerate(item.get(key) or ()):
            value = str((h.get("header") or {}).get("value", ""))
            try:
                compile_format(value)
            except FormatterError as exc:
                issues.add(
                    (*path, key, i, "header", "value"),
                    INVALID if exc.rejected else NOT_MODELLED,
                    str(exc),
                )


def _compile_match(
    spec: RouteSpec, match: Mapping[str, Any], issues: _Issues, path: tuple[str | int, ...]
) -> None:
    spec.grpc = "grpc" in match
    runtime = match.get("runtime_fraction")
    if runtime is not None:
        spec.runtime = fraction_parts(runtime.get("default_value") or {})
    issues.not_modelled("match", match, path)


def _compile_action(
    spec: RouteSpec, action: Mapping[str, Any], issues: _Issues, path: tuple[str | int, ...]
) -> None:
    spec.action = "route"
    issues.not_modelled("action", action, path)
    if "cluster" in action:
        spec.clusters = ((str(action["cluster"]), 1),)
    elif "weighted_clusters" in action:
        wc = action["weighted_clusters"]
        spec.clusters = tuple(
            (str(c["name"]), wrapped_int(c.get("weight"), 0)) for c in wc.get("clusters", ())
        )
        for i, c in enumerate(wc.get("clusters", ())):
            issues.not_modelled("weighted_cluster", c, (*path, "weighted_clusters", "clusters", i))
        spec.cluster_filters = {
            str(c["name"]): c["typed_per_filter_config"]
            for c in wc.get("clusters", ())
            if c.get("typed_per_filter_config")
        }
        spec.weight_header = str(wc.get("header_name", "")).lower()
    elif "cluster_header" in action:
        spec.cluster_header = str(action["cluster_header"]).lower()
    spec.total_weight = sum(w for _, w in spec.clusters)
    spec.cluster = spec.clusters[0][0] if spec.clusters else ""
    spec.timeout = parse_duration(action.get("timeout"), 15.0)
    if action.get("retry_policy"):
        spec.retry = RetrySpec.from_envoy(action["retry_policy"])
    spec.hash_policy = tuple(action.get("hash_policy") or ())
    spec.mirrors = tuple(
        MirrorSpec(str(m["cluster"]), fraction(m.get("runtime_fraction"), 1.0))
        for m in action.get("request_mirror_policies") or ()
    )
    if "prefix_rewrite" in action:
        spec.prefix_rewrite = str(action["prefix_rewrite"])
    if "regex_rewrite" in action:
        spec.regex_rewrite = _rewrite(issues, (*path, "regex_rewrite"), action["regex_rewrite"])
    spec.host_rewrite = str(action.get("host_rewrite_literal", ""))
    spec.host_rewrite_header = str(action.get("host_rewrite_header", "")).lower()
    if "host_rewrite_path_regex" in action:
        spec.host_rewrite_regex = _rewrite(
            issues, (*path, "host_rewrite_path_regex"), action["host_rewrite_path_regex"]
        )
    code = enum_name(action.get("cluster_not_found_response_code"),
                     ("SERVICE_UNAVAILABLE", "NOT_FOUND", "INTERNAL_SERVER_ERROR"), "SERVICE_UNAVAILABLE")  # fmt: skip
    spec.cluster_not_found_code = {"NOT_FOUND": 404, "INTERNAL_SERVER_ERROR": 500}.get(code, 503)


def _compile_route(
    route: Mapping[str, Any],
    index: int,
    vhost_filters: Json,
    issues: _Issues,
    path: tuple[str | int, ...],
) -> RouteSpec:
    match = route.get("match") or {}
    try:
        route_path = PathMatcher.from_envoy(match)
    except RegexError as exc:
        issues.add(
            (*path, "match", "safe_regex", "regex"),
            INVALID if exc.rejected else NOT_MODELLED,
            str(exc),
        )
        route_path = PathMatcher("path", "\0never")
    headers: list[HeaderMatcher] = []
    for i, h in enumerate(match.get("headers") or ()):
        try:
            headers.append(header_matcher(h))
        except RegexError as exc:
            issues.add(
                (*path, "match", "headers", i), INVALID if exc.rejected else NOT_MODELLED, str(exc)
            )
    query = tuple(query_matcher(q) for q in match.get("query_parameters") or ())
    meta = ((route.get("metadata") or {}).get("filter_metadata") or {}).get("istio") or {}
    spec = RouteSpec(
        name=str(route.get("name", "")),
        index=index,
        path=route_path,
        headers=tuple(headers),
        query=query,
        action="none",
        decorator=str((route.get("decorator") or {}).get("operation", "")),
        config_source=str(meta.get("config", "")),
        per_filter={**vhost_filters, **(route.get("typed_per_filter_config") or {})},
        raw=route,
    )
    _compile_match(spec, match, issues, (*path, "match"))
    issues.not_modelled("route", route, path)
    issues.unknown("Route", route, path)
    issues.unknown("RouteMatch", match, (*path, "match"))
    for key, message in (("route", "RouteAction"), ("redirect", "RedirectAction"),
                         ("direct_response", "DirectResponseAction")):  # fmt: skip
        issues.unknown(message, route.get(key), (*path, key))
    _check_formats(issues, path, route)
    ops = HeaderOps.from_envoy(route)
    spec.request_headers_to_add = ops.request_add
    spec.request_headers_to_remove = ops.request_remove
    spec.response_headers_to_add = ops.response_add
    spec.response_headers_to_remove = ops.response_remove
    fault = spec.per_filter.get(tu.FILTER_FAULT)
    if fault:
        spec.fault = FaultSpec.from_envoy(fault)
    if "route" in route:
        _compile_action(spec, route["route"], issues, (*path, "route"))
    elif "redirect" in route:
        spec.action = "redirect"
        spec.redirect = route["redirect"]
        for key in ("regex_rewrite",):
            if key in spec.redirect:
                _rewrite(issues, (*path, "redirect", key), spec.redirect[key])
        try:
            redirect_status(spec.redirect)
        except ValueError as exc:
            issues.add((*path, "redirect", "response_code"), INVALID, str(exc))
    elif "direct_response" in route:
        spec.action = "direct_response"
        dr = route["direct_response"]
        spec.direct_status = wrapped_int(dr.get("status"), 200)
        body = dr.get("body") or {}
        if "inline_bytes" in body:
            spec.direct_body = base64.b64decode(str(body["inline_bytes"])).decode(
                "utf-8", "replace"
            )
        else:
            spec.direct_body = str(body.get("inline_string", ""))
        if "filename" in body or "environment_variable" in body:
            issues.add(
                (*path, "direct_response", "body"),
                NOT_MODELLED,
                "a body read from a file or the environment is not modelled",
            )
    return spec


def _compile_vhost(
    vh: Mapping[str, Any], issues: _Issues, path: tuple[str | int, ...]
) -> VirtualHostSpec:
    issues.not_modelled("virtual_host", vh, path)
    issues.unknown("VirtualHost", vh, path)
    _check_formats(issues, path, vh)
    virtual_clusters = []
    for i, vc in enumerate(vh.get("virtual_clusters") or ()):
        try:
            matchers = tuple(header_matcher(h) for h in vc.get("headers") or ())
        except RegexError as exc:
            issues.add(
                (*path, "virtual_clusters", i), INVALID if exc.rejected else NOT_MODELLED, str(exc)
            )
            continue
        virtual_clusters.append((str(vc.get("name", "")), matchers))
    try:
        require_tls = enum_name(vh.get("require_tls"), ("NONE", "EXTERNAL_ONLY", "ALL"), "NONE")
    except ValueError as exc:
        issues.add((*path, "require_tls"), INVALID, str(exc))
        require_tls = "NONE"
    routes = [
        _compile_route(r, i, vh.get("typed_per_filter_config") or {}, issues, (*path, "routes", i))
        for i, r in enumerate(vh.get("routes") or ())
    ]
    retry = RetrySpec.from_envoy(vh["retry_policy"]) if vh.get("retry_policy") else None
    if retry is not None:
        for r in routes:
            if r.action == "route" and r.retry is None:
                r.retry = retry  # Envoy: the route's own policy, else its virtual host's
    return VirtualHostSpec(
        name=str(vh.get("name", "")),
        domains=tuple(str(d) for d in vh.get("domains") or ()),
        routes=routes,
        require_tls=require_tls,
        virtual_clusters=tuple(virtual_clusters),
        header_ops=HeaderOps.from_envoy(vh),
        retry=retry,
    )


def _check_domains(rc: Mapping[str, Any], issues: _Issues) -> None:
    seen: dict[str, int] = {}
    for v, vh in enumerate(rc.get("virtual_hosts") or ()):
        for d, domain in enumerate(vh.get("domains") or ()):
            key = str(domain).lower()
            if key in seen:
                issues.add(
                    ("virtual_hosts", v, "domains", d),
                    INVALID,
                    f"Only unique values for domains are permitted. Duplicate entry of domain {key}",
                )
            seen.setdefault(key, v)


def _levels(table: RouteTable) -> None:
    """Each route's header mutation levels: its own, its virtual host's, the configuration's."""
    for vh in table.vhosts:
        for route in vh.routes:
            ops = (
                HeaderOps(route.request_headers_to_add, route.request_headers_to_remove,
                          route.response_headers_to_add, route.response_headers_to_remove),
                vh.header_ops,
                table.header_ops,
            )  # fmt: skip
            route.request_levels = tuple(
                (o.request_remove, o.request_add) for o in ops if o.request_add or o.request_remove
            )
            route.response_levels = tuple(
                (o.response_remove, o.response_add)
                for o in ops
                if o.response_add or o.response_remove
            )


def compile_route_config(rc: Mapping[str, Any], issues: list[Issue] | None = None) -> RouteTable:
    """A RouteConfiguration dict (any protobuf-JSON spelling) -> RouteTable.

    With ``issues``, problems are collected there (``MPY2101`` not modelled, ``MPY1101`` Envoy
    would reject the config) instead of being ignored or raised.
    """
    if has_camel_case(rc):  # translator output is snake_case already: no copy needed
        rc = canonical(rc)
    sink = _Issues(issues)
    if issues is not None:
        sink.not_modelled("route_config", rc, ())
        sink.unknown("RouteConfiguration", rc, ())
        _check_formats(sink, (), rc)
        _check_domains(rc, sink)
    vhosts = [
        _compile_vhost(vh, sink, ("virtual_hosts", v))
        for v, vh in enumerate(rc.get("virtual_hosts") or ())
    ]
    table = RouteTable(
        str(rc.get("name", "")),
        vhosts,
        wrapped_bool(rc.get("ignore_port_in_host_matching"), False),
        HeaderOps.from_envoy(rc),
    )
    _levels(table)
    return table
