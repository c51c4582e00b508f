"""AuthorizationPolicy values -> Envoy RBAC permissions and principals (istiod's
``authz/matcher`` and ``authz/model/generator.go``), for a plain Envoy.

Istio's string rule for most fields: ``exact``, ``prefix*``, ``*suffix``, and ``*`` meaning
"present and non-empty". Per field:

* ``principals`` -> ``authenticated.principal_name`` against the peer certificate's URI SAN, with
  ``spiffe://`` prepended (so they need mTLS); ``namespaces`` -> the regex ``.*/ns/<ns>/.*`` on
  the same SAN; ``serviceAccounts`` -> ``spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?``.
* ``ipBlocks`` / ``source.ip`` -> ``direct_remote_ip``; ``remoteIpBlocks`` / ``remote.ip`` ->
  ``remote_ip`` (CIDR, a bare address is ``/32``).
* ``hosts`` -> ``:authority`` header, case-insensitive: ``example.com`` does not match
  ``example.com:8080``. ``methods`` -> ``:method``. ``paths`` -> ``url_path`` (path without the
  query): ``/api/*`` is the *string* prefix ``/api/`` (so ``/api`` itself does not match),
  ``{*}``/``{**}`` templates -> Envoy's URI template matcher. ``ports`` -> ``destination_port``.
* ``requestPrincipals`` and ``request.auth.*``: istiod matches the metadata its own
  ``istio_authn`` filter writes; plain Envoy has no such filter, so meshplay matches the JWT
  payload that ``jwt_authn`` stores under ``payload_in_metadata`` (:data:`JWT_PAYLOAD_KEY`):
  ``iss/sub`` becomes ``iss`` AND ``sub`` (split at the last ``/``, as istiod does), claims match
  a string claim or any element of a list claim.
* ``when: request.headers[h]`` -> a regex over the comma-joined header values.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from mesh.envoy_api.type_urls import (
    FILTER_JWT_AUTHN,
    URI_TEMPLATE_MATCH,
    URI_TEMPLATE_MATCHER,
    typed,
)

__all__ = [
    "ANY",
    "JWT_PAYLOAD_KEY",
    "UnsupportedKeyError",
    "cidr",
    "condition_principal",
    "go_quote_meta",
    "header_values_matcher",
    "host_permission",
    "jwt_claim_principal",
    "method_permission",
    "namespace_principal",
    "path_permission",
    "principal_name",
    "request_principal",
    "service_account_principal",
    "string_matcher",
]

Json = dict[str, Any]
ANY: Json = {"any": True}
JWT_PAYLOAD_KEY = "payload"
"""``payload_in_metadata`` of every jwt_authn provider meshplay emits; RBAC reads claims there."""

_META = set("\\.+*?()|[]{}^$")


class UnsupportedKeyError(ValueError):
    """A ``when`` key Istio does not know (the rule is invalid) or meshplay does not model."""


def go_quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta`` (what istiod uses), so generated regexes read the same."""
    return "".join("\\" + c if c in _META else c for c in text)


def _regex(pattern: str) -> Json:
    return {"safe_regex": {"regex": pattern}}


def string_matcher(value: str, prefix: str = "", ignore_case: bool = False) -> Json:
    """Istio's ``StringMatcherWithPrefix``: ``*`` -> ``.+``, ``*x`` -> suffix, ``x*`` -> prefix."""
    extra = {"ignore_case": True} if ignore_case else {}
    if value == "*":
        return _regex(".+")
    if value.startswith("*"):
        if not prefix:
            return {"suffix": value[1:], **extra}
        return _regex(go_quote_meta(prefix) + ".*" + go_quote_meta(value[1:]))
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1], **extra}
    return {"exact": prefix + value, **extra}


def cidr(value: str) -> Json:
    """``10.0.0.0/8`` or ``1.2.3.4`` -> Envoy ``CidrRange``."""
    net = ipaddress.ip_network(value.strip(), strict=False)
    return {"address_prefix": str(net.network_address), "prefix_len": net.prefixlen}


