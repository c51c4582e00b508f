"""The simulated data plane, wired: which hop hands a request or a connection to which.

A request goes app -> its sidecar (:func:`sim.proxy.outbound`: listener, chain, HCM, route) ->
the router (:mod:`sim.router`) -> the server sidecar (:func:`sim.inbound.inbound`) -> the app
(:func:`sim.app.serve`), whose downstream calls go back into the data plane. That last edge is the
only one that points up, so it is the one wired here rather than imported: :func:`wire` installs
a :class:`DataPlane` as the world's :attr:`sim.world.World.hops`, and the apps call through it.
Traffic without a client sidecar goes through kube-proxy (:mod:`sim.direct`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mesh.topology import MeshService
from sim.direct import connect_direct, direct
from sim.messages import Request
from sim.pods import PodRuntime
from sim.proxy import outbound
from sim.tcp import Connection, connect
from sim.world import World

__all__ = ["DATA_PLANE", "DataPlane", "wire"]

Proc = Generator[Any, Any, Any]


class DataPlane:
    """The entry points of the data plane (an app's request or connection). It holds no state
    (in particular no reference back to a world: a world must stay free of reference cycles,
    or its records would outlive it until a full garbage collection)."""

    __slots__ = ()

    def call(self, world: World, pod: PodRuntime, req: Request, service: MeshService) -> Proc:
        """``pod``'s app sends ``req`` to ``service``: through its sidecar, or straight to a pod
        of the Service without one. Returns the generator to run (``yield from``), not a
        generator of its own: one level less for every event of the call to pass through."""
        if pod.proxy is not None and pod.sidecar:
            return outbound(world, pod.proxy, req)
        return direct(world, pod, req, service)

    def relay(self, world: World, gateway: PodRuntime, req: Request) -> Proc:
        """A connection a proxy opened to a gateway pod (an egress gateway): it lands on the
        gateway's own listeners, which route it on (a gateway has no app behind it)."""
        assert gateway.proxy is not None
        return outbound(world, gateway.proxy, req)

    def send(
        self, world: World, client: PodRuntime | None, req: Request, service: MeshService
    ) -> Proc:
        """A request from a traffic source: ``client``'s proxy (a sidecar or the ingress
        gateway), its app without one, or (None) a client outside the mesh."""
        if client is None:
            return direct(world, None, req, service)
        if client.proxy is not None:
            return outbound(world, client.proxy, req)
        return direct(world, client, req, service)

    def open(self, world: World, client: PodRuntime | None, conn: Connection) -> Proc:
        """A TCP connection from a traffic source (None: outside the mesh)."""
        if client is not None and client.proxy is not None and client.sidecar:
            return connect(world, client.proxy, conn)
        return connect_direct(world, client, conn)


DATA_PLANE = DataPlane()
"""The one data plane every world is wired to."""


def wire(world: World) -> DataPlane:
    """Give ``world`` its data plane (idempotent)."""
    world.hops = DATA_PLANE
    return DATA_PLANE
