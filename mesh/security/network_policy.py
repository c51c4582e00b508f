"""Kubernetes NetworkPolicy at L3/L4, as a CNI enforces it below the sidecar (reference §16).

Pods are open in both directions until a policy in their namespace selects them (``podSelector``,
``{}`` = every pod) for ``Ingress`` and/or ``Egress`` (``policyTypes``; when omitted, Ingress
always and Egress only if the policy has ``egress`` rules). An isolated direction allows a
connection iff *some* selecting policy has a rule admitting it: a rule is a list of peers (OR)
times a list of ports (OR), an empty list meaning "all". Peers: ``podSelector`` (pods of the
policy's namespace), ``namespaceSelector`` (every pod of the matching namespaces; namespaces
carry ``kubernetes.io/metadata.name``), both in one element (AND), or ``ipBlock`` (a CIDR minus
``except``). Ports: number, named container port, ``endPort`` ranges; protocol TCP by default.

A connection needs the client pod's egress *and* the server pod's ingress to allow it. With
sidecars the check sees pod-to-pod TCP on the application's target port. A denied connection is
dropped: the client sidecar sees a connect timeout (``connect_timeout``, 10 s by default) and
answers 503 with flag ``UF`` (``UF,URX`` after its connect-failure retries); a client without a
sidecar sees its own connect timeout. The ``local`` runner cannot enforce any of this: it needs
a CNI, i.e. the ``kube`` runner.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mesh.model import Namespace, NetworkPolicy, Resource
from mesh.model.kubernetes import (
    NetworkPolicyEgressRule,
    NetworkPolicyIngressRule,
    NetworkPolicyPeer,
    NetworkPolicyPort,
)
from mesh.topology import Pod, Topology

__all__ = ["NetworkPolicies", "NetworkVerdict"]

NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True, slots=True)
class NetworkVerdict:
    """Whether a connection gets through, and why (policy refs that isolate or admit it)."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _types(policy: NetworkPolicy) -> tuple[bool, bool]:
    """(isolates ingress, isolates egress)."""
    types = policy.spec.policy_types
    if not types:
        return True, bool(policy.spec.egress)
    return "Ingress" in types, "Egress" in types


class NetworkPolicies:
    """The NetworkPolicies of a mesh state, ready to answer "may A connect to B on port P?"."""

    def __init__(self, resources: Sequence[Resource], topology: Topology) -> None:
        self.policies = [r for r in resources if isinstance(r, NetworkPolicy)]
        self.topology = topology
        labels: dict[str, dict[str, str]] = {ns: {NAME_LABEL: ns} for ns in topology.namespaces}
        for r in resources:
            if isinstance(r, Namespace):
                labels[r.name] = {**r.metadata.labels, NAME_LABEL: r.name}
        self.namespace_labels: Mapping[str, Mapping[str, str]] = labels

    def __bool__(self) -> bool:
        return bool(self.policies)

    def _selecting(self, pod: Pod, ingress: bool) -> list[NetworkPolicy]:
        out = []
        for p in self.policies:
            if p.namespace != pod.namespace or not p.spec.pod_selector.matches(pod.labels):
                continue
            isolates_in, isolates_out = _types(p)
            if isolates_in if ingress else isolates_out:
                out.append(p)
        return out

    def _peer_matches(
        self, peer: NetworkPolicyPeer, policy_ns: str, pod: Pod | None, ip: str
    ) -> bool:
        if peer.ip_block is not None:
            if not ip:
                return False
            try:
                address = ipaddress.ip_address(ip)
                if address not in ipaddress.ip_network(peer.ip_block.cidr, strict=False):
                    return False
                return not any(
                    address in ipaddress.ip_network(e, strict=False) for e in peer.ip_block.except_
                )
            except ValueError:
                return False
        if pod is None:
            return False
        if peer.namespace_selector is not None:
            ns_labels = dict(self.namespace_labels.get(pod.namespace, {NAME_LABEL: pod.namespace}))
            if not peer.namespace_selector.matches(ns_labels):
                return False
        elif pod.namespace != policy_ns:
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)

    def _port_names(self, pod: Pod) -> dict[str, int]:
        workload = self.topology.workload(pod.workload, pod.namespace)
        if workload is None:
            return {}
        return {p.name: p.container_port for c in workload.containers for p in c.ports if p.name}

    def _port_matches(
        self, spec: NetworkPolicyPort, port: int, protocol: str, named: Mapping[str, int]
    ) -> bool:
        if spec.protocol.upper() != protocol.upper():
            return False
        if spec.port is None:
            return True
        if isinstance(spec.port, str) and not spec.port.isdigit():
            return named.get(spec.port) == port
        first = int(spec.port)
        last = spec.end_port if spec.end_port is not None else first
        return first <= port <= last

    def _direction(
        self, owner: Pod, peer: Pod | None, *, peer_ip: str, port: int, protocol: str, ingress: bool
    ) -> NetworkVerdict:
        selecting = self._selecting(owner, ingress)
        word = "ingress" if ingress else "egress"
        if not selecting:
            return NetworkVerdict(True, f"no NetworkPolicy isolates {owner.name} for {word}")
        server = owner if ingress else peer
        named = self._port_names(server) if server is not None else {}
        for policy in selecting:
            rules: Sequence[NetworkPolicyIngressRule | NetworkPolicyEgressRule] = (
                policy.spec.ingress if ingress else policy.spec.egress
            )
            for i, rule in enumerate(rules):
                peers = rule.from_ if isinstance(rule, NetworkPolicyIngressRule) else rule.to
                if peers and not any(
                    self._peer_matches(x, policy.namespace, peer, peer_ip) for x in peers
                ):
                    continue
                if rule.ports and not any(
                    self._port_matches(s, port, protocol, named) for s in rule.ports
                ):
                    continue
                return NetworkVerdict(True, f"{policy.ref} {word} rule {i} allows it")
        refs = ", ".join(p.ref for p in selecting)
        return NetworkVerdict(
            False, f"{owner.name} is isolated for {word} by {refs} and no rule allows port {port}"
        )

    def allows(
        self,
        source: Pod | None,
        destination: Pod,
        port: int,
        *,
        source_ip: str = "",
        protocol: str = "TCP",
    ) -> NetworkVerdict:
        """May ``source`` (a pod, or None for a client outside the cluster at ``source_ip``)
        open a connection to ``destination`` on container ``port``?"""
        ip = source.address if source is not None else source_ip
        if source is not None:
            out = self._direction(
                source,
                destination,
                peer_ip=destination.address,
                port=port,
                protocol=protocol,
                ingress=False,
            )
            if not out:
                return out
        return self._direction(
            destination, source, peer_ip=ip, port=port, protocol=protocol, ingress=True
        )
