"""The simulated mesh's state: pods with their apps and proxies, built from the topology and the
Envoy config.

One :class:`World` per lesson step. Pods, labels and SPIFFE identities come from the app's
Kubernetes manifests (``mesh.topology``); each proxy holds the config ``mesh.envoy.translate``
produced for its pod (compiled by :mod:`sim.xds`) and its per-cluster state. The world owns the
simpy environment, the one seeded ``random.Random``, the RequestRecords and the state shared by
the data plane (local rate-limit buckets, the CNI's NetworkPolicies).

The world holds state only: what a request *does* lives in the data-plane modules above it
(:mod:`sim.proxy`, :mod:`sim.router`, :mod:`sim.inbound`, :mod:`sim.tcp`, :mod:`sim.app`), wired
together by :mod:`sim.dataplane`, which installs itself as :attr:`World.hops` (the one way back
from an app to its sidecar for a downstream call).
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Protocol

import simpy

from mesh.app import AppBehavior
from mesh.envoy.translate import MeshEnvoyConfig
from mesh.lesson import BreakAction
from mesh.model import Resource
from mesh.records import RequestRecord
from mesh.security import LocalRateLimiter
from mesh.topology import MeshService, ProxyKind, Topology
from sim.cluster import OutlierState
from sim.cni import Cni
from sim.messages import Request
from sim.outside import Outside, outside_of
from sim.pods import PodRuntime, ProxyRuntime
from sim.pool_timing import DEFAULT_POOL_TIMING, PoolTiming
from sim.timeouts import Deadlines
from sim.tokens import UserTokens
from sim.workers import Workers
from sim.xds import compile_proxy

__all__ = ["Hops", "World"]

Proc = Generator[Any, Any, Any]


class Hops(Protocol):
    """The data plane as the apps see it (implemented by :class:`sim.dataplane.DataPlane`)."""

    def call(self, world: World, pod: PodRuntime, req: Request, service: MeshService) -> Proc:
        """``pod``'s app sends ``req`` to ``service``: the generator that returns the Response."""
        ...

    def relay(self, world: World, gateway: PodRuntime, req: Request) -> Proc:
        """A connection a proxy opened to a gateway pod lands on the gateway's listeners."""
        ...


class _Unwired:
    """The hops of a world nobody wired yet: any call says how to wire it."""

    def call(self, world: World, pod: PodRuntime, req: Request, service: MeshService) -> Proc:
        raise RuntimeError(
            "this World has no data plane: wire it with sim.dataplane.wire(world) "
            "(sim.traffic.TrafficDriver does)"
        )

    def relay(self, world: World, gateway: PodRuntime, req: Request) -> Proc:
        return self.call(
            world, gateway, req, MeshService(name="", namespace="", hostname="", ports=())
        )


