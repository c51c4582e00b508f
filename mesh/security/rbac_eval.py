"""What Envoy's RBAC filter decides for one request, given the filter configs that
:mod:`mesh.security.rbac` emitted (``source/extensions/filters/common/rbac/matchers.cc``).

The simulator calls :func:`evaluate_rbac_filters` on its inbound path and ``meshplay authz-check``
calls it too, so both read the *Envoy* configuration the real sidecars run rather than
re-interpreting the AuthorizationPolicy YAML: what they decide is what Envoy decides.

Envoy's semantics, reproduced here:

* a filter with ``action: ALLOW`` (the default) lets a request through iff some policy matches;
  ``DENY`` blocks it iff some policy matches; ``LOG`` never blocks. A filter without ``rules``
  enforces nothing. ``shadow_rules`` are evaluated for stats only.
* a policy matches iff one of its ``permissions`` and one of its ``principals`` match; policies
  are tried in name order (Envoy keeps them in a sorted map) and the first match is reported as
  the ``matched_policy``.
* header matchers see the request headers with ``:method``, ``:path``, ``:authority``;
  several values of one header are joined with ``,``. ``url_path`` ignores the query string.
* ``authenticated`` needs a peer certificate: a plaintext connection never matches it.
* a denial is **403** with body ``RBAC: access denied`` and no response flag.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.envoy_api.type_urls import FILTER_NETWORK_RBAC, FILTER_RBAC
from mesh.model import FrozenMap
from mesh.security.rbac import parse_policy_name

__all__ = [
    "DENIED_BODY",
    "RbacDecision",
    "RequestContext",
    "evaluate_rbac",
    "evaluate_rbac_filters",
    "match_string",
]

Json = Mapping[str, Any]
DENIED_BODY = "RBAC: access denied"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestContext:
    """The attributes Envoy's RBAC filter can see for one request on the server sidecar.

    ``headers`` have lower-case names (multi-valued headers already comma-joined); ``path``
    may carry a query string. ``peer_principal`` is the URI SAN of the client certificate
    (``spiffe://...``), empty for a plaintext connection. ``metadata`` is the dynamic metadata
    written by earlier filters (``envoy.filters.http.jwt_authn`` -> ``{payload: {...}}``).
    """

    method: str = "GET"
    path: str = "/"
    authority: str = ""
    headers: Mapping[str, str] = field(default_factory=FrozenMap)
    destination_port: int = 0
    destination_ip: str = ""
    source_ip: str = ""
    remote_ip: str = ""
    peer_principal: str = ""
    sni: str = ""
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=FrozenMap)

    def header(self, name: str) -> str | None:
        """A header as RBAC sees it (pseudo-headers included)."""
        lowered = name.lower()
        if lowered == ":method":
            return self.method
        if lowered == ":path":
            return self.path
        if lowered in (":authority", "host"):
            return self.authority or self.headers.get("host") or self.headers.get(":authority")
        return self.headers.get(lowered)

    @property
    def url_path(self) -> str:
        """The path without query or fragment (what ``url_path`` matches)."""
        return self.path.split("?", 1)[0].split("#", 1)[0]


@dataclass(frozen=True, slots=True)
class RbacDecision:
    """The outcome of the RBAC filters of one workload for one request.

    ``policy`` is the Envoy policy that decided (``ns[NS]-policy[NAME]-rule[I]``), empty when an
    ALLOW filter found no match (Envoy logs ``matched_policy[none]``) or nothing denied.
    ``action`` is the action of the deciding filter (``DENY``/``ALLOW``), empty when no
    RBAC filter took part. ``shadow`` lists dry-run policies that matched.
    """

    allowed: bool
    policy: str = ""
    action: str = ""
    shadow: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        """200 (passed on to the next filter) or 403."""
        return 200 if self.allowed else 403

    @property
    def body(self) -> str:
        """Envoy's local-reply body."""
        return "" if self.allowed else DENIED_BODY

    @property
    def details(self) -> str:
        """``%RESPONSE_CODE_DETAILS%`` of a denial."""
        if self.allowed:
            return ""
        return f"rbac_access_denied_matched_policy[{self.policy or 'none'}]"

    @property
    def authorization_policy(self) -> tuple[str, str, int] | None:
        """The AuthorizationPolicy ``(namespace, name, rule index)`` behind :attr:`policy`."""
        return parse_policy_name(self.policy) if self.policy else None


def _regex(spec: Json) -> re.Pattern[str]:
    return re.compile(str(spec["regex"]))


def match_string(spec: Json, value: str | None) -> bool:
    """Envoy ``StringMatcher`` (exact, prefix, suffix, contains, safe_regex, ignore_case)."""
    if value is None:
        return False
    ignore = bool(spec.get("ignore_case"))
    target = value.lower() if ignore else value

    def norm(x: Any) -> str:
        return str(x).lower() if ignore else str(x)

    if "exact" in spec:
        return target == norm(spec["exact"])
    if "prefix" in spec:
        return target.startswith(norm(spec["prefix"]))
    if "suffix" in spec:
        return target.endswith(norm(spec["suffix"]))
    if "contains" in spec:
        return norm(spec["contains"]) in target
    if "safe_regex" in spec:
        return _regex(spec["safe_regex"]).fullmatch(value) is not None
    raise ValueError(f"unsupported StringMatcher {dict(spec)!r}")


def _match_header(spec: Json, ctx: RequestContext) -> bool:
    value = ctx.header(str(spec["name"]))
    invert = bool(spec.get("invert_match"))
    if value is None:
        if spec.get("treat_missing_header_as_empty"):
            value = ""
        else:
            matched = "present_match" in spec and spec["present_match"] is False
            return matched != invert
    if "present_match" in spec:
        matched = bool(spec["present_match"])
    elif "string_match" in spec:
        matched = match_string(spec["string_match"], value)
    elif "exact_match" in spec:
        matched = value == spec["exact_match"]
    elif "prefix_match" in spec:
        matched = value.startswith(str(spec["prefix_match"]))
    elif "suffix_match" in spec:
        matched = value.endswith(str(spec["suffix_match"]))
    elif "safe_regex_match" in spec:
        matched = _regex(spec["safe_regex_match"]).fullmatch(value) is not None
    else:
        raise ValueError(f"unsupported HeaderMatcher {dict(spec)!r}")
    return matched != invert


def _in_cidr(spec: Json, address: str) -> bool:
    if not address:
        return False
    net = ipaddress.ip_network(
        f"{spec['address_prefix']}/{spec.get('prefix_len', 32)}", strict=False
    )
    try:
        return ipaddress.ip_address(address) in net
    except ValueError:
        return False


def _lookup(metadata: Mapping[str, Mapping[str, Any]], spec: Json) -> Any:
    node: Any = metadata.get(str(spec["filter"]))
    for segment in spec.get("path", ()):
        if not isinstance(node, Mapping):
            return None
        node = node.get(str(segment["key"]))
    return node


def _match_value(spec: Json, value: Any) -> bool:
    """Envoy ``ValueMatcher`` against a JSON-like value (None = absent)."""
    if "present_match" in spec:
        return (value is not None) == bool(spec["present_match"])
    if value is None:
        return "null_match" in spec
    if "string_match" in spec:
        return isinstance(value, str) and match_string(spec["string_match"], value)
    if "bool_match" in spec:
        return isinstance(value, bool) and value == spec["bool_match"]
    if "double_match" in spec:
        d = spec["double_match"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if "exact" in d:
            return float(value) == float(d["exact"])
        rng = d.get("range", {})
        return float(rng.get("start", float("-inf"))) <= value < float(rng.get("end", float("inf")))
    if "list_match" in spec:
        one_of = spec["list_match"]["one_of"]
        return isinstance(value, list) and any(_match_value(one_of, v) for v in value)
    if "or_match" in spec:
        return any(_match_value(v, value) for v in spec["or_match"]["value_matchers"])
    if "null_match" in spec:
        return False
    raise ValueError(f"unsupported ValueMatcher {dict(spec)!r}")


def _match_metadata(spec: Json, ctx: RequestContext) -> bool:
    matched = _match_value(spec["value"], _lookup(ctx.metadata, spec))
    return matched != bool(spec.get("invert"))


def _template_regex(template: str) -> re.Pattern[str]:
    parts = []
    for segment in template.strip("/").split("/"):
        if segment == "**":
            parts.append("[^?#]*")
        elif segment == "*":
            parts.append("[^/?#]+")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts))


