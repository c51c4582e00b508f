"""Shared helpers of the analyzers: positioned diagnostics, Go-style formatting of message
arguments, and the host registry as ``istioctl analyze`` sees it.

istioctl fills its message templates with Go's ``fmt``: ``%q`` quotes a string, ``%v`` of a list
prints ``[a b]``, and label selectors print as ``k=v,k2=v2`` sorted by key. The helpers here do
the same so a message reads exactly as istioctl prints it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mesh.diagnostics import Diagnostic, format_path
from mesh.model import Resource, Service, ServiceEntry
from mesh.topology import Pod, ProxyKind, Topology

__all__ = [
    "Analyzer",
    "Path",
    "Registry",
    "RegistryEntry",
    "diag",
    "go_list",
    "go_quote",
    "host_matches",
    "in_mesh",
    "is_istio_control_plane",
    "labels_match",
    "of_kind",
    "resource_name_from_host",
    "selector_string",
    "to_fqdn",
]

R = TypeVar("R", bound=Resource)
Path = tuple[str | int, ...]
Analyzer = Callable[[Sequence[Resource], Topology], Iterator[Diagnostic]]

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"


def diag(code: str, r: Resource, path: Path, message: str, hint: str = "") -> Diagnostic:
    """A diagnostic at ``path`` of resource ``r`` (its file:line:col from the source map)."""
    pos = r.source.position(path)
    return Diagnostic(
        code, message, file=pos.file, line=pos.line, column=pos.column, resource=r.ref,
        path=format_path(path), hint=hint,
    )  # fmt: skip


def of_kind(resources: Iterable[Resource], kind: type[R]) -> list[R]:
    """The resources of one kind, in input order."""
    return [r for r in resources if isinstance(r, kind)]


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string: double quotes, backslash escapes."""
    return json.dumps(text, ensure_ascii=False)


def go_list(items: Iterable[object]) -> str:
    """Go's ``%v`` of a slice: ``[a b c]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def selector_string(labels: Mapping[str, str]) -> str:
    """A label selector as Kubernetes prints it: ``k=v,k2=v2``, sorted by key."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` contain every ``key=value`` of ``selector`` (empty matches all)."""
    return all(labels.get(k) == v for k, v in selector.items())


def in_mesh(pod: Pod) -> bool:
    """A pod with an Istio proxy (sidecar or gateway): what policies can apply to."""
    return pod.proxy is not ProxyKind.NONE


def is_istio_control_plane(r: Resource) -> bool:
    """istioctl skips resources labelled ``istio`` or ``release: istio`` in some analyzers."""
    labels = r.metadata.labels
    return "istio" in labels or labels.get("release") == "istio"


def to_fqdn(namespace: str, host: str, suffix: str = "svc.cluster.local") -> str:
    """istioctl's host -> FQDN rule: only a name without dots (and not a wildcard) is expanded
    with the resource's namespace; ``reviews.default`` stays as written."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{suffix}"


def resource_name_from_host(
    default_namespace: str, host: str, suffix: str = "svc.cluster.local"
) -> tuple[str, str]:
    """(namespace, name) of a Kubernetes service host: ``name.ns.svc.cluster.local`` -> (ns,
    name); anything else is a name in ``default_namespace`` (how istioctl keys subsets)."""
    tail = "." + suffix
    if host.endswith(tail):
        name, dot, namespace = host[: -len(tail)].rpartition(".")
        if dot and name and namespace:
            return namespace, name
    return default_namespace, host


def host_matches(a: str, b: str) -> bool:
    """Istio's ``host.Name.Matches``: equal names, or one wildcard (``*.x``) covering the other."""
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild and b_wild:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if a_wild:
        return b.endswith(a[1:])
    if b_wild:
        return a.endswith(b[1:])
    return a == b


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A host as istioctl's analyzers see it: a ServiceEntry, or a Service seen as one."""

    resource: Resource
    ports: tuple[int, ...]
    workload_selector: Mapping[str, str] | None


class Registry:
    """istioctl's scoped host map (``InitServiceEntryHostMap`` + ``GetDestinationHost``).

    Every ServiceEntry host and every Service FQDN is keyed by ``(scope, fqdn)`` where the scope
    is ``*`` or a namespace it is exported to. A lookup from a resource in namespace N tries the
    ``*`` scope, then N (or the resource's own exportTo namespaces), then wildcard ServiceEntry
    hosts visible from N.
    """

    def __init__(self, resources: Sequence[Resource], suffix: str = "svc.cluster.local") -> None:
        self.suffix = suffix
        self._map: dict[tuple[str, str], RegistryEntry] = {}
        for se in of_kind(resources, ServiceEntry):
            selector = se.workload_selector.labels if se.workload_selector is not None else None
            entry = RegistryEntry(se, tuple(p.number for p in se.ports), selector)
            for host in se.hosts:
                for scope in _scopes(se.export_to, se.namespace):
                    self._map[(scope, to_fqdn(se.namespace, host, suffix))] = entry
        for svc in of_kind(resources, Service):
            entry = RegistryEntry(svc, tuple(p.port for p in svc.spec.ports), None)
            raw = svc.metadata.annotations.get(EXPORT_TO_ANNOTATION, "")
            export_to = tuple(ns.strip() for ns in raw.split(",")) if raw else ()
            for scope in _scopes(export_to, svc.namespace):
                self._map[(scope, to_fqdn(svc.namespace, svc.name, suffix))] = entry

    def lookup(self, namespace: str, export_to: Sequence[str], host: str) -> RegistryEntry | None:
        """The entry a host written in a resource of ``namespace`` refers to, or None."""
        fqdn = to_fqdn(namespace, host, self.suffix)
        found = self._map.get(("*", fqdn))
        if found is not None:
            return found
        scopes = [namespace if e == "." else e for e in export_to] or [namespace]
        for scope in scopes:
            found = self._map.get((scope, fqdn))
            if found is not None:
                return found
        bare = host.removeprefix("*")
        for (scope, se_host), entry in self._map.items():
            if se_host.startswith("*") and scope in ("*", namespace) and bare.endswith(se_host[1:]):
                return entry
        return None


def _scopes(export_to: Sequence[str], namespace: str) -> list[str]:
    if not export_to or "*" in export_to:
        return ["*"]
    return sorted({namespace if e == "." else e for e in export_to})
