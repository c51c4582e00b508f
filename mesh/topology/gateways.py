"""The Istio gateways an install adds (ingress, east-west): a service account, a LoadBalancer
Service and a one-replica Deployment of ``istio-proxy`` pods running as routers (no app), as
``istioctl install`` and ``gen-eastwest-gateway.sh`` lay them out in ``istio-system``."""

from __future__ import annotations

from mesh.model import Deployment, FrozenMap, ObjectMeta, Resource, Service, ServiceAccount
from mesh.model.kubernetes import (
    Container,
    ContainerPort,
    DeploymentSpec,
    KubeServicePort,
    LabelSelector,
    PodSpec,
    PodTemplateSpec,
    ServiceSpec,
    TemplateMeta,
)

__all__ = ["gateway_resources"]


def gateway_resources(
    name: str, labels: FrozenMap[str, str], ports: tuple[tuple[str, int, int], ...]
) -> tuple[Resource, ...]:
    """Gateway ``name`` in ``istio-system``: its pods carry ``labels``; its Service exposes
    ``ports`` (name, port, the pods' target port)."""
    ns = "istio-system"
    return (
        ServiceAccount(metadata=ObjectMeta(name=f"{name}-service-account", namespace=ns)),
        Service(
            metadata=ObjectMeta(name=name, namespace=ns, labels=labels),
            spec=ServiceSpec(
                selector=labels,
                type="LoadBalancer",
                ports=tuple(KubeServicePort(name=n, port=p, target_port=t) for n, p, t in ports),
            ),
        ),
        Deployment(
            metadata=ObjectMeta(name=name, namespace=ns, labels=labels),
            spec=DeploymentSpec(
                replicas=1,
                selector=LabelSelector(match_labels=labels),
                template=PodTemplateSpec(
                    metadata=TemplateMeta(
                        labels=labels, annotations=FrozenMap({"meshplay.dev/proxy": "router"})
                    ),
                    spec=PodSpec(
                        service_account_name=f"{name}-service-account",
                        containers=(
                            Container(
                                name="istio-proxy",
                                image="docker.io/istio/proxyv2",
                                ports=tuple(ContainerPort(container_port=t) for _, _, t in ports),
                            ),
                        ),
                    ),
                ),
            ),
        ),
    )
