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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy_api.names import VIRTUAL_INBOUND, VIRTUAL_OUTBOUND
from sim.xds.clusters import ClusterSpec, compile_cluster
from sim.xds.listeners import FilterChainSpec, ListenerSpec
from sim.xds.route_config import compile_route_config
from sim.xds.routes import RouteSpec
from sim.xds.values import listener_port
from sim.xds.vhosts import RouteTable

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
    host: str = ""
    """``ip:port`` the connection was made to (``%UPSTREAM_HOST%`` of an inbound request)."""

    def describe(self) -> str:
        """``listener L, filter chain C (match)`` for traces."""
        if self.listener is None:
            return "no listener"
        if self.chain is None:
            return f"listener {self.listener.name}: no filter chain matches"
        if self.chain is self.listener.default_chain:
            chain = f"{self.chain.name or '-'} (the default chain)"
        else:
            chain = self.chain.name or "#" + str(self.listener.chains.index(self.chain))
            if (match := self.chain.match.describe()) != "ALL":
                chain = f"{chain} [{match}]"
        return f"listener {self.listener.name}, filter chain {chain}"


class ProxyTables:
    """Everything one proxy executes: route configurations and clusters by name, and its
    listeners (compiled on first use)."""

    def __init__(
        self,
        route_configs: dict[str, RouteTable],
        clusters: dict[str, ClusterSpec],
        listeners: Sequence[Json] = (),
        secrets: Sequence[Json] = (),
    ) -> None:
        self.route_configs = route_configs
        self.clusters = clusters
        self.listeners = tuple(listeners)
        self.secrets: dict[str, Json] = {str(x.get("name", "")): x for x in secrets}
        """The SDS secrets the proxy was given, by name (a gateway's ``kubernetes://``
        credentials; a name absent here was never supplied: its TLS chain is not ready)."""
        self._compiled: dict[str, ListenerSpec] = {}
        self._bound: dict[tuple[str, int], Json] | None = None
        # the caches are nested dicts: no key tuple to allocate on the hot path
        self.http_out: dict[str, dict[int, Landing]] = {}
        """Landings of HTTP requests by dialled address, then port: what the hot path reads."""
        self._tcp_out: dict[str, dict[int, Landing]] = {}
        self._tls_out: dict[tuple[str, int, str, tuple[str, ...]], Landing] = {}
        self.http_in: dict[int, dict[tuple[str, ...] | None, Landing]] = {}
        """Landings of HTTP requests on ``virtualInbound`` by port, then the ALPN of an mTLS
        connection (None for plaintext): one proxy, one pod IP."""
        self._tcp_in: dict[int, dict[tuple[str, ...] | None, Landing]] = {}

    def _compile(self, raw: Json | None) -> ListenerSpec | None:
        if raw is None:
            return None
        name = str(raw.get("name", ""))
        found = self._compiled.get(name)
        if found is None:
            found = self._compiled[name] = ListenerSpec.from_envoy(raw)
        return found

    def _index(self) -> dict[tuple[str, int], Json]:
        """The outbound listeners by (bound address, port); the first of a pair wins."""
        if self._bound is None:
            self._bound = {}
            for x in self.listeners:
                sock = (x.get("address") or {}).get("socket_address") or {}
                port = listener_port(x)
                if (
                    port is not None
                    and x.get("traffic_direction") == "OUTBOUND"
                    and x.get("name") != VIRTUAL_OUTBOUND
                ):
                    self._bound.setdefault((str(sock.get("address", "")), port), x)
        return self._bound

    def outbound_listener(self, ip: str, port: int) -> ListenerSpec | None:
        """The outbound listener for ``ip:port``: the one bound to exactly that address
        (``<VIP>_<port>``), else the wildcard ``0.0.0.0_<port>``; None when neither exists."""
        bound = self._index()
        return self._compile(bound.get((ip, port)) or bound.get(("0.0.0.0", port)))

    def virtual_listener(self, name: str) -> ListenerSpec | None:
        """``virtualOutbound`` or ``virtualInbound``."""
        return self._compile(next((x for x in self.listeners if x.get("name") == name), None))

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
        sni: str = "",
    ) -> Landing:
        if listener is None:
            return Landing(None, None)
        transport, offered = listener.detect(tls=tls, alpn=alpn, http=http, port=port)
        chain = listener.select(ip, port, transport, offered, sni)
        routes = None
        route = None
        if chain is not None and chain.hcm is not None:
            routes = self.route_config(chain.hcm.route_config, chain.hcm.inline_routes)
            if routes is not None and len(routes.vhosts) == 1:
                (vhost,) = routes.vhosts
                route = vhost.catch_all if "*" in vhost.domains else None
        return Landing(listener, chain, routes, transport, offered, route, f"{ip}:{port}")

    def outbound(self, ip: str, port: int, *, http: bool) -> Landing:
        """Where a plaintext connection the proxy's app (or a gateway's client) opens to
        ``ip:port`` lands (``http``: its bytes are an HTTP/1.1 request; cached in
        :attr:`http_out`)."""
        cache = (self.http_out if http else self._tcp_out).setdefault(ip, {})
        found = cache.get(port)
        if found is None:
            listener = self.outbound_listener(ip, port)
            if listener is None:
                listener = self.virtual_listener(VIRTUAL_OUTBOUND)
            found = cache[port] = self._land(listener, ip, port, False, (), http)
        return found

    def outbound_tls(self, ip: str, port: int, sni: str, alpn: tuple[str, ...]) -> Landing:
        """Where a TLS connection offering ``sni`` and ``alpn`` to ``ip:port`` lands (a client
        speaking HTTPS to a gateway; cached per SNI and ALPN)."""
        key = (ip, port, sni, alpn)
        found = self._tls_out.get(key)
        if found is None:
            listener = self.outbound_listener(ip, port)
            if listener is None:
                listener = self.virtual_listener(VIRTUAL_OUTBOUND)
            found = self._tls_out[key] = self._land(listener, ip, port, True, alpn, True, sni)
        return found

    def inbound(
        self, ip: str, port: int, *, tls: bool, alpn: tuple[str, ...] = (), http: bool
    ) -> Landing:
        """Where a connection to the pod's ``ip:port`` lands on ``virtualInbound`` (``tls``:
        Istio mTLS offering ``alpn``; ``http``: the bytes are an HTTP/1.1 request; cached in
        :attr:`http_in`)."""
        cache = (self.http_in if http else self._tcp_in).setdefault(port, {})
        key = alpn if tls else None
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
    secrets: Iterable[Json] = (),
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
    return ProxyTables(tables, compiled, tuple(listeners), tuple(secrets))
