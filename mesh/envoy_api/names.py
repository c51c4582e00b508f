"""Envoy object names exactly as istiod emits them, built in one place with a tested inverse.

istiod names clusters ``<direction>|<port>|<subset>|<host>``: ``outbound|9080|v1|reviews.default.svc
.cluster.local`` is subset v1 of reviews on port 9080 as a client sees it, ``inbound|9080||`` is the
server sidecar's cluster pointing at its own app (container port 9080, no subset, no host). Route
configurations are named by port (``"9080"``), outbound listeners ``0.0.0.0_<port>``, and the two
capture listeners ``virtualOutbound`` / ``virtualInbound``. What a learner reads in ``meshplay
proxy-config`` therefore matches ``istioctl proxy-config`` on a real cluster.

This module and :mod:`mesh.envoy_api.type_urls` are the only places these names are spelled: the
translator, the security builders, the runners and the lesson model all import them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ALLOW_ANY_VHOST",
    "BLACKHOLE_CLUSTER",
    "BLOCK_ALL_VHOST",
    "DEFAULT_ROUTE",
    "INBOUND_PASSTHROUGH_CLUSTER",
    "PASSTHROUGH_CLUSTER",
    "PASSTHROUGH_FILTER_CHAIN",
    "SDS_ROOT_CA",
    "SDS_WORKLOAD_CERT",
    "VIRTUAL_INBOUND",
    "VIRTUAL_INBOUND_BLACKHOLE_CHAIN",
    "VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN",
    "VIRTUAL_OUTBOUND",
    "VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN",
    "VIRTUAL_OUTBOUND_CATCHALL_CHAIN",
    "ClusterName",
    "Direction",
    "cluster_name",
    "gateway_blackhole_vhost_name",
    "gateway_route_name",
    "inbound_vhost_name",
    "is_special_cluster",
    "listener_name",
    "parse_cluster_name",
    "parse_sni_name",
    "route_config_name",
    "sni_name",
    "sniffed_route_config_name",
    "stat_prefix",
    "vhost_name",
]

BLACKHOLE_CLUSTER = "BlackHoleCluster"
"""A STATIC cluster with no endpoints: traffic sent there fails (REGISTRY_ONLY, loop guards)."""
PASSTHROUGH_CLUSTER = "PassthroughCluster"
"""ORIGINAL_DST cluster: forwards to whatever address the app dialled (ALLOW_ANY)."""
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"
"""ORIGINAL_DST cluster for inbound traffic to ports no Service declares."""
VIRTUAL_OUTBOUND = "virtualOutbound"
"""The outbound capture listener (15001 in Istio)."""
VIRTUAL_INBOUND = "virtualInbound"
"""The inbound capture listener (15006 in Istio)."""
VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN = "virtualOutbound-blackhole"
"""``virtualOutbound``'s loop guard: a connection to the capture port itself is black-holed."""
VIRTUAL_OUTBOUND_CATCHALL_CHAIN = "virtualOutbound-catchall-tcp"
"""``virtualOutbound``'s last chain: a connection no outbound listener takes."""
VIRTUAL_INBOUND_BLACKHOLE_CHAIN = "virtualInbound-blackhole"
"""``virtualInbound``'s loop guard (a connection to the inbound capture port itself)."""
VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN = "virtualInbound-catchall-http"
"""``virtualInbound``'s passthrough chains that end in an HTTP connection manager (plaintext
HTTP, HTTP over mTLS) to ``InboundPassthroughCluster``; its TCP passthrough chains are named
``virtualInbound`` (istiod's ``VirtualInboundCatchAllHTTPFilterChainName``)."""
PASSTHROUGH_FILTER_CHAIN = "PassthroughFilterChain"
"""The default chain of an outbound TCP listener whose chains all match on CIDRs."""
ALLOW_ANY_VHOST = "allow_any"
"""Catch-all virtual host on outbound route configs under ALLOW_ANY."""
BLOCK_ALL_VHOST = "block_all"
"""Catch-all virtual host on outbound route configs under REGISTRY_ONLY (direct 502)."""
DEFAULT_ROUTE = "default"
"""Name of the route istiod emits when no VirtualService applies."""
SDS_WORKLOAD_CERT = "default"
"""The SDS secret with the workload's own certificate and key (what the proxy presents)."""
SDS_ROOT_CA = "ROOTCA"
"""The SDS secret with the mesh root certificate (what the proxy trusts)."""