def principal_name(value: str) -> Json:
    """``source.principals`` entry (``cluster.local/ns/x/sa/y``) -> peer-certificate match."""
    return {"authenticated": {"principal_name": string_matcher(value, "spiffe://")}}


def namespace_principal(value: str) -> Json:
    """``source.namespaces`` entry -> regex on the peer SAN."""
    pattern = value.replace("*", ".*")
    return {"authenticated": {"principal_name": _regex(f".*/ns/{pattern}/.*")}}


def service_account_principal(value: str, default_namespace: str) -> Json:
    """``source.serviceAccounts`` entry (``ns/sa`` or ``sa``) -> regex on the peer SAN."""
    ns, sep, sa = value.partition("/")
    if not sep:
        ns, sa = default_namespace, value
    return {"authenticated": {"principal_name": _regex(f"spiffe://.+/ns/{ns}/(.+/|)sa/{sa}(/.+)?")}}


def _payload_metadata(path: list[str], value: Json) -> Json:
    return {
        "metadata": {
            "filter": FILTER_JWT_AUTHN,
            "path": [{"key": JWT_PAYLOAD_KEY}, *({"key": k} for k in path)],
            "value": value,
        }
    }


def request_principal(value: str) -> Json:
    """``requestPrincipals`` entry ``iss/sub`` -> ``iss`` AND ``sub`` claim matches (istiod's
    ``requestPrincipalGenerator``: split at the last ``/`` since issuers are URLs)."""
    any_value = _regex(".+")
    idx = value.rfind("/")
    found = idx >= 0
    iss, sub = (value[:idx], value[idx + 1 :]) if found else (value, "")
    if value == "*":
        match_iss, match_sub = any_value, any_value
    elif value.startswith("*"):
        if found:
            match_iss = any_value if iss == "*" else {"suffix": iss[1:]}
            match_sub = {"exact": sub}
        else:
            match_iss, match_sub = any_value, {"suffix": value[1:]}
    elif value.endswith("*"):
        if found:
            match_iss = {"exact": iss}
            match_sub = any_value if sub == "*" else {"prefix": sub[:-1]}
        else:
            match_iss, match_sub = {"prefix": value[:-1]}, any_value
    else:
        match_iss, match_sub = {"exact": iss}, {"exact": sub}
    return {
        "and_ids": {
            "ids": [
                _payload_metadata(["iss"], {"string_match": match_iss}),
                _payload_metadata(["sub"], {"string_match": match_sub}),
            ]
        }
    }


def jwt_claim_principal(claim_path: list[str], values: list[str]) -> Json:
    """``request.auth.claims[a][b]`` (also ``aud``, ``azp``) -> the claim, as a string or as any
    element of a list, matches one of ``values``."""
    matchers: list[Json] = []
    for v in values:
        m = string_matcher(v)
        matchers.append({"string_match": m})
        matchers.append({"list_match": {"one_of": {"string_match": m}}})
    return _payload_metadata(claim_path, {"or_match": {"value_matchers": matchers}})


def header_values_matcher(name: str, value: str) -> Json:
    """``when: request.headers[name]`` -> a header matcher over the comma-joined values."""
    if value == "*":
        return {"header": {"name": name, "present_match": True}}
    if value.startswith("*"):
        v = ".*" + go_quote_meta(value[1:])
    elif value.endswith("*"):
        v = go_quote_meta(value[:-1]) + ".*"
    else:
        v = go_quote_meta(value)
    pattern = f"^{v}$|^{v},.*|.*,{v},.*|.*,{v}$"
    return {"header": {"name": name, "string_match": _regex(pattern)}}


def _header_string(name: str, value: str, ignore_case: bool) -> Json:
    if value == "*":
        return {"header": {"name": name, "present_match": True}}
    return {"header": {"name": name, "string_match": string_matcher(value, "", ignore_case)}}


