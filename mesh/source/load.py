"""Load what ``kubectl apply -f`` takes: files, folders (recursively), ``-`` for stdin, with
multi-document YAML and ``kind: List``. Every problem becomes a diagnostic; nothing raises.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.diagnostics import Diagnostic, Level, did_you_mean, format_path
from mesh.model import RESOURCE_KINDS
from mesh.model.common import FrozenMap, ObjectMeta, Resource, SourceMap, SourcePosition
from mesh.source.decode import MISSING, Decoder, type_name
from mesh.source.yaml_nodes import RawDocument, parse_documents

__all__ = ["LoadResult", "load_paths", "load_text", "yaml_files"]

YAML_SUFFIXES = (".yaml", ".yml", ".json")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_METADATA_FIELDS = {"name", "namespace", "labels", "annotations"}
_METADATA_BOOKKEEPING = {
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "selfLink",
    "generateName",
}
NO_MESH_EFFECT_KINDS = frozenset({
    "ConfigMap", "PersistentVolumeClaim", "PersistentVolume", "StorageClass",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "Role", "RoleBinding", "ClusterRole",
    "ClusterRoleBinding", "ResourceQuota", "LimitRange", "PriorityClass", "Job", "CronJob",
})  # fmt: skip
"""Kubernetes kinds that do not change what the mesh does with a request."""
NOT_MODELLED_KINDS = frozenset({
    "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Endpoints", "EndpointSlice", "Ingress",
    "WorkloadEntry", "WorkloadGroup", "Telemetry", "ProxyConfig", "WasmPlugin",
})  # fmt: skip
"""Kinds that affect the mesh but that meshplay does not model yet."""
NOT_MODELLED_GROUPS = frozenset(
    {"gateway.networking.k8s.io", "telemetry.istio.io", "extensions.istio.io"}
)
_KINDS: dict[str, type[Resource]] = {cls.KIND: cls for cls in RESOURCE_KINDS}
_LATEST: dict[str, str] = {cls.KIND: cls.API_VERSIONS[0] for cls in RESOURCE_KINDS}


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Resources in input order, and every diagnostic found while loading them."""

    resources: tuple[Resource, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        """Only the diagnostics at error level."""
        return tuple(d for d in self.diagnostics if d.severity is Level.ERROR)

    @property
    def ok(self) -> bool:
        """No errors (warnings and infos allowed)."""
        return not self.errors


def yaml_files(path: Path) -> list[Path]:
    """The YAML/JSON files under a folder, recursively, in a stable order."""
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES)


def load_paths(paths: Iterable[str | Path], default_namespace: str = "default") -> LoadResult:
    """Load files, folders and ``-`` (stdin) as ``kubectl apply -f`` would, then check duplicates."""
    resources: list[Resource] = []
    diagnostics: list[Diagnostic] = []
    for raw in paths:
        if str(raw) == "-":
            texts: list[tuple[str, str | None]] = [("<stdin>", sys.stdin.read())]
        else:
            path = Path(raw)
            if path.is_dir():
                files = yaml_files(path)
                if not files:
                    diagnostics.append(
                        Diagnostic(
                            "MPY1005", f"no .yaml, .yml or .json files in {path}", file=str(path)
                        )
                    )
                texts = [(str(f), _read(f, diagnostics)) for f in files]
            else:
                texts = [(str(path), _read(path, diagnostics))]
        for name, text in texts:
            if text is None:
                continue
            result = load_text(text, name, default_namespace, check_duplicates=False)
            resources.extend(result.resources)
            diagnostics.extend(result.diagnostics)
    diagnostics.extend(_duplicates(resources))
    return LoadResult(tuple(resources), tuple(sorted(diagnostics, key=Diagnostic.sort_key)))


def _read(path: Path, diagnostics: list[Diagnostic]) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        diagnostics.append(
            Diagnostic(
                "MPY1006",
                f"cannot read file: {exc.strerror or exc}",
                file=str(path),
                hint="check the path and permissions",
            )
        )
        return None
    if b"\x00" in data:
        diagnostics.append(
            Diagnostic(
                "MPY1006",
                "the file is binary, not YAML text",
                file=str(path),
                line=1,
                column=1,
                hint="pass Kubernetes/Istio YAML manifests only",
            )
        )
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        diagnostics.append(
            Diagnostic(
                "MPY1006",
                f"the file is not UTF-8 text (byte {exc.start})",
                file=str(path),
                line=line,
                column=1,
                hint="save it as UTF-8",
            )
        )
        return None


