"""A running local mesh: one process per replica, each with its Envoy sidecar, plus the ingress
gateway, all on 127.0.0.1 with allocated ports, configured by the translator through file xDS.

What Kubernetes + istiod do, done by hand:

* the pods come from :func:`mesh.topology.build_topology` over the app manifests (and
  ``istio-system``'s ingress gateway);
* every pod gets ports from the kernel (:class:`~mesh.envoy.ports.PortMap`): the sidecar's
  outbound listener per HTTP service port (the app's ``HTTP_PROXY``), its inbound port (what other
  sidecars' endpoints point at), the app port, Envoy's admin port and the app's knob port;
* :func:`mesh.envoy.translate` produces every proxy's listeners, routes, clusters and endpoints
  with those ports; the local CA's certificate for the pod's service account is added as the SDS
  secrets ``default`` and ``ROOTCA``;
* :meth:`LocalMesh.apply` re-translates after a step's ``apply``/``delete`` and pushes the change
  to every Envoy live, like an istiod push; a NACK from any Envoy surfaces as
  :class:`~cluster.local.envoy.ConfigRejectedError`;
* :meth:`LocalMesh.break_workload` turns the services' knobs (``PUT /admin/knobs``) or kills and
  restarts replicas (app and sidecar: the whole pod).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.local.admin import AdminError
from cluster.local.app_admin import RESET_KNOBS, app_ready, put_knobs
from cluster.local.apps import (
    ROOT,
    app_argv,
    app_env,
    behavior_server,
    declared_behavior,
    uses_behavior_server,
)
from cluster.local.ca import LocalCA
from cluster.local.envoy import ConfigRejectedError, EnvoyProxy, XdsRejection
from cluster.local.external import ExternalServers
from cluster.local.gateway_tls import absent_credentials
from cluster.local.identity import Identity
from cluster.local.kubelet import EventSink, Kubelet
from cluster.local.pods import PodProcesses, app_proxy_port, first_container, plan_pods
from cluster.local.ports import LOOPBACK, start_lock
from cluster.local.procs import Supervisor
from cluster.local.upstream_tls import origination_secrets
from cluster.local.xds import ProxyResources
from mesh.app import AppBehavior
from mesh.envoy import PortMap, ProxyConfig, TranslateOptions, translate
from mesh.envoy.tracing import TracingOptions
from mesh.lesson import BreakAction
from mesh.model import Resource
from mesh.runner import RunnerError
from mesh.topology import Pod, ProxyKind, Topology, build_topology

__all__ = ["RESET_KNOBS", "LocalMesh", "PodProcesses"]


@dataclass
class LocalMesh:
    """The processes of one app on 127.0.0.1; use as a context manager (stops everything).

    Every process belongs to this mesh's :class:`~cluster.local.procs.Supervisor`, so none of
    them outlives the Python process holding the mesh, even when that one is SIGKILLed."""

    workdir: Path
    seed: int = 1
    pods: dict[str, PodProcesses] = field(default_factory=dict)
    topology: Topology | None = None
    resources: tuple[Resource, ...] = ()
    started_s: float = 0.0
    tracing: TracingOptions | None = None
    """Envoy's tracer on every HTTP connection manager, reporting to a collector
    (``cluster.local.monitoring`` sets it before ``start``); None: no tracing."""
    behavior: AppBehavior | None = None
    """The app's declaration: pods without code of their own run it (the behaviour server)."""
    external: Mapping[str, str] = field(default_factory=dict)
    """Servers outside the mesh that run on this machine, by in-cluster ``host:port``
    (``{"postgres:5432": "127.0.0.1:54321"}``): the apps' ``DATABASE_URL``/``REDIS_URL`` that
    name one are pointed at it instead of dropped (see :mod:`cluster.local.apps`)."""
    outside: Mapping[tuple[str, int], bool] = field(default_factory=dict)
    """External ServiceEntry hosts to stand up on this machine, ``(host, port) -> speaks TLS``
    (:func:`cluster.local.external.external_ports`); their proxies' endpoints point at them."""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.workdir / "logs")
        self.ca = LocalCA(self.workdir / "ca")
        self.port_map: PortMap | None = None
        self.identity = Identity(self)
        self.lock = threading.RLock()
        """Held while processes are stopped or started, and while a config is pushed: the
        kubelet's restarts, a lesson's kill/restore and a push never interleave."""
        self.kubelet: Kubelet | None = None
        self.outside_servers: ExternalServers | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> LocalMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every process by PID, then let the watchdog sweep the mesh's process group (the
        kubelet first, so the orderly stop is not taken for deaths)."""
        if self.kubelet is not None:
            self.kubelet.stop()
        self.supervisor.stop_all()
        if self.outside_servers is not None:
            self.outside_servers.close()

    def watch(self, on_event: EventSink, *, backoff_s: float = 10.0) -> Kubelet:
        """Restart what exits without meshplay asking, as the kubelet does, reporting each
        death and restart to ``on_event`` (see :mod:`cluster.local.kubelet`)."""
        if self.kubelet is None:
            self.kubelet = Kubelet(self, on_event, backoff_s=backoff_s)
            self.kubelet.start()
        return self.kubelet

    def access_log(self, pod: str) -> Path:
        """The JSON access log of a pod's proxy."""
        return self.workdir / "access" / f"{pod}.log"

    def access_logs(self) -> list[Path]:
        """Every proxy's access log."""
        return [self.access_log(name) for name, p in self.pods.items() if p.proxy is not None]

    def requests_in_flight(self) -> int:
        """HTTP requests some proxy is still handling (``downstream_rq_active`` of every HTTP
        connection manager, the admin listener's own left out)."""
        total = 0
        for pp in self.pods.values():
            if pp.proxy is None:
                continue
            try:
                stats = pp.proxy.admin.stats(r"^http\..*\.downstream_rq_active$")
            except AdminError:
                continue  # a proxy that is gone has nothing in flight
            total += sum(v for k, v in stats.items() if not k.startswith("http.admin."))
        return total

    def wait_idle(self, timeout_s: float, poll_s: float = 0.05) -> bool:
        """Wait until no proxy has a request in flight (work the load generator no longer
        waits for: a call still delayed downstream after its caller timed out, a mirror).
        False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        while self.requests_in_flight():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def start(self, resources: Sequence[Resource], timeout_s: float = 30.0) -> None:
        """Launch every pod of the manifests and wait until all apps and proxies are ready."""
        began = time.monotonic()
        self.resources = tuple(resources)
        topology = build_topology(self.resources)
        self.topology = topology
        if self.outside and self.outside_servers is None:
            self.outside_servers = ExternalServers(dict(self.outside), self.ca)
        with start_lock():  # from port allocation until every process has bound its ports
            # the deadline counts from here: waiting for another mesh's start-up is not ours
            self._start_all(topology, time.monotonic() + timeout_s)
        self.started_s = time.monotonic() - began

    def _start_all(self, topology: Topology, deadline: float) -> None:
        self._plan(topology)
        (self.workdir / "access").mkdir(exist_ok=True)
        configs = self._translate()
        for name, pp in self.pods.items():
            if pp.pod.proxy is not ProxyKind.NONE:
                pp.proxy = EnvoyProxy(
                    name=name,
                    workdir=self.workdir / "envoy" / name,
                    supervisor=self.supervisor,
                    node_id=pp.pod.proxy_id,
                    node_cluster=f"{pp.pod.workload}.{pp.pod.namespace}",
                    admin_port=pp.admin_port,
                )
                pp.proxy.start(self._resources(pp, configs[name]))
        for pp in self.pods.values():
            self._start_app(pp)
        self._wait_ready(deadline)

    def _plan(self, topology: Topology) -> None:
        pods, plans = plan_pods(topology, self.behavior)
        self.pods.update(pods)
        outside = self.outside_servers.addresses() if self.outside_servers is not None else {}
        self.port_map = PortMap.of(plans, LOOPBACK, outside)

    def _container(self, pod: Pod) -> Any:
        assert self.topology is not None
        return first_container(self.topology, pod)

    def _translate(self) -> dict[str, ProxyConfig]:
        assert self.topology is not None
        options = TranslateOptions(
            port_map=self.port_map,
            access_log_path=str(self.workdir / "access" / "{pod}.log"),
            jwks_resolver=self.identity.jwks,
            tracing=self.tracing,
        )
        return dict(translate(self.resources, self.topology, options).items())

    def _resources(self, pp: PodProcesses, config: ProxyConfig) -> ProxyResources:
        issued = self.ca.issue(pp.pod.namespace, pp.pod.service_account)
        # a gateway's credentialName secrets come with the config (the lesson's Secrets, as
        # istiod serves them); a name without a usable Secret gets an empty SDS file
        return ProxyResources(
            listeners=list(config.listeners),
            routes=list(config.routes),
            clusters=list(config.clusters),
            endpoints=list(config.endpoints),
            secrets=[
                *config.secrets,
                *issued.secrets().values(),
                *origination_secrets(config, self.ca),  # DestinationRule credentialName
            ],
            absent_secrets=absent_credentials(config),
        )

    def _start_app(self, pp: PodProcesses) -> None:
        container = self._container(pp.pod)
        if pp.skipped or pp.pod.proxy is ProxyKind.ROUTER or container is None:
            return
        assert self.topology is not None
        declared = declared_behavior(pp.pod, self.topology, self.behavior)
        server = uses_behavior_server(container, pp.pod)
        if server and declared is None:
            pp.skipped = "no code of the project's and no behaviour declared"
            return
        port = next(iter(pp.ports.app.values()))
        proxy_port = app_proxy_port(pp, declared, self.behavior)
        env = app_env(
            container,
            port=port,
            admin_port=pp.knob_port,
            data_dir=self.workdir / "data" / pp.pod.name,
            http_proxy=f"http://{LOOPBACK}:{proxy_port}" if proxy_port else None,
            seed=self.seed,
            pod=pp.pod,
            external=self.external,
        )
        argv = app_argv(container)
        if server and declared is not None and self.behavior is not None:
            argv, extra = behavior_server(
                pp.pod, self.behavior, declared, self.workdir / "behavior"
            )
            env.update(extra)
        pp.app = f"app-{pp.pod.name}"
        self.supervisor.start(pp.app, argv, env=env, cwd=ROOT)

    def wait_pod_ready(self, pp: PodProcesses, app: bool, deadline: float) -> None:
        """Wait until one container of a pod (its app, else its Envoy) is ready again."""
        while not (
            app_ready(self.supervisor, pp) if app else pp.proxy is None or pp.proxy.poll_ready()
        ):
            if time.monotonic() > deadline:
                what = f"app of {pp.pod.name}" if app else f"Envoy of {pp.pod.name}"
                raise RunnerError(f"{what} not ready in time")
            time.sleep(0.02)

    def _wait_ready(self, deadline: float, only: Sequence[PodProcesses] | None = None) -> None:
        pending: list[tuple[str, PodProcesses]] = []
        for pp in only if only is not None else self.pods.values():
            if pp.proxy is not None:
                pending.append(("proxy", pp))
            if pp.app:
                pending.append(("app", pp))
        while pending:
            kind, pp = pending[0]
            assert pp.proxy is not None or kind == "app"
            ready = (
                pp.proxy.poll_ready()
                if kind == "proxy" and pp.proxy
                else app_ready(self.supervisor, pp)
            )
            if ready:
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                what = f"Envoy of {pp.pod.name}" if kind == "proxy" else f"app of {pp.pod.name}"
                raise RunnerError(f"{what} not ready in time")
            time.sleep(0.02)

    # -- changes --------------------------------------------------------------------------------

    def apply(self, resources: Sequence[Resource]) -> None:
        """Push the config for ``resources`` to every proxy live (no restart).

        Every proxy gets its update even if another rejects its own; all NACKs are raised
        together, and each rejecting proxy keeps serving its previous config.
        """
        with self.lock:
            self._apply(resources)

    def _apply(self, resources: Sequence[Resource]) -> None:
        self.resources = tuple(resources)
        # the registry as istiod sees it now (a ServiceEntry adds hosts); the pods stay as started
        self.topology = build_topology(self.resources)
        configs = self._translate()
        live = [(pp, self._resources(pp, configs[n])) for n, pp in self.pods.items()
                if pp.proxy is not None and not pp.dead]  # fmt: skip

        def push(item: tuple[PodProcesses, ProxyResources]) -> list[XdsRejection]:
            pp, res = item
            assert pp.proxy is not None
            try:
                pp.proxy.apply(res)
            except ConfigRejectedError as exc:
                return exc.rejections
            return []

        # like an istiod push: every proxy at once (each waits for its own verdict and drain)
        with ThreadPoolExecutor(max_workers=max(1, len(live))) as pool:
            rejections = [r for found in pool.map(push, live) for r in found]
        if rejections:
            raise ConfigRejectedError(rejections)

    def pods_of(self, workload: str) -> list[PodProcesses]:
        """The pods of a Deployment (or of an app label), in name order."""
        return sorted(
            (
                p
                for p in self.pods.values()
                if workload in (p.pod.workload, p.pod.labels.get("app"))
            ),
            key=lambda p: p.pod.name,
        )

    def set_knobs(self, pp: PodProcesses, knobs: dict[str, Any]) -> None:
        """``PUT /admin/knobs`` on one replica."""
        put_knobs(pp, knobs)

    def break_workload(self, action: BreakAction) -> None:
        """Apply a lesson's ``break`` to every replica of ``action.workload`` (a killed replica
        stays down until ``restore``: the kubelet leaves it alone)."""
        with self.lock:
            self._break(action)

    def _break(self, action: BreakAction) -> None:
        pods = [p for p in self.pods_of(action.workload) if p.app]
        if not pods:
            raise RunnerError(f"no running replica of {action.workload}")
        if action.restore:
            revived = [p for p in pods if p.dead]
            for p in revived:
                self.supervisor.restart(p.app)
                if p.proxy is not None:
                    p.proxy.restart()
                p.dead = False
            self._wait_ready(time.monotonic() + 30.0, revived)
            for p in pods:
                self.set_knobs(p, dict(RESET_KNOBS))
        knobs: dict[str, Any] = dict(action.knobs)
        if knobs:
            for p in pods:
                if not p.dead:
                    self.set_knobs(p, knobs)
        for p in [p for p in pods if not p.dead][: action.kill or 0]:
            p.dead = True  # before it stops: the kubelet must not restart it
            self.supervisor.stop(p.app)
            if p.proxy is not None:
                self.supervisor.stop(p.proxy.process_name)
