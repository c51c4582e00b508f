"""VirtualService HTTP rules -> Envoy routes (istiod's ``route.go``).

Each ``http[]`` rule in order; each of its ``match[]`` blocks becomes its own Envoy route (OR
between blocks, AND inside one). Selectors that depend on the proxy (``port``, ``gateways``,
``sourceLabels``, ``sourceNamespace``) are evaluated here, per proxy, not at request time. Once a
catch-all route is emitted, later rules are not emitted at all. Actions: weighted clusters with
weights copied verbatim, redirect, direct response, rewrite, header operations, mirrors, timeout
(``0s`` = off unless set), retries (Istio's default policy when none is set), fault injection and
CORS as per-route filter configs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mesh.envoy.policy import hash_policy, resolve_policy
from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import DEFAULT_ROUTE, Direction, cluster_name
from mesh.envoy_api.values import duration, fractional_percent, percent_of, string_matcher
from mesh.model import (
    Destination,
    DestinationRule,
    HTTPMatchRequest,
    HTTPRetry,
    HTTPRoute,
    StringMatch,
    VirtualService,
)
from mesh.model.virtual_service import CorsPolicy, HeaderOperations, HTTPFaultInjection
from mesh.topology import MeshService

__all__ = [
    "DEFAULT_RETRY_ON",
    "RouteContext",
    "default_retry_policy",
    "default_route",
    "http_routes",
    "retry_policy",
    "virtual_service_path",
]

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

_GRPC_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
_REDIRECT_CODES = {
    0: "MOVED_PERMANENTLY",
    301: "MOVED_PERMANENTLY",
    302: "FOUND",
    303: "SEE_OTHER",
    307: "TEMPORARY_REDIRECT",
    308: "PERMANENT_REDIRECT",
}


def _version_at_least(version: str, major: int, minor: int) -> bool:
    try:
        parts = [int(p) for p in version.split(".")[:2]]
    except ValueError:
        return True
    return (parts[0], parts[1] if len(parts) > 1 else 0) >= (major, minor)


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What route translation needs to know about the proxy and the registry."""

    proxy_namespace: str
    proxy_labels: Any
    gateway: str  # "mesh" for sidecars, "<ns>/<name>" of the gateway being built otherwise
    listener_port: int
    resolve_host: Callable[[str, str], str]
    service: Callable[[str], MeshService | None]
    destination_rule: Callable[[MeshService], DestinationRule | None]
    istio_version: str = "1.28"


def _previous_hosts() -> list[dict[str, Any]]:
    return [
        {
            "name": tu.RETRY_PREVIOUS_HOSTS,
            "typed_config": tu.typed(tu.PREVIOUS_HOSTS),
        }
    ]


def default_retry_policy(consistent_hash: bool, istio_version: str) -> dict[str, Any]:
    """Istio's outbound default: 2 retries on connect-failure, refused-stream, unavailable,
    cancelled, retriable-status-codes; 503 is retriable only before Istio 1.24."""
    policy: dict[str, Any] = {
        "host_selection_retry_max_attempts": 5,
        "num_retries": 2,
        "retry_on": DEFAULT_RETRY_ON,
    }
    if not _version_at_least(istio_version, 1, 24):
        policy["retriable_status_codes"] = [503]
    if not consistent_hash:
        policy["retry_host_predicate"] = _previous_hosts()
    return dict(sorted(policy.items()))


def retry_policy(
    retries: HTTPRetry | None, consistent_hash: bool, istio_version: str
) -> dict[str, Any] | None:
    """VS ``retries`` -> Envoy ``retry_policy``; ``None`` retries = the default policy,
    ``attempts: 0`` (or unset inside a ``retries`` block) = no retry policy."""
    if retries is None:
        return default_retry_policy(consistent_hash, istio_version)
    if not retries.attempts or retries.attempts <= 0:
        return None
    policy: dict[str, Any] = {
        "host_selection_retry_max_attempts": 5,
        "num_retries": retries.attempts,
    }
    if retries.retry_on:
        tokens: list[str] = []
        codes: list[int] = []
        for token in (t.strip() for t in retries.retry_on.split(",")):
            if not token:
                continue
            if token.isdigit() and 100 <= int(token) <= 599:
                codes.append(int(token))
            elif token not in tokens:
                tokens.append(token)
        if codes:
            if "retriable-status-codes" not in tokens:
                tokens.append("retriable-status-codes")
            policy["retriable_status_codes"] = codes
        policy["retry_on"] = ",".join(tokens)
    else:
        policy["retry_on"] = DEFAULT_RETRY_ON
    if retries.per_try_timeout is not None:
        policy["per_try_timeout"] = duration(retries.per_try_timeout)
    if retries.backoff is not None:
        policy["retry_back_off"] = {"base_interval": duration(retries.backoff)}
    if not consistent_hash:
        policy["retry_host_predicate"] = _previous_hosts()
    if retries.retry_remote_localities:
        policy["retry_priority"] = {
            "name": tu.RETRY_PREVIOUS_PRIORITIES,
            "typed_config": tu.typed(tu.PREVIOUS_PRIORITIES, update_frequency=2),
        }
    return dict(sorted(policy.items()))


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


