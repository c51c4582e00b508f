"""What a matched route does to the request's path and host, and where a redirect points.

* ``prefix_rewrite`` replaces the part of ``:path`` the route matched (the prefix, the whole
  ``path``, the whole path of a ``safe_regex`` route) and keeps the rest, query included; an empty
  ``prefix_rewrite`` rewrites nothing. ``/api`` -> ``/`` turns ``/api/x`` into ``//x``: that is
  Envoy's behaviour, which is why Istio writes ``prefix: /api/`` with ``rewrite: /``.
* ``regex_rewrite`` replaces every match in the path (never the query) with an RE2 substitution.
* ``host_rewrite_literal``, ``host_rewrite_header`` (when the header has a non-empty value) and
  ``host_rewrite_path_regex`` (on the path without its query) set ``:authority``.
* a ``redirect`` builds ``scheme://host[:port]/path`` as Envoy's ``newUri`` does: the scheme from
  ``scheme_redirect``/``https_redirect`` else the request's; the request's host loses its port
  when ``port_redirect`` is set or when the scheme changes and the port was that of the old
  scheme (``:80`` for http, ``:443`` for https); ``path_redirect`` keeps the request's query unless
  it has its own; ``strip_query`` drops it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.re2 import compile_re2, substitution
from sim.xds.routes import RegexRewrite, RouteSpec

__all__ = [
    "matched_length",
    "redirect_uri",
    "rewritten_host",
    "rewritten_path",
    "weighted_pick",
]


def matched_length(route: RouteSpec, path: str) -> int:
    """How much of ``path`` (with its query) the route's path matcher consumed."""
    kind = route.path.kind
    if kind in ("prefix", "separated", "path"):
        return len(route.path.value)
    return len(path.partition("?")[0])  # a regex matched the whole path


def _regex_replace(rewrite: RegexRewrite, path: str) -> str:
    base, sep, query = path.partition("?")
    pattern, replace = rewrite
    return pattern.sub(replace, base) + sep + query


def rewritten_path(route: RouteSpec, path: str) -> str:
    """``path`` after the route's ``prefix_rewrite`` or ``regex_rewrite`` (unchanged without)."""
    if route.prefix_rewrite:
        return route.prefix_rewrite + path[matched_length(route, path) :]
    if route.regex_rewrite is not None:
        return _regex_replace(route.regex_rewrite, path)
    return path


def rewritten_host(route: RouteSpec, authority: str, headers: Mapping[str, str], path: str) -> str:
    """``:authority`` after the route's host rewrite (unchanged without one)."""
    if route.host_rewrite:
        return route.host_rewrite
    if route.host_rewrite_header:
        value = headers.get(route.host_rewrite_header, "")
        return value or authority
    if route.host_rewrite_regex is not None:
        pattern, replace = route.host_rewrite_regex
        return pattern.sub(replace, path.partition("?")[0])
    return authority


def _redirect_path(redirect: Mapping[str, Any], route: RouteSpec, path: str) -> str:
    if redirect.get("prefix_rewrite"):
        return str(redirect["prefix_rewrite"]) + path[matched_length(route, path) :]
    if "regex_rewrite" in redirect:
        rr = redirect["regex_rewrite"]
        pattern = compile_re2(str((rr.get("pattern") or {}).get("regex", "")))
        return _regex_replace((pattern, substitution(str(rr.get("substitution", "")))), path)
    return path


def _request_host(authority: str, scheme: str, new_port: str, forwarded_proto: str) -> str:
    if not authority:
        return authority
    if authority.startswith("["):
        end = authority.rfind("]:")
        end = end + 1 if end >= 0 else -1
    else:
        end = authority.rfind(":")
    if end < 0:
        return authority
    port = authority[end:]
    remove = bool(new_port)
    if scheme != forwarded_proto:
        remove |= forwarded_proto.lower() == "https" and port == ":443"
        remove |= forwarded_proto.lower() == "http" and port == ":80"
    return authority[:end] if remove else authority


def redirect_uri(
    route: RouteSpec, authority: str, path: str, scheme_in: str, forwarded_proto: str
) -> str:
    """The ``location`` of a redirect route for this request (``scheme_in``: its ``:scheme``)."""
    redirect = route.redirect
    if redirect.get("scheme_redirect"):
        scheme = str(redirect["scheme_redirect"])
    elif redirect.get("https_redirect"):
        scheme = "https"
    else:
        scheme = scheme_in
    port_value = redirect.get("port_redirect")
    port = f":{port_value}" if port_value else ""
    host = str(redirect.get("host_redirect") or "") or _request_host(
        authority, scheme, port, forwarded_proto
    )
    path = _redirect_path(redirect, route, path)
    path_redirect = str(redirect.get("path_redirect") or "")
    has_query = "?" in path_redirect
    if path_redirect:
        if has_query:
            path = path_redirect
        else:
            _, sep, query = path.partition("?")
            path = path_redirect + sep + query
    if not path.startswith("/"):
        path = "/" + path
    if redirect.get("strip_query") and not has_query:
        path = path.partition("?")[0]
    return f"{scheme}://{host}{port}{path}"


def weighted_pick(route: RouteSpec, random_value: int) -> str:
    """Envoy's weighted cluster choice for a known random value: ``random_value`` modulo the
    weight sum falls in one cluster's [start, start + weight) interval."""
    total = route.total_weight
    if total <= 0:
        return route.clusters[0][0] if route.clusters else ""
    selected = random_value % total
    start = 0
    for name, weight in route.clusters:
        if start <= selected < start + weight:
            return name
        start += weight
    return route.clusters[-1][0]
