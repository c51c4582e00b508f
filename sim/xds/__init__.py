"""Envoy v3 config (plain dicts, as ``mesh.envoy.translate`` emits them) compiled for execution.

The simulator never re-reads Istio YAML: it executes the listeners, route configurations,
clusters and ClusterLoadAssignments a proxy would receive from istiod. Parsing a dict on every
request would be slow, so each proxy's config is compiled once into small objects:

* :mod:`sim.xds.listeners`: filter chains with their FilterChainMatch, HTTP connection managers
  (route configuration name, HTTP filters), ``tcp_proxy`` and network RBAC;
* :mod:`sim.xds.routes`: route configurations (virtual hosts indexed by domain, routes with their
  matchers precompiled, retry policy, fault, mirrors, rewrites, per-filter config);
* :mod:`sim.xds.clusters`: clusters (LB policy, circuit-breaker thresholds, outlier detection,
  endpoints with the workload metadata istiod attaches, upstream mTLS);
* :mod:`sim.xds.tables`: one proxy's tables and where a connection lands on it (cached).

This package is a leaf of ``sim``: it imports only ``mesh`` names and :mod:`sim.matchers`.
"""

from sim.xds.clusters import MAX_UINT32, ClusterSpec, EndpointSpec, OutlierSpec, Thresholds
from sim.xds.listeners import ChainMatch, FilterChainSpec, HcmSpec, HttpFilterSpec, ListenerSpec
from sim.xds.route_config import compile_route_config
from sim.xds.routes import (
    FaultSpec,
    HeaderOps,
    MirrorSpec,
    RetrySpec,
    RouteSpec,
    redirect_status,
)
from sim.xds.tables import Landing, ProxyTables, compile_proxy
from sim.xds.values import fraction, parse_duration
from sim.xds.vhosts import RouteTable, VirtualHostSpec

__all__ = [
    "MAX_UINT32",
    "ChainMatch",
    "ClusterSpec",
    "EndpointSpec",
    "FaultSpec",
    "FilterChainSpec",
    "HcmSpec",
    "HeaderOps",
    "HttpFilterSpec",
    "Landing",
    "ListenerSpec",
    "MirrorSpec",
    "OutlierSpec",
    "ProxyTables",
    "RetrySpec",
    "RouteSpec",
    "RouteTable",
    "Thresholds",
    "VirtualHostSpec",
    "compile_proxy",
    "compile_route_config",
    "fraction",
    "parse_duration",
    "redirect_status",
]
