"""networking.istio.io EnvoyFilter (envoy_filter.proto).

meshplay models the form Istio documents for local rate limiting: an HTTP_FILTER patch that
inserts ``envoy.filters.http.local_ratelimit`` into the inbound (SIDECAR_INBOUND) HTTP connection
manager. Every other patch is loaded and kept, but the analyzer reports it as not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mesh.model.common import JsonValue, LabelsWorkloadSelector, Resource

__all__ = [
    "EnvoyConfigObjectMatch",
    "EnvoyConfigObjectPatch",
    "EnvoyFilter",
    "FilterChainMatch",
    "FilterMatch",
    "ListenerMatch",
    "Patch",
    "SubFilterMatch",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubFilterMatch:
    """Match an HTTP filter inside the HTTP connection manager by name."""

    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterMatch:
    """Match a network filter (and optionally one of its HTTP filters)."""

    name: str = ""
    sub_filter: SubFilterMatch | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterChainMatch:
    """Match a filter chain of a listener."""

    name: str = ""
    sni: str = ""
    transport_protocol: str = ""
    application_protocols: str = ""
    filter: FilterMatch | None = None
    destination_port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerMatch:
    """Match a listener by port, name or filter chain."""

    port_number: int | None = None
    port_name: str = ""
    filter_chain: FilterChainMatch | None = None
    listener_filter: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyConfigObjectMatch:
    """Which generated objects a patch applies to."""

    context: str = "ANY"
    proxy: JsonValue = None
    listener: ListenerMatch | None = None
    route_configuration: JsonValue = None
    cluster: JsonValue = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Patch:
    """The operation and the Envoy config (kept as parsed JSON) to merge or insert."""

    operation: str = "INVALID"
    value: JsonValue = None
    filter_class: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyConfigObjectPatch:
    """One patch: what to apply it to, where, and what to do."""

    apply_to: str = "INVALID"
    match: EnvoyConfigObjectMatch | None = None
    patch: Patch | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilter(Resource):
    """networking.istio.io EnvoyFilter."""

    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1alpha3",)
    KIND: ClassVar[str] = "EnvoyFilter"
    PLURAL: ClassVar[str] = "envoyfilters"
    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"targetRefs"})

    workload_selector: LabelsWorkloadSelector | None = None
    config_patches: tuple[EnvoyConfigObjectPatch, ...] = ()
    priority: int = 0
