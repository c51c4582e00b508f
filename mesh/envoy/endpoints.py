"""ClusterLoadAssignments (EDS): the endpoints of a cluster with labels, locality and identity.

Each endpoint carries istiod's ``istio.workload`` metadata (``name;namespace;app;version;cluster``)
plus the pod's labels, SPIFFE identity and pod name, so a simulator (and
``%UPSTREAM_METADATA(istio:...)%`` in access logs) can tell which workload answered. An endpoint
that takes Istio mTLS (a sidecar whose PeerAuthentication mode on the port is not DISABLE) is
tagged ``envoy.transport_socket_match: {tlsMode: istio}``, which the cluster's auto-mTLS
``transport_socket_matches`` select on. Locality
priorities follow Istio: they are assigned only when the cluster has outlier detection (failover
needs health information); then same region/zone/subzone = priority 0, same zone 1, same region
2, the failover target region 3, everything else 4, compacted to 0..N.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mesh.envoy_api.type_urls import TRANSPORT_SOCKET_MATCH
from mesh.model import FrozenMap, MutualTLSMode
from mesh.model.destination_rule import LocalityLoadBalancerSetting
from mesh.model.multicluster import DEFAULT_CLUSTER
from mesh.topology import Pod

__all__ = [
    "Endpoint",
    "Locality",
    "load_assignment",
    "locality_of",
    "parse_locality",
]


@dataclass(frozen=True, slots=True)
class Locality:
    """region/zone/subzone of a workload or client."""

    region: str = ""
    zone: str = ""
    sub_zone: str = ""

    def to_envoy(self) -> dict[str, str]:
        """Envoy ``core.v3.Locality`` (only the set parts)."""
        out = {"region": self.region, "zone": self.zone, "sub_zone": self.sub_zone}
        return {k: v for k, v in out.items() if v}

    def __str__(self) -> str:
        return "/".join(p for p in (self.region, self.zone, self.sub_zone) if p)


def parse_locality(text: str) -> Locality:
    """``us-east/zone1/a`` -> Locality (Istio's locality string)."""
    parts = [*text.split("/"), "", "", ""][:3]
    return Locality(parts[0], parts[1], parts[2])


def locality_of(labels: Mapping[str, str], fallback: str = "") -> Locality:
    """A pod's locality from Kubernetes topology labels (or ``istio-locality``)."""
    if "istio-locality" in labels:
        return parse_locality(labels["istio-locality"].replace(".", "/"))
    region = labels.get("topology.kubernetes.io/region", "")
    zone = labels.get("topology.kubernetes.io/zone", "")
    sub_zone = labels.get("topology.istio.io/subzone", "")
    if not (region or zone or sub_zone) and fallback:
        return parse_locality(fallback) if "/" in fallback else Locality(zone=fallback)
    return Locality(region, zone or fallback, sub_zone)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address of a cluster with what the mesh knows about it."""

    address: str
    port: int
    labels: FrozenMap[str, str]
    locality: Locality
    weight: int = 1
    workload: str = ""
    namespace: str = ""
    identity: str = ""
    pod: str = ""
    sidecar: bool = False
    mtls_mode: MutualTLSMode = MutualTLSMode.PERMISSIVE
    cluster_id: str = DEFAULT_CLUSTER
    """The cluster the endpoint is in (istiod's cluster ID, last field of ``istio.workload``)."""
    network: str = ""
    """Its ``topology.istio.io/network`` ("" on a single network)."""
    gateway_for: str = ""
    """Multi-network: this endpoint is an east-west gateway standing for that network's pods
    (split-horizon EDS, :mod:`mesh.envoy.multicluster`)."""

    @property
    def takes_mtls(self) -> bool:
        """Auto mTLS tags the endpoint ``tlsMode: istio``: it has a sidecar and its
        PeerAuthentication mode on the target port is not DISABLE."""
        return self.sidecar and self.mtls_mode is not MutualTLSMode.DISABLE

    @classmethod
    def of_pod(
        cls,
        pod: Pod,
        address: str,
        port: int,
        sidecar: bool,
        mtls_mode: MutualTLSMode = MutualTLSMode.PERMISSIVE,
    ) -> Endpoint:
        """An endpoint backed by a pod of the topology."""
        return cls(
            address=address,
            port=port,
            labels=pod.labels,
            locality=locality_of(pod.labels, pod.locality),
            workload=pod.workload,
            namespace=pod.namespace,
            identity=pod.identity,
            pod=pod.name,
            sidecar=sidecar,
            mtls_mode=mtls_mode,
            cluster_id=pod.cluster,
            network=pod.network,
        )

    def to_envoy(self) -> dict[str, Any]:
        """Envoy ``LbEndpoint``."""
        app = self.labels.get("app", self.workload)
        version = self.labels.get("version", "")
        istio: dict[str, Any] = {
            "workload": f"{self.workload};{self.namespace};{app};{version};{self.cluster_id}",
            "labels": dict(sorted(self.labels.items())),
        }
        if self.identity:
            istio["identity"] = self.identity
        if self.pod:
            istio["pod"] = self.pod
        if self.network:
            istio["network"] = self.network
        metadata: dict[str, Any] = {"istio": istio}
        if self.takes_mtls:
            metadata[TRANSPORT_SOCKET_MATCH] = {"tlsMode": "istio"}
        return {
            "endpoint": {
                "address": {"socket_address": {"address": self.address, "port_value": self.port}}
            },
            "health_status": "HEALTHY",
            "load_balancing_weight": self.weight,
            "metadata": {"filter_metadata": metadata},
        }


def _priority(client: Locality, ep: Locality, failover_to: str) -> int:
    if ep.region == client.region:
        if ep.zone == client.zone:
            return 0 if ep.sub_zone == client.sub_zone else 1
        return 2
    if failover_to and ep.region == failover_to:
        return 3
    return 4


def _matches_locality(pattern: str, loc: Locality) -> bool:
    parts = pattern.split("/")
    values = [loc.region, loc.zone, loc.sub_zone]
    for i, part in enumerate(parts[:3]):
        if part == "*":
            return True
        if part != values[i]:
            return False
    return True


def load_assignment(
    cluster: str,
    endpoints: Iterable[Endpoint],
    *,
    client: Locality | None = None,
    setting: LocalityLoadBalancerSetting | None = None,
    failover: bool = False,
) -> dict[str, Any]:
    """A ClusterLoadAssignment grouped by locality (and priority when ``failover``).

    ``setting.distribute`` rules whose ``from`` matches the client give each locality its
    ``load_balancing_weight`` and drop unlisted localities.
    """
    eps = sorted(endpoints, key=lambda e: (str(e.locality), e.address, e.port))
    client = client or Locality()
    weights: dict[str, int] | None = None
    failover_to = ""
    if setting is not None and setting.enabled is not False:
        for rule in setting.distribute:
            if _matches_locality(rule.from_, client):
                weights = {}
                for loc_pattern, w in rule.to.items():
                    for e in eps:
                        if _matches_locality(loc_pattern, e.locality):
                            weights.setdefault(str(e.locality), w)
                break
        for fo in setting.failover:
            if fo.from_ == client.region:
                failover_to = fo.to
    groups: dict[tuple[int, str], list[Endpoint]] = {}
    for e in eps:
        key = str(e.locality)
        if weights is not None and key not in weights:
            continue
        priority = _priority(client, e.locality, failover_to) if failover else 0
        groups.setdefault((priority, key), []).append(e)
    ranks = {p: i for i, p in enumerate(sorted({p for p, _ in groups}))}
    out: list[dict[str, Any]] = []
    for (priority, key), members in sorted(groups.items()):
        group: dict[str, Any] = {}
        loc = members[0].locality.to_envoy()
        if loc:
            group["locality"] = loc
        group["lb_endpoints"] = [m.to_envoy() for m in members]
        if weights is not None:
            group["load_balancing_weight"] = weights[key]
        if ranks[priority]:
            group["priority"] = ranks[priority]
        out.append(group)
    return {"cluster_name": cluster, "endpoints": out}