def _is_catch_all(m: HTTPMatchRequest | None) -> bool:
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


def virtual_service_path(vs: VirtualService) -> str:
    """The config path istiod writes into route metadata (``istioctl`` shows it)."""
    return f"/apis/networking.istio.io/v1/namespaces/{vs.namespace}/virtual-service/{vs.name}"


def _gateway_ref(name: str, namespace: str) -> str:
    if name == "mesh" or "/" in name:
        return name
    return f"{namespace}/{name}"


def _keep(vs: VirtualService, m: HTTPMatchRequest, ctx: RouteContext) -> bool:
    if m.port is not None and m.port != ctx.listener_port:
        return False
    gateways = m.gateways or vs.gateways or ("mesh",)
    if ctx.gateway not in {_gateway_ref(g, vs.namespace) for g in gateways}:
        return False
    if any(ctx.proxy_labels.get(k) != v for k, v in m.source_labels.items()):
        return False
    return not (m.source_namespace and m.source_namespace != ctx.proxy_namespace)


def _header_ops(ops: HeaderOperations | None) -> tuple[list[dict[str, Any]], list[str]]:
    if ops is None:
        return [], []
    add: list[dict[str, Any]] = []
    for key, value in ops.set.items():
        if key.startswith(":") or key.lower() == "host":
            continue
        add.append(
            {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": key, "value": value}}
        )
    for key, value in ops.add.items():
        if key.startswith(":") or key.lower() == "host":
            continue
        add.append(
            {"append_action": "APPEND_IF_EXISTS_OR_ADD", "header": {"key": key, "value": value}}
        )
    remove = [h for h in ops.remove if not h.startswith(":")]
    return add, remove


def _authority_from_headers(ops: HeaderOperations | None) -> str:
    if ops is None:
        return ""
    for source in (ops.set, ops.add):
        for key, value in source.items():
            if key.lower() in {":authority", "host"}:
                return value
    return ""


class _Destinations:
    """Destination -> cluster name and the consistent hash of its DR (per route context)."""

    def __init__(self, vs: VirtualService, ctx: RouteContext) -> None:
        self.vs = vs
        self.ctx = ctx

    def resolve(self, dest: Destination) -> tuple[str, str, int, list[dict[str, Any]]]:
        """(cluster, host, port, hash_policy)."""
        host = self.ctx.resolve_host(dest.host, self.vs.namespace)
        service = self.ctx.service(host)
        if dest.port is not None and dest.port.number:
            port = dest.port.number
        elif service is not None and len(service.ports) == 1:
            port = service.ports[0].port
        else:
            port = self.ctx.listener_port
        hashing: list[dict[str, Any]] = []
        if service is not None:
            dr = self.ctx.destination_rule(service)
            hashing = hash_policy(resolve_policy(dr, port, dest.subset).consistent_hash)
        return cluster_name(Direction.OUTBOUND, port, dest.subset, host), host, port, hashing


def _fault(fault: HTTPFaultInjection) -> dict[str, Any] | None:
    body: dict[str, Any] = {}
    if fault.delay is not None and fault.delay.fixed_delay is not None:
        body["delay"] = {
            "fixed_delay": duration(fault.delay.fixed_delay),
            "percentage": percent_of(fault.delay.percentage, fault.delay.percent),
        }
    abort = fault.abort
    if abort is not None and (abort.http_status or abort.grpc_status):
        spec: dict[str, Any] = {"percentage": percent_of(abort.percentage)}
        if abort.http_status:
            spec["http_status"] = abort.http_status
        else:
            spec["grpc_status"] = _GRPC_CODES.get(abort.grpc_status.upper(), 14)
        body["abort"] = spec
    if not body:
        return None
    return tu.typed(tu.FAULT, **body)


def _cors(cors: CorsPolicy) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    }
    if cors.allow_origins:
        body["allow_origin_string_match"] = [string_matcher(o) for o in cors.allow_origins]
    if cors.allow_methods:
        body["allow_methods"] = ",".join(cors.allow_methods)
    if cors.allow_headers:
        body["allow_headers"] = ",".join(cors.allow_headers)
    if cors.expose_headers:
        body["expose_headers"] = ",".join(cors.expose_headers)
    if cors.max_age is not None:
        body["max_age"] = str(int(cors.max_age.seconds))
    if cors.allow_credentials is not None:
        body["allow_credentials"] = cors.allow_credentials
    return tu.typed(tu.CORS_POLICY, **body)


