"""The load generator pod of one step: where its traffic enters the mesh, and who it is.

``from: <workload>`` (say ``api-gateway``): the pod stands in for that workload. It carries the
workload's pod labels (``app``, ``version``) and service account, gets a sidecar, and sends to the
Service's cluster name (``product.shop.svc.cluster.local:8080``, Host ``product:8080``), so its
requests leave through a sidecar with the caller's identity: the same SPIFFE principal for an
AuthorizationPolicy, the same labels for a NetworkPolicy or a VirtualService ``sourceLabels``, the
same ``source_app`` in the records. Its readiness probe never passes, so the pod is never an
endpoint of the workload's Service and receives nothing.

``from: outside``: a pod without a sidecar (``sidecar.istio.io/inject: "false"``) that sends to
each ready pod of the Service in turn (pod IP and target port, keep-alive per pod, as the local
runner does); ``from: ingress``: the same, to the ingress gateway's Service with Host ``to``.

The program is the project's own generator (:mod:`cluster.kube.loadgen`) in the app's image;
``holdApplicationUntilProxyStarts`` keeps it from sending before its sidecar has its config.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cluster.kube.loadgen import ENV_VAR, GeneratorJob
from cluster.kube.manifests import LESSON_LABEL, PART_LABEL, RUN_LABEL, Manifest, stamp
from cluster.local.traffic import Target
from mesh.lesson import TrafficSpec
from mesh.runner import RunnerError, StepPlan

__all__ = [
    "CONTAINER",
    "IMPERSONATES",
    "LOADGEN_IMAGE",
    "GeneratorEvent",
    "generator_pod",
    "parse_event",
    "uses_tokens",
]

LOADGEN_IMAGE = "meshplay/ecommerce:0.1"
"""meshplay's services image (``services/Dockerfile``), which holds the load generator too."""
CONTAINER = "loadgen"
IMPERSONATES = "meshplay.dev/impersonates"
"""Annotation: the Deployment a generator pod stands in for."""
INGRESS_HOST = "istio-ingressgateway.istio-system.svc.cluster.local"


TOKEN_SERVICE = "user"
"""The app's service that issues ``${jwt:...}`` tokens (as on the local runner)."""


def service_ports(
    manifests: Iterable[Manifest], namespace: str
) -> dict[str, list[tuple[int, int]]]:
    """Service name -> (port, targetPort) pairs of the Services in ``namespace``."""
    out: dict[str, list[tuple[int, int]]] = {}
    for m in manifests:
        if m.kind == "Service" and m.namespace == namespace:
            out[m.name] = [
                (int(p["port"]), target_port(p)) for p in m.body.get("spec", {}).get("ports") or []
            ]
    return out


def step_job(
    plan: StepPlan,
    namespace: str,
    ports: Mapping[str, Sequence[tuple[int, int]]],
    endpoints: Sequence[str],
) -> GeneratorJob:
    """The generator's job for one step: its traffic, targets, seed and token service."""
    spec = plan.traffic
    targets = service_targets(spec, namespace, ports, endpoints)
    token_url = ""
    if uses_tokens(spec):
        port = (list(ports.get(TOKEN_SERVICE, ())) or [(8080, 8080)])[0][0]
        token_url = f"http://{TOKEN_SERVICE}.{namespace}.svc.cluster.local:{port}"
    return GeneratorJob(spec, targets, plan.seed, token_url)


def uses_tokens(spec: TrafficSpec) -> bool:
    """Whether a request header asks for ``${jwt:...}``."""
    return any("${jwt:" in v for r in spec.requests for v in r.headers.values())