def load_text(
    text: str,
    file: str = "<memory>",
    default_namespace: str = "default",
    *,
    check_duplicates: bool = True,
) -> LoadResult:
    """Load every resource of a (multi-document) YAML text."""
    docs, diagnostics = parse_documents(text, file)
    resources: list[Resource] = []
    if not docs and not diagnostics:
        diagnostics.append(
            Diagnostic("MPY1005", "no resources in this input", file=file, line=1, column=1)
        )
    for doc in docs:
        resources.extend(_decode_document(doc, default_namespace, diagnostics))
    if check_duplicates:
        diagnostics.extend(_duplicates(resources))
    return LoadResult(tuple(resources), tuple(sorted(diagnostics, key=Diagnostic.sort_key)))


def _decode_document(
    doc: RawDocument, default_namespace: str, diagnostics: list[Diagnostic]
) -> list[Resource]:
    data = doc.data
    source = SourceMap(doc.origin, doc.positions)
    at = doc.origin
    if not isinstance(data, dict):
        diagnostics.append(
            Diagnostic(
                "MPY1002",
                f"document {doc.index} is a {type_name(data)}, not a resource",
                file=at.file,
                line=at.line,
                column=at.column,
                hint="a resource is a mapping with apiVersion, kind, metadata and spec",
            )
        )
        return []
    kind = data.get("kind")
    if kind == "List" and isinstance(data.get("items"), list):
        out: list[Resource] = []
        for i, item in enumerate(data["items"]):
            positions = {p[2:]: pos for p, pos in doc.positions.items() if p[:2] == ("items", i)}
            origin = doc.positions.get(("items", i), doc.origin)
            sub = RawDocument(item, origin, positions, doc.index)
            out.extend(_decode_document(sub, default_namespace, diagnostics))
        return out
    missing = [k for k in ("apiVersion", "kind") if not isinstance(data.get(k), str)]
    if missing:
        diagnostics.append(
            Diagnostic(
                "MPY1002",
                f"document {doc.index} has no {' or '.join(missing)}",
                file=at.file,
                line=at.line,
                column=at.column,
                hint="every manifest starts with apiVersion: and kind:",
            )
        )
        return []
    api_version: str = data["apiVersion"]
    assert isinstance(kind, str)
    cls = _KINDS.get(kind)
    group, _, version = api_version.rpartition("/")
    if cls is None and kind in NO_MESH_EFFECT_KINDS:
        pos = source.position(("kind",))
        diagnostics.append(
            Diagnostic(
                "MPY2004",
                f"{kind} has no effect on the mesh; ignored",
                file=pos.file,
                line=pos.line,
                column=pos.column,
                resource=f"{kind} {_metadata_name(data)}",
            )
        )
        return []
    if cls is None and (kind in NOT_MODELLED_KINDS or group in NOT_MODELLED_GROUPS):
        pos = source.position(("kind",))
        diagnostics.append(
            Diagnostic(
                "MPY2005",
                f"{kind} ({api_version}) is not modelled by meshplay yet; sim and local ignore it",
                file=pos.file,
                line=pos.line,
                column=pos.column,
                resource=f"{kind} {_metadata_name(data)}",
                hint="the kube runner applies it as-is",
            )
        )
        return []
    if cls is None:
        pos = source.position(("kind",))
        hint = did_you_mean(kind, _KINDS) or f"meshplay loads: {', '.join(sorted(_KINDS))}"
        diagnostics.append(
            Diagnostic(
                "MPY1003",
                f'unknown kind "{kind}" ({api_version})',
                file=pos.file,
                line=pos.line,
                column=pos.column,
                hint=hint,
            )
        )
        return []
    if group != cls.API_GROUP or version not in cls.API_VERSIONS:
        pos = source.position(("apiVersion",))
        wanted = ", ".join(f"{cls.API_GROUP}/{v}".lstrip("/") for v in cls.API_VERSIONS)
        diagnostics.append(
            Diagnostic(
                "MPY1003",
                f'{kind} is not served as "{api_version}"',
                file=pos.file,
                line=pos.line,
                column=pos.column,
                hint=f"use apiVersion {wanted}",
            )
        )
        return []
    name = _metadata_name(data)
    ref = (
        f"{kind} {name}"
        if not cls.NAMESPACED
        else f"{kind} {_namespace(data, default_namespace)}/{name}"
    )
    schema_code = "IST0106" if cls.API_GROUP.endswith("istio.io") else "MPY1010"
    decoder = Decoder(source, ref, schema_code)
    metadata = _decode_metadata(decoder, data.get("metadata"), cls, default_namespace)
    if version != cls.API_VERSIONS[0]:
        decoder.report(
            "MPY1009",
            ("apiVersion",),
            f'apiVersion "{api_version}" is older than {group}/{cls.API_VERSIONS[0]}',
            f"use apiVersion {group}/{cls.API_VERSIONS[0]}",
        )
    if metadata is None:
        diagnostics.extend(decoder.diagnostics)
        return []
    extra = {"metadata": metadata, "api_version": api_version, "source": source}
    if cls.SPEC_INLINE:
        for key in data:
            if key not in {"apiVersion", "kind", "metadata", "spec", "status"}:
                decoder.error(
                    (key,),
                    f'unknown top-level field "{key}"',
                    'Istio resources keep their settings under "spec:"',
                    key=True,
                )
        spec = data.get("spec", {})
        if spec is None:
            spec = {}
        decoded = decoder.dataclass(cls, spec, ("spec",), extra)
    else:
        body = {
            k: v for k, v in data.items() if k not in {"apiVersion", "kind", "metadata", "status"}
        }
        decoded = decoder.dataclass(cls, body, (), extra)
    diagnostics.extend(decoder.diagnostics)
    if decoded is MISSING:
        return []
    assert isinstance(decoded, Resource)
    return [decoded]