def _route_action(http: HTTPRoute, dests: _Destinations, ctx: RouteContext) -> dict[str, Any]:
    """The ``route`` action: clusters, timeout, retries, mirrors, rewrites, hashing."""
    action: dict[str, Any] = {}
    resolved = []
    for rd in http.route:
        cluster, host, port, hashing = dests.resolve(rd.destination)
        resolved.append((rd, cluster, host, port, hashing))
    weighted = [r for r in resolved if (r[0].weight or 0) > 0] if len(resolved) > 1 else resolved
    if not weighted:
        weighted = resolved[:1]
    hashing = next((r[4] for r in weighted if r[4]), [])
    if len(weighted) == 1:
        action["cluster"] = weighted[0][1]
    else:
        clusters = []
        for rd, cluster, *_ in weighted:
            entry: dict[str, Any] = {"name": cluster, "weight": rd.weight}
            if rd.headers is not None:
                add, remove = _header_ops(rd.headers.request)
                if add:
                    entry["request_headers_to_add"] = add
                if remove:
                    entry["request_headers_to_remove"] = remove
                add, remove = _header_ops(rd.headers.response)
                if add:
                    entry["response_headers_to_add"] = add
                if remove:
                    entry["response_headers_to_remove"] = remove
            clusters.append(entry)
        action["weighted_clusters"] = {"clusters": clusters}
    timeout = duration(http.timeout) if http.timeout is not None else "0s"
    action["timeout"] = timeout
    action["max_grpc_timeout"] = timeout
    retry = retry_policy(http.retries, bool(hashing), ctx.istio_version)
    if retry is not None:
        action["retry_policy"] = retry
    if hashing:
        action["hash_policy"] = hashing
    mirrors = _mirrors(http, dests)
    if mirrors:
        action["request_mirror_policies"] = mirrors
    rewrite = http.rewrite
    if rewrite is not None:
        if rewrite.uri:
            action["prefix_rewrite"] = rewrite.uri
        if rewrite.uri_regex_rewrite is not None:
            action["regex_rewrite"] = {
                "pattern": {"regex": rewrite.uri_regex_rewrite.match},
                "substitution": rewrite.uri_regex_rewrite.rewrite,
            }
    authority = rewrite.authority if rewrite is not None else ""
    if not authority and http.headers is not None:
        authority = _authority_from_headers(http.headers.request)
    if not authority and len(weighted) == 1 and weighted[0][0].headers is not None:
        authority = _authority_from_headers(weighted[0][0].headers.request)
    if authority:
        action["host_rewrite_literal"] = authority
    return dict(sorted(action.items()))


def _mirrors(http: HTTPRoute, dests: _Destinations) -> list[dict[str, Any]]:
    policies = []
    targets = []
    if http.mirror is not None:
        targets.append((http.mirror, http.mirror_percentage))
    targets.extend((m.destination, m.percentage) for m in http.mirrors)
    for dest, pct in targets:
        if pct is not None and pct.value == 0:
            continue
        cluster = dests.resolve(dest)[0]
        fraction = fractional_percent(pct.value if pct is not None else 100.0)
        policies.append(
            {
                "cluster": cluster,
                "runtime_fraction": {"default_value": fraction},
                "trace_sampled": False,
            }
        )
    return policies


