"""One proxy's xDS resources (LDS, RDS, CDS, EDS) compiled for execution, and where a connection
lands on it.

Outbound, a sidecar's app connects to the address it dialled; iptables sends the connection to
``virtualOutbound``, which (``use_original_dst``) hands it to the listener bound to exactly that
address (``<VIP>_<port>``), else to the wildcard one (``0.0.0.0_<port>``), else keeps it on its own
chains. A gateway's listeners are bound themselves. Inbound, iptables sends every connection to
``virtualInbound``, whose chains match on the destination port. The listener filters decide what
the FilterChainMatch sees (:meth:`sim.xds.listeners.ListenerSpec.detect`), and the chain's network
filters what happens next: an HTTP connection manager (its route configuration) or ``tcp_proxy``.

Every selection is cached per proxy and per (address, port, what the connection offers): a config
push compiles new tables, so the caches never outlive the config they were computed from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy.names import VIRTUAL_INBOUND, VIRTUAL_OUTBOUND
from sim.xds.clusters import ClusterSpec, compile_cluster
from sim.xds.listeners import FilterChainSpec, ListenerSpec
from sim.xds.routes import RouteSpec, RouteTable, compile_route_config
from sim.xds.values import listener_port

__all__ = ["Landing", "ProxyTables", "compile_proxy"]

Json = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a connection lands on a proxy: the listener that takes it, the filter chain Envoy
    selects (None: no chain matches, the connection is closed) and, for an HTTP connection
    manager, its route configuration (None when the proxy has no route configuration of that
    name). ``transport`` and ``alpn`` are what the listener filters detected."""

    listener: ListenerSpec | None
    chain: FilterChainSpec | None
    routes: RouteTable | None = None
    transport: str = "raw_buffer"
    alpn: tuple[str, ...] = ()
    route: RouteSpec | None = None
    """The route every request (path starting with ``/``) takes here, when the route
    configuration is one ``*`` virtual host whose first route matches everything (istiod's
    inbound ``inbound|<port>||``): no per-request lookup."""

    def describe(self) -> str:
        """``listener L, filter chain C (match)`` for traces."""
        if self.listener is None:
            return "no listener"
        if self.chain is None:
            return f"listener {self.listener.name}: no filter chain matches"
        chain = self.chain.name or "#" + str(self.listener.chains.index(self.chain))
        if self.chain is self.listener.default_chain:
            chain = f"{self.chain.name or '-'} (the default chain)"
        elif (match := self.chain.match.describe()) != "ALL":
            chain = f"{chain} [{match}]"
        return f"listener {self.listener.name}, filter chain {chain}"


def _outbound(listener: Json, port: int, ip: str) -> bool:
    sock = (listener.get("address") or {}).get("socket_address") or {}
    return (
        listener_port(listener) == port
        and str(sock.get("address", "")) == ip
        and listener.get("traffic_direction") == "OUTBOUND"
        and listener.get("name") != VIRTUAL_OUTBOUND
    )


