"""Fast registry lookups for the translator (what istiod keeps as indexes in its push context).

:class:`~mesh.topology.Topology` answers "which pods does this selector pick" and "which service
is this host" by scanning; translating for a thousand services asks those questions thousands of
times. :class:`Registry` answers them from dictionaries built once, with the same results.
"""

from __future__ import annotations

from collections.abc import Mapping

from mesh.topology import MeshService, Pod, Topology

__all__ = ["Registry"]


class Registry:
    """Indexed view of a Topology: hosts, label selectors, services of a pod."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._by_host = {s.hostname: s for s in topology.services}
        self._by_label: dict[tuple[str, str, str], set[int]] = {}
        self._by_namespace: dict[str, set[int]] = {}
        for i, pod in enumerate(topology.pods):
            self._by_namespace.setdefault(pod.namespace, set()).add(i)
            for key, value in pod.labels.items():
                self._by_label.setdefault((pod.namespace, key, value), set()).add(i)
        self._resolved: dict[tuple[str, str], str] = {}
        self._selected: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Pod, ...]] = {}
        self._services_of: dict[tuple[str, str], list[MeshService]] = {}
        for service in topology.services:
            if service.from_service_entry or not service.selector:
                continue
            for pod in self.endpoints(service):
                self._services_of.setdefault((pod.namespace, pod.name), []).append(service)

    def service(self, hostname: str) -> MeshService | None:
        """The service with this FQDN."""
        return self._by_host.get(hostname)

    def resolve_host(self, host: str, namespace: str) -> str:
        """:meth:`Topology.resolve_host`, memoized."""
        key = (host, namespace)
        found = self._resolved.get(key)
        if found is None:
            found = host if host in self._by_host else self.topology.resolve_host(host, namespace)
            self._resolved[key] = found
        return found

    def select(self, namespace: str, labels: Mapping[str, str]) -> tuple[Pod, ...]:
        """Pods in ``namespace`` whose labels contain ``labels`` (in topology order)."""
        key = (namespace, tuple(sorted(labels.items())))
        found = self._selected.get(key)
        if found is None:
            candidates = set(self._by_namespace.get(namespace, ()))
            for k, v in key[1]:
                candidates &= self._by_label.get((namespace, k, v), set())
                if not candidates:
                    break
            found = tuple(self.topology.pods[i] for i in sorted(candidates))
            self._selected[key] = found
        return found

    def endpoints(
        self, service: MeshService, subset_labels: Mapping[str, str] | None = None
    ) -> tuple[Pod, ...]:
        """:meth:`Topology.endpoints`, indexed."""
        if service.from_service_entry or not service.selector:
            return ()
        labels = dict(service.selector)
        if subset_labels:
            labels.update(subset_labels)
            if any(service.selector.get(k, v) != v for k, v in subset_labels.items()):
                return ()
        return self.select(service.namespace, labels)

    def services_of(self, pod: Pod) -> tuple[MeshService, ...]:
        """:meth:`Topology.services_of`, indexed."""
        return tuple(self._services_of.get((pod.namespace, pod.name), ()))