def _metadata_name(data: dict[str, Any]) -> str:
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else "<unnamed>"


def _namespace(data: dict[str, Any], default_namespace: str) -> str:
    meta = data.get("metadata")
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    return ns if isinstance(ns, str) and ns else default_namespace


def _decode_metadata(
    decoder: Decoder, meta: Any, cls: type[Resource], default_namespace: str
) -> ObjectMeta | None:
    path = ("metadata",)
    if not isinstance(meta, dict):
        decoder.report(
            "MPY1002",
            path if meta is not None else (),
            "metadata must be a mapping with at least a name"
            if meta is not None
            else "missing metadata",
            "add a metadata: mapping with a name:",
        )
        return None
    for key in meta:
        if key not in _METADATA_FIELDS and key not in _METADATA_BOOKKEEPING:
            decoder.error(
                (*path, str(key)),
                f'unknown metadata field "{key}"',
                did_you_mean(str(key), _METADATA_FIELDS),
                key=True,
            )
    name = meta.get("name")
    ok = True
    if not isinstance(name, str) or not name:
        decoder.report("MPY1002", path, "metadata.name is required", "add a name: under metadata")
        ok = False
    elif not _DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        decoder.report(
            "MPY1007",
            (*path, "name"),
            f'metadata.name "{name}" is not a valid DNS-1123 name',
            "use lower-case letters, digits, '-' and '.'; start and end alphanumeric",
        )
        ok = False
    namespace = meta.get("namespace", "")
    if namespace is None:
        namespace = ""
    if not isinstance(namespace, str):
        decoder.error((*path, "namespace"), f"expected a string, got {type_name(namespace)}")
        ok = False
        namespace = ""
    elif namespace and not _DNS1123_LABEL.match(namespace):
        decoder.report(
            "MPY1007",
            (*path, "namespace"),
            f'namespace "{namespace}" is not a valid DNS-1123 label',
            "use lower-case letters, digits and '-'",
        )
        ok = False
    labels = decoder.decode(FrozenMap[str, str], meta.get("labels") or {}, (*path, "labels"))
    annotations = decoder.decode(
        FrozenMap[str, str], meta.get("annotations") or {}, (*path, "annotations")
    )
    if not ok or labels is MISSING or annotations is MISSING:
        return None
    assert isinstance(name, str)
    if cls.NAMESPACED:
        namespace = namespace or default_namespace
    return ObjectMeta(name=name, namespace=namespace, labels=labels, annotations=annotations)


def _duplicates(resources: Sequence[Resource]) -> list[Diagnostic]:
    seen: dict[tuple[str, str, str], Resource] = {}
    out: list[Diagnostic] = []
    for r in resources:
        key = (r.KIND, r.namespace, r.name)
        first = seen.get(key)
        if first is None:
            seen[key] = r
            continue
        pos: SourcePosition = r.source.origin
        out.append(
            Diagnostic(
                "MPY1004",
                f"defined twice; the first definition is at {first.source.origin}",
                file=pos.file,
                line=pos.line,
                column=pos.column,
                resource=r.ref,
                path=format_path(("metadata", "name")),
                hint="rename one of them or delete the duplicate",
            )
        )
    return out
