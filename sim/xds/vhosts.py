"""Virtual hosts and route configurations as Envoy selects them: a virtual host by the request's
``:authority`` (exact domain, longest suffix wildcard, longest prefix wildcard, ``*``), then the
first route of it whose match holds; ``require_tls`` and virtual clusters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sim.matchers import HeaderMatcher
from sim.xds.routes import HeaderOps, RetrySpec, RouteSpec

__all__ = ["RouteTable", "VirtualHostSpec", "strip_port"]


@dataclass(slots=True)
class VirtualHostSpec:
    """A virtual host: its domains and ordered routes (first match wins)."""

    name: str
    domains: tuple[str, ...]
    routes: list[RouteSpec]
    pseudo_headers: bool = False
    require_tls: str = "NONE"
    """``NONE``, ``ALL`` or ``EXTERNAL_ONLY``: a plaintext request gets a 301 to ``https://``."""
    virtual_clusters: tuple[tuple[str, tuple[HeaderMatcher, ...]], ...] = ()
    header_ops: HeaderOps = field(default_factory=HeaderOps)
    retry: RetrySpec | None = None
    """The virtual host's ``retry_policy``: used by routes that have none of their own."""
    has_runtime: bool = False
    """Some route has ``runtime_fraction``: matching needs the request's random value."""

    catch_all: RouteSpec | None = None
    """The first route when it matches every request whose path starts with ``/`` (``prefix:
    /``, no header or query matcher): then it is the one, without matching per request."""

    def __post_init__(self) -> None:
        self.pseudo_headers = any(h.name.startswith(":") for r in self.routes for h in r.headers)
        self.has_runtime = any(r.runtime is not None for r in self.routes)
        first = self.routes[0] if self.routes else None
        if (
            first is not None
            and first.path.matches_everything
            and not first.headers
            and not first.grpc
            and first.runtime is None
        ):
            self.catch_all = None if first.query else first

    def match(
        self,
        path: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        random_value: int = 0,
    ) -> RouteSpec | None:
        """The first route whose match holds, or None (Envoy answers 404 NR)."""
        for r in self.routes:
            if r.matches(path, query, headers, random_value):
                return r
        return None

    def tls_redirect(self, https: bool, internal: bool) -> bool:
        """Whether ``require_tls`` answers this request with a redirect to ``https://``."""
        if https or self.require_tls == "NONE":
            return False
        return self.require_tls == "ALL" or not internal

    def virtual_cluster(self, headers: Mapping[str, str]) -> str:
        """The first virtual cluster whose header matchers hold (``other`` when the virtual
        host has virtual clusters and none matches, as Envoy names its catch-all; else "")."""
        for name, matchers in self.virtual_clusters:
            if all(m.matches(headers) for m in matchers):
                return name
        return "other" if self.virtual_clusters else ""


def strip_port(host: str) -> str:
    """``host:80`` -> ``host``, ``[::1]:80`` -> ``[::1]``; only a numeric port is stripped."""
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name
    return host


class RouteTable:
    """A RouteConfiguration: virtual hosts selected by the ``:authority`` (Host) header.

    Envoy's order: an exact domain, then the longest ``*suffix`` wildcard, then the longest
    ``prefix*`` wildcard, then ``*``; a wildcard must match at least one character (``*.a.com``
    does not take ``.a.com``); the Host is compared in lower case. With
    ``ignore_port_in_host_matching`` (Istio sets it; Envoy's default is off) a numeric ``:port``
    is stripped from the Host before any comparison.
    """

    def __init__(
        self,
        name: str,
        vhosts: Sequence[VirtualHostSpec],
        ignore_port: bool,
        header_ops: HeaderOps | None = None,
    ) -> None:
        self.name = name
        self.vhosts = list(vhosts)
        self.ignore_port = ignore_port
        self.header_ops = header_ops or HeaderOps()
        self._exact: dict[str, VirtualHostSpec] = {}
        self._suffix: list[tuple[str, VirtualHostSpec]] = []
        self._prefix: list[tuple[str, VirtualHostSpec]] = []
        self._any: VirtualHostSpec | None = None
        for vh in self.vhosts:
            for domain in vh.domains:
                d = domain.lower()
                if d == "*":
                    self._any = self._any or vh
                elif d.startswith("*"):
                    self._suffix.append((d[1:], vh))
                elif d.endswith("*"):
                    self._prefix.append((d[:-1], vh))
                else:
                    self._exact.setdefault(d, vh)
        self._suffix.sort(key=lambda p: -len(p[0]))
        self._prefix.sort(key=lambda p: -len(p[0]))
        self._cache: dict[str, VirtualHostSpec | None] = {}

    def vhost(self, authority: str) -> VirtualHostSpec | None:
        """The virtual host serving ``authority`` (cached per distinct Host value)."""
        if authority in self._cache:
            return self._cache[authority]
        host = authority.lower()
        if self.ignore_port:
            host = strip_port(host)
        result = self._exact.get(host)
        if result is None:
            result = next(
                (vh for s, vh in self._suffix if len(host) > len(s) and host.endswith(s)), None
            )
        if result is None:
            result = next(
                (vh for p, vh in self._prefix if len(host) > len(p) and host.startswith(p)), None
            )
        if result is None:
            result = self._any
        if len(self._cache) < 4096:
            self._cache[authority] = result
        return result
