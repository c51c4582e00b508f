"""Where the translated listeners and endpoints live: Istio's addresses, or allocated local ports.

In Kubernetes every pod has its own IP and iptables hands the app's traffic to the sidecar, so
istiod writes ``0.0.0.0:9080`` listeners (``bind_to_port: false``, reached through
``virtualOutbound``'s original-destination hand-off) and endpoints at ``<pod IP>:<targetPort>``.
The local runner has neither pod IPs nor iptables: every process shares 127.0.0.1 and ports are
allocated. A :class:`PortMap` says, per pod, which allocated port stands for which Istio port;
the translation semantics (names, routes, clusters, filters) stay identical, only socket addresses
change. Without a PortMap the output is what istiod would send to a pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mesh.model import FrozenMap
from mesh.topology import Pod, ProxyKind

__all__ = ["Addressing", "PodPorts", "PortMap"]


@dataclass(frozen=True, slots=True)
class PodPorts:
    """Allocated ports of one pod in the local runner.

    ``listeners``: Istio listener port (outbound ``0.0.0.0_<port>`` on a sidecar, server port on a
    gateway) -> local port the listener binds. ``inbound``: container (target) port -> local port
    where this pod's sidecar accepts inbound traffic for it (what other sidecars' endpoints point
    at). ``app``: container port -> local port the app process listens on.
    """

    listeners: FrozenMap[int, int] = field(default_factory=FrozenMap)
    inbound: FrozenMap[int, int] = field(default_factory=FrozenMap)
    app: FrozenMap[int, int] = field(default_factory=FrozenMap)


@dataclass(frozen=True, slots=True)
class PortMap:
    """Per-pod port allocation for the local runner; every address becomes ``address``."""

    pods: FrozenMap[str, PodPorts]
    address: str = "127.0.0.1"

    @classmethod
    def of(cls, pods: Mapping[str, PodPorts], address: str = "127.0.0.1") -> PortMap:
        """Build from a plain dict."""
        return cls(FrozenMap(pods), address)


@dataclass(frozen=True, slots=True)
class ListenerAddress:
    """A listener's socket and whether Envoy binds it."""

    address: str
    port: int
    bind: bool


class Addressing:
    """Every socket address the translation writes goes through here (one rule, two modes)."""

    __slots__ = ("port_map",)

    def __init__(self, port_map: PortMap | None = None) -> None:
        self.port_map = port_map

    def _ports(self, pod: Pod) -> PodPorts | None:
        if self.port_map is None:
            return None
        return self.port_map.pods.get(pod.name)

    def outbound_listener(self, pod: Pod, port: int) -> ListenerAddress:
        """``0.0.0.0_<port>``: a sidecar's (unbound, captured) or a gateway's (bound) listener."""
        bind = pod.proxy is ProxyKind.ROUTER
        if self.port_map is None:
            return ListenerAddress("0.0.0.0", port, bind)
        ports = self._ports(pod)
        if ports is not None and port in ports.listeners:
            return ListenerAddress(self.port_map.address, ports.listeners[port], True)
        return ListenerAddress("0.0.0.0", port, False)

    def vip_listener(self, address: str, port: int) -> ListenerAddress:
        """``<VIP>_<port>``: a TCP service's listener at its VIP (or a headless Service's
        endpoint IP). Never bound, in both modes: in Kubernetes ``virtualOutbound`` hands it the
        connections to that exact address; the local runner carries no TCP traffic, and binding
        a VIP (which is no local address) would fail."""
        return ListenerAddress(address, port, False)

    def sniffed_listener(self, pod: Pod, address: str, port: int, free: bool) -> ListenerAddress:
        """``<VIP>_<port>`` of a sniffed (unknown-protocol) port: unbound in Kubernetes, like a
        TCP VIP listener. The local runner has no VIPs, and its apps reach services through the
        listener allocated for the port; the first sniffed listener of a port that no
        ``0.0.0.0_<port>`` listener holds (``free``) binds there, so its HTTP and TCP paths
        both run on real Envoy."""
        ports = self._ports(pod)
        if self.port_map is not None and free and ports is not None and port in ports.listeners:
            return ListenerAddress(self.port_map.address, ports.listeners[port], True)
        return ListenerAddress(address, port, False)

    def capture_listener(self, pod: Pod, port: int) -> ListenerAddress:
        """``virtualOutbound`` (15001): bound in Istio, unused (not bound) with a PortMap."""
        if self.port_map is None:
            return ListenerAddress("0.0.0.0", port, True)
        return ListenerAddress("0.0.0.0", port, False)

    def inbound_ports(self, pod: Pod, target_ports: tuple[int, ...]) -> dict[int, int]:
        """Target port -> the destination port the ``virtualInbound`` chain for it matches."""
        ports = self._ports(pod)
        if ports is None:
            return {p: p for p in target_ports}
        return {p: ports.inbound.get(p, p) for p in target_ports}

    def inbound_listener(self, pod: Pod, istio_port: int, local: list[int]) -> ListenerAddress:
        """``virtualInbound``: 15006 in Istio; with a PortMap the first allocated inbound port
        (further inbound ports become ``additional_addresses``)."""
        if self.port_map is None:
            return ListenerAddress("0.0.0.0", istio_port, True)
        if not local:
            return ListenerAddress("0.0.0.0", istio_port, False)
        return ListenerAddress(self.port_map.address, local[0], True)

    def endpoint(self, pod: Pod, target_port: int) -> tuple[str, int]:
        """Where a client reaches ``pod:target_port``: the pod IP, or with a PortMap the pod's
        sidecar inbound port (the app port when the pod has no sidecar)."""
        ports = self._ports(pod)
        if self.port_map is None or ports is None:
            return pod.address, target_port
        if pod.proxy is ProxyKind.SIDECAR and target_port in ports.inbound:
            return self.port_map.address, ports.inbound[target_port]
        if target_port in ports.app:
            return self.port_map.address, ports.app[target_port]
        if target_port in ports.listeners:
            return self.port_map.address, ports.listeners[target_port]
        return self.port_map.address, target_port

    def app(self, pod: Pod, target_port: int) -> tuple[str, int]:
        """Where the sidecar reaches its own app (``inbound|<port>||``)."""
        ports = self._ports(pod)
        if self.port_map is None or ports is None:
            return pod.address, target_port
        return self.port_map.address, ports.app.get(target_port, target_port)
