"""The CNI below the sidecars: Kubernetes NetworkPolicy on the connect path.

NetworkPolicy is not Envoy configuration: the CNI enforces it on pod-to-pod TCP, before any
sidecar sees the connection (reference §16). So it is the one security decision the simulator
takes from resources rather than from the translated Envoy config. A denied connection is a
dropped SYN: a client sidecar's connect attempt fails after the cluster's ``connect_timeout``
(flag ``UF``, then its retry policy); a client without a sidecar waits for its own connect
timeout. The check uses :class:`mesh.security.NetworkPolicies`, as ``meshplay authz-check`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

from mesh.model import NetworkPolicy, Resource
from mesh.security import NetworkPolicies
from mesh.topology import Pod, Topology

__all__ = ["OUTSIDE_IP", "Cni"]

OUTSIDE_IP = "127.0.0.1"
"""The address of a client outside the mesh (what ``meshplay authz-check`` assumes too)."""


class Cni:
    """The NetworkPolicies of one configuration (none: every connection gets through)."""

    __slots__ = ("enforcing", "policies")

    def __init__(self, resources: Sequence[Resource], topology: Topology) -> None:
        self.policies = (
            NetworkPolicies(resources, topology)
            if any(isinstance(r, NetworkPolicy) for r in resources)
            else None
        )
        self.enforcing = self.policies is not None
        """Some NetworkPolicy exists (otherwise nothing is ever dropped)."""

    def connect_allowed(self, client: Pod | None, server: Pod, port: int) -> bool:
        """May ``client`` (None: outside the cluster) open a connection to ``server:port``?"""
        if self.policies is None:
            return True
        return bool(self.policies.allows(client, server, port, source_ip=OUTSIDE_IP))