def _match_permission(spec: Json, ctx: RequestContext) -> bool:
    if spec.get("any"):
        return True
    if "and_rules" in spec:
        return all(_match_permission(r, ctx) for r in spec["and_rules"]["rules"])
    if "or_rules" in spec:
        return any(_match_permission(r, ctx) for r in spec["or_rules"]["rules"])
    if "not_rule" in spec:
        return not _match_permission(spec["not_rule"], ctx)
    if "header" in spec:
        return _match_header(spec["header"], ctx)
    if "url_path" in spec:
        return match_string(spec["url_path"]["path"], ctx.url_path)
    if "destination_port" in spec:
        return ctx.destination_port == int(spec["destination_port"])
    if "destination_ip" in spec:
        return _in_cidr(spec["destination_ip"], ctx.destination_ip)
    if "requested_server_name" in spec:
        return match_string(spec["requested_server_name"], ctx.sni)
    if "metadata" in spec:
        return _match_metadata(spec["metadata"], ctx)
    if "uri_template" in spec:
        template = str(spec["uri_template"]["typed_config"]["path_template"])
        return _template_regex(template).fullmatch(ctx.url_path) is not None
    raise ValueError(f"unsupported RBAC permission {dict(spec)!r}")


def _match_principal(spec: Json, ctx: RequestContext) -> bool:
    if spec.get("any"):
        return True
    if "and_ids" in spec:
        return all(_match_principal(p, ctx) for p in spec["and_ids"]["ids"])
    if "or_ids" in spec:
        return any(_match_principal(p, ctx) for p in spec["or_ids"]["ids"])
    if "not_id" in spec:
        return not _match_principal(spec["not_id"], ctx)
    if "authenticated" in spec:
        if not ctx.peer_principal:
            return False
        name = spec["authenticated"].get("principal_name")
        return name is None or match_string(name, ctx.peer_principal)
    if "direct_remote_ip" in spec or "source_ip" in spec:
        return _in_cidr(spec.get("direct_remote_ip") or spec["source_ip"], ctx.source_ip)
    if "remote_ip" in spec:
        return _in_cidr(spec["remote_ip"], ctx.remote_ip or ctx.source_ip)
    if "header" in spec:
        return _match_header(spec["header"], ctx)
    if "url_path" in spec:
        return match_string(spec["url_path"]["path"], ctx.url_path)
    if "metadata" in spec:
        return _match_metadata(spec["metadata"], ctx)
    raise ValueError(f"unsupported RBAC principal {dict(spec)!r}")


