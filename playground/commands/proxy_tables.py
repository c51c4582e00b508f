"""The tables ``meshplay proxy-config`` prints for a proxy's clusters, listeners, routes and
endpoints, in the columns ``istioctl proxy-config`` uses, or the raw Envoy dicts as JSON/YAML."""

from __future__ import annotations

import json
from typing import Any

import yaml

from mesh.envoy import ProxyConfig, parse_cluster_name

__all__ = ["format_table", "render_proxy_config"]


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by spaces, like istioctl's tabwriter output."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        "     ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    ]
    return "\n".join(lines)


def _clusters(proxy: ProxyConfig) -> str:
    rows = []
    for c in proxy.clusters:
        parsed = parse_cluster_name(c["name"])
        istio = c.get("metadata", {}).get("filter_metadata", {}).get("istio", {})
        config = istio.get("config", "")
        dr = ""
        if config:
            parts = config.split("/")
            dr = f"{parts[-1]}.{parts[-3]}"
        kind = c.get("type", "STATIC")
        if parsed is None:
            rows.append([c["name"], "-", "-", "-", kind, dr])
        else:
            rows.append(
                [
                    parsed.host,
                    str(parsed.port),
                    parsed.subset or "-",
                    parsed.direction.value,
                    kind,
                    dr,
                ]
            )
    return format_table(
        ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"], rows
    )


def _network_destination(f: dict[str, Any]) -> str:
    cfg = f.get("typed_config", {})
    if "rds" in cfg:
        return f"Route: {cfg['rds']['route_config_name']}"
    if "route_config" in cfg:
        return f"Inline Route: {cfg['route_config'].get('name', '')}"
    if "weighted_clusters" in cfg:
        return "Weighted: " + ", ".join(
            f"{w['name']} {w['weight']}" for w in cfg["weighted_clusters"]["clusters"]
        )
    if "cluster" in cfg:
        return f"Cluster: {cfg['cluster']}"
    return str(f.get("name", ""))


def _listeners(proxy: ProxyConfig) -> str:
    rows = []
    for listener in proxy.listeners:
        sock = listener["address"]["socket_address"]
        chains = [(c, _chain_match_text(c.get("filter_chain_match", {}))) for c in
                  listener.get("filter_chains", [])]  # fmt: skip
        if isinstance(listener.get("default_filter_chain"), dict):
            chains.append((listener["default_filter_chain"], "ALL (default chain)"))
        for chain, text in chains:
            dest = "; ".join(_network_destination(f) for f in chain.get("filters", []))
            rows.append([sock["address"], str(sock["port_value"]), text, dest])
    return format_table(["ADDRESSES", "PORT", "MATCH", "DESTINATION"], rows)


def _cidr(prefix_range: dict[str, Any]) -> str:
    """A CidrRange; ``prefix_len`` is a number here and ``{value: n}`` in a live config dump."""
    length = prefix_range.get("prefix_len", 32)
    if isinstance(length, dict):
        length = length.get("value", 32)
    return f"{prefix_range['address_prefix']}/{length}"


def _chain_match_text(match: dict[str, Any]) -> str:
    """A ``filter_chain_match`` as istioctl prints it: ``SNI: a.example; Trans: tls; App: h2;
    Addr: *:8080``."""
    parts = []
    if match.get("server_names"):
        parts.append(f"SNI: {','.join(match['server_names'])}")
    if match.get("transport_protocol"):
        parts.append(f"Trans: {match['transport_protocol']}")
    if match.get("application_protocols"):
        parts.append(f"App: {','.join(match['application_protocols'])}")
    port = f":{match['destination_port']}" if "destination_port" in match else ""
    ranges = [_cidr(r) for r in match.get("prefix_ranges", [])]
    if ranges:
        parts.append("Addr: " + ",".join(f"{r}{port}" for r in ranges))
    elif port:
        parts.append(f"Addr: *{port}")
    return "; ".join(parts) or "ALL"


def _match_text(match: dict[str, Any]) -> str:
    text: str
    if "path" in match:
        text = str(match["path"])
    elif "safe_regex" in match:
        text = str(match["safe_regex"]["regex"])
    else:
        text = f"{match.get('prefix', '/')}*"
    extra = [h["name"] for h in match.get("headers", [])]
    extra += [f"?{q['name']}" for q in match.get("query_parameters", [])]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _domains(domains: list[str]) -> str:
    short = sorted((d for d in domains if ":" not in d and not d.endswith(".")), key=len)
    shown = short[:2]
    more = len(domains) - len(shown)
    return ", ".join(shown) + (f" + {more} more..." if more > 0 else "")


def _routes(proxy: ProxyConfig) -> str:
    rows = []
    for rc in proxy.routes:
        for vh in rc.get("virtual_hosts", []):
            routes = vh.get("routes", []) or [{}]
            for route in routes:
                config = (
                    route.get("metadata", {})
                    .get("filter_metadata", {})
                    .get("istio", {})
                    .get("config", "")
                )
                vs = ""
                if config:
                    parts = config.split("/")
                    vs = f"{parts[-1]}.{parts[-3]}"
                rows.append(
                    [
                        rc["name"],
                        vh["name"],
                        _domains(vh["domains"]),
                        _match_text(route.get("match", {})) if route else "-",
                        vs,
                    ]
                )
    return format_table(["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"], rows)


def _endpoints(proxy: ProxyConfig) -> str:
    """istioctl's endpoint table; in a mesh that spans networks (endpoints carrying a
    network), each endpoint's locality and network too: istioctl shows those only with ``-o
    json`` (the locality of each host), where an east-west gateway's ``:15443`` endpoint stands
    for the remote network's pods of its locality."""
    rows = []
    networks = False
    for cla in proxy.endpoints:
        for group in cla.get("endpoints", []):
            loc = group.get("locality") or {}
            locality = "/".join(loc[k] for k in ("region", "zone", "sub_zone") if loc.get(k))
            for ep in group.get("lb_endpoints", []):
                sock = ep["endpoint"]["address"]["socket_address"]
                istio = ep.get("metadata", {}).get("filter_metadata", {}).get("istio", {})
                network = str(istio.get("network", ""))
                networks = networks or bool(network)
                rows.append(
                    [
                        f"{sock['address']}:{sock['port_value']}",
                        ep.get("health_status", "HEALTHY"),
                        "OK",
                        cla["cluster_name"],
                        locality or "-",
                        network or "-",
                    ]
                )
    headers = ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER", "LOCALITY", "NETWORK"]
    if not networks:
        headers, rows = headers[:4], [r[:4] for r in rows]
    return format_table(headers, rows)


_TABLES = {
    "clusters": _clusters,
    "listeners": _listeners,
    "routes": _routes,
    "endpoints": _endpoints,
}


def render_proxy_config(proxy: ProxyConfig, kind: str, output: str = "short") -> str:
    """The text ``meshplay proxy-config`` prints for one proxy."""
    kinds = ["clusters", "listeners", "routes", "endpoints"] if kind == "all" else [kind]
    if output == "short":
        return "\n\n".join(_TABLES[k](proxy) for k in kinds)
    data: dict[str, Any] = {k: list(getattr(proxy, k)) for k in kinds}
    payload: Any = data if kind == "all" else data[kind]
    if output == "json":
        return json.dumps(payload, indent=2)
    text: str = yaml.dump(payload, Dumper=_PlainDumper, sort_keys=False, width=100)
    return text.rstrip()


class _PlainDumper(yaml.SafeDumper):
    """YAML as istioctl prints it: a value shared by several clusters (one circuit-breaker
    object) is written out each time, never as an ``&id001`` anchor and ``*id001`` alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
