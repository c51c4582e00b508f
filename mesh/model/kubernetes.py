"""The Kubernetes kinds the mesh reads: Namespace, Service, ServiceAccount, Deployment,
NetworkPolicy. Only the fields that affect the mesh are modelled; the rest of a valid manifest is
accepted and reported as having no effect (never silently dropped).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import ClassVar

from mesh.model.common import FrozenMap, JsonValue, Resource

__all__ = [
    "Container",
    "ContainerPort",
    "Deployment",
    "DeploymentSpec",
    "EnvVar",
    "IPBlock",
    "KubeServicePort",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Namespace",
    "NetworkPolicy",
    "NetworkPolicyEgressRule",
    "NetworkPolicyIngressRule",
    "NetworkPolicyPeer",
    "NetworkPolicyPort",
    "NetworkPolicySpec",
    "PodSpec",
    "PodTemplateSpec",
    "Secret",
    "Service",
    "ServiceAccount",
    "ServiceSpec",
    "TemplateMeta",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace(Resource):
    """A Kubernetes Namespace (``istio-injection: enabled`` turns sidecars on)."""

    KIND: ClassVar[str] = "Namespace"
    PLURAL: ClassVar[str] = "namespaces"
    NAMESPACED: ClassVar[bool] = False
    SPEC_INLINE: ClassVar[bool] = False
    IGNORED: ClassVar[frozenset[str]] = frozenset({"spec"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAccount(Resource):
    """A Kubernetes ServiceAccount: the workload identity (spiffe://td/ns/NS/sa/NAME)."""

    KIND: ClassVar[str] = "ServiceAccount"
    PLURAL: ClassVar[str] = "serviceaccounts"
    SPEC_INLINE: ClassVar[bool] = False
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"secrets", "imagePullSecrets", "automountServiceAccountToken"}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeServicePort:
    """A Service port; its name prefix or appProtocol tells Istio the protocol."""

    IGNORED: ClassVar[frozenset[str]] = frozenset({"nodePort"})

    port: int
    name: str = ""
    target_port: int | str | None = None
    protocol: str = "TCP"
    app_protocol: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    """ServiceSpec: the pods it selects and its ports."""

    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {
            "clusterIPs",
            "sessionAffinity",
            "sessionAffinityConfig",
            "ipFamilies",
            "ipFamilyPolicy",
            "internalTrafficPolicy",
            "externalTrafficPolicy",
            "publishNotReadyAddresses",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "healthCheckNodePort",
            "externalIPs",
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "trafficDistribution",
        }
    )

    YAML_RENAMES: ClassVar[dict[str, str]] = {"cluster_ip": "clusterIP"}

    selector: FrozenMap[str, str] = field(default_factory=FrozenMap)
    ports: tuple[KubeServicePort, ...] = ()
    type: str = "ClusterIP"
    cluster_ip: str = ""
    external_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Service(Resource):
    """A Kubernetes Service: a host name in the mesh registry (``name.ns.svc.cluster.local``)."""

    KIND: ClassVar[str] = "Service"
    PLURAL: ClassVar[str] = "services"
    SPEC_INLINE: ClassVar[bool] = False

    spec: ServiceSpec = field(default_factory=ServiceSpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelectorRequirement:
    """A set-based label requirement (In, NotIn, Exists, DoesNotExist)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelector:
    """A Kubernetes label selector (matchLabels AND matchExpressions)."""

    match_labels: FrozenMap[str, str] = field(default_factory=FrozenMap)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def matches(self, labels: FrozenMap[str, str] | dict[str, str]) -> bool:
        """Whether ``labels`` satisfy the selector (an empty selector matches everything)."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            value = labels.get(req.key)
            if req.operator == "In" and (not present or value not in req.values):
                return False
            if req.operator == "NotIn" and present and value in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvVar:
    """A container environment variable (``value_from`` kept as parsed)."""

    name: str
    value: str = ""
    value_from: JsonValue = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerPort:
    """A port the container listens on."""

    container_port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    """A container: the local runner launches ``command + args`` with ``env`` as a process."""

    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {
            "imagePullPolicy",
            "resources",
            "livenessProbe",
            "startupProbe",
            "securityContext",
            "volumeMounts",
            "workingDir",
            "envFrom",
            "lifecycle",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "stdin",
            "tty",
            "volumeDevices",
            "resizePolicy",
        }
    )

    name: str
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    readiness_probe: JsonValue = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateMeta:
    """Pod template metadata: the labels pods get (what Services and subsets select)."""

    labels: FrozenMap[str, str] = field(default_factory=FrozenMap)
    annotations: FrozenMap[str, str] = field(default_factory=FrozenMap)


