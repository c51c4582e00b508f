"""Kubernetes objects as the ``kube`` runner applies them: the lesson's own YAML, unchanged.

istiod translates the original Istio YAML on a cluster, so the runner never serialises meshplay's
typed resources: :func:`manifest_of` finds the YAML document a resource was loaded from (its
``source`` position) and applies that document, with only what ``kubectl apply`` would add (the
namespace the loader defaulted) and meshplay's labels (``app.kubernetes.io/managed-by``, which
part of a run it belongs to, the lesson and the run), by which ``meshplay cluster down`` and a
cancelled run find exactly what meshplay created.

:func:`app_manifests` is every document of an app's ``kubernetes/`` folder (kinds the mesh does
not model, such as PostgreSQL's PersistentVolumeClaim, included) with the one patch the runner
needs: each service container gets ``ADMIN_PORT`` (:data:`KNOB_PORT`), a second listener that
serves the lesson knobs and stays open while the ``refuse`` knob closes the main port.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mesh.app import App
from mesh.model import RESOURCE_KINDS
from mesh.model.common import Resource
from mesh.source.load import yaml_files
from mesh.source.yaml_nodes import RawDocument, parse_documents

__all__ = [
    "FIELD_MANAGER",
    "KNOB_PORT",
    "MANAGED_BY",
    "PART_LABEL",
    "Manifest",
    "app_manifests",
    "dump_yaml",
    "kind_info",
    "manifest_of",
    "retarget_namespace",
]

FIELD_MANAGER = "meshplay"
"""Server-side apply field manager of everything the runner applies."""
MANAGED_BY = ("app.kubernetes.io/managed-by", "meshplay")
PART_LABEL = "meshplay.dev/part"
"""Which part of a run an object belongs to: ``app``, ``lesson``, ``loadgen``, ``mesh``,
``monitoring``."""
LESSON_LABEL = "meshplay.dev/lesson"
RUN_LABEL = "meshplay.dev/run"
KNOB_PORT = 15999
"""``ADMIN_PORT`` of every service container on a cluster (outside Istio's 15000-15090 range)."""


@dataclass(frozen=True, slots=True)
class KindInfo:
    """Where the API serves a kind: its plural and whether it is namespaced."""

    plural: str
    namespaced: bool


_EXTRA_KINDS: dict[tuple[str, str], KindInfo] = {
    ("", "ConfigMap"): KindInfo("configmaps", True),
    ("", "Secret"): KindInfo("secrets", True),
    ("", "Pod"): KindInfo("pods", True),
    ("", "PersistentVolumeClaim"): KindInfo("persistentvolumeclaims", True),
    ("apps", "StatefulSet"): KindInfo("statefulsets", True),
    ("apps", "DaemonSet"): KindInfo("daemonsets", True),
    ("batch", "Job"): KindInfo("jobs", True),
    ("rbac.authorization.k8s.io", "Role"): KindInfo("roles", True),
    ("rbac.authorization.k8s.io", "RoleBinding"): KindInfo("rolebindings", True),
    ("rbac.authorization.k8s.io", "ClusterRole"): KindInfo("clusterroles", False),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): KindInfo("clusterrolebindings", False),
    ("telemetry.istio.io", "Telemetry"): KindInfo("telemetries", True),
    ("storage.k8s.io", "StorageClass"): KindInfo("storageclasses", False),
    ("networking.istio.io", "WorkloadEntry"): KindInfo("workloadentries", True),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): KindInfo(
        "customresourcedefinitions", False
    ),
}
_KINDS: dict[tuple[str, str], KindInfo] = {
    **{(c.API_GROUP, c.KIND): KindInfo(c.PLURAL, c.NAMESPACED) for c in RESOURCE_KINDS},
    **_EXTRA_KINDS,
}


def kind_info(api_version: str, kind: str) -> KindInfo:
    """Plural and scope of ``kind`` in ``api_version``'s group (KeyError when unknown)."""
    group = api_version.rpartition("/")[0]
    return _KINDS[(group, kind)]


