"""A cluster's proxies, read live: ``meshplay proxy-status --kube`` and ``proxy-config --live --kube``.

Both go through ``kubectl exec``, as istioctl did before its xDS debug API: istiod's own
``/debug/syncz`` (``pilot-discovery request``, from inside the istiod pod) for the sync state of
every proxy, and a sidecar's Envoy admin ``/config_dump`` (``pilot-agent request GET
config_dump``, from inside its ``istio-proxy`` container: the admin port listens on localhost).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cluster.kube.api import KubeApi, KubeError
from cluster.kube.convergence import XDS_TYPES, ProxySync
from cluster.kube.live import LiveCluster
from cluster.kube.pods import PROXY, has_proxy

__all__ = ["ProxyRow", "config_dump", "find_pod", "proxy_status"]


@dataclass(frozen=True, slots=True)
class ProxyRow:
    """One ``proxy-status`` row: the proxy and SYNCED/STALE per xDS type."""

    proxy: str
    states: dict[str, str]

    @property
    def synced(self) -> bool:
        """Every type synced."""
        return all(s in ("SYNCED", "NOT SENT") for s in self.states.values())


def _state(sync: ProxySync, kind: str) -> str:
    sent = sync.sent.get(kind, "")
    if not sent:
        return "NOT SENT"
    return "SYNCED" if sync.acked.get(kind, "") == sent else "STALE"


def proxy_status(api: KubeApi, namespace: str = "") -> list[ProxyRow]:
    """Every proxy istiod serves (in ``namespace`` when given), like ``istioctl proxy-status``."""
    cluster = LiveCluster(api, namespace)
    rows = []
    for proxy, sync in sorted(cluster.sync_state().items()):
        if namespace and not proxy.endswith("." + namespace):
            continue
        rows.append(ProxyRow(proxy, {XDS_TYPES[k]: _state(sync, k) for k in XDS_TYPES}))
    return rows


def find_pod(api: KubeApi, namespace: str, wanted: str) -> dict[str, Any]:
    """A running pod with a sidecar named ``wanted`` (a pod, ``pod.namespace``, or a workload:
    its first pod)."""
    name, _, ns = wanted.partition(".")
    namespace = ns or namespace
    pods, _ = api.list("v1", "Pod", namespace)
    running = sorted((p for p in pods if has_proxy(p)), key=lambda p: p["metadata"]["name"])
    for pod in running:
        if pod["metadata"]["name"] == name:
            return pod
    for pod in running:
        if pod["metadata"]["name"].startswith(name + "-"):
            return pod
    names = ", ".join(p["metadata"]["name"] for p in running) or "none"
    raise KubeError(f"no pod with a sidecar named {wanted!r} in {namespace} (pods: {names})", 404)


def config_dump(api: KubeApi, pod: dict[str, Any]) -> dict[str, Any]:
    """The pod's Envoy ``/config_dump``, read from inside its ``istio-proxy``."""
    meta = pod["metadata"]
    code, out, err = api.exec(
        meta["namespace"], meta["name"], PROXY, ["pilot-agent", "request", "GET", "config_dump"]
    )
    if code != 0:
        raise KubeError(
            f"config_dump of {meta['namespace']}/{meta['name']}: {(err or out).strip()}"
        )
    try:
        dump = json.loads(out)
    except ValueError as exc:
        raise KubeError(f"config_dump of {meta['name']} is not JSON: {out[:80]!r}") from exc
    if not isinstance(dump, dict):
        raise KubeError(f"config_dump of {meta['name']} is not a JSON object")
    return dump
