"""``meshplay cluster check|up|down``: get a cluster ready for lessons, and clean it up.

``check`` is the preflight a user reads: each finding says what was found and, when something is
missing, the command that fixes it. ``up`` builds the services image (docker), puts it where the
nodes find it (a kind cluster's nodes, or a registry the user names), merges meshplay's
access-log providers into the mesh config, applies the app, the Telemetry resource and
(optionally) the monitoring stack, and waits until every pod and sidecar is ready. ``down``
deletes exactly what meshplay applied (its ``app.kubernetes.io/managed-by=meshplay`` label, on
objects whose managed fields name the ``meshplay`` field manager) and takes the providers out of
the mesh config again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.kube.api import KubeApi, KubeError
from cluster.kube.layout import istio_manifests, monitoring_manifests
from cluster.kube.live import LiveCluster, Timeouts
from cluster.kube.manifests import (
    _KINDS,
    FIELD_MANAGER,
    MANAGED_BY,
    Manifest,
    app_manifests,
    object_path,
    stamp,
)
from cluster.kube.telemetry import (
    ISTIO_NAMESPACE,
    TELEMETRY_NAME,
    has_providers,
    merge_mesh_config,
    unmerge_mesh_config,
)
from mesh.app import App
from mesh.runner import RunnerError

__all__ = ["ISTIO_CRDS", "Finding", "check", "down", "require_ready", "up"]

ISTIO_CRDS = (
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "gateways.networking.istio.io",
    "serviceentries.networking.istio.io",
    "sidecars.networking.istio.io",
    "peerauthentications.security.istio.io",
    "authorizationpolicies.security.istio.io",
    "requestauthentications.security.istio.io",
    "telemetries.telemetry.istio.io",
)
PROMETHEUS_PLACES = ((ISTIO_NAMESPACE, "prometheus"), ("monitoring", "prometheus"))


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of ``meshplay cluster check``: ok or not, what, and the fix."""

    ok: bool
    what: str
    fix: str = ""
    required: bool = True

    def line(self) -> str:
        """``✔ what`` / ``✘ what  (fix: ...)``; an optional miss is ``-``."""
        mark = "\u2714" if self.ok else ("\u2718" if self.required else "-")
        return f"{mark} {self.what}" + (
            f"\n    fix: {self.fix}" if self.fix and not self.ok else ""
        )


def _istiod_version(pod: dict[str, Any]) -> str:
    for c in pod.get("spec", {}).get("containers") or []:
        image = str(c.get("image", ""))
        if ":" in image.rsplit("/", 1)[-1]:
            return image.rsplit(":", 1)[1]
    return "unknown version"


def check(api: KubeApi, namespace: str) -> list[Finding]:
    """Every preflight finding about the cluster behind ``api`` (the API must answer)."""
    out = [
        Finding(
            True, f"API server {api.server} (context {api.context}), Kubernetes {api.version()}"
        )
    ]
    cluster = LiveCluster(api, namespace)
    istiod = cluster.istiod()
    install = "istioctl install -f cluster/kube/manifests/ecommerce/istio/istio-operator.yaml -y"
    if istiod is None:
        out.append(
            Finding(
                False, f"istiod: no running pod labelled app=istiod in {ISTIO_NAMESPACE}", install
            )
        )
    else:
        out.append(
            Finding(True, f"istiod {istiod['metadata']['name']} ({_istiod_version(istiod)})")
        )
    crds, _ = api.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    names = {c.get("metadata", {}).get("name") for c in crds}
    missing = [c for c in ISTIO_CRDS if c not in names]
    out.append(
        Finding(
            not missing,
            "Istio CRDs" + (f": missing {', '.join(missing)}" if missing else " present"),
            install,
        )
    )
    ns = api.get("v1", "Namespace", "", namespace)
    labels = (ns or {}).get("metadata", {}).get("labels") or {}
    injected = labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels
    if ns is None:
        out.append(
            Finding(False, f"namespace {namespace} does not exist yet", "meshplay cluster up")
        )
    else:
        out.append(
            Finding(
                injected,
                f"namespace {namespace}: sidecar injection {'enabled' if injected else 'not enabled'}",
                f"kubectl label namespace {namespace} istio-injection=enabled --overwrite",
            )
        )
    mesh = api.get("v1", "ConfigMap", ISTIO_NAMESPACE, "istio")
    mesh_yaml = str((mesh or {}).get("data", {}).get("mesh", ""))
    ok = bool(mesh_yaml) and has_providers(mesh_yaml)
    out.append(
        Finding(
            ok,
            "mesh config: meshplay's JSON access-log providers " + ("present" if ok else "missing"),
            "meshplay cluster up (or istioctl install -f the IstioOperator above)",
        )
    )
    telemetry = None
    if "telemetries.telemetry.istio.io" in names:
        telemetry = api.get("telemetry.istio.io/v1", "Telemetry", ISTIO_NAMESPACE, TELEMETRY_NAME)
    out.append(
        Finding(
            telemetry is not None,
            f"Telemetry {ISTIO_NAMESPACE}/{TELEMETRY_NAME} (access logs on)",
            "kubectl apply -k cluster/kube/manifests/ecommerce/istio",
        )
    )
    classes, _ = api.list("storage.k8s.io/v1", "StorageClass")
    default = [
        c["metadata"]["name"]
        for c in classes
        if (c.get("metadata", {}).get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class"
        )
        == "true"
    ]
    out.append(
        Finding(
            bool(default),
            "default StorageClass "
            + (default[0] if default else "none (postgres-data stays Pending)"),
            "install a volume provisioner (kind, minikube and k3d ship one)",
            required=False,
        )
    )
    prom = find_prometheus(api)
    out.append(
        Finding(
            prom is not None,
            f"Prometheus: {prom[0]}/{prom[1]}"
            if prom
            else "Prometheus: not found (the metrics cross-check is skipped)",
            "meshplay cluster up --monitoring",
            required=False,
        )
    )
    return out