def host_permission(value: str) -> Json:
    """``operation.hosts`` entry -> ``:authority`` match, ignoring case."""
    return _header_string(":authority", value, True)


def method_permission(value: str) -> Json:
    """``operation.methods`` entry -> ``:method`` match."""
    return _header_string(":method", value, False)


def path_permission(value: str) -> Json:
    """``operation.paths`` entry -> ``url_path`` (or a URI template for ``{*}``/``{**}``)."""
    if "{*}" in value or "{**}" in value:
        template = value.replace("{**}", "**").replace("{*}", "*")
        return {
            "uri_template": {
                "name": URI_TEMPLATE_MATCHER,
                "typed_config": typed(URI_TEMPLATE_MATCH, path_template=template),
            }
        }
    return {"url_path": {"path": string_matcher(value)}}


_CLAIMS = re.compile(r"^request\.auth\.claims((?:\[[^\[\]]+\])+)$")
_HEADER = re.compile(r"^request\.headers\[([^\[\]]+)\]$")


def condition_principal(key: str, value: str, policy_namespace: str) -> Json | None:
    """A principal-side ``when`` condition for one value; None when ``key`` is permission-side.

    Raises :class:`UnsupportedKeyError` for keys Istio rejects or meshplay does not model.
    """
    header = _HEADER.match(key)
    if header:
        return header_values_matcher(header.group(1), value)
    if key == "source.ip":
        return {"direct_remote_ip": cidr(value)}
    if key == "remote.ip":
        return {"remote_ip": cidr(value)}
    if key == "source.namespace":
        return namespace_principal(value)
    if key == "source.principal":
        return principal_name(value)
    if key == "source.serviceAccount":
        return service_account_principal(value, policy_namespace)
    if key == "request.auth.principal":
        return request_principal(value)
    if key == "request.auth.audiences":
        return jwt_claim_principal(["aud"], [value])
    if key == "request.auth.presenter":
        return jwt_claim_principal(["azp"], [value])
    claims = _CLAIMS.match(key)
    if claims:
        return jwt_claim_principal(re.findall(r"\[([^\[\]]+)\]", claims.group(1)), [value])
    if key in {"destination.ip", "destination.port", "connection.sni"}:
        return None
    if key.startswith("experimental.envoy.filters."):
        raise UnsupportedKeyError(
            f"when key {key!r} (experimental filter metadata) is not modelled"
        )
    raise UnsupportedKeyError(f"unknown when key {key!r}")


def condition_permission(key: str, value: str) -> Json:
    """A permission-side ``when`` condition (``destination.*``, ``connection.sni``)."""
    if key == "destination.ip":
        return {"destination_ip": cidr(value)}
    if key == "destination.port":
        return {"destination_port": int(value)}
    if key == "connection.sni":
        return {"requested_server_name": string_matcher(value)}
    raise UnsupportedKeyError(f"when key {key!r} is not a permission")


HTTP_ONLY_KEYS = ("request.headers", "request.auth.")
"""``when`` key prefixes that only an HTTP chain can evaluate."""

PERMISSION_KEYS = frozenset({"destination.ip", "destination.port", "connection.sni"})
"""``when`` keys that test the connection's destination (Envoy permissions, not principals)."""

_PRINCIPAL_KEYS = frozenset(
    {
        "source.ip",
        "remote.ip",
        "source.namespace",
        "source.principal",
        "source.serviceAccount",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
    }
)


def check_key(key: str) -> None:
    """Raise :class:`UnsupportedKeyError` unless ``key`` is a ``when`` key meshplay translates."""
    if key in PERMISSION_KEYS or key in _PRINCIPAL_KEYS:
        return
    if _HEADER.match(key) or _CLAIMS.match(key):
        return
    if key.startswith("experimental.envoy.filters."):
        raise UnsupportedKeyError(
            f"when key {key!r} (experimental filter metadata) is not modelled"
        )
    raise UnsupportedKeyError(f"unknown when key {key!r}")
