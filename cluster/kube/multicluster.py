"""Two (or more) kube contexts, one mesh: Istio's multi-primary install on different networks.

A lesson that declares ``clusters:`` (docs/multicluster.md) runs on as many kube contexts, one
per cluster, given as ``--context CLUSTER=CONTEXT``; :func:`cluster_contexts` checks that every
declared cluster has exactly one. Each context must hold what Istio's "Install Multi-Primary on
different networks" page sets up, which :func:`install_plan` writes down per context and
:func:`multicluster_problems` verifies on a live cluster before a run:

* one root of trust: a ``cacerts`` Secret in ``istio-system`` per cluster, an intermediate CA
  signed by one shared root (Istio's ``tools/certs/Makefile.selfsigned.mk``), so a workload's
  ``spiffe://cluster.local/ns/NS/sa/SA`` certificate from one cluster's istiod is trusted by the
  sidecars of every other cluster;
* the cluster's network: the ``istio-system`` Namespace labelled ``topology.istio.io/network``;
* istiod installed with ``values.global.meshID``, ``multiCluster.clusterName`` (istiod's
  ``CLUSTER_ID``) and ``network``;
* on a mesh of several networks, the east-west gateway ``istio-system/istio-eastwestgateway``
  (what ``samples/multicluster/gen-eastwest-gateway.sh --network NET`` generates: pods labelled
  ``istio: eastwestgateway`` and ``topology.istio.io/network``,
  ``ISTIO_META_REQUESTED_NETWORK_VIEW`` = its network, Service port 15443 ``tls``), and the
  ``cross-network-gateway`` Gateway (``*.local`` on 15443, ``AUTO_PASSTHROUGH``) unless the
  lesson applies it itself;
* remote secrets: ``istioctl create-remote-secret`` of every other cluster applied here
  (``istio-system/istio-remote-secret-OTHER``, labelled ``istio/multiCluster: "true"``), so this
  cluster's istiod watches the other API servers for endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cluster.kube.manifests import Manifest, dump_yaml
from mesh.lesson import Lesson
from mesh.model import Gateway
from mesh.model.multicluster import (
    EASTWEST_GATEWAY,
    EASTWEST_PORT,
    LABEL_NETWORK,
    MeshCluster,
    MultiCluster,
)
from mesh.runner import RunnerError
from mesh.state import lesson_states

__all__ = [
    "MESH_ID",
    "ContextError",
    "cluster_contexts",
    "declared_clusters",
    "eastwest_deployment",
    "install_plan",
    "lesson_exposes_services",
    "multicluster_problems",
]

MESH_ID = "mesh1"
"""``values.global.meshID`` of every cluster (one mesh)."""
REMOTE_SECRET_LABEL = ("istio/multiCluster", "true")
REMOTE_CLUSTER_ANNOTATION = "networking.istio.io/cluster"
CERT_FILES = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")


class ContextError(RunnerError):
    """The ``--context`` values do not fit the lesson (a usage error: exit 2)."""


def declared_clusters(lesson: Lesson) -> MultiCluster | None:
    """The lesson's ``clusters:`` declaration (None for a single-cluster lesson)."""
    found = [r for r in lesson.app.resources if isinstance(r, MultiCluster)]
    return found[-1] if found and found[-1].clusters else None


def cluster_contexts(lesson: Lesson, values: Sequence[str]) -> dict[str, str]:
    """Cluster name -> kube context from the ``--context`` values: ``{"": CONTEXT}`` for a
    single-cluster lesson (``""``: the kubeconfig's current context); every declared cluster
    with its own context for a multi-cluster one. ContextError says what is wrong."""
    plain = [v for v in values if "=" not in v]
    pairs: dict[str, str] = {}
    for value in values:
        if "=" not in value:
            continue
        name, _, context = value.partition("=")
        if not name or not context:
            raise ContextError(f"--context {value}: write CLUSTER=CONTEXT")
        if name in pairs and pairs[name] != context:
            raise ContextError(f"--context: cluster {name} is given twice")
        pairs[name] = context
    mc = declared_clusters(lesson)
    if mc is None:
        if pairs:
            raise ContextError(
                f"lesson {lesson.id} runs on one cluster: pass --context CONTEXT, not "
                f"CLUSTER=CONTEXT ({', '.join(sorted(pairs))})"
            )
        if len(set(plain)) > 1:
            raise ContextError(f"lesson {lesson.id} runs on one cluster: pass one --context")
        return {"": plain[0] if plain else ""}
    names = [c.name for c in mc.clusters]
    usage = " ".join(f"--context {n}=CONTEXT" for n in names)
    if plain:
        raise ContextError(
            f"lesson {lesson.id} runs on {len(names)} clusters ({', '.join(names)}): give each "
            f"its kube context, {usage}"
        )
    unknown = sorted(set(pairs) - set(names))
    if unknown:
        raise ContextError(
            f"--context {unknown[0]}=...: lesson {lesson.id} declares no cluster "
            f"{unknown[0]} (its clusters: {', '.join(names)})"
        )
    missing = [n for n in names if n not in pairs]
    if missing:
        raise ContextError(
            f"lesson {lesson.id} runs on {len(names)} clusters; no kube context for "
            f"{', '.join(missing)}: pass {' '.join(f'--context {n}=CONTEXT' for n in missing)}"
        )
    by_context: dict[str, str] = {}
    for n in names:
        other = by_context.setdefault(pairs[n], n)
        if other != n:
            raise ContextError(
                f"clusters {other} and {n} are both context {pairs[n]}: each cluster of a "
                "multi-primary mesh is its own Kubernetes cluster with its own istiod"
            )
    return {n: pairs[n] for n in names}


