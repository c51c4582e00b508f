"""The pods of a local mesh and their ports: which pods run, what each listens on, and which of
its sidecar's outbound listeners its app uses as ``HTTP_PROXY``.

Every port comes from one kernel allocation for the whole mesh (:func:`plan_pods`), so no two
pods are handed the same one: a sidecar gets an outbound listener per HTTP service port, an
inbound port and an app port per target port; a gateway (router) only listeners; a pod without
a proxy only its app ports; each pod also gets Envoy's admin port and the app's knob port.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from cluster.local.apps import declared_behavior, uses_behavior_server
from cluster.local.envoy import EnvoyProxy
from cluster.local.ports import free_ports
from mesh.app import AppBehavior, Parallel, ServiceBehavior
from mesh.envoy import PodPorts
from mesh.model import FrozenMap
from mesh.model.kubernetes import Container
from mesh.topology import Pod, ProxyKind, Topology

__all__ = ["PodProcesses", "app_proxy_port", "first_container", "plan_pods"]


@dataclass
class PodProcesses:
    """One pod on this machine: its ports, its app process name and its Envoy."""

    pod: Pod
    ports: PodPorts
    admin_port: int = 0
    knob_port: int = 0
    app: str = ""
    proxy: EnvoyProxy | None = None
    skipped: str = ""
    dead: bool = False

    @property
    def outbound_proxy_port(self) -> int | None:
        """The sidecar listener apps use as ``HTTP_PROXY`` (the 8080 one, else the first)."""
        if not self.ports.listeners:
            return None
        return self.ports.listeners.get(8080, next(iter(self.ports.listeners.values())))


def first_container(topology: Topology, pod: Pod) -> Container | None:
    """The pod's first container (its Deployment's), None when it has none."""
    workload = topology.workload(pod.workload, pod.namespace)
    if workload is None or not workload.containers:
        return None
    return workload.containers[0]


def plan_pods(
    topology: Topology, behavior: AppBehavior | None
) -> tuple[dict[str, PodProcesses], dict[str, PodPorts]]:
    """Every pod of ``topology`` with its allocated ports (a pod without a proxy that cannot run
    here is kept, ``skipped``, without ports), and the ports of those that run, by pod name."""
    http_ports = sorted(
        {p.port for s in topology.services for p in s.ports if p.protocol.is_http}
        | {p.port for s in topology.services for p in s.ports if p.protocol.value == "UNSUPPORTED"}
    )
    needs: list[tuple[Pod, list[int], list[int], list[int]]] = []
    pods: dict[str, PodProcesses] = {}
    for pod in topology.pods:
        container = first_container(topology, pod)
        declared = declared_behavior(pod, topology, behavior)
        runnable = declared is not None or not uses_behavior_server(container, pod)
        if pod.proxy is ProxyKind.NONE and not runnable:
            pods[pod.name] = PodProcesses(
                pod, PodPorts(), skipped="not one of the project's Python services"
            )
            continue
        targets = sorted(
            {p.target_port for s in topology.services_of(pod) for p in s.ports}
            | set(pod.container_ports)
        )
        if pod.proxy is ProxyKind.ROUTER:
            needs.append((pod, targets, [], []))
        elif pod.proxy is ProxyKind.SIDECAR:
            needs.append((pod, http_ports, targets, targets))
        else:
            needs.append((pod, [], [], targets))
    # one allocation for the whole mesh, so no two pods can be handed the same port
    total = sum(len(a) + len(b) + len(c) + 2 for _, a, b, c in needs)
    ports = iter(free_ports(total))
    plans: dict[str, PodPorts] = {}
    for pod, listeners, inbound, app in needs:
        plan = PodPorts(
            listeners=FrozenMap({p: next(ports) for p in listeners}),
            inbound=FrozenMap({p: next(ports) for p in inbound}),
            app=FrozenMap({p: next(ports) for p in app}),
        )
        plans[pod.name] = plan
        pods[pod.name] = PodProcesses(pod, plan, admin_port=next(ports), knob_port=next(ports))
    return pods, plans


def app_proxy_port(
    pp: PodProcesses, declared: ServiceBehavior | None, behavior: AppBehavior | None
) -> int | None:
    """The outbound listener the app uses as ``HTTP_PROXY``: the one of the Service port its
    declared calls go to (Bookinfo's calls all go to 9080: the listener of port 80 would
    route them nowhere), else :attr:`PodProcesses.outbound_proxy_port`."""
    if declared is not None and behavior is not None:
        version = pp.pod.labels.get("version", "")
        ports = Counter(
            dest.port
            for e in declared.endpoints_of(version)
            for step in e.calls
            for c in (step.parallel if isinstance(step, Parallel) else (step,))
            if (dest := behavior.service(c.service)) is not None and dest.port in pp.ports.listeners
        )
        if ports:
            return pp.ports.listeners[ports.most_common(1)[0][0]]
    return pp.outbound_proxy_port