class Manifest:
    """One Kubernetes object as JSON-shaped data, where it came from and its REST path."""

    __slots__ = ("body", "source")

    def __init__(self, body: Mapping[str, Any], source: str = "") -> None:
        # a JSON round trip, not deepcopy: no two places of the body may share one dict (a
        # label added to metadata.labels must not appear in the selector too)
        self.body: dict[str, Any] = json.loads(json.dumps(dict(body)))
        self.source = source

    @property
    def api_version(self) -> str:
        """``apiVersion``"""
        return str(self.body.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        """``kind``"""
        return str(self.body.get("kind", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        """``metadata`` (created when missing)."""
        meta = self.body.setdefault("metadata", {})
        assert isinstance(meta, dict)
        return meta

    @property
    def name(self) -> str:
        """``metadata.name``"""
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        """``metadata.namespace`` ("" for cluster-scoped kinds)."""
        return str(self.metadata.get("namespace", ""))

    @property
    def info(self) -> KindInfo:
        """Plural and scope (KeyError for a kind the runner does not know)."""
        return kind_info(self.api_version, self.kind)

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace, name), as :mod:`mesh.state` keys resources."""
        return (self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        """``Kind ns/name`` (``Kind name`` when cluster-scoped)."""
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else f"{self.kind} {self.name}"
        )

    def path(self) -> str:
        """The object's REST path, e.g. ``/apis/networking.istio.io/v1/namespaces/shop/virtualservices/product``."""
        return object_path(self.api_version, self.info, self.namespace, self.name)

    def labels(self) -> dict[str, str]:
        """``metadata.labels`` (created when missing)."""
        labels = self.metadata.setdefault("labels", {})
        assert isinstance(labels, dict)
        return labels

    def fingerprint(self) -> str:
        """A stable text of the body: equal fingerprints apply the same object."""
        return json.dumps(self.body, sort_keys=True, separators=(",", ":"))

    def yaml(self) -> str:
        """The body as block YAML (keys in their original order)."""
        return dump_yaml(self.body)

    def __repr__(self) -> str:
        return f"Manifest({self.ref})"


def object_path(api_version: str, info: KindInfo, namespace: str, name: str = "") -> str:
    """REST path of an object (or of its collection when ``name`` is empty)."""
    group, _, version = api_version.rpartition("/")
    root = f"/apis/{group}/{version}" if group else f"/api/{version}"
    scope = f"/namespaces/{namespace}" if info.namespaced and namespace else ""
    tail = f"/{name}" if name else ""
    return f"{root}{scope}/{info.plural}{tail}"


def dump_yaml(data: Any) -> str:
    """Block-style YAML, insertion order kept, long strings unfolded."""
    text: str = yaml.safe_dump(data, sort_keys=False, width=1000, allow_unicode=True)
    return text


@functools.lru_cache(maxsize=256)
def _documents(file: str, mtime_ns: int) -> tuple[RawDocument, ...]:
    text = Path(file).read_text(encoding="utf-8-sig")
    docs, _ = parse_documents(text, file)
    out: list[RawDocument] = []
    for doc in docs:
        data = doc.data
        if (
            isinstance(data, dict)
            and data.get("kind") == "List"
            and isinstance(data.get("items"), list)
        ):
            for i, item in enumerate(data["items"]):
                origin = doc.positions.get(("items", i), doc.origin)
                out.append(RawDocument(item, origin, {}, doc.index))
        elif isinstance(data, dict):
            out.append(doc)
    return tuple(out)


def raw_documents(file: str | Path) -> tuple[RawDocument, ...]:
    """The object documents of a YAML file (``kind: List`` expanded), cached per content."""
    path = Path(file)
    return _documents(str(path), path.stat().st_mtime_ns)


def manifest_of(resource: Resource) -> Manifest:
    """The YAML document ``resource`` was loaded from, with the namespace the loader gave it.

    Raises LookupError for a resource that came from no file (built in code)."""
    origin = resource.source.origin
    try:
        docs = raw_documents(origin.file)
    except OSError as exc:
        raise LookupError(f"{resource.ref}: cannot read {origin.file}: {exc}") from exc
    for doc in docs:
        if doc.origin == origin:
            manifest = Manifest(doc.data, str(origin))
            if resource.NAMESPACED:
                manifest.metadata["namespace"] = resource.namespace
            return manifest
    raise LookupError(f"{resource.ref}: no document at {origin}")


def _service_container(container: Mapping[str, Any]) -> bool:
    """A container running one of the app's Python services (``python -m services.<pkg>``)."""
    argv = [str(a) for a in (container.get("command") or [])] + [
        str(a) for a in (container.get("args") or [])
    ]
    return any(a.startswith("services.") for a in argv)


def add_knob_port(manifest: Manifest) -> Manifest:
    """A Deployment whose service containers also listen on :data:`KNOB_PORT` (``ADMIN_PORT``).

    The knob listener is reached from inside the pod (``kubectl exec``: 127.0.0.1, which Istio's
    iptables rules never capture), so neither mTLS nor a NetworkPolicy stands in its way."""
    if manifest.kind != "Deployment":
        return manifest
    out = Manifest(manifest.body, manifest.source)
    spec = out.body.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) or []:
        if not isinstance(container, dict) or not _service_container(container):
            continue
        env = container.setdefault("env", [])
        if not any(isinstance(e, dict) and e.get("name") == "ADMIN_PORT" for e in env):
            env.append({"name": "ADMIN_PORT", "value": str(KNOB_PORT)})
    return out


def app_manifests(app: App, namespace: str = "") -> list[Manifest]:
    """Every object of the app's ``kubernetes/`` folder, in file order, as the runner applies
    it: namespace defaulted to the app's, Deployments with the knob port
    (:func:`add_knob_port`), retargeted to ``namespace`` when given."""
    folder = app.path / "kubernetes"
    default_ns = app.behavior.namespace
    out = []
    for file in yaml_files(folder):
        for doc in raw_documents(file):
            manifest = Manifest(doc.data, str(doc.origin))
            try:
                namespaced = manifest.info.namespaced
            except KeyError:
                namespaced = True
            if namespaced and not manifest.namespace:
                manifest.metadata["namespace"] = default_ns
            manifest = add_knob_port(manifest)
            if namespace and namespace != default_ns:
                manifest = retarget_namespace(manifest, default_ns, namespace)
            out.append(manifest)
    return out


def stamp(manifest: Manifest, part: str, **labels: str) -> Manifest:
    """A copy labelled as meshplay's (``managed-by``, ``meshplay.dev/part``, extra labels)."""
    out = Manifest(manifest.body, manifest.source)
    out.labels().update({MANAGED_BY[0]: MANAGED_BY[1], PART_LABEL: part, **labels})
    return out


# -- --namespace: the app and the lessons in another namespace -----------------------------------

_NAMESPACE_LIST_KEYS = frozenset({"namespaces", "notNamespaces", "exportTo"})
_NAMESPACE_KEYS = frozenset({"sourceNamespace", "namespace"})


def _retarget_text(text: str, old: str, new: str) -> str:
    text = text.replace(f".{old}.svc", f".{new}.svc").replace(f"/ns/{old}/", f"/ns/{new}/")
    if re.fullmatch(rf"[a-z0-9*]([-a-z0-9]*[a-z0-9])?\.{re.escape(old)}", text):
        return text[: -len(old)] + new
    if text.startswith(f"{old}/"):  # gateway and exportTo references: "shop/gateway"
        return new + text[len(old) :]
    return text


def _retarget(value: Any, old: str, new: str, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _retarget(v, old, new, k) for k, v in value.items()}
    if isinstance(value, list):
        if key in _NAMESPACE_LIST_KEYS:
            return [new if v == old else _retarget(v, old, new) for v in value]
        return [_retarget(v, old, new) for v in value]
    if isinstance(value, str):
        if key in _NAMESPACE_KEYS and value == old:
            return new
        return _retarget_text(value, old, new)
    return value


def retarget_namespace(manifest: Manifest, old: str, new: str) -> Manifest:
    """``manifest`` moved from namespace ``old`` to ``new``: its own namespace (or the
    Namespace's name), and inside its spec the FQDNs (``.old.svc``), ``name.old`` hosts, SPIFFE
    principals (``/ns/old/``), ``old/name`` references and namespace lists that name ``old``."""
    if old == new:
        return manifest
    body = copy.deepcopy(manifest.body)
    meta = body.setdefault("metadata", {})
    if body.get("kind") == "Namespace" and meta.get("name") == old:
        meta["name"] = new
    elif meta.get("namespace") == old:
        meta["namespace"] = new
    for key in list(body):
        if key not in ("apiVersion", "kind", "metadata"):
            body[key] = _retarget(body[key], old, new)
    return Manifest(body, manifest.source)


ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io")


def is_istio(manifest: Manifest) -> bool:
    """An Istio resource (istiod reads it; ``/debug/configz`` lists it)."""
    return manifest.api_version.rpartition("/")[0] in ISTIO_GROUPS


def is_modelled(manifest: Manifest) -> bool:
    """A kind meshplay's resource model has (so it is in a lesson's state when applied)."""
    group = manifest.api_version.rpartition("/")[0]
    return any(group == c.API_GROUP and manifest.kind == c.KIND for c in RESOURCE_KINDS)


def ordered_for_apply(manifests: Iterable[Manifest]) -> list[Manifest]:
    """Namespaces and CRDs first, then accounts and config, then the rest (stable otherwise),
    as ``kubectl apply`` needs them to exist before what lives in them."""
    rank = {
        "Namespace": 0,
        "CustomResourceDefinition": 0,
        "ServiceAccount": 1,
        "ClusterRole": 1,
        "ClusterRoleBinding": 2,
        "Role": 1,
        "RoleBinding": 2,
        "ConfigMap": 1,
        "Secret": 1,
        "PersistentVolumeClaim": 1,
    }
    return sorted(manifests, key=lambda m: rank.get(m.kind, 3))