def lesson_exposes_services(lesson: Lesson) -> bool:
    """Some step applies a Gateway for the east-west gateway (``istio: eastwestgateway``):
    the install must not, or the lesson's first steps would not start without it."""
    return any(
        isinstance(r, Gateway) and dict(r.selector).get("istio") == "eastwestgateway"
        for state in lesson_states(lesson)
        for r in state.resources
    )


def eastwest_deployment(namespace: str = "istio-system") -> Manifest:
    """The east-west gateway's Deployment as the runner scales it (a cluster or its gateway
    going ``down``); only its name, namespace and replicas matter to ``scale``."""
    return Manifest(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": EASTWEST_GATEWAY, "namespace": namespace},
            "spec": {"replicas": 1},
        }
    )


# -- the install, written down ---------------------------------------------------------------


def _namespace(cluster: MeshCluster) -> dict[str, Any]:
    labels = {LABEL_NETWORK: cluster.network} if cluster.network else {}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "istio-system", "labels": labels}}  # fmt: skip


def _primary(cluster: MeshCluster) -> dict[str, Any]:
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "spec": {
            "values": {
                "global": {
                    "meshID": MESH_ID,
                    "multiCluster": {"clusterName": cluster.name},
                    "network": cluster.network,
                }
            }
        },
    }


def _eastwest(cluster: MeshCluster) -> dict[str, Any]:
    network = cluster.network
    labels = {"istio": "eastwestgateway", "app": EASTWEST_GATEWAY, LABEL_NETWORK: network}
    ports = [("status-port", 15021), ("tls", EASTWEST_PORT), ("tls-istiod", 15012),
             ("tls-webhook", 15017)]  # fmt: skip
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "eastwest"},
        "spec": {
            "profile": "empty",
            "components": {
                "ingressGateways": [
                    {
                        "name": EASTWEST_GATEWAY,
                        "label": labels,
                        "enabled": True,
                        "k8s": {
                            "env": [
                                {"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": network}
                            ],
                            "service": {
                                "ports": [{"name": n, "port": p, "targetPort": p} for n, p in ports]
                            },
                        },
                    }
                ]
            },
            "values": {
                "gateways": {"istio-ingressgateway": {"injectionTemplate": "gateway"}},
                "global": {"network": network},
            },
        },
    }


def _cross_network_gateway() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "cross-network-gateway", "namespace": "istio-system"},
        "spec": {
            "selector": {"istio": "eastwestgateway"},
            "servers": [
                {
                    "port": {"number": EASTWEST_PORT, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": "AUTO_PASSTHROUGH"},
                    "hosts": ["*.local"],
                }
            ],
        },
    }


def _document(data: Mapping[str, Any]) -> list[str]:
    """A YAML document of the install, indented by four spaces between ``---`` lines."""
    body = ["    " + line for line in dump_yaml(dict(data)).rstrip().splitlines()]
    return ["    ---", *body, "    ---"]