_SPECIAL = frozenset({BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER})


class Direction(StrEnum):
    """Traffic direction of a cluster (the first field of its name)."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


@dataclass(frozen=True, slots=True)
class ClusterName:
    """The parts of an istiod cluster name."""

    direction: Direction
    port: int
    subset: str
    host: str

    def __str__(self) -> str:
        return cluster_name(self.direction, self.port, self.subset, self.host)


def cluster_name(direction: Direction | str, port: int, subset: str = "", host: str = "") -> str:
    """``outbound|9080|v1|reviews.default.svc.cluster.local`` / ``inbound|9080||``.

    Raises ValueError for parts that would make the name ambiguous (a ``|`` inside a part).
    """
    d = Direction(direction)
    if "|" in subset or "|" in host:
        raise ValueError(f"cluster name parts must not contain '|': {subset!r}, {host!r}")
    if port < 0 or port > 65535:
        raise ValueError(f"port out of range: {port}")
    return f"{d.value}|{port}|{subset}|{host}"


def parse_cluster_name(name: str) -> ClusterName | None:
    """The inverse of :func:`cluster_name`; ``None`` for names istiod builds differently
    (``BlackHoleCluster``, ``PassthroughCluster``, ...)."""
    parts = name.split("|")
    if len(parts) != 4:
        return None
    direction, port, subset, host = parts
    if direction not in {d.value for d in Direction} or not port.isdigit():
        return None
    return ClusterName(Direction(direction), int(port), subset, host)


def is_special_cluster(name: str) -> bool:
    """Whether ``name`` is one of the fixed clusters istiod adds to every sidecar."""
    return name in _SPECIAL


def sni_name(port: int, subset: str, host: str) -> str:
    """The mTLS SNI istiod sets on outbound clusters: ``outbound_.9080_.v1_.reviews.default.svc...``."""
    return f"outbound_.{port}_.{subset}_.{host}"


def parse_sni_name(name: str) -> ClusterName | None:
    """The inverse of :func:`sni_name` (also the name of the SNI-DNAT cluster an east-west
    gateway's AUTO_PASSTHROUGH chain forwards to); ``None`` for other names."""
    parts = name.split("_.", 3)
    if len(parts) != 4 or parts[0] != Direction.OUTBOUND.value or not parts[1].isdigit():
        return None
    return ClusterName(Direction.OUTBOUND, int(parts[1]), parts[2], parts[3])


def listener_name(address: str, port: int) -> str:
    """``0.0.0.0_9080`` (outbound HTTP and gateway listeners) or ``10.96.3.7_5432`` (a TCP
    service's listener at its VIP)."""
    return f"{address}_{port}"


def stat_prefix(direction: Direction, listener: str) -> str:
    """An HTTP connection manager's ``stat_prefix``: ``outbound_0.0.0.0_9080`` /
    ``inbound_0.0.0.0_9080`` (the direction, then the listener or filter chain name)."""
    return f"{direction.value}_{listener}"


def vhost_name(host: str, port: int) -> str:
    """Virtual host of a service on an outbound route config: ``reviews.default.svc...:9080``."""
    return f"{host}:{port}"


def inbound_vhost_name(service_port: int) -> str:
    """The single virtual host of an inbound route config: ``inbound|http|9080``."""
    return f"inbound|http|{service_port}"


def route_config_name(port: int) -> str:
    """An outbound route configuration (RDS) name: the service port, ``"9080"``."""
    return str(port)


def sniffed_route_config_name(host: str, port: int) -> str:
    """RDS name of a sniffed (unknown-protocol) service port's own listener at its VIP:
    ``reviews.default.svc.cluster.local:9000`` (istiod's ``<hostname>:<port>``)."""
    return f"{host}:{port}"


def gateway_blackhole_vhost_name(server_port: int) -> str:
    """The only virtual host of a gateway server no VirtualService binds: ``blackhole:80``."""
    return f"blackhole:{server_port}"


def gateway_route_name(target_port: int) -> str:
    """RDS name of a plain-HTTP gateway server: ``http.8080`` (the gateway pod's port)."""
    return f"http.{target_port}"
