"""Split-horizon EDS: what a proxy's endpoints look like in a mesh that spans networks.

istiod's ``EndpointsByNetworkFilter`` (pilot/pkg/xds/endpoints/ep_filters.go), per locality
group of a cluster's endpoints, for the proxy it is building for:

* an endpoint on the proxy's own network (or on a network without a gateway) stays as it is;
* an endpoint on another network is replaced by that network's east-west gateway,
  ``<gateway address>:15443``; the gateway endpoint's ``load_balancing_weight`` is the sum of
  the weights of the remote endpoints it stands for (one per pod: the number of remote pods),
  it stays in the remote endpoints' locality group, and its metadata carries ``tlsMode: istio``
  and the gateway's cluster, so the client opens Istio mTLS to it with the SNI
  ``outbound_.PORT_.SUBSET_.HOST`` that the gateway's AUTO_PASSTHROUGH listener routes on;
* a remote endpoint that does not take Istio mTLS is dropped: SNI routing needs it.

An east-west gateway is installed with ``ISTIO_META_REQUESTED_NETWORK_VIEW`` set to its own
network, so istiod shows it only its own network's endpoints (``proxyView.IsVisible``): it
forwards into its network, never on to another gateway.
"""

from __future__ import annotations

from collections.abc import Sequence

from mesh.envoy.endpoints import Endpoint
from mesh.envoy.ports import Addressing
from mesh.model import FrozenMap
from mesh.model.multicluster import EASTWEST_GATEWAY, EASTWEST_PORT, LABEL_CLUSTER, LABEL_NETWORK
from mesh.topology import Pod, Topology

__all__ = ["is_eastwest_gateway", "split_horizon"]


def is_eastwest_gateway(pod: Pod) -> bool:
    """The pod is an east-west gateway (its network view is its own network only)."""
    return pod.workload == EASTWEST_GATEWAY and pod.namespace == "istio-system"


def split_horizon(
    endpoints: Sequence[Endpoint],
    *,
    client: Pod | None,
    topology: Topology,
    addressing: Addressing,
) -> list[Endpoint]:
    """``endpoints`` as ``client`` sees them across networks (unchanged on one network)."""
    gateways = topology.network_gateways
    if client is None or not gateways:
        return list(endpoints)
    own_view = is_eastwest_gateway(client)
    out: list[Endpoint] = []
    through: dict[tuple[str, str], tuple[Endpoint, Pod, int]] = {}
    for ep in endpoints:
        if ep.network == client.network or not ep.network:
            out.append(ep)
            continue
        if own_view:
            continue  # the gateway's network view: only its own network
        remote = gateways.get(ep.network, ())
        if not remote:
            out.append(ep)  # no gateway: istiod sends directly (and it may not work)
            continue
        if not ep.takes_mtls:
            continue
        share = max(1, ep.weight // len(remote))
        for gw in remote:
            key = (str(ep.locality), gw.name)
            first, _, weight = through.get(key, (ep, gw, 0))
            through[key] = (first, gw, weight + share)
    for (_, _), (first, gw, weight) in sorted(through.items()):
        address, port = addressing.endpoint(gw, EASTWEST_PORT)
        out.append(
            Endpoint(
                address=address,
                port=port,
                labels=FrozenMap({LABEL_CLUSTER: gw.cluster, LABEL_NETWORK: gw.network}),
                locality=first.locality,
                weight=weight,
                cluster_id=gw.cluster,
                network=gw.network,
                sidecar=True,
                gateway_for=first.network,
            )
        )
    return out
