"""How much memory an Envoy holds for its configuration: a model fitted on real Envoy 1.40.

What a proxy's memory is read as: Envoy's own heap in use, ``allocated`` of its admin
``/memory`` (the gauge ``server.memory_allocated``; tcmalloc's bytes in use by the application).
``heap_size`` (what tcmalloc reserved) and the process RSS sit above it (the RSS adds the
binary's mapped code, about 60 MB that no configuration changes); Istio's dashboards chart the
container's working set, which tracks the RSS.

The model (least squares on 15 configurations, real Envoy 1.40 ``--concurrency 1`` with the
static bootstrap of each configuration as meshplay's translator builds it: the benchmark,
ecommerce and bookinfo apps' proxies with 0 to 400 extra Services, with and without
DestinationRule subsets, 8 to 408 clusters; ``benchmarks/bench_proxy_memory.py`` re-measures
and refits)::

    allocated MiB = 6.31 + 0.0763 x clusters + 0.0051 x virtual hosts

Largest error of the fit 1.3 %; re-measured after the translator's inbound filter chains grew
(every proxy ~0.14 MiB more), the shipped model is still within 2.5 % of all 15. RSS rose from 67 MB (8 clusters) to 103 MB (408 clusters), the
same ~85 KB per service as the heap. A cluster is the expensive resource (its stats, load
balancer, health and connection-pool state); a virtual host (one per service in the outbound
route tables) costs a few KB; listeners, endpoints and bytes of JSON add nothing the fit could
tell apart. The sim grades ``proxy_config`` ``memory_mb`` with this model; the local runner
reads each real Envoy's ``/memory`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.envoy.translate import ProxyConfig

__all__ = ["HEAP_MODEL", "HeapModel", "virtual_hosts"]


@dataclass(frozen=True, slots=True)
class HeapModel:
    """Envoy's heap in use (MiB) as a linear function of its configuration's size."""

    base_mb: float
    per_cluster_mb: float
    per_virtual_host_mb: float

    def allocated_mb(self, config: ProxyConfig) -> float:
        """The modelled ``/memory`` ``allocated`` of a proxy running ``config``, in MiB."""
        return (
            self.base_mb
            + self.per_cluster_mb * len(config.clusters)
            + self.per_virtual_host_mb * virtual_hosts(config)
        )


HEAP_MODEL = HeapModel(base_mb=6.31, per_cluster_mb=0.0763, per_virtual_host_mb=0.0051)
"""The fit on real Envoy 1.40 (module docstring)."""


def virtual_hosts(config: ProxyConfig) -> int:
    """Virtual hosts over all of the proxy's route configurations."""
    return sum(len(r.get("virtual_hosts", ())) for r in config.routes)