def generator_pod(
    *,
    name: str,
    namespace: str,
    job: GeneratorJob,
    image: str,
    client: Mapping[str, Any] | None,
    run_id: str,
    lesson_id: str,
) -> Manifest:
    """The Pod that drives ``job``; ``client`` is the Deployment it stands in for (None: a
    caller outside the mesh, without a sidecar)."""
    labels: dict[str, str] = {}
    annotations = {"proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}'}
    service_account = "default"
    if client is not None:
        template = client.get("spec", {}).get("template", {})
        labels.update(
            {k: str(v) for k, v in (template.get("metadata", {}).get("labels") or {}).items()}
        )
        service_account = str(template.get("spec", {}).get("serviceAccountName") or "default")
        annotations[IMPERSONATES] = str(client.get("metadata", {}).get("name", ""))
        annotations["sidecar.istio.io/inject"] = "true"
    else:
        annotations["sidecar.istio.io/inject"] = "false"
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": service_account,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": CONTAINER,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-m", "cluster.kube.loadgen"],
                    "env": [{"name": ENV_VAR, "value": job.to_json()}],
                    "readinessProbe": {
                        "exec": {"command": ["false"]},
                        "periodSeconds": 3600,
                    },
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"},
                        "limits": {"cpu": "1", "memory": "256Mi"},
                    },
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "allowPrivilegeEscalation": False,
                    },
                }
            ],
        },
    }
    return stamp(Manifest(body), "loadgen", **{RUN_LABEL: run_id, LESSON_LABEL: lesson_id})


def is_generator(pod: Mapping[str, Any]) -> bool:
    """A pod the runner started to drive traffic."""
    return (pod.get("metadata", {}).get("labels") or {}).get(PART_LABEL) == "loadgen"


def service_targets(
    spec: TrafficSpec,
    namespace: str,
    ports: Mapping[str, Sequence[tuple[int, int]]],
    endpoints: Sequence[str] = (),
) -> tuple[Target, ...]:
    """Where the step's requests go. ``ports``: Service name -> (port, targetPort) pairs;
    ``endpoints``: the ready pod IPs of Service ``to`` (for ``from: outside``)."""
    address = spec.address
    if address is not None:
        return (Target(address[0], address[1], ""),)
    if spec.from_ == "ingress":
        return (Target(INGRESS_HOST, spec.port or 80, spec.to),)
    pairs = ports.get(spec.to)
    if not pairs:
        raise RunnerError(f'traffic goes to "{spec.to}", which is not a Service of the app')
    chosen = next((p for p in pairs if p[0] == spec.port), None) if spec.port else pairs[0]
    if chosen is None:
        raise RunnerError(f"service {spec.to} has no port {spec.port}")
    port, target_port = chosen
    authority = f"{spec.to}:{port}"
    if spec.from_ == "outside":
        if not endpoints:
            raise RunnerError(f"service {spec.to} has no ready pod")
        return tuple(Target(ip, target_port, authority) for ip in endpoints)
    return (Target(f"{spec.to}.{namespace}.svc.cluster.local", port, authority),)


class GeneratorEvent:
    """One line the generator wrote: ``started``, ``progress``, ``done`` or ``error``."""

    __slots__ = ("data", "kind")

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.data = data

    def number(self, key: str) -> float:
        """A numeric field (0 when absent)."""
        value = self.data.get(key, 0)
        return float(value) if isinstance(value, int | float) else 0.0


def parse_event(line: str) -> GeneratorEvent | None:
    """The event on a log line of the generator (None for other output)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        return None
    return GeneratorEvent(data["event"], data)


def target_port(port: dict[str, Any]) -> int:
    """A Service port's numeric targetPort (a named one is taken to equal the port, as in the
    apps meshplay ships)."""
    target = port.get("targetPort", port["port"])
    return int(target) if str(target).isdigit() else int(port["port"])


def traffic_bound_s(plan: StepPlan) -> float:
    """How long the generator may take before the runner gives up on it."""
    spec = plan.traffic
    duration = spec.duration_s
    if duration is None:
        duration = (
            (spec.count or 0) / spec.rate_rps
            if spec.rate_rps
            else (spec.count or 1) * spec.timeout_s
        )
    return min(duration, 3600.0) + spec.timeout_s + 60.0
