"""PromQL on the ``kube`` runner: the cluster's own Prometheus answers a lesson's ``promql:`` and
``alert:`` expectations.

On a cluster every sidecar's ``istio.stats`` filter counts Istio's standard metrics, and the
cluster's Prometheus (Istio's addon: Service ``istio-system/prometheus``, port 9090, scraping
every 15 s) stores them. The runner asks it in one of two ways:

* through the API server's service proxy
  (``/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/query``): nothing to
  set up, the kubeconfig's credentials are enough (:class:`ServiceProxyPrometheus`);
* at a URL the user gives (``--prometheus-url``, e.g. after ``kubectl -n istio-system
  port-forward svc/prometheus 9090``): a plain :class:`~cluster.prometheus.PrometheusClient`.

A step's window runs from its graded traffic's start (after the warm-up) to a moment after the
scrape that saw its end: the traffic's end plus ``Timeouts.scrape_s`` (the executor waits for it
before grading). ``$__range`` stands for that window, as on every runner; ``increase()`` over a
15 s scrape grid extrapolates, so counts agree with the records within a scrape's worth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from cluster.kube.api import KubeApi, KubeError
from cluster.kube.live import LiveCluster
from cluster.kube.prometheus import CrossCheck, compare_counts, parse_vector
from cluster.kube.prometheus import query as prometheus_query
from cluster.prometheus import PrometheusClient
from mesh.observe.istio_metrics import Labels
from mesh.observe.query import QueryError, QueryResult

__all__ = ["PlanStepMetrics", "ServiceProxyPrometheus", "cross_check", "prometheus_client"]


class ServiceProxyPrometheus(PrometheusClient):
    """A Prometheus Service's HTTP API reached through the API server's service proxy."""

    def __init__(self, api: KubeApi, namespace: str, name: str, port: int = 9090) -> None:
        self.api = api
        self.base = f"/api/v1/namespaces/{namespace}/services/{name}:{port}/proxy"
        self.where = f"Prometheus {namespace}/{name}"
        super().__init__(f"{api.server}{self.base}")

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path`` of Prometheus' API (QueryError when the API server or Prometheus
        refuses: bad PromQL comes back as Prometheus' own 400 message)."""
        try:
            out = self.api.request("GET", self.base + path, query=list((params or {}).items()))
        except KubeError as exc:
            raise QueryError(f"{self.where} through the API server: {exc}") from exc
        if not isinstance(out, dict):
            raise QueryError(f"{self.where} answered {out!r}")
        if out.get("status") == "error":
            raise QueryError(f"{self.where}: {out.get('error', 'error')}")
        return out

    def ready(self) -> bool:
        """Its Service answers a trivial query."""
        try:
            self._get("/api/v1/query", {"query": "1"})
        except QueryError:
            return False
        return True


class PlanStepMetrics:
    """A dry run's step metrics: each question is written into the plan (``$__range`` as
    written: the step's graded window), and answered with no data (nothing was sent to a
    cluster)."""

    def __init__(self, note: Any, index: int, range_s: float, where: str) -> None:
        self.note = note
        self.index = index
        self.range_s = range_s
        self.where = where

    def query(self, expr: str) -> QueryResult:
        """Noted; no data."""
        text = " ".join(expr.split())
        self.note(f"ask {self.where} at the end of step {self.index + 1}: {text}")
        return QueryResult("vector", (), {"resultType": "vector", "result": []})

    def query_range(
        self, expr: str, span_s: float, step_s: float
    ) -> dict[Labels, list[tuple[float, float]]]:
        """Noted; no data."""
        text = " ".join(expr.split())
        self.note(
            f"ask {self.where} every {step_s:g}s over the last {span_s:g}s of step "
            f"{self.index + 1}: {text}"
        )
        return {}


def prometheus_client(api: KubeApi, url: str = "") -> PrometheusClient | None:
    """The Prometheus that grades a run: at ``url`` when given (``--prometheus-url``), else
    the cluster's own through the API server; None when the cluster has none."""
    if url:
        return PrometheusClient(url)
    from cluster.kube.admin import find_prometheus

    found = find_prometheus(api)
    return None if found is None else ServiceProxyPrometheus(api, *found)


def cross_check(
    cluster: LiveCluster,
    counts: Counter[tuple[str, str]],
    span: tuple[float, float],
    scrape_s: float,
    report: Callable[[str], None],
    *,
    clock: Any,
) -> list[CrossCheck]:
    """The records' count per edge beside ``istio_requests_total`` over the run's traffic
    ``span``, asked once Prometheus has scraped its end (``clock``: the ``time`` module, or a
    stand-in); each reported, none graded. [] without a Prometheus."""
    start, end = span
    wait = end + scrape_s - clock.time()
    try:
        if not cluster.has_prometheus():
            return []
        if wait > 0:
            clock.sleep(wait)
        now = clock.time()
        result = cluster.prometheus(prometheus_query(now - start + 5.0), now)
    except KubeError as exc:
        report(f"metrics cross-check skipped: {exc}")
        return []
    if result is None:
        return []
    checks = compare_counts(counts, parse_vector(result))
    for check in checks:
        report(f"istio_requests_total cross-check: {check.line()}")
    return checks
