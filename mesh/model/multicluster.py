"""Multi-cluster declarations: which Kubernetes clusters make up one mesh, on which networks,
in which localities, and where each Deployment runs.

Istio has no single resource for this: a cluster's name is istiod's ``clusterName``
(``values.global.multiCluster.clusterName``), its network is the ``topology.istio.io/network``
label of ``istio-system`` (and of the east-west gateway), localities come from the nodes'
``topology.kubernetes.io/region``/``zone`` and ``topology.istio.io/subzone`` labels, and a
workload "runs in cluster2" because it was applied with cluster2's kube context. A lesson says
all of that in lesson.yaml (``clusters:`` and ``networks:``, see docs/multicluster.md); the
loader turns it into one :class:`MultiCluster` value that travels with the app's resources, so
every consumer of a mesh state (translator, runners, ``proxy-config``) sees the same placement.

A mesh without it is one cluster, ``Kubernetes`` (istiod's default cluster ID), on no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mesh.model.common import Duration, ObjectMeta, Resource

__all__ = [
    "DEFAULT_CLUSTER",
    "EASTWEST_GATEWAY",
    "EASTWEST_PORT",
    "LABEL_CLUSTER",
    "LABEL_NETWORK",
    "Latency",
    "MeshCluster",
    "MultiCluster",
    "NetworkLink",
    "Placement",
    "WorkloadPlacement",
]

DEFAULT_CLUSTER = "Kubernetes"
"""istiod's cluster ID when none is configured (the last field of ``istio.workload``)."""
LABEL_NETWORK = "topology.istio.io/network"
LABEL_CLUSTER = "topology.istio.io/cluster"
EASTWEST_GATEWAY = "istio-eastwestgateway"
"""The east-west gateway's Deployment and Service (Istio's ``gen-eastwest-gateway.sh``)."""
EASTWEST_PORT = 15443
"""The east-west gateway's mTLS port: AUTO_PASSTHROUGH, routed by SNI."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadPlacement:
    """A Deployment placed in a cluster with its own replica count or locality."""

    YAML_KEYS: ClassVar[str] = "snake"

    name: str
    """The Deployment's name (as in the app's manifests)."""
    replicas: int | None = None
    """Replicas in this cluster (default: the Deployment's ``replicas``)."""
    locality: str = ""
    """``region/zone/subzone`` of these pods (default: the cluster's)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshCluster:
    """One Kubernetes cluster of the mesh (a primary with its own istiod)."""

    YAML_KEYS: ClassVar[str] = "snake"

    name: str
    """istiod's cluster ID (``clusterName``), e.g. ``cluster1``."""
    network: str = ""
    """Its ``topology.istio.io/network``; clusters on one network reach each other's pods
    directly, clusters on different networks through the remote network's east-west gateway."""
    locality: str = ""
    """``region/zone/subzone`` of its nodes (the default of every pod placed here)."""
    workloads: tuple[str | WorkloadPlacement, ...] = ()
    """The Deployments that run here: a name, or a placement with replicas/locality."""

    def placements(self) -> tuple[WorkloadPlacement, ...]:
        """Every entry of ``workloads`` as a placement."""
        return tuple(WorkloadPlacement(name=w) if isinstance(w, str) else w for w in self.workloads)


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """One-way network latency, lognormal: its median and (optionally) 99th percentile."""

    YAML_KEYS: ClassVar[str] = "snake"

    median: Duration
    p99: Duration | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkLink:
    """The network between two networks (or a network and itself): its latency, each way."""

    YAML_KEYS: ClassVar[str] = "snake"

    between: tuple[str, ...]
    """Two network names (the same name twice: between two clusters of one network)."""
    latency: Latency


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a group of a Deployment's pods runs (resolved: cluster, network, locality)."""

    cluster: str
    network: str
    locality: str
    replicas: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MultiCluster(Resource):
    """The mesh's clusters and networks (built from lesson.yaml, never read from a manifest).

    Deployments not placed anywhere run in the first cluster (where the app is installed).
    With more than one network, each network gets an east-west gateway
    (``istio-system/istio-eastwestgateway``) in its first cluster, as
    ``gen-eastwest-gateway.sh --network NET`` installs it.
    """

    API_GROUP: ClassVar[str] = "meshplay.dev"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1alpha1",)
    KIND: ClassVar[str] = "MultiCluster"
    PLURAL: ClassVar[str] = "multiclusters"
    NAMESPACED: ClassVar[bool] = False

    clusters: tuple[MeshCluster, ...] = ()
    networks: tuple[NetworkLink, ...] = ()

    @classmethod
    def of(
        cls, clusters: tuple[MeshCluster, ...], networks: tuple[NetworkLink, ...] = ()
    ) -> MultiCluster:
        """A declaration named ``mesh`` (there is one per mesh)."""
        return cls(metadata=ObjectMeta(name="mesh"), clusters=clusters, networks=networks)

    def cluster(self, name: str) -> MeshCluster | None:
        """A cluster by name."""
        return next((c for c in self.clusters if c.name == name), None)

    @property
    def network_names(self) -> tuple[str, ...]:
        """The distinct networks, in declaration order."""
        return tuple(dict.fromkeys(c.network for c in self.clusters))

    @property
    def multi_network(self) -> bool:
        """More than one network: cross-network traffic goes through east-west gateways."""
        return len(self.network_names) > 1

    def gateway_cluster(self, network: str) -> MeshCluster | None:
        """The cluster hosting ``network``'s east-west gateway (its first cluster)."""
        return next((c for c in self.clusters if c.network == network), None)

    def placements_of(self, deployment: str, namespace: str = "") -> tuple[Placement, ...]:
        """Where ``deployment``'s pods run; unplaced Deployments run in the first cluster
        (the east-west gateway: one replica per network, in that network's first cluster)."""
        if deployment == EASTWEST_GATEWAY and namespace == "istio-system" and self.multi_network:
            out = []
            for net in self.network_names:
                home = self.gateway_cluster(net)
                assert home is not None
                out.append(Placement(home.name, net, home.locality, 1))
            return tuple(out)
        found = tuple(
            Placement(c.name, c.network, p.locality or c.locality, p.replicas)
            for c in self.clusters
            for p in c.placements()
            if p.name == deployment
        )
        if found or not self.clusters:
            return found
        first = self.clusters[0]
        return (Placement(first.name, first.network, first.locality, None),)

    def latency(self, a: str, b: str) -> Latency | None:
        """The declared one-way latency between networks ``a`` and ``b`` (either order)."""
        for link in self.networks:
            pair = tuple(link.between)
            if pair in ((a, b), (b, a)):
                return link.latency
        return None