@dataclass(frozen=True, slots=True, kw_only=True)
class PodSpec:
    """The parts of a PodSpec the mesh reads."""

    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {
            "volumes",
            "securityContext",
            "nodeSelector",
            "affinity",
            "tolerations",
            "terminationGracePeriodSeconds",
            "restartPolicy",
            "dnsPolicy",
            "imagePullSecrets",
            "priorityClassName",
            "topologySpreadConstraints",
            "hostname",
            "subdomain",
            "automountServiceAccountToken",
            "enableServiceLinks",
            "schedulerName",
        }
    )

    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()
    service_account_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PodTemplateSpec:
    """Deployment.spec.template"""

    metadata: TemplateMeta = field(default_factory=TemplateMeta)
    spec: PodSpec = field(default_factory=PodSpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentSpec:
    """DeploymentSpec: how many replicas of which pod template."""

    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"strategy", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds", "paused"}
    )

    replicas: int = 1
    selector: LabelSelector = field(default_factory=LabelSelector)
    template: PodTemplateSpec = field(default_factory=PodTemplateSpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment(Resource):
    """apps/v1 Deployment: the pods (replicas) of one workload version."""

    API_GROUP: ClassVar[str] = "apps"
    KIND: ClassVar[str] = "Deployment"
    PLURAL: ClassVar[str] = "deployments"
    SPEC_INLINE: ClassVar[bool] = False

    spec: DeploymentSpec = field(default_factory=DeploymentSpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class IPBlock:
    """A CIDR with exceptions."""

    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicyPeer:
    """Pods, namespaces or an IP block a rule admits."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicyPort:
    """A port (number or name) and protocol a rule admits."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicyIngressRule:
    """Traffic allowed in: from any of ``from_`` on any of ``ports``."""

    from_: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicyEgressRule:
    """Traffic allowed out: to any of ``to`` on any of ``ports``."""

    to: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicySpec:
    """Which pods the policy isolates and what it still allows."""

    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[str, ...] = ()
    ingress: tuple[NetworkPolicyIngressRule, ...] = ()
    egress: tuple[NetworkPolicyEgressRule, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicy(Resource):
    """networking.k8s.io/v1 NetworkPolicy, enforced at L3/L4 below the sidecar by the CNI."""

    API_GROUP: ClassVar[str] = "networking.k8s.io"
    KIND: ClassVar[str] = "NetworkPolicy"
    PLURAL: ClassVar[str] = "networkpolicies"
    SPEC_INLINE: ClassVar[bool] = False

    spec: NetworkPolicySpec = field(default_factory=NetworkPolicySpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class Secret(Resource):
    """A Kubernetes Secret. The mesh reads the ones a Gateway's ``credentialName`` names: istiod
    serves them to the gateway in the same namespace over SDS (``kubernetes://<name>``).

    ``data`` values are base64 (as the API stores them), ``string_data`` values plain text (the
    API server merges them into ``data``, ``stringData`` winning); :meth:`decoded` gives the
    merged bytes. ``type`` is ``kubernetes.io/tls`` (``tls.crt``, ``tls.key``, optional
    ``ca.crt``) or ``Opaque`` (Istio's generic form: ``cert``, ``key``, ``cacert``)."""

    KIND: ClassVar[str] = "Secret"
    PLURAL: ClassVar[str] = "secrets"
    SPEC_INLINE: ClassVar[bool] = False
    IGNORED: ClassVar[frozenset[str]] = frozenset({"immutable"})

    type: str = "Opaque"
    data: FrozenMap[str, str] = field(default_factory=FrozenMap)
    string_data: FrozenMap[str, str] = field(default_factory=FrozenMap)

    def decoded(self) -> dict[str, bytes | None]:
        """Key -> bytes (``None`` where a ``data`` value is not valid base64)."""
        out: dict[str, bytes | None] = {}
        for key, value in self.data.items():
            try:
                out[key] = base64.b64decode("".join(value.split()), validate=True)
            except (binascii.Error, ValueError):
                out[key] = None
        for key, value in self.string_data.items():
            out[key] = value.encode()
        return out
