"""Shared helpers of the analyzers: positioned diagnostics and registry lookups."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from mesh.diagnostics import Diagnostic, format_path
from mesh.model import Resource
from mesh.topology import Topology

__all__ = ["Analyzer", "Path", "diag", "of_kind", "registry_host"]

R = TypeVar("R", bound=Resource)
Path = tuple[str | int, ...]
Analyzer = Callable[[Sequence[Resource], Topology], Iterator[Diagnostic]]


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


def registry_host(topo: Topology, host: str, namespace: str) -> str | None:
    """The registry FQDN a resource's host refers to, or None if nothing in the mesh has it."""
    fqdn = topo.resolve_host(host, namespace)
    if topo.service(fqdn) is not None:
        return fqdn
    if "*" in fqdn:
        suffix = fqdn.lstrip("*")
        if any(s.hostname.endswith(suffix) for s in topo.services):
            return fqdn
    return None
