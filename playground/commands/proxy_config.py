"""``meshplay proxy-config {listeners|routes|clusters|endpoints|all} [POD] [PATH...]``

Shows an Envoy's configuration in the tables ``istioctl proxy-config`` prints (``-o json|yaml``
for the raw Envoy dicts). POD is a pod (``product-v1-0``), ``pod.namespace`` or ``deploy/NAME``
(the Deployment's first pod), as istioctl takes it; ``--proxy`` says the same (a workload name
such as ``product-v1`` works there too).

With PATH: the configuration meshplay's translator generates. PATH may be a lesson folder (the
mesh after ``--step``, default the last step; ``--app`` runs it on another app), an app folder
(``lessons/apps/ecommerce``) or YAML files and folders (``--app`` adds an app's manifests under
them). Without PATH (or with ``--live``): what the
running Envoy of the mesh ``meshplay up`` started really holds, read from its admin
``/config_dump``, as istioctl reads a cluster's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from mesh.diagnostics import Level, render
from mesh.envoy import ProxyConfig, parse_cluster_name, translate_proxy
from mesh.model.common import FrozenMap
from mesh.runner import RunnerError
from mesh.topology import Pod, ProxyKind, build_topology
from playground.inputs import InputError, mesh_resources

__all__ = [
    "find_pod",
    "format_table",
    "live_proxy_config",
    "register",
    "render_proxy_config",
    "split_targets",
]

KINDS = ("listeners", "routes", "clusters", "endpoints", "all")


def register(sub: Any) -> None:
    """Add the ``proxy-config`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "proxy-config",
        aliases=["pc"],
        help="show the Envoy config meshplay generates for a proxy (like istioctl proxy-config)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS, help="which part of the config to show")
    p.add_argument(
        "targets",
        nargs="*",
        metavar="[POD] [PATH]",
        help="the proxy (pod, pod.namespace or deploy/NAME), then lesson/app folders or YAML; "
        "no PATH: the running mesh (meshplay up)",
    )
    p.add_argument("--proxy", metavar="POD", help="the proxy, when not given as POD")
    p.add_argument(
        "--app",
        help="app folder or name: under plain YAML input, or instead of a lesson's own app",
    )
    p.add_argument("--step", help="lesson step (name or 1-based number; default: the last)")
    p.add_argument("-o", "--output", choices=("short", "yaml", "json"), default="short")
    p.add_argument(
        "--live",
        action="store_true",
        help="read the running Envoy's /config_dump (a mesh started by meshplay up), also when "
        "PATH is given",
    )
    p.add_argument("--kube", action="store_true",
                   help="read the pod's Envoy on a cluster (kubectl exec into istio-proxy)")  # fmt: skip
    p.add_argument("--context", default="", help="kubeconfig context for --kube")
    p.add_argument(
        "--namespace", default="shop", help="namespace of the pod for --kube (default: shop)"
    )
    p.set_defaults(handler=_run)


class _Named(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def workload(self) -> str: ...


_P = TypeVar("_P", bound=_Named)

DEPLOY_PREFIXES = ("deploy/", "deployment/", "deployments/")


def find_pod(pods: Sequence[_P], wanted: str) -> _P | None:
    """The pod ``wanted`` names, as istioctl reads it: ``pod``, ``pod.namespace``,
    ``deploy/NAME[.namespace]`` (the Deployment's first pod); a bare workload name also works."""
    deploy = wanted.startswith(DEPLOY_PREFIXES)
    name, _, namespace = wanted.split("/", 1)[1].partition(".") if deploy else wanted.partition(".")
    if not deploy:
        for pod in pods:
            if pod.name == name and namespace in ("", pod.namespace):
                return pod
    for pod in pods:
        if pod.workload == name and namespace in ("", pod.namespace):
            return pod
    return None


def split_targets(targets: Sequence[str], proxy: str | None) -> tuple[str, list[str]]:
    """(the proxy, the PATHs) of ``[POD] [PATH...]``: the POD is the one argument that is not a
    file or folder (``deploy/NAME`` or a name without ``/``); ``--proxy`` may name it instead."""
    pods: list[str] = []
    paths: list[str] = []
    for target in targets:
        if target == "-" or Path(target).exists():
            paths.append(target)
        elif "/" in target and not target.startswith(DEPLOY_PREFIXES):
            raise InputError(f"{target}: no such file or folder")
        else:
            pods.append(target)
    if proxy:
        pods.insert(0, proxy)
    if not pods:
        raise InputError(
            "which proxy? name a pod (product-v1-0), pod.namespace or deploy/NAME, "
            "e.g. meshplay proxy-config routes deploy/api-gateway-v1"
        )
    if len(pods) > 1:
        extra = pods[1]
        raise InputError(f"{extra}: no such file or folder (the proxy is {pods[0]})")
    return pods[0], paths


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


def _run(args: argparse.Namespace) -> int:
    try:
        wanted, paths = split_targets(args.targets, args.proxy)
        if args.kube:
            proxy: ProxyConfig | None = _kube_live(wanted, args)
        elif args.live or not paths:
            proxy = _live(wanted)
        else:
            proxy = _translated(wanted, paths, args)
    except (InputError, LookupError, OSError, RunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if proxy is None:
        return 2
    print(render_proxy_config(proxy, args.kind, args.output))
    return 0


def _translated(wanted: str, paths: list[str], args: argparse.Namespace) -> ProxyConfig | None:
    """The translator's configuration of the proxy ``wanted`` in the mesh PATHs describe (None
    after printing the diagnostics that stop it)."""
    resources, diagnostics = mesh_resources(paths, app=args.app, step=args.step)
    errors = [d for d in diagnostics if d.severity is Level.ERROR]
    if errors:
        print(render(errors), file=sys.stderr)
        return None
    topology = build_topology(resources)
    pod = find_pod(topology.pods, wanted)
    proxied = sorted(p.name for p in topology.pods if p.proxy is not ProxyKind.NONE)
    if pod is None or pod.proxy is ProxyKind.NONE:
        why = "has no sidecar" if pod is not None else "not found"
        raise InputError(f"proxy {wanted!r} {why}; proxies: {', '.join(proxied)}")
    return translate_proxy(resources, topology, pod.name)


def _live(wanted: str) -> ProxyConfig:
    """What the running Envoy of ``wanted`` holds, in the mesh ``meshplay up`` started."""
    from cluster.local.state import MeshStateFile, state_dir

    record = MeshStateFile.read(state_dir() / "local.json")
    if record is None:
        raise LookupError(
            "no local mesh is up: start one with meshplay up, or give a PATH (a lesson, an app "
            "folder or YAML) to see the configuration meshplay generates for it"
        )
    running = [p for p in record.pods if p.admin_port]
    entry = find_pod(running, wanted)
    if entry is None:
        names = ", ".join(p.name for p in running)
        raise LookupError(f"no running proxy {wanted!r}; proxies: {names}")
    pod = Pod(
        name=entry.name,
        namespace=entry.namespace,
        workload=entry.workload,
        labels=FrozenMap(),
        service_account="",
        address="127.0.0.1",
        proxy=ProxyKind(entry.proxy),
    )
    return live_proxy_config(ProxyConfig(pod, {}, (), (), (), ()))


def _kube_live(wanted: str, args: argparse.Namespace) -> ProxyConfig:
    """What the Envoy of pod ``wanted`` on a cluster holds (its ``istio-proxy``'s config dump)."""
    from cluster.kube.api import KubeApi
    from cluster.kube.inspect import config_dump
    from cluster.kube.inspect import find_pod as find_cluster_pod

    api = KubeApi.connect(args.context)
    try:
        found = find_cluster_pod(api, args.namespace, wanted.removeprefix("deploy/"))
        dump = config_dump(api, found)
    finally:
        api.close()
    meta = found["metadata"]
    pod = Pod(
        name=meta["name"],
        namespace=meta["namespace"],
        workload=meta["name"].rsplit("-", 2)[0],
        labels=FrozenMap(),
        service_account="",
        address=str(found.get("status", {}).get("podIP", "")),
        proxy=ProxyKind.SIDECAR,
    )
    return live_proxy_config(ProxyConfig(pod, {}, (), (), (), ()), dump)


def _hcm_route_configs(listener: dict[str, Any]) -> list[dict[str, Any]]:
    """Route configurations a listener carries inline (the local runner inlines RDS)."""
    out = []
    for chain in listener.get("filter_chains", []):
        for f in chain.get("filters", []):
            inline = f.get("typed_config", {}).get("route_config")
            if isinstance(inline, dict):
                out.append(inline)
    return out


def live_proxy_config(expected: ProxyConfig, dump: dict[str, Any] | None = None) -> ProxyConfig:
    """What the running Envoy of ``expected.pod`` really holds, read from its admin
    ``/config_dump`` (``dump``, e.g. a cluster pod's; default: the local mesh's Envoy), in the
    same shape as the translation (so the same tables print it)."""
    if dump is None:
        from cluster.local.state import live_config_dump

        dump = live_config_dump(expected.pod.name)
    listeners: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for config in dump.get("configs", []):
        for entry in config.get("dynamic_listeners", []) + config.get("static_listeners", []):
            listener = entry.get("active_state", {}).get("listener") or entry.get("listener")
            if listener:
                listeners.append(listener)
                routes.extend(_hcm_route_configs(listener))
        cluster_entries = config.get("dynamic_active_clusters", []) + config.get(
            "static_clusters", []
        )
        clusters.extend(e["cluster"] for e in cluster_entries if "cluster" in e)
        route_entries = config.get("dynamic_route_configs", []) + config.get(
            "static_route_configs", []
        )
        routes.extend(e["route_config"] for e in route_entries if "route_config" in e)
    endpoints = [c["load_assignment"] for c in clusters if "load_assignment" in c]
    return dataclasses.replace(
        expected,
        listeners=_by_name(listeners),
        clusters=_by_name(clusters),
        routes=_by_name(routes),
        endpoints=tuple(endpoints) or expected.endpoints,
    )


def _by_name(items: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Sorted by name, once per name: a route configuration inlined in several listeners (and
    filter chains) is one route configuration, as RDS would have sent it once."""
    unique: dict[str, dict[str, Any]] = {}
    for item in items:
        unique.setdefault(str(item.get("name")), item)
    return tuple(unique[name] for name in sorted(unique))
