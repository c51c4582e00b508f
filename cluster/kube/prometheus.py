"""Istio's own metrics as a cross-check of the records: ``istio_requests_total`` in Prometheus.

Every sidecar counts each request it handles in ``istio_requests_total`` (reporter ``source`` on
the client side, ``destination`` on the server side) and Prometheus scrapes them. After a run the
runner asks Prometheus (through the API server's service proxy) how many requests each edge
carried during the run and sets that beside the number of records it parsed from the access
logs: two independent paths out of the same Envoys. ``increase()`` extrapolates between scrapes,
so the counts agree within :func:`tolerance`, not exactly; a disagreement is reported, never
graded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mesh.metrics import client_side, edge_key
from mesh.records import RequestRecord

__all__ = ["CrossCheck", "compare_counts", "edge_counts", "query", "tolerance"]

Edge = tuple[str, str]


@dataclass(frozen=True, slots=True)
class CrossCheck:
    """One edge: requests in the records and in ``istio_requests_total``."""

    edge: Edge
    records: int
    metric: float

    @property
    def agrees(self) -> bool:
        """Within :func:`tolerance`."""
        return abs(self.records - self.metric) <= tolerance(self.records)

    def line(self) -> str:
        """``api-gateway->product: 400 records, istio_requests_total 396 (agrees)``"""
        verdict = "agrees" if self.agrees else "DIFFERS"
        return (f"{self.edge[0]}->{self.edge[1]}: {self.records} records, "
                f"istio_requests_total {self.metric:.0f} ({verdict})")  # fmt: skip


def tolerance(n: int) -> float:
    """How far the metric may be from ``n`` records: 10 % or 5 requests, whichever is more."""
    return max(5.0, 0.1 * n)


def edge_counts(records: Iterable[RequestRecord]) -> Counter[Edge]:
    """Requests per edge as the client saw them (the records Istio's ``reporter="source"`` or,
    for callers without a sidecar, ``reporter="destination"`` counts)."""
    return Counter(edge_key(r) for r in client_side(records))


def query(window_s: float) -> str:
    """PromQL: requests per edge in the last ``window_s`` seconds, from the same side."""
    w = max(1, math.ceil(window_s))
    return (
        "sum by (source_app, destination_service_name) "
        f'(increase(istio_requests_total{{reporter="source"}}[{w}s])) or '
        "sum by (source_app, destination_service_name) "
        f'(increase(istio_requests_total{{reporter="destination", source_workload="unknown"}}[{w}s]))'
    )


def parse_vector(result: Iterable[Mapping[str, object]]) -> dict[Edge, float]:
    """A Prometheus instant vector -> edge -> value (``source_app`` ``unknown`` is ``outside``;
    the ingress gateway is ``ingress``, as :func:`mesh.metrics.edge_key` names them)."""
    out: dict[Edge, float] = {}
    for item in result:
        labels = item.get("metric")
        value = item.get("value")
        if (
            not isinstance(labels, Mapping)
            or not isinstance(value, list | tuple)
            or len(value) != 2
        ):
            continue
        client = str(labels.get("source_app", "unknown"))
        client = {"unknown": "outside", "istio-ingressgateway": "ingress"}.get(client, client)
        edge = (client, str(labels.get("destination_service_name", "")))
        out[edge] = out.get(edge, 0.0) + float(str(value[1]))
    return out


def compare_counts(records: Mapping[Edge, int], metric: Mapping[Edge, float]) -> list[CrossCheck]:
    """Every edge the records saw, beside the metric's count (0 when Prometheus has none)."""
    return [CrossCheck(edge, n, metric.get(edge, 0.0)) for edge, n in sorted(records.items())]
