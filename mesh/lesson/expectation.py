"""A lesson step's expectations: the metrics a step can measure and how records are selected.

An :class:`Expectation` names one metric (``share``, ``success_rate``, ``promql``, ``panel``,
``proxy_config``, ...) with explicit bounds; record metrics select access-log records with a
:class:`Selector`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mesh.model.common import FrozenMap

__all__ = [
    "CONFIG_MEASURES",
    "METRICS",
    "OUTCOMES",
    "PANEL_TRUTHS",
    "ConfigSelector",
    "Expectation",
    "PanelSelector",
    "Selector",
]

METRICS: dict[str, str] = {
    "share": "fraction of the selected requests that reached the given version/subset/workload",
    "success_rate": "fraction of requests answered with a 2xx/3xx status (4xx, 5xx, local replies fail)",
    "error_rate": "1 - success_rate: fraction answered with a 4xx/5xx status or no answer",
    "rate": "fraction of requests with the given status, response flag and/or outcome",
    "count": "number of matching requests",
    "rps": "matching requests per second of traffic",
    "latency_p50_ms": "median duration in milliseconds",
    "latency_p99_ms": "99th-percentile duration in milliseconds",
    "latency_mean_ms": "mean duration in milliseconds",
    "attempts_mean": "mean upstream attempts per request (1 = no retries)",
    "promql": "a PromQL expression answering one number at the end of the step ($__range: the step)",
    "alert": "1 when the named alerting rule fires at the end of the step, else 0",
    "panel": "what one panel of the lesson's dashboards shows at the end of the step, compared "
    "with the truth measured from the records",
    "proxy_config": "size of one workload's Envoy configuration as istiod sends it (clusters, "
    "listeners, routes, endpoints or bytes) in the step's mesh state, its pods with a proxy, or "
    "the proxy's memory (memory_mb)",
}

OUTCOMES: tuple[str, ...] = ("ok", "degraded", "failed")
"""Values of a selector's ``outcome``."""
CONFIG_MEASURES = ("clusters", "listeners", "routes", "endpoints", "bytes", "proxies", "memory_mb")
"""What ``proxy_config`` counts: resources of one xDS type, or the size of them all in bytes
(compact JSON, as ``istioctl proxy-config all -o json`` would print them without spaces); or
``proxies``, how many of the workload's pods run an Envoy at all (0 for a workload injection
skipped, e.g. ``sidecar.istio.io/inject: "false"``: nothing of the mesh configures it); or
``memory_mb``, the proxy's heap in use (Envoy's admin ``/memory`` ``allocated``, MiB): read from
the real Envoy on ``local``, through ``pilot-agent request GET memory`` on ``kube``, from a model
fitted on real Envoy on ``sim`` (:mod:`mesh.envoy.memory`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Which records an expectation looks at.

    ``edge`` is ``client->service`` (the client is a workload's ``app`` label, ``outside`` for the
    load generator or ``ingress`` for the ingress gateway). ``version``/``subset``/``workload``
    narrow the destination; ``status``/``flag``/``outcome`` define what ``rate`` counts;
    ``reporter`` picks the client (``source``, default) or server (``destination``) side record.

    ``header`` keeps the requests that carried these request headers on this hop (the headers
    every access log records, :data:`mesh.records.LOGGED_REQUEST_HEADERS`); ``user`` keeps the
    requests made for one user: those carrying ``end-user: USER`` and every other hop of the same
    ``x-request-id`` (the page request whose session the app turned into that header).
    ``outcome`` is the end-to-end outcome of the request as its caller got it: ``failed`` (not
    2xx/3xx), ``degraded`` (2xx/3xx although a call made for it failed: the app answered with
    partial content) or ``ok``.
    """

    YAML_KEYS: ClassVar[str] = "snake"

    edge: str = ""
    service: str = ""
    version: str = ""
    subset: str = ""
    workload: str = ""
    path: str = ""
    method: str = ""
    status: int | None = None
    status_class: str = ""
    flag: str = ""
    reporter: str = "source"
    header: FrozenMap[str, str] = field(default_factory=FrozenMap)
    user: str = ""
    outcome: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigSelector:
    """Which proxy's configuration a ``proxy_config`` expectation measures, and what of it: the
    first pod of ``workload`` (a Deployment of the app, or ``istio-ingressgateway``, the gateway
    every Istio install adds), and one of :data:`CONFIG_MEASURES`. Graded on the
    configuration meshplay's translator builds for the step's mesh state, which every runner
    applies (the local runner's Envoys load exactly it)."""

    YAML_KEYS: ClassVar[str] = "snake"

    workload: str
    measure: str = "clusters"


PANEL_TRUTHS = ("error_rate", "success_rate", "rate", "rps", "latency_p50_ms", "latency_p99_ms",
                "latency_mean_ms")  # fmt: skip
