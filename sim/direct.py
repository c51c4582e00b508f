"""Traffic without a client sidecar: a load generator outside the mesh, or an app in a pod
without one. kube-proxy picks a pod of the Service at random (a pod IP is that pod); the CNI may
drop the connection (NetworkPolicy: the client waits for its own connect timeout); only the
server sidecar, if any, reports.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mesh.topology import MeshService
from sim.accesslog import TcpOutcome
from sim.inbound import inbound
from sim.inbound_tcp import serve_tcp
from sim.messages import Request, Response
from sim.pods import PodRuntime
from sim.tcp import Connection
from sim.world import World

__all__ = ["connect_direct", "direct"]

Proc = Generator[Any, Any, Any]


def _pick(world: World, pods: list[PodRuntime]) -> PodRuntime:
    return pods[world.rng.randrange(len(pods))] if len(pods) > 1 else pods[0]


def _dropped(world: World, client: PodRuntime | None, target: PodRuntime, port: int) -> bool:
    return not world.cni.connect_allowed(
        client.pod if client is not None else None, target.pod, port
    )


def direct(world: World, client: PodRuntime | None, req: Request, service: MeshService) -> Proc:
    """An HTTP request without a client proxy: kube-proxy picks a random pod of the Service."""
    env = world.env
    pods = world.pods_of_service.get(service.hostname) or []
    if not pods and req.address in world.by_address:
        pods = [world.by_address[req.address]]  # an app that dialled a pod IP
    yield env.timeout(world.hop())
    if not pods:
        return Response(503, (), "no_endpoints", local_failure="connect")
    target = pods[world.rng.randrange(len(pods))] if len(pods) > 1 else pods[0]
    if service.hostname:
        port = world.target_port(service, req.port) or target.target_port
    else:  # a pod IP, dialled with its port
        port = req.port
    if world.cni.enforcing and _dropped(world, client, target, port):
        # NetworkPolicy drops the SYN: a client without a sidecar waits for its connect timeout
        yield env.timeout(world.topology.config.connect_timeout_s)
        return Response(0, (), "connection_timeout", local_failure="connect")
    if target.dead or (target.refuse and not target.sidecar):
        yield env.timeout(world.hop())
        return Response(503, (), "connection_refused", local_failure="connect")
    resp: Response = yield from inbound(
        world,
        target,
        req,
        client=client,
        service_host=service.hostname,
        attempt=None,
        mtls=False,
        port=port,
    )
    yield env.timeout(world.hop())
    return resp


def connect_direct(world: World, client: PodRuntime | None, conn: Connection) -> Proc:
    """A TCP connection without a client sidecar: kube-proxy picks a pod of the Service (a pod
    IP is that pod); only the server sidecar reports."""
    env = world.env
    service = conn.service
    if service is not None:
        pods = world.pods_of_service.get(service.hostname) or []
    else:
        pod = world.by_address.get(conn.address)
        pods = [pod] if pod is not None else []
    yield env.timeout(world.hop())
    if not pods:
        return TcpOutcome(local_failure="connect")
    target = _pick(world, pods)
    if service is not None:
        port = world.target_port(service, conn.port) or target.target_port
    else:
        port = conn.port
    if world.cni.enforcing and _dropped(world, client, target, port):
        yield env.timeout(world.topology.config.connect_timeout_s)
        return TcpOutcome(local_failure="connect")
    if target.dead:
        return TcpOutcome(local_failure="connect")
    out: TcpOutcome = yield from serve_tcp(
        world,
        target,
        port,
        conn.send_bytes,
        conn.receive_bytes,
        conn.hold_s,
        client=client,
        mtls=False,
        trace=conn.trace,
    )
    yield env.timeout(world.hop())
    return out
