"""VirtualService ``HTTPMatchRequest`` -> Envoy ``RouteMatch`` (path, headers, pseudo-headers,
query parameters, case), and what istiod counts as a catch-all match (after which later rules
are not emitted)."""

from __future__ import annotations

from typing import Any

from mesh.envoy_api.values import string_matcher
from mesh.model import HTTPMatchRequest, StringMatch

__all__ = ["is_catch_all", "route_match"]


def _header_matcher(name: str, match: StringMatch, *, invert: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if match.kind == "" or (match.kind == "regex" and match.regex == "*"):
        out["present_match"] = True
    else:
        out["string_match"] = string_matcher(match)
        if invert:
            out["treat_missing_header_as_empty"] = True
    if invert:
        out["invert_match"] = True
    return out


def route_match(m: HTTPMatchRequest | None) -> dict[str, Any]:
    """HTTPMatchRequest -> Envoy ``RouteMatch``."""
    out: dict[str, Any] = {}
    uri = m.uri if m is not None else None
    if uri is None or uri.kind == "":
        out["prefix"] = "/"
    elif uri.exact is not None:
        out["path"] = uri.exact
    elif uri.prefix is not None:
        out["prefix"] = uri.prefix
    else:
        out["safe_regex"] = {"regex": uri.regex}
    if m is None:
        return out
    if m.ignore_uri_case and uri is not None and uri.regex is None:
        out["case_sensitive"] = False
    headers = [_header_matcher(k, v) for k, v in sorted(m.headers.items())]
    headers += [_header_matcher(k, v, invert=True) for k, v in sorted(m.without_headers.items())]
    for pseudo, value in (
        (":method", m.method),
        (":authority", m.authority),
        (":scheme", m.scheme),
    ):
        if value is not None:
            headers.append(_header_matcher(pseudo, value))
    if headers:
        out["headers"] = headers
    params = []
    for key, value in sorted(m.query_params.items()):
        if value.kind == "" or (value.kind == "regex" and value.regex == "*"):
            params.append({"name": key, "present_match": True})
        else:
            params.append({"name": key, "string_match": string_matcher(value)})
    if params:
        out["query_parameters"] = params
    return out


def is_catch_all(m: HTTPMatchRequest | None) -> bool:
    if m is None:
        return True
    uri = m.uri
    uri_all = uri is None or uri.prefix == "/" or uri.regex in {".*", "/.*"} or uri.kind == ""
    return (
        uri_all
        and not m.headers
        and not m.without_headers
        and not m.query_params
        and m.method is None
        and m.authority is None
        and m.scheme is None
    )