"""The record metrics a ``panel`` expectation may take its truth from."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PanelSelector:
    """Which panel of the lesson's ``dashboards`` a ``panel`` expectation reads, and the truth
    it must show: the panel titled ``title``; of its answer, the one series whose labels include
    ``series`` (``{destination_version: v1}`` for a panel split by version); ``truth`` names a
    record metric (:data:`PANEL_TRUTHS`) measured over the records ``of`` selects. The panel
    passes when it shows the truth within the expectation's ``tolerance`` plus ``ratio`` of the
    truth (a latency quantile's truth is what Prometheus' ``histogram_quantile`` makes of the
    records' durations in Istio's buckets: a panel can show nothing finer)."""

    YAML_KEYS: ClassVar[str] = "snake"

    title: str
    series: FrozenMap[str, str] = field(default_factory=FrozenMap)
    truth: str = ""
    of: Selector = field(default_factory=Selector)
    ratio: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """One measured value and its bounds; exactly one metric key is set."""

    YAML_KEYS: ClassVar[str] = "snake"

    ONEOF: ClassVar[tuple[tuple[str, ...], ...]] = (tuple(METRICS),)

    share: Selector | None = None
    success_rate: Selector | None = None
    error_rate: Selector | None = None
    rate: Selector | None = None
    count: Selector | None = None
    rps: Selector | None = None
    latency_p50_ms: Selector | None = None
    latency_p99_ms: Selector | None = None
    latency_mean_ms: Selector | None = None
    attempts_mean: Selector | None = None
    promql: str | None = None
    alert: str | None = None
    proxy_config: ConfigSelector | None = None
    panel: PanelSelector | None = None
    baseline: Selector | None = None
    """A record metric only: the same metric measured over the records this selects, in the same
    step, is subtracted (the cost of a sidecar: p50 with it minus p50 without it, interleaved in
    one run, so the machine's own speed cancels out)."""
    between: tuple[float, ...] = ()
    at_least: float | None = None
    at_most: float | None = None
    equals: float | None = None
    tolerance: float = 0.0
    why: str = ""

    @property
    def metric(self) -> str:
        """The metric this expectation measures."""
        return next(name for name in METRICS if getattr(self, name) is not None)

    @property
    def selector(self) -> Selector:
        """The selector of the metric (an empty one for ``promql`` and ``alert``, which select
        with PromQL)."""
        value = getattr(self, self.metric)
        return value if isinstance(value, Selector) else Selector()

    @property
    def on_metrics(self) -> bool:
        """Graded from the run's Prometheus metrics (``promql``, ``alert``), not its records."""
        return self.promql is not None or self.alert is not None or self.panel is not None

    @property
    def bounds(self) -> tuple[float, float]:
        """Inclusive [low, high] accepted range."""
        low, high = float("-inf"), float("inf")
        if self.between:
            low, high = self.between[0], self.between[1]
        if self.at_least is not None:
            low = max(low, self.at_least)
        if self.at_most is not None:
            high = min(high, self.at_most)
        if self.equals is not None:
            low, high = self.equals - self.tolerance, self.equals + self.tolerance
        return low, high

    def describe(self) -> str:
        """``share(product v2) in [0.07, 0.13]``-style text."""
        sel = self.selector
        if self.promql is not None:
            parts = [" ".join(self.promql.split())]
        elif self.proxy_config is not None:
            parts = [self.proxy_config.workload, self.proxy_config.measure]
        elif self.panel is not None:
            return self._describe_panel(self.panel)
        elif self.alert is not None:
            parts = [self.alert]
        else:
            parts = self._selector_parts(sel)
        if self.baseline is not None:
            base = " ".join(self._selector_parts(self.baseline))
            parts = [f"{' '.join(parts)}) - {self.metric}({base}"]
        low, high = self.bounds
        if low == high:
            bound = f"= {low:g}"
        elif low == float("-inf"):
            bound = f"<= {high:g}"
        elif high == float("inf"):
            bound = f">= {low:g}"
        else:
            bound = f"in [{low:g}, {high:g}]"
        return f"{self.metric}({' '.join(parts)}) {bound}"

    def _describe_panel(self, panel: PanelSelector) -> str:
        """``panel("Error ratio" destination_version=v1) ~ error_rate(order->payment) +- 0.05``"""
        parts = [f'"{panel.title}"', *(f"{k}={v}" for k, v in sorted(panel.series.items()))]
        truth = " ".join(self._selector_parts(panel.of))
        spread = [f"{self.tolerance:g}"] if self.tolerance or not panel.ratio else []
        if panel.ratio:
            spread.append(f"{panel.ratio:.0%}")
        return f"panel({' '.join(parts)}) ~ {panel.truth}({truth}) +- {' + '.join(spread)}"

    @staticmethod
    def _selector_parts(sel: Selector) -> list[str]:
        parts = [p for p in (sel.edge, sel.service, sel.workload, sel.version, sel.subset) if p]
        if sel.status is not None:
            parts.append(f"status={sel.status}")
        if sel.status_class:
            parts.append(f"status={sel.status_class}")
        if sel.flag:
            parts.append(f"flag={sel.flag}")
        if sel.path:
            parts.append(sel.path)
        if sel.outcome:
            parts.append(f"outcome={sel.outcome}")
        if sel.user:
            parts.append(f"user={sel.user}")
        parts += [f"{k}:{v}" for k, v in sorted(sel.header.items())]
        if sel.reporter != "source":
            parts.append(f"reporter={sel.reporter}")
        return parts