def find_prometheus(api: KubeApi) -> tuple[str, str] | None:
    """(namespace, name) of a Prometheus Service (None when there is none)."""
    for namespace, name in PROMETHEUS_PLACES:
        try:
            if api.get("v1", "Service", namespace, name) is not None:
                return namespace, name
        except KubeError as exc:
            if exc.status == 0:
                raise
    return None


def require_ready(api: KubeApi, namespace: str) -> None:
    """RunnerError listing what the cluster lacks for a lesson run (with the fixes)."""
    try:
        findings = check(api, namespace)
    except KubeError as exc:
        raise RunnerError(f"no Kubernetes cluster: {exc}") from exc
    bad = [f for f in findings if f.required and not f.ok and "does not exist yet" not in f.what]
    if bad:
        raise RunnerError(
            "the cluster is not ready for meshplay:\n" + "\n".join(f.line() for f in bad)
        )


def up(
    api: KubeApi,
    app: App,
    namespace: str,
    *,
    monitoring: bool = False,
    image: str = "",
    report: Callable[[str], None] = print,
    timeouts: Timeouts | None = None,
) -> list[Manifest]:
    """Mesh config, app, Telemetry (and monitoring) applied and ready; what was applied.
    ``image`` replaces the services' image (a pushed registry copy)."""
    mesh = api.get("v1", "ConfigMap", ISTIO_NAMESPACE, "istio")
    if mesh is None:
        raise RunnerError(
            f"no ConfigMap {ISTIO_NAMESPACE}/istio: is Istio installed? (meshplay cluster check)"
        )
    data = mesh.get("data") or {}
    merged = merge_mesh_config(str(data.get("mesh", "")))
    if merged != data.get("mesh"):
        api.request(
            "PATCH",
            f"/api/v1/namespaces/{ISTIO_NAMESPACE}/configmaps/istio",
            body={"data": {"mesh": merged}},
            content_type="application/merge-patch+json",
            query=[("fieldManager", FIELD_MANAGER)],
        )
        report(f"mesh config: added meshplay's access-log providers to {ISTIO_NAMESPACE}/istio")
    manifests = [stamp(m, "app") for m in app_manifests(app, namespace)]
    if image:
        manifests = [_with_image(m, image) for m in manifests]
    manifests += [stamp(m, "mesh") for m in istio_manifests(namespace)]
    if monitoring:
        manifests += [stamp(m, "monitoring") for m in monitoring_manifests()]
    cluster = LiveCluster(api, namespace, timeouts, report)
    cluster.apply(manifests)
    report(f"applied {len(manifests)} objects (field manager {FIELD_MANAGER})")
    cluster.wait_rollout([m for m in manifests if m.kind == "Deployment"])
    report("every Deployment is rolled out and every pod's istio-proxy is ready")
    return manifests


def _with_image(m: Manifest, image: str) -> Manifest:
    if m.kind != "Deployment":
        return m
    out = Manifest(m.body, m.source)
    for c in out.body["spec"]["template"]["spec"].get("containers") or []:
        if str(c.get("image", "")).startswith("meshplay/"):
            c["image"] = image
    return out


def _owned(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata", {})
    labels = meta.get("labels") or {}
    managers = {f.get("manager") for f in meta.get("managedFields") or []}
    return labels.get(MANAGED_BY[0]) == MANAGED_BY[1] and (
        not managers or FIELD_MANAGER in managers
    )


_DOWN_ORDER: Sequence[tuple[str, str]] = (
    ("v1", "Pod"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "Sidecar"),
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("security.istio.io/v1", "RequestAuthentication"),
    ("telemetry.istio.io/v1", "Telemetry"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("v1", "Namespace"),
)


def down(api: KubeApi, report: Callable[[str], None] = print) -> int:
    """Delete every object meshplay applied (label and field manager), and meshplay's mesh
    config providers; the number of objects deleted."""
    selector = f"{MANAGED_BY[0]}={MANAGED_BY[1]}"
    deleted = 0
    for api_version, kind in _DOWN_ORDER:
        info = _KINDS[(api_version.rpartition("/")[0], kind)]
        try:
            out = api.request(
                "GET", object_path(api_version, info, ""), query=[("labelSelector", selector)]
            )
        except KubeError as exc:
            if exc.status == 404:  # the kind is not served (no Istio CRDs)
                continue
            raise
        for obj in (out or {}).get("items") or []:
            if not _owned(obj):
                continue
            meta = obj["metadata"]
            if api.delete(api_version, kind, meta.get("namespace", ""), meta["name"]):
                deleted += 1
                report(
                    f"deleted {kind} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}{meta['name']}"
                )
    mesh = api.get("v1", "ConfigMap", ISTIO_NAMESPACE, "istio")
    if mesh is not None:
        text = str((mesh.get("data") or {}).get("mesh", ""))
        if has_providers(text):
            api.request(
                "PATCH",
                f"/api/v1/namespaces/{ISTIO_NAMESPACE}/configmaps/istio",
                body={"data": {"mesh": unmerge_mesh_config(text)}},
                content_type="application/merge-patch+json",
                query=[("fieldManager", FIELD_MANAGER)],
            )
            report(
                f"mesh config: removed meshplay's access-log providers from {ISTIO_NAMESPACE}/istio"
            )
    return deleted


def repo_root() -> Path:
    """The repository root (where ``services/Dockerfile`` is)."""
    return Path(__file__).resolve().parents[2]
