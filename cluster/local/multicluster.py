"""Two (or more) clusters of one mesh on one machine: each cluster a set of processes, the
network between them a latency-injecting hop, one root of trust for all.

What a multi-primary, multi-network Istio install is, done by hand:

* **One topology, placed.** :func:`mesh.topology.build_topology` places every pod in a cluster
  and network from the lesson's ``clusters:`` (``Pod.cluster``, ``Pod.network``) and adds an
  east-west gateway (``istio-system/istio-eastwestgateway``) per network. Every cluster's istiod
  sees every cluster's pods (remote secrets), so one translation gives each proxy what its own
  istiod would push: for a service with endpoints on another network, the remote network's
  east-west gateway on 15443 instead of the remote pods (split-horizon EDS).
* **One root of trust.** All clusters share one CA (Istio's multicluster install plugs the same
  root into every cluster's ``cacerts``): a sidecar in cluster1 and one in cluster2 present
  ``spiffe://cluster.local/ns/NS/sa/SA`` certificates that chain to the same root, so mTLS works
  end to end *through* the east-west gateway, which never terminates it (AUTO_PASSTHROUGH: it
  reads the SNI ``outbound_.PORT_._.HOST`` and forwards the still-encrypted bytes).
* **The network between clusters.** Every connection a proxy of cluster A makes to a process
  of cluster B (B's east-west gateway, or B's pods when both share a network) goes through A's
  *link*: one :mod:`cluster.local.netdelay` process whose routes forward each of B's ports with
  the declared one-way latency of the two networks (``networks[].latency``: lognormal between
  its median and p99, seeded by the run's seed). The proxy's
  endpoints are rewritten to the link's ports; nothing else changes.
* **Clusters as process sets.** :meth:`MultiClusterMesh.cluster_pids` lists a cluster's PIDs;
  a ``break`` naming a ``cluster`` (and ``down: true``) stops all its pods, or only its
  east-west gateway, by PID, until ``restore``.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cluster.local.apps import ROOT
from cluster.local.mesh import RESET_KNOBS, LocalMesh, PodProcesses
from cluster.local.netdelay import Route, hop_argv
from cluster.local.ports import LOOPBACK, free_ports
from cluster.local.xds import ProxyResources
from mesh.envoy import ProxyConfig
from mesh.lesson import BreakAction
from mesh.model.multicluster import EASTWEST_GATEWAY
from mesh.records import Reporter, RequestRecord, sides_by_request_id
from mesh.runner import RunnerError
from mesh.topology import ProxyKind, Topology

__all__ = [
    "MultiClusterMesh",
    "link_name",
    "name_remote_servers",
    "rewrite_endpoints",
    "tag_cluster",
]

Json = dict[str, Any]


def link_name(cluster: str) -> str:
    """The process name of a cluster's link to the other clusters."""
    return f"link-{cluster}"


def rewrite_endpoints(assignments: Sequence[Json], via: dict[int, int]) -> list[Json]:
    """``assignments`` (ClusterLoadAssignments) with every 127.0.0.1 endpoint whose port is a
    key of ``via`` moved to that key's value (the link's port for it); the rest unchanged."""
    out: list[Json] = []
    for cla in assignments:
        groups = []
        for group in cla.get("endpoints") or ():
            lbs = []
            for lb in group.get("lb_endpoints") or ():
                sock = ((lb.get("endpoint") or {}).get("address") or {}).get("socket_address")
                port = int(sock.get("port_value", 0)) if sock else 0
                if sock and sock.get("address") == LOOPBACK and port in via:
                    address = {"socket_address": {**sock, "port_value": via[port]}}
                    lbs.append({**lb, "endpoint": {**lb["endpoint"], "address": address}})
                else:
                    lbs.append(lb)
            groups.append({**group, "lb_endpoints": lbs})
        out.append({**cla, "endpoints": groups})
    return out