def _first_match(policies: Mapping[str, Json], ctx: RequestContext) -> str:
    for name in sorted(policies):
        policy = policies[name]
        if any(_match_permission(p, ctx) for p in policy.get("permissions", ())) and any(
            _match_principal(p, ctx) for p in policy.get("principals", ())
        ):
            return name
    return ""


def evaluate_rbac(config: Json, ctx: RequestContext) -> RbacDecision:
    """One RBAC filter's ``typed_config`` (HTTP or network) applied to ``ctx``."""
    shadow_cfg = config.get("shadow_rules")
    shadow: tuple[str, ...] = ()
    if shadow_cfg is not None:
        hit = _first_match(shadow_cfg.get("policies", {}), ctx)
        shadow = (hit,) if hit else ()
    rules = config.get("rules")
    if rules is None:
        return RbacDecision(True, shadow=shadow)
    action = str(rules.get("action", "ALLOW"))
    hit = _first_match(rules.get("policies", {}), ctx)
    if action == "ALLOW":
        return RbacDecision(bool(hit), hit, action, shadow)
    if action == "DENY":
        return RbacDecision(not hit, hit, action, shadow)
    return RbacDecision(True, hit, action, shadow)  # LOG (Istio AUDIT)


def evaluate_rbac_filters(filters: Sequence[Json], ctx: RequestContext) -> RbacDecision:
    """Run the RBAC filters of a filter chain in order; the first denial ends the request.

    When everything passes, the decision names the ALLOW policy that let the request through
    (if any ALLOW filter took part), otherwise it carries no policy.
    """
    passed = RbacDecision(True)
    shadow: list[str] = []
    for f in filters:
        if f.get("name") not in (FILTER_RBAC, FILTER_NETWORK_RBAC):
            continue
        decision = evaluate_rbac(f["typed_config"], ctx)
        shadow.extend(decision.shadow)
        if not decision.allowed:
            return RbacDecision(False, decision.policy, decision.action, tuple(shadow))
        if decision.action == "ALLOW":
            passed = decision
    return RbacDecision(True, passed.policy, passed.action, tuple(shadow))