def install_plan(mc: MultiCluster, contexts: Mapping[str, str], *, exposed_by_lesson: bool,
                 app: str) -> list[str]:  # fmt: skip
    """What each context needs before a run, in order, as plan lines (the commands and the
    objects they create)."""
    names = [c.name for c in mc.clusters]
    lines = [
        "\n== install: Istio multi-primary on different networks, once per context, before the run",
        "# (istioctl and kubectl do this part, as Istio's install page does; `meshplay cluster check`",
        "#  and the run's preflight verify it; nothing here was sent to a cluster)",
        "one root of trust for every cluster (Istio's tools/certs, from the Istio release):",
        "  make -f tools/certs/Makefile.selfsigned.mk root-ca",
    ]
    lines.extend(f"  make -f tools/certs/Makefile.selfsigned.mk {n}-cacerts   "
                 f"# {n}/: an intermediate CA signed by the root" for n in names)  # fmt: skip
    for c in mc.clusters:
        ctx = contexts[c.name]
        at = f"[{c.name}: {ctx}] "
        lines.append(f"\n-- cluster {c.name}: context {ctx}, network {c.network or '(none)'}"
                     + (f", locality {c.locality}" if c.locality else ""))  # fmt: skip
        lines.append(f"{at}apply Namespace istio-system labelled {LABEL_NETWORK}={c.network}")
        lines.extend(_document(_namespace(c)))
        files = " ".join(f"--from-file={c.name}/{f}" for f in CERT_FILES)
        lines.append(f"{at}kubectl --context={ctx} -n istio-system create secret generic "
                     f"cacerts {files}")  # fmt: skip
        lines.append(f"{at}istioctl install --context={ctx} -f {c.name}.yaml   # istiod: "
                     f"cluster ID {c.name} (CLUSTER_ID), network {c.network}, mesh {MESH_ID}")  # fmt: skip
        lines.extend(_document(_primary(c)))
        if mc.multi_network and mc.gateway_cluster(c.network) == c:
            lines.append(
                f"{at}istioctl install --context={ctx} -f {c.name}-eastwest.yaml   # the "
                f"east-west gateway of {c.network} (gen-eastwest-gateway.sh --network {c.network})"
            )
            lines.extend(_document(_eastwest(c)))
            if exposed_by_lesson:
                lines.append(f"{at}(the cross-network-gateway Gateway is not installed: the "
                             "lesson applies it, to every cluster, in the step that exposes services)")  # fmt: skip
            else:
                lines.append(f"{at}apply Gateway istio-system/cross-network-gateway   # "
                             "samples/multicluster/expose-services.yaml")  # fmt: skip
                lines.extend(_document(_cross_network_gateway()))
        again = " --no-build" if c != mc.clusters[0] else ""  # built once, loaded into each
        lines.append(f"{at}meshplay cluster up --context {ctx} --app {app}{again}   # meshplay's "
                     "access-log providers and Telemetry; the app (the run places its Deployments)")  # fmt: skip
    lines.append("\nremote secrets: every istiod watches every other cluster's API server")
    for c in mc.clusters:
        for other in mc.clusters:
            if other.name == c.name:
                continue
            lines.append(
                f"[{c.name}: {contexts[c.name]}] istioctl create-remote-secret "
                f"--context={contexts[other.name]} --name={other.name} | kubectl apply -f - "
                f"--context={contexts[c.name]}   # Secret istio-system/istio-remote-secret-"
                f"{other.name}, labelled istio/multiCluster=true"
            )
    return lines


# -- the install, verified ---------------------------------------------------------------------


def _env(pod: Mapping[str, Any], container: str) -> dict[str, str]:
    for c in pod.get("spec", {}).get("containers") or []:
        if c.get("name") == container:
            return {str(e.get("name")): str(e.get("value", "")) for e in c.get("env") or []}
    return {}


def multicluster_problems(api: Any, mc: MultiCluster, cluster: MeshCluster,
                          others: Iterable[str]) -> list[str]:  # fmt: skip
    """What ``api``'s cluster lacks to be ``cluster`` of the mesh, each with its fix ([] when
    nothing). ``api`` is a :class:`~cluster.kube.api.KubeApi`."""
    ctx = str(getattr(api, "context", ""))
    problems = []
    ns = api.get("v1", "Namespace", "", "istio-system") or {}
    network = (ns.get("metadata", {}).get("labels") or {}).get(LABEL_NETWORK, "")
    if cluster.network and network != cluster.network:
        problems.append(
            f"namespace istio-system is on network {network or '(none)'}, not {cluster.network}: "
            f"kubectl --context={ctx} label namespace istio-system "
            f"{LABEL_NETWORK}={cluster.network} --overwrite"
        )
    istiods, _ = api.list("v1", "Pod", "istio-system", "app=istiod")
    ids = {_env(p, "discovery").get("CLUSTER_ID", "Kubernetes") for p in istiods}
    if istiods and ids != {cluster.name}:
        problems.append(
            f"istiod's cluster ID is {', '.join(sorted(ids))}, not {cluster.name}: istioctl "
            f"install --context={ctx} with values.global.multiCluster.clusterName={cluster.name}"
        )
    if mc.multi_network and mc.gateway_cluster(cluster.network) == cluster:
        gateway = api.get("apps/v1", "Deployment", "istio-system", EASTWEST_GATEWAY)
        if gateway is None:
            problems.append(
                f"no east-west gateway (Deployment istio-system/{EASTWEST_GATEWAY}): "
                f"samples/multicluster/gen-eastwest-gateway.sh --network {cluster.network} | "
                f"istioctl install --context={ctx} -y -f -"
            )
    secrets, _ = api.list("v1", "Secret", "istio-system", "=".join(REMOTE_SECRET_LABEL))
    watched = {
        str((s.get("metadata", {}).get("annotations") or {}).get(REMOTE_CLUSTER_ANNOTATION, ""))
        for s in secrets
    } | {str(s.get("metadata", {}).get("name", "")).removeprefix("istio-remote-secret-")
         for s in secrets}  # fmt: skip
    problems.extend(
        f"no remote secret for {other}: istioctl create-remote-secret "
        f"--context=<{other}'s context> --name={other} | kubectl apply -f - --context={ctx}"
        for other in others
        if other not in watched
    )
    return problems