def _route(
    vs: VirtualService, http: HTTPRoute, m: HTTPMatchRequest | None, ctx: RouteContext
) -> dict[str, Any] | None:
    route: dict[str, Any] = {
        "match": route_match(m),
        "metadata": {"filter_metadata": {"istio": {"config": virtual_service_path(vs)}}},
    }
    name = http.name
    if m is not None and m.name:
        name = f"{http.name}.{m.name}" if http.name else m.name
    if name:
        route["name"] = name
    dests = _Destinations(vs, ctx)
    if http.redirect is not None:
        r = http.redirect
        code = _REDIRECT_CODES.get(r.redirect_code or 0)
        if code is None:
            return None  # istiod emits a route without action: treat as broken
        redirect: dict[str, Any] = {"response_code": code}
        if r.uri:
            redirect["path_redirect"] = r.uri
        if r.authority:
            redirect["host_redirect"] = r.authority
        if r.port:
            redirect["port_redirect"] = r.port
        if r.scheme:
            redirect["scheme_redirect"] = r.scheme
        route["redirect"] = redirect
    elif http.direct_response is not None:
        dr_body: dict[str, Any] = {"status": http.direct_response.status}
        body = http.direct_response.body
        if body is not None and body.string is not None:
            dr_body["body"] = {"inline_string": body.string}
        elif body is not None and body.bytes is not None:
            dr_body["body"] = {"inline_bytes": body.bytes}
        route["direct_response"] = dr_body
    elif http.route:
        route["route"] = _route_action(http, dests, ctx)
        first = dests.resolve(http.route[0].destination)
        operation = (
            f"{first[1]}:{first[2]}/*"
            if len(http.route) == 1
            else f"{vs.name}.{vs.namespace}:{ctx.listener_port}/*"
        )
        route["decorator"] = {"operation": operation}
    else:
        return None
    if http.headers is not None:
        add, remove = _header_ops(http.headers.request)
        if len(http.route) == 1 and http.route[0].headers is not None:
            more_add, more_remove = _header_ops(http.route[0].headers.request)
            add, remove = add + more_add, remove + more_remove
        if add:
            route["request_headers_to_add"] = add
        if remove:
            route["request_headers_to_remove"] = remove
        add, remove = _header_ops(http.headers.response)
        if add:
            route["response_headers_to_add"] = add
        if remove:
            route["response_headers_to_remove"] = remove
    elif len(http.route) == 1 and http.route[0].headers is not None:
        h = http.route[0].headers
        add, remove = _header_ops(h.request)
        if add:
            route["request_headers_to_add"] = add
        if remove:
            route["request_headers_to_remove"] = remove
        add, remove = _header_ops(h.response)
        if add:
            route["response_headers_to_add"] = add
        if remove:
            route["response_headers_to_remove"] = remove
    per_filter: dict[str, Any] = {}
    if http.fault is not None and "route" in route:
        fault = _fault(http.fault)
        if fault is not None:
            per_filter[tu.FILTER_FAULT] = fault
    if http.cors_policy is not None:
        per_filter[tu.FILTER_CORS] = _cors(http.cors_policy)
    if per_filter:
        route["typed_per_filter_config"] = per_filter
    return route


def http_routes(vs: VirtualService, ctx: RouteContext) -> list[dict[str, Any]]:
    """All Envoy routes of ``vs`` for this proxy and listener port, in first-match order."""
    out: list[dict[str, Any]] = []
    for http in vs.http:
        if http.delegate is not None:
            continue  # delegation is not modelled (reported by the analyzers)
        matches: list[HTTPMatchRequest | None]
        if not http.match:
            if vs.gateways and ctx.gateway not in {
                _gateway_ref(g, vs.namespace) for g in vs.gateways
            }:
                continue
            matches = [None]
        else:
            matches = [m for m in http.match if _keep(vs, m, ctx)]
        for m in matches:
            route = _route(vs, http, m, ctx)
            if route is not None:
                out.append(route)
            if _is_catch_all(m):
                return out
    return out


def default_route(service: MeshService, port: int, ctx: RouteContext) -> dict[str, Any]:
    """The route istiod emits for a service port without a VirtualService."""
    cluster = cluster_name(Direction.OUTBOUND, port, "", service.hostname)
    dr = ctx.destination_rule(service)
    hashing = hash_policy(resolve_policy(dr, port).consistent_hash)
    action: dict[str, Any] = {
        "cluster": cluster,
        "max_grpc_timeout": "0s",
        "retry_policy": default_retry_policy(bool(hashing), ctx.istio_version),
        "timeout": "0s",
    }
    if hashing:
        action["hash_policy"] = hashing
    return {
        "decorator": {"operation": f"{service.hostname}:{port}/*"},
        "match": {"prefix": "/"},
        "name": DEFAULT_ROUTE,
        "route": dict(sorted(action.items())),
    }
