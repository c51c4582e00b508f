"""Multi-cluster placement: which cluster, network and locality each pod gets, and the east-west
gateway every network of a multi-network mesh has.

istiod in each primary cluster watches every cluster's API server (remote secrets), so its
registry holds the pods of all clusters, each tagged with its cluster ID and network; endpoint
labels are augmented with ``topology.istio.io/cluster``, ``topology.istio.io/network`` and the
locality labels (istiod's ``AugmentLabels``), so a DestinationRule subset can select a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mesh.model import Deployment, FrozenMap, Resource
from mesh.model.multicluster import (
    DEFAULT_CLUSTER,
    EASTWEST_GATEWAY,
    EASTWEST_PORT,
    LABEL_CLUSTER,
    LABEL_NETWORK,
    MultiCluster,
)
from mesh.topology.gateways import gateway_resources

__all__ = ["PodPlacement", "eastwest_gateway_resources", "placed_labels", "placements"]


def eastwest_gateway_resources() -> tuple[Resource, ...]:
    """``istio-system/istio-eastwestgateway`` as ``gen-eastwest-gateway.sh`` installs it: pods
    labelled ``istio: eastwestgateway`` and a LoadBalancer Service with the status port, the
    mTLS port 15443 (``tls``) and istiod's ports 15012/15017 for remote clusters. Placement puts
    one replica on each network (:meth:`MultiCluster.placements_of`); each pod carries its
    network's ``topology.istio.io/network`` label."""
    ports = (15021, EASTWEST_PORT, 15012, 15017)
    names = ("status-port", "tls", "tls-istiod", "tls-webhook")
    return gateway_resources(
        EASTWEST_GATEWAY,
        FrozenMap({"app": EASTWEST_GATEWAY, "istio": "eastwestgateway"}),
        tuple((n, p, p) for n, p in zip(names, ports, strict=True)),
    )


@dataclass(frozen=True, slots=True)
class PodPlacement:
    """Where one group of a Deployment's pods runs."""

    cluster: str
    network: str
    locality: str
    replicas: int


def placements(deployment: Deployment, mc: MultiCluster | None) -> tuple[PodPlacement, ...]:
    """The groups of ``deployment``'s pods: one group in the default cluster without a
    multi-cluster declaration (nothing changes for a single-cluster mesh)."""
    if mc is None:
        return (PodPlacement(DEFAULT_CLUSTER, "", "", deployment.spec.replicas),)
    return tuple(
        PodPlacement(
            p.cluster,
            p.network,
            p.locality,
            deployment.spec.replicas if p.replicas is None else p.replicas,
        )
        for p in mc.placements_of(deployment.name, deployment.namespace)
    )


def placed_labels(labels: Mapping[str, str], where: PodPlacement) -> FrozenMap[str, str]:
    """A placed pod's labels as istiod's endpoints carry them: the template's, plus the
    cluster, network and locality labels (``AugmentLabels``); a declared locality replaces the
    template's locality labels."""
    out = dict(labels)
    out[LABEL_CLUSTER] = where.cluster
    if where.network:
        out[LABEL_NETWORK] = where.network
    if where.locality:
        parts = [*where.locality.split("/"), "", ""][:3]
        out.pop("istio-locality", None)
        keys = (
            "topology.kubernetes.io/region",
            "topology.kubernetes.io/zone",
            "topology.istio.io/subzone",
        )
        for key, value in zip(keys, parts, strict=True):
            if value:
                out[key] = value
            else:
                out.pop(key, None)
    return FrozenMap(out)
