"""What a running Envoy really holds, read from its admin ``/config_dump`` (a proxy of the mesh
``meshplay up`` started, or a pod's ``istio-proxy`` on a cluster), in the shape of meshplay's
translation so the same tables print it."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from mesh.envoy import ProxyConfig
from mesh.model.common import FrozenMap
from mesh.topology import Pod, ProxyKind
from playground.commands.proxy_targets import find_pod

__all__ = ["kube_live", "live_proxy_config", "local_live"]


def local_live(wanted: str) -> ProxyConfig:
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


def kube_live(wanted: str, args: argparse.Namespace) -> ProxyConfig:
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