def name_remote_servers(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    """``records`` with each client-side record naming the workload (and cluster) that
    answered, and each server-side record the client's cluster, as Istio's peer metadata
    exchange tells both sidecars.

    The client's endpoint for another network is that network's east-west gateway, whose EDS
    metadata names no workload, so its access log says ``unknown``; a real sidecar learns the
    server's workload from the ``x-envoy-peer-metadata`` response header the server's sidecar
    adds (and the server the client's from the request's). Here the other sidecar's record of
    the same request (same ``x-request-id``; the last one when retries tried several) supplies
    it."""
    served, sent = sides_by_request_id(records)
    return [_exchanged(r, served, sent) for r in records]


def _exchanged(
    r: RequestRecord, served: dict[str, RequestRecord], sent: dict[str, RequestRecord]
) -> RequestRecord:
    server = served.get(r.request_id) if r.request_id else None
    client = sent.get(r.request_id) if r.request_id else None
    if r.reporter is Reporter.SOURCE and server is not None:
        named = r
        if r.destination_workload == RequestRecord.UNKNOWN and (
            server.destination_service == r.destination_service
        ):
            named = replace(
                r,
                destination_workload=server.destination_workload,
                destination_namespace=server.destination_namespace,
                destination_version=server.destination_version,
                destination_app=server.destination_app,
            )
        cluster = r.destination_cluster or server.destination_cluster
        return replace(named, destination_cluster=cluster)
    if r.reporter is Reporter.DESTINATION and client is not None:
        return replace(r, source_cluster=r.source_cluster or client.source_cluster)
    return r


def tag_cluster(records: Sequence[RequestRecord], cluster: str) -> list[RequestRecord]:
    """Records one proxy logged, tagged with that proxy's cluster: the client's cluster on a
    client-side record, the server's on a server-side one."""
    return [
        replace(r, source_cluster=cluster)
        if r.reporter is Reporter.SOURCE
        else replace(r, destination_cluster=cluster)
        for r in records
    ]


class MultiClusterMesh(LocalMesh):
    """A :class:`LocalMesh` whose pods are placed in clusters (``Topology.multicluster``).

    Without a declaration (or with one cluster) it is exactly a :class:`LocalMesh`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.links: dict[str, tuple[Route, ...]] = {}
        """Source cluster -> the routes of its link process."""
        self.via: dict[str, dict[int, int]] = {}
        """Source cluster -> (target port -> link port): the endpoint rewrite of its proxies."""
        self.stopped: set[str] = set()
        """Clusters a break took down as a whole."""

    def __enter__(self) -> MultiClusterMesh:
        return self

    # -- clusters ---------------------------------------------------------------------------

    def clusters(self) -> dict[str, list[PodProcesses]]:
        """Cluster name -> its pods, in name order (one cluster for an undeclared mesh)."""
        out: dict[str, list[PodProcesses]] = {}
        for name in sorted(self.pods):
            pp = self.pods[name]
            out.setdefault(pp.pod.cluster, []).append(pp)
        return out

    def log_clusters(self) -> dict[Path, str]:
        """Each proxy's access log -> its cluster (empty for a mesh of one cluster)."""
        if not self.links:
            return {}
        return {
            self.access_log(name): pp.pod.cluster
            for name, pp in self.pods.items()
            if pp.proxy is not None
        }

    def cluster_of(self, pod: str) -> str:
        """The cluster a pod runs in."""
        return self.pods[pod].pod.cluster

    def cluster_pids(self, cluster: str) -> list[int]:
        """PIDs of a cluster's running processes: its apps, its Envoys (east-west gateway
        included) and its link to the other clusters."""
        names = [link_name(cluster)]
        for pp in self.clusters().get(cluster, []):
            names += [pp.app] if pp.app else []
            names += [pp.proxy.process_name] if pp.proxy is not None else []
        procs = self.supervisor.procs
        return [procs[n].pid for n in names if n in procs and procs[n].running()]

    def eastwest_gateway(self, cluster: str) -> PodProcesses | None:
        """The cluster's east-west gateway pod (None: not a gateway's home cluster)."""
        return next(
            (p for p in self.clusters().get(cluster, []) if p.pod.workload == EASTWEST_GATEWAY),
            None,
        )

    # -- the network between clusters -------------------------------------------------------

    def _plan(self, topology: Topology) -> None:
        super()._plan(topology)
        self._plan_links(topology)

    def _targets(self, cluster: str) -> list[tuple[PodProcesses, int]]:
        """Ports of other clusters' processes that proxies connect to: sidecars' inbound
        ports and gateways' listeners (the east-west gateway's 15443 among them)."""
        out = []
        for pp in self.pods.values():
            if pp.pod.cluster == cluster or pp.skipped:
                continue
            out += [(pp, p) for p in pp.ports.inbound.values()]
            if pp.pod.proxy is ProxyKind.ROUTER:
                out += [(pp, p) for p in pp.ports.listeners.values()]
        return out

    def _plan_links(self, topology: Topology) -> None:
        mc = topology.multicluster
        names = sorted({p.pod.cluster for p in self.pods.values()})
        if mc is None or len(names) < 2:
            return
        wanted: dict[str, list[tuple[int, float, float]]] = {}
        for source in names:
            here = mc.cluster(source)
            network = here.network if here is not None else ""
            for pp, port in self._targets(source):
                latency = mc.latency(network, pp.pod.network)
                median = latency.median.seconds if latency is not None else 0.0
                p99 = latency.p99.seconds if latency is not None and latency.p99 else 0.0
                wanted.setdefault(source, []).append((port, median, p99))
        listen = iter(free_ports(sum(len(v) for v in wanted.values())))
        for source, targets in wanted.items():
            routes = tuple(Route(next(listen), port, m, p99) for port, m, p99 in targets)
            self.links[source] = routes
            self.via[source] = {r.target_port: r.listen_port for r in routes}
            self.supervisor.start(
                link_name(source),
                hop_argv(sys.executable, routes, seed=self.seed),
                env={"PYTHONPATH": str(ROOT)},
                cwd=ROOT,
            )

    def _start_all(self, topology: Topology, deadline: float) -> None:
        super()._start_all(topology, deadline)
        for source, routes in self.links.items():
            for route in routes:
                _wait_listening(route.listen_port, deadline, link_name(source))

    def _resources(self, pp: PodProcesses, config: ProxyConfig) -> ProxyResources:
        resources = super()._resources(pp, config)
        via = self.via.get(pp.pod.cluster)
        if via:
            resources.endpoints = rewrite_endpoints(resources.endpoints, via)
        return resources

    # -- breaking clusters ------------------------------------------------------------------

    def _break(self, action: BreakAction) -> None:
        if not action.cluster and not action.down:
            super()._break(action)
            return
        pods = [
            p
            for p in self.pods.values()
            if not p.skipped
            and (not action.cluster or p.pod.cluster == action.cluster)
            and (not action.workload or action.workload in (p.pod.workload, p.pod.labels.get("app")))
        ]  # fmt: skip
        if not pods:
            raise RunnerError(
                f"no pod of {action.workload or 'any workload'} in cluster {action.cluster}"
            )
        if action.restore:
            self._revive([p for p in pods if p.dead])
            for p in pods:
                if p.app:
                    self.set_knobs(p, dict(RESET_KNOBS))
            if not action.workload and action.cluster in self.stopped:
                self.stopped.discard(action.cluster)
                if link_name(action.cluster) in self.supervisor.procs:
                    self.supervisor.restart(link_name(action.cluster))
        knobs: dict[str, Any] = dict(action.knobs)
        if knobs:
            for p in pods:
                if p.app and not p.dead:
                    self.set_knobs(p, knobs)
        doomed = [p for p in pods if not p.dead]
        doomed = doomed if action.down else doomed[: action.kill or 0]
        for p in doomed:
            self._stop_pod(p)
        if action.down and not action.workload and action.cluster:
            # the whole cluster: its link to the others goes too
            self.stopped.add(action.cluster)
            self.supervisor.stop(link_name(action.cluster))

    def _stop_pod(self, p: PodProcesses) -> None:
        """Stop a pod's processes by PID; it stays down (the kubelet leaves dead pods alone)."""
        p.dead = True  # before it stops: the kubelet must not restart it
        if p.app:
            self.supervisor.stop(p.app)
        if p.proxy is not None:
            self.supervisor.stop(p.proxy.process_name)

    def _revive(self, pods: Sequence[PodProcesses]) -> None:
        for p in pods:
            if p.app:
                self.supervisor.restart(p.app)
            if p.proxy is not None:
                p.proxy.restart()
            p.dead = False
        self._wait_ready(time.monotonic() + 30.0, pods)

    def stop_cluster(self, cluster: str) -> None:
        """Take a whole cluster down (every pod, its east-west gateway too), by PID."""
        with self.lock:
            self._break(BreakAction(cluster=cluster, down=True))

    def stop_eastwest_gateway(self, cluster: str) -> None:
        """Stop only the cluster's east-west gateway, by PID."""
        with self.lock:
            self._break(BreakAction(workload=EASTWEST_GATEWAY, cluster=cluster, down=True))


def _wait_listening(port: int, deadline: float, what: str) -> None:
    while True:
        with socket.socket() as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RunnerError(f"{what} not listening on {port} in time")
        time.sleep(0.02)