class ProxyTables:
    """Everything one proxy executes: route configurations and clusters by name, and its
    listeners (compiled on first use)."""

    def __init__(
        self,
        route_configs: dict[str, RouteTable],
        clusters: dict[str, ClusterSpec],
        listeners: Sequence[Json] = (),
    ) -> None:
        self.route_configs = route_configs
        self.clusters = clusters
        self.listeners = tuple(listeners)
        self._compiled: dict[str, ListenerSpec | None] = {}
        self.http_out: dict[tuple[str, int], Landing] = {}
        """Landings of HTTP requests by (dialled address, port): what the hot path reads."""
        self._tcp_out: dict[tuple[str, int], Landing] = {}
        self.http_in: dict[tuple[str, int, bool, tuple[str, ...]], Landing] = {}
        """Landings of HTTP requests on ``virtualInbound`` by (pod IP, port, mTLS, ALPN)."""
        self._tcp_in: dict[tuple[str, int, bool, tuple[str, ...]], Landing] = {}

    def _listener(self, key: str, pick: Callable[[Json], bool]) -> ListenerSpec | None:
        if key not in self._compiled:
            raw = next((x for x in self.listeners if pick(x)), None)
            self._compiled[key] = ListenerSpec.from_envoy(raw) if raw is not None else None
        return self._compiled[key]

    def outbound_listener(self, ip: str, port: int) -> ListenerSpec | None:
        """The outbound listener for ``ip:port``: the one bound to exactly that address
        (``<VIP>_<port>``), else the wildcard ``0.0.0.0_<port>``; None when neither exists."""
        found = self._listener(f"{ip}:{port}", lambda x: _outbound(x, port, ip))
        if found is None:
            found = self._listener(f"0.0.0.0:{port}", lambda x: _outbound(x, port, "0.0.0.0"))
        return found

    def virtual_listener(self, name: str) -> ListenerSpec | None:
        """``virtualOutbound`` or ``virtualInbound``."""
        return self._listener(name, lambda x: x.get("name") == name)

    def route_config(self, name: str, inline: Json | None = None) -> RouteTable | None:
        """The route configuration ``name`` (an HCM's inline one compiled on first use)."""
        table = self.route_configs.get(name)
        if table is None and inline is not None:
            table = self.route_configs[name] = compile_route_config(inline)
        return table

    def _land(  # noqa: PLR0917
        self,
        listener: ListenerSpec | None,
        ip: str,
        port: int,
        tls: bool,
        alpn: tuple[str, ...],
        http: bool,
    ) -> Landing:
        if listener is None:
            return Landing(None, None)
        transport, offered = listener.detect(tls=tls, alpn=alpn, http=http)
        chain = listener.select(ip, port, transport, offered)
        routes = None
        route = None
        if chain is not None and chain.hcm is not None:
            routes = self.route_config(chain.hcm.route_config, chain.hcm.inline_routes)
            if routes is not None and len(routes.vhosts) == 1:
                (vhost,) = routes.vhosts
                route = vhost.catch_all if "*" in vhost.domains else None
        return Landing(listener, chain, routes, transport, offered, route)

    def outbound(self, ip: str, port: int, *, http: bool) -> Landing:
        """Where a plaintext connection the proxy's app (or a gateway's client) opens to
        ``ip:port`` lands (``http``: its bytes are an HTTP/1.1 request; cached in
        :attr:`http_out`)."""
        cache = self.http_out if http else self._tcp_out
        found = cache.get((ip, port))
        if found is None:
            listener = self.outbound_listener(ip, port)
            if listener is None:
                listener = self.virtual_listener(VIRTUAL_OUTBOUND)
            found = cache[ip, port] = self._land(listener, ip, port, False, (), http)
        return found

    def inbound(
        self, ip: str, port: int, *, tls: bool, alpn: tuple[str, ...] = (), http: bool
    ) -> Landing:
        """Where a connection to the pod's ``ip:port`` lands on ``virtualInbound`` (``tls``:
        Istio mTLS offering ``alpn``; ``http``: the bytes are an HTTP/1.1 request; cached in
        :attr:`http_in`)."""
        cache = self.http_in if http else self._tcp_in
        key = (ip, port, tls, alpn)
        found = cache.get(key)
        if found is None:
            listener = self.virtual_listener(VIRTUAL_INBOUND)
            found = cache[key] = self._land(listener, ip, port, tls, alpn, http)
        return found


def compile_proxy(
    listeners: Iterable[Json],
    routes: Iterable[Json],
    clusters: Iterable[Json],
    endpoints: Iterable[Json],
    *,
    memo: dict[int, Any] | None = None,
) -> ProxyTables:
    """Compile one proxy's xDS resources for execution (shared dicts once per ``memo``).

    Route configurations and clusters are compiled now, listeners when a connection first
    needs one."""
    cache: dict[int, Any] = memo if memo is not None else {}

    def once(key: int, keep: Any, build: Any) -> Any:
        # translate shares dicts between proxies of the same scope: compile each one once
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = (keep, build())
        return hit[1]

    tables = {
        str(rc.get("name", "")): once(id(rc), rc, lambda rc=rc: compile_route_config(rc))
        for rc in routes
    }
    cla_by_name = {str(c.get("cluster_name", "")): c for c in endpoints}
    compiled = {}
    for c in clusters:
        name = str(c["name"])
        eds_name = str((c.get("eds_cluster_config") or {}).get("service_name") or name)
        cla = cla_by_name.get(eds_name) if c.get("type", "EDS") == "EDS" else None
        compiled[name] = once(
            hash((id(c), id(cla))), (c, cla), lambda c=c, cla=cla: compile_cluster(c, cla)
        )
    return ProxyTables(tables, compiled, tuple(listeners))
