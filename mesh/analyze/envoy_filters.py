"""EnvoyFilter checks (istioctl's ``envoyfilter.EnvoyPatchAnalyzer``, and what meshplay models).

istiod applies EnvoyFilters in priority order, then by age. A relative patch (INSERT_BEFORE,
INSERT_AFTER, REPLACE, REMOVE) only works if the filter it is relative to is already there when it
runs, so without a ``priority`` it may silently do nothing:

* IST0151: a relative operation in an EnvoyFilter without priority;
* IST0155: the same, where an earlier patch for the same filter is limited to a proxyVersion
  (it may break during an upgrade);
* IST0152: REPLACE outside HTTP_FILTER, NETWORK_FILTER and VIRTUAL_HOST;
* IST0153 / IST0154: ADD or REMOVE on ROUTE_CONFIGURATION or HTTP_ROUTE, which istiod ignores.
* MPY2003: meshplay applies only the documented local-rate-limit form; other patches have no
  effect on sim and local.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from mesh.analyze.common import Path, diag, of_kind
from mesh.diagnostics import Diagnostic
from mesh.envoy_api.type_urls import FILTER_LOCAL_RATELIMIT
from mesh.model import EnvoyFilter, Resource
from mesh.model.envoy_filter import EnvoyConfigObjectPatch
from mesh.topology import Topology

__all__ = ["check_envoy_filter_operations", "check_envoy_filters"]

LOCAL_RATELIMIT = FILTER_LOCAL_RATELIMIT
ROUTE_LEVEL = {"ROUTE_CONFIGURATION", "HTTP_ROUTE"}
REPLACEABLE = {"NETWORK_FILTER", "HTTP_FILTER", "VIRTUAL_HOST"}
RELATIVE_HINT = "set spec.priority, or use INSERT_FIRST / ADD"


def check_envoy_filters(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY2003: only the documented local-rate-limit EnvoyFilter form is modelled."""
    del topo
    for ef in of_kind(resources, EnvoyFilter):
        for i, patch in enumerate(ef.config_patches):
            value = patch.patch.value if patch.patch is not None else None
            name = value.get("name") if isinstance(value, Mapping) else None
            is_ratelimit = patch.apply_to == "HTTP_FILTER" and name == LOCAL_RATELIMIT
            is_ratelimit_route = patch.apply_to in {"HTTP_ROUTE", "VIRTUAL_HOST"} and (
                LOCAL_RATELIMIT in str(value)
            )
            if not (is_ratelimit or is_ratelimit_route):
                yield diag("MPY2003", ef, ("spec", "configPatches", i),
                           f"EnvoyFilter patch (applyTo {patch.apply_to}) is not modelled: meshplay "
                           "applies only the local rate limit form; this patch has no effect on "
                           "sim or local", "it is still applied as-is on the kube runner")  # fmt: skip


def _instance_name(patch: EnvoyConfigObjectPatch) -> str:
    """The filter a patch is about: its value's ``name``, else the matched network filter."""
    value = patch.patch.value if patch.patch is not None else None
    if not isinstance(value, Mapping) or not value:
        return ""
    if "name" in value:
        return str(value["name"])
    listener = patch.match.listener if patch.match is not None else None
    chain = listener.filter_chain if listener is not None else None
    if chain is not None and chain.filter is not None:
        return chain.filter.name
    return ""


def _proxy_version(patch: EnvoyConfigObjectPatch) -> bool:
    proxy = patch.match.proxy if patch.match is not None else None
    return isinstance(proxy, Mapping) and bool(proxy.get("proxyVersion"))


def check_envoy_filter_operations(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0151-IST0155: patch operations that istiod may skip or ignores."""
    del topo
    versioned: list[str] = []  # filters patched with a proxyVersion match, across EnvoyFilters
    for ef in of_kind(resources, EnvoyFilter):
        for i, patch in enumerate(ef.config_patches):
            if patch.patch is None:
                break
            path: Path = ("spec", "configPatches", i, "patch", "operation")
            op, apply_to, name = patch.patch.operation, patch.apply_to, _instance_name(patch)
            relative = False
            if op == "ADD" and apply_to in ROUTE_LEVEL:
                yield diag("IST0153", ef, path,
                           "The ADD operation will be ignored when applyTo is set to "
                           "ROUTE_CONFIGURATION, or HTTP_ROUTE.", "use MERGE")  # fmt: skip
            elif op == "REMOVE" and apply_to in ROUTE_LEVEL:
                yield diag("IST0154", ef, path,
                           "The REMOVE operation will be ignored when applyTo is set to "
                           "ROUTE_CONFIGURATION, or HTTP_ROUTE.", "use MERGE")  # fmt: skip
            elif op == "REPLACE" and apply_to not in REPLACEABLE:
                yield diag("IST0152", ef, path,
                           "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.",
                           "use MERGE, or REMOVE then ADD")  # fmt: skip
            else:
                relative = op in {"REMOVE", "REPLACE", "INSERT_BEFORE", "INSERT_AFTER"}
            if relative and ef.priority == 0:
                if name in versioned:
                    yield diag("IST0155", ef, path,
                               "This EnvoyFilter does not have a priority and has a relative patch "
                               "operation (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and "
                               "proxyVersion set which can cause the EnvoyFilter not to be applied "
                               "during an upgrade. Using the INSERT_FIRST or ADD option or setting the "
                               "priority may help in ensuring the EnvoyFilter is applied correctly.",
                               RELATIVE_HINT)  # fmt: skip
                else:
                    yield diag("IST0151", ef, path,
                               "This EnvoyFilter does not have a priority and has a relative patch "
                               "operation set which can cause the EnvoyFilter not to be applied. "
                               "Using the INSERT_FIRST of ADD option or setting the priority may help "
                               "in ensuring the EnvoyFilter is applied correctly.",
                               RELATIVE_HINT)  # fmt: skip
            if _proxy_version(patch):
                versioned.append(name)