class World:
    """Pods, proxies, the clock, the random source and the records of one simulated run."""

    def __init__(
        self,
        topology: Topology,
        behavior: AppBehavior,
        envoy: MeshEnvoyConfig,
        *,
        seed: int = 1,
        env: simpy.Environment | None = None,
        resources: Sequence[Resource] = (),
        pool_timing: PoolTiming = DEFAULT_POOL_TIMING,
    ) -> None:
        self.env = env or simpy.Environment()
        self.pool_timing = pool_timing
        """How sized connection pools time Envoy's reconnect race (:class:`sim.pool_timing.PoolTiming`)."""
        self.rng = random.Random(seed)
        self.deadlines = Deadlines(self.env)
        self.behavior = behavior
        self.topology = topology
        self.outside: Outside = outside_of(topology.services)
        """The servers outside the mesh (ServiceEntry hosts no pod serves)."""
        self.records: list[RequestRecord] = []
        self.keep_records = True
        self.rbac_denied: dict[str, int] = {}
        """Envoy's ``<stat_prefix>rbac.denied`` of the network RBAC filters, keyed
        ``<pod>/<stat_prefix>rbac.denied`` (TCP connections closed by AuthorizationPolicy)."""
        self.limiters: dict[tuple[str, int, str], LocalRateLimiter] = {}
        """The local_ratelimit token buckets, per (pod, port, filter config): kept across config
        pushes, so a bucket survives a push that leaves its filter unchanged (a listener that
        is not drained)."""
        self.jwt_configs: dict[int, tuple[Any, Any]] = {}
        """jwt_authn configs with their remote JWKS fetched, by id of the translated config
        (see :mod:`sim.httpfilters`); reset on a push."""
        self.hops: Hops = _Unwired()
        """How an app's downstream call reaches its sidecar (installed by :mod:`sim.dataplane`)."""
        hop = behavior.network.hop_latency
        self._hop_mu = hop.mu
        self._hop_sigma = hop.sigma
        self._gauss = self.rng.gauss
        self._ids = 0
        self._seed_tag = f"{seed & 0xFFFFFFFF:08x}"
        self.pods: dict[str, PodRuntime] = {}
        self.by_address: dict[str, PodRuntime] = {}
        self.services: dict[str, MeshService] = {}
        self.by_vip: dict[str, MeshService] = {}
        """Services by VIP (ClusterIP, ServiceEntry address): where kube-proxy sends a
        connection to a VIP."""
        self._service_names: dict[tuple[str, str], MeshService | None] = {}
        self.dialled: dict[str, str] = {}
        """What a dialled name resolves to (:meth:`dial`), cached except for headless Services."""
        self._target_ports: dict[str, dict[int, int]] = {}
        self.call_plans: dict[tuple[int, str], Any] = {}
        """Declared calls resolved per (call, namespace) by :mod:`sim.app`; reset on a push."""
        self.pods_of_service: dict[str, list[PodRuntime]] = {}
        self._build_pods(topology)
        self.proxies: dict[str, ProxyRuntime] = {}
        self.tokens = UserTokens(behavior.namespace)
        """The user service as a token issuer (``${jwt:EMAIL}``, its JWKS)."""
        self.resources: tuple[Resource, ...] = ()
        self.cni = Cni((), topology)
        self.load_config(topology, envoy, resources)
        self.completed = 0

    @property
    def multicluster(self) -> bool:
        """A mesh of two clusters or more (its records name their clusters)."""
        declared = self.topology.multicluster
        return declared is not None and len(declared.clusters) > 1

    # -- construction -----------------------------------------------------------------------

    def _build_pods(self, topology: Topology) -> None:
        declared = topology.multicluster
        multicluster = declared is not None and len(declared.clusters) > 1
        for pod in topology.pods:
            if pod.name in self.pods:
                continue
            services = topology.services_of(pod)
            # the app's behaviour is declared under the name of one of its Services
            svc = next(
                (s for s in services if self.behavior.service(s.name) is not None),
                services[0] if services else None,
            )
            behavior = self.behavior.service(svc.name) if svc is not None else None
            version = pod.labels.get("version", "")
            target = svc.ports[0].target_port if svc is not None and svc.ports else 0
            workers = None
            if behavior is not None:
                workers = Workers(self.env, max(1, behavior.concurrency_of(version)))
            rt = PodRuntime(
                pod=pod,
                app=pod.labels.get("app", pod.workload),
                version=version,
                sidecar=pod.proxy is ProxyKind.SIDECAR,
                service=behavior,
                service_host=svc.hostname if svc is not None else "",
                target_port=target,
                workers=workers,
            )
            if multicluster:
                rt.log_cluster = pod.cluster
            self.pods[pod.name] = rt
            self.by_address[pod.address] = rt
        for svc in topology.services:
            self.services[svc.hostname] = svc
            for address in svc.addresses:
                if "/" not in address:
                    self.by_vip.setdefault(address, svc)
            self.pods_of_service[svc.hostname] = [
                self.pods[p.name] for p in topology.endpoints(svc) if p.name in self.pods
            ]

    def load_config(
        self,
        topology: Topology,
        envoy: MeshEnvoyConfig,
        resources: Sequence[Resource] | None = None,
    ) -> None:
        """Install (or push) Envoy config to every proxy; compiled once per shared dict.

        ``resources`` (the applied Istio/Kubernetes resources the config was translated from)
        feed only the CNI (NetworkPolicy is not Envoy config); None keeps the previous ones.
        Everything a sidecar does comes from ``envoy``."""
        memo: dict[int, Any] = {}
        self.topology = topology
        if resources is not None:
            self.resources = tuple(resources)
        self.cni = Cni(self.resources, topology)
        self.jwt_configs.clear()
        self._service_names.clear()
        self.dialled.clear()
        self._target_ports.clear()
        self.call_plans.clear()
        self._build_pods(topology)
        for name, cfg in envoy.items():
            pod = self.pods.get(name)
            if pod is None:
                continue
            tables = compile_proxy(
                cfg.listeners, cfg.routes, cfg.clusters, cfg.endpoints, secrets=cfg.secrets,
                memo=memo,
            )  # fmt: skip
            existing = self.proxies.get(name)
            if existing is None:
                proxy = ProxyRuntime(pod, tables, cfg.pod.proxy)
                self.proxies[name] = proxy
                pod.proxy = proxy
            else:
                existing.reload(tables)

    # -- state a long-running Envoy keeps ---------------------------------------------------

    def outlier_states(self, now: float) -> dict[str, dict[str, OutlierState]]:
        """Every running proxy's outlier detectors as they stand at ``now``, by pod and cluster
        (a pod that is down has no Envoy left to remember anything)."""
        return {
            name: states
            for name, proxy in self.proxies.items()
            if not proxy.pod.dead and (states := proxy.outlier_states(now))
        }

    def restore_outliers(self, states: Mapping[str, Mapping[str, OutlierState]]) -> None:
        """Carry the outlier detectors of an earlier world (taken when it stopped) into this
        one, as if this world's t = 0 were that moment: the same Envoys, still running."""
        for name, clusters in states.items():
            proxy = self.proxies.get(name)
            if proxy is not None and not proxy.pod.dead:
                proxy.restore_outliers(clusters, self)

    # -- knobs ------------------------------------------------------------------------------

    def apply_break(self, action: BreakAction) -> None:
        """Slow, fail, refuse, kill or restore a workload's pods (the services' lesson knobs)."""
        pods = [
            p
            for p in self.pods.values()
            if (not action.workload or action.workload in (p.pod.workload, p.app))
            and (not action.cluster or p.pod.cluster == action.cluster)
        ]
        pods.sort(key=lambda p: p.name)
        for p in pods:
            if action.restore:
                p.dead = p.refuse = False
                p.latency_s = 0.0
                p.error_rate = 0.0
                p.drop_trace_headers = False
            if action.latency_ms is not None:
                p.latency_s = action.latency_ms / 1000.0
            if action.error_rate is not None:
                p.error_rate = action.error_rate
            if action.refuse is not None:
                p.refuse = action.refuse
            if action.drop_trace_headers is not None:
                p.drop_trace_headers = action.drop_trace_headers
        if action.kill:
            for p in pods[: action.kill]:
                p.dead = True
        if action.down:
            for p in pods:
                p.dead = True

    # -- helpers ----------------------------------------------------------------------------

    def hop(self) -> float:
        """Latency of one network hop (lognormal from the behaviour declaration)."""
        return math.exp(self._hop_mu + self._hop_sigma * self._gauss())  # mu 0, sigma 1

    def new_ids(self) -> tuple[str, str]:
        """(x-request-id, trace id), deterministic for a seed."""
        self._ids += 1
        n = self._ids
        return (
            f"{self._seed_tag}-{n >> 16 & 0xFFFF:04x}-4000-8000-{n:012x}",
            f"{self._seed_tag}{n:024x}",
        )

    def record(self, rec: RequestRecord) -> None:
        """Keep one RequestRecord."""
        if self.keep_records:
            self.records.append(rec)

    def service_by_name(self, name: str, namespace: str) -> MeshService | None:
        """A Kubernetes service by short name (in ``namespace`` first)."""
        key = (name, namespace)
        try:
            return self._service_names[key]
        except KeyError:
            found = self.services.get(self.topology.resolve_host(name, namespace))
            self._service_names[key] = found
            return found

    def dial(self, address: str) -> str:
        """The address a Kubernetes client connects to when it dials ``address``: a Service
        hostname resolves to its VIP (ClusterIP), a headless Service's to one of its pod IPs
        (drawn at random, as DNS round-robin would); an IP or an unknown name stays."""
        known = self.dialled.get(address)
        if known is not None:
            return known
        service = self.services.get(address)
        if service is None:
            self.dialled[address] = address
            return address
        vip = service.vip
        if vip and "/" not in vip:
            self.dialled[address] = vip
            return vip
        if service.headless:
            pods = self.pods_of_service.get(service.hostname) or []
            if pods:
                return (
                    pods[self.rng.randrange(len(pods))].pod.address
                    if len(pods) > 1
                    else pods[0].pod.address
                )
        return address

    def target_port(self, service: MeshService, port: int) -> int:
        """The target port behind ``service``'s ``port`` (0: the Service has no such port)."""
        ports = self._target_ports.get(service.hostname)
        if ports is None:
            ports = self._target_ports[service.hostname] = {}
        found = ports.get(port)
        if found is None:
            sp = service.port(port)
            found = ports[port] = sp.target_port if sp is not None else 0
        return found

    def kube_proxy(self, address: str, port: int) -> tuple[PodRuntime | None, int]:
        """Where a plaintext connection to ``address:port`` ends up (what ``PassthroughCluster``
        reaches): a pod IP is that pod; a Service VIP one of the Service's pods (kube-proxy's
        random pick) at the target port of that Service port. ``(None, port)``: a server
        outside the simulated mesh (a ServiceEntry address included); ``(None, 0)``: nothing
        answers (a VIP on a port its Service does not have, or without endpoints)."""
        target = self.by_address.get(address)
        if target is not None:
            return target, port
        service = self.by_vip.get(address) or self.services.get(address)
        if service is None or service.from_service_entry:
            return None, port
        sp = service.port(port)
        pods = self.pods_of_service.get(service.hostname) or []
        if sp is None or not pods:
            return None, 0
        return pods[self.rng.randrange(len(pods))], sp.target_port

    def summary(self) -> Mapping[str, Any]:
        """Per-proxy cluster counters (tests, explain)."""
        return {
            name: {c: rt.stats() for c, rt in proxy.clusters.items()}
            for name, proxy in self.proxies.items()
        }
