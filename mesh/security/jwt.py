"""RequestAuthentication -> ``envoy.filters.http.jwt_authn`` (istiod's ``authn/policy_applier.go``,
reference §11).

Every ``jwtRules[i]`` of the RequestAuthentications that apply to a workload (root namespace
first, then apply order) becomes a provider ``origins-<i>``: ``issuer``, ``audiences``
(verbatim; none means Envoy checks no ``aud``), the JWKS, ``forward`` =
``forwardOriginalToken`` (default false: the ``Authorization`` header is stripped before the
app), ``forward_payload_header`` = ``outputPayloadToHeader``, ``claim_to_headers``,
``from_headers`` / ``from_params`` / ``from_cookies`` (none: Envoy's defaults, ``Authorization:
Bearer <token>`` then the ``access_token`` query parameter), and ``payload_in_metadata`` so RBAC
can read the claims (:data:`mesh.security.rbac_match.JWT_PAYLOAD_KEY`).

The requirement is Istio's "allow missing, reject invalid": one provider ->
``requires_any[origins-0, allow_missing]``; several -> ``requires_any[p0, p1, ...,
requires_all[any(p0, allow_missing), any(p1, allow_missing), ...]]``. A request without token
passes with no identity (an AuthorizationPolicy with ``requestPrincipals: ["*"]`` is what makes a
token mandatory); a token that is present but invalid is rejected with 401 (403 for a wrong
audience).

JWKS: an inline ``jwks`` becomes ``local_jwks``. For ``jwksUri`` istiod (by default) fetches the
keys itself and inlines them; meshplay does the same through a ``jwks_resolver(uri) -> json``
supplied by the runner (the local runner fetches the user service's ``/.well-known/jwks.json``
once after it started, the simulator asks the app model). Without a resolver answer the provider
gets ``remote_jwks`` fetched by Envoy through the ``outbound|<port>||<host>`` cluster of the URI's
host (:func:`jwks_cluster`), which only works where that cluster exists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from mesh.envoy_api.names import Direction, cluster_name
from mesh.envoy_api.type_urls import FILTER_JWT_AUTHN, JWT_AUTHN, typed
from mesh.envoy_api.values import duration
from mesh.model import RequestAuthentication
from mesh.model.security import JWTRule
from mesh.security.rbac_match import JWT_PAYLOAD_KEY

__all__ = [
    "JWKS_FETCH_TIMEOUT_S",
    "JwksResolver",
    "jwks_cluster",
    "jwt_authn_filter",
    "jwt_providers",
    "jwt_requirement",
]

Json = dict[str, Any]
JwksResolver = Callable[[str], str | None]
"""``jwksUri -> JWKS JSON`` (or None when the runner cannot fetch it)."""

JWKS_FETCH_TIMEOUT_S = 5.0
JWKS_CACHE_S = 300.0


def jwks_cluster(uri: str, domain_suffix: str = "svc.cluster.local") -> str:
    """The outbound cluster Envoy would fetch ``uri`` through (``http://user.shop:8080/x`` ->
    ``outbound|8080||user.shop.svc.cluster.local``); short hosts are taken as ``name.namespace``."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if host.count(".") == 1:
        host = f"{host}.{domain_suffix}"
    elif host.endswith(".svc"):
        host = f"{host}.{domain_suffix.removeprefix('svc.')}"
    return cluster_name(Direction.OUTBOUND, port, "", host)


def _jwks(rule: JWTRule, resolver: JwksResolver | None) -> Json:
    if rule.jwks:
        return {"local_jwks": {"inline_string": rule.jwks}}
    fetched = resolver(rule.jwks_uri) if resolver is not None and rule.jwks_uri else None
    if fetched is not None:
        return {"local_jwks": {"inline_string": fetched}}
    timeout = rule.timeout.seconds if rule.timeout is not None else JWKS_FETCH_TIMEOUT_S
    return {
        "remote_jwks": {
            "cache_duration": duration(JWKS_CACHE_S),
            "http_uri": {
                "cluster": jwks_cluster(rule.jwks_uri),
                "timeout": duration(timeout),
                "uri": rule.jwks_uri,
            },
        }
    }


def _provider(rule: JWTRule, resolver: JwksResolver | None) -> Json:
    provider: Json = {"issuer": rule.issuer, **_jwks(rule, resolver)}
    if rule.audiences:
        provider["audiences"] = list(rule.audiences)
    if rule.forward_original_token:
        provider["forward"] = True
    if rule.output_payload_to_header:
        provider["forward_payload_header"] = rule.output_payload_to_header
    if rule.from_headers:
        provider["from_headers"] = [
            {"name": h.name, **({"value_prefix": h.prefix} if h.prefix else {})}
            for h in rule.from_headers
        ]
    if rule.from_params:
        provider["from_params"] = list(rule.from_params)
    if rule.from_cookies:
        provider["from_cookies"] = list(rule.from_cookies)
    if rule.output_claim_to_headers:
        provider["claim_to_headers"] = [
            {"claim_name": c.claim, "header_name": c.header} for c in rule.output_claim_to_headers
        ]
    provider["payload_in_metadata"] = JWT_PAYLOAD_KEY
    return dict(sorted(provider.items()))


def jwt_providers(
    policies: Sequence[RequestAuthentication], resolver: JwksResolver | None = None
) -> dict[str, Json]:
    """``origins-<i>`` -> provider, over every JWT rule of ``policies`` in order."""
    rules = [rule for p in policies for rule in p.jwt_rules]
    return {f"origins-{i}": _provider(rule, resolver) for i, rule in enumerate(rules)}


def jwt_requirement(provider_names: Sequence[str]) -> Json:
    """Istio's requirement: any valid token, or no token at all."""
    if len(provider_names) == 1:
        return {
            "requires_any": {
                "requirements": [{"provider_name": provider_names[0]}, {"allow_missing": {}}]
            }
        }
    each_or_missing = [
        {"requires_any": {"requirements": [{"provider_name": n}, {"allow_missing": {}}]}}
        for n in provider_names
    ]
    return {
        "requires_any": {
            "requirements": [
                *({"provider_name": n} for n in provider_names),
                {"requires_all": {"requirements": each_or_missing}},
            ]
        }
    }


def jwt_authn_filter(
    policies: Sequence[RequestAuthentication], resolver: JwksResolver | None = None
) -> Json | None:
    """The jwt_authn HTTP filter for a workload, or None when no JWT rule applies to it."""
    providers = jwt_providers(policies, resolver)
    if not providers:
        return None
    body = {
        "bypass_cors_preflight": True,
        "providers": providers,
        "rules": [{"match": {"prefix": "/"}, "requires": jwt_requirement(list(providers))}],
    }
    return {"name": FILTER_JWT_AUTHN, "typed_config": typed(JWT_AUTHN, **body)}
