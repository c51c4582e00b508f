"""The lesson format's values: lesson.yaml decoded into frozen dataclasses.

A lesson is a folder. ``lesson.yaml`` names the app it runs on, explains the concept, and lists
steps; each step applies or deletes resources (files ``kubectl apply -f`` accepts unchanged),
changes traffic or breaks things, then states expectations with explicit bounds. Expectations are
the grader: a learner who edits the YAML is graded by the behaviour it produces.
The full format is documented in ``docs/lesson-format.md``; loading is in ``mesh.lesson.load``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mesh.app import App
from mesh.diagnostics import Diagnostic
from mesh.envoy_api.names import BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER
from mesh.model.common import FrozenMap, Resource
from mesh.model.multicluster import MeshCluster, NetworkLink
from mesh.observe.panels import Panel
from mesh.observe.rules import AlertRule

__all__ = [
    "CONFIG_MEASURES",
    "METRICS",
    "OUTCOMES",
    "PANEL_TRUTHS",
    "SPECIAL_SERVICES",
    "TRAFFIC_PROTOCOLS",
    "TRAFFIC_SCHEMES",
    "BreakAction",
    "ConfigSelector",
    "Event",
    "Expectation",
    "Lesson",
    "LessonSpec",
    "LessonStep",
    "PanelSelector",
    "RequestSpec",
    "Selector",
    "TracingSpec",
    "TrafficSpec",
    "parse_address",
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
the real Envoy on ``local``, from a model fitted on real Envoy on ``sim``
(:mod:`mesh.envoy.memory`)."""


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
    truth (a quantile from histogram buckets is an estimate within its bucket)."""

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


TRAFFIC_PROTOCOLS = ("http", "tcp")
TRAFFIC_SCHEMES = ("http", "https")
"""Values of ``traffic.protocol``."""

SPECIAL_SERVICES = (PASSTHROUGH_CLUSTER, BLACKHOLE_CLUSTER)
"""``destination_service_name`` of traffic that matched no Service (Istio's metric label):
valid as the service of an ``edge`` (``api-gateway->BlackHoleCluster``)."""


def parse_address(text: str) -> tuple[str, int] | None:
    """``"203.0.113.9:443"`` -> ``("203.0.113.9", 443)``; None when ``text`` is not an IPv4
    address with a port (a Service name, say)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    parts = host.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    return host, int(port)


REQUEST_ID_PLACEHOLDER = "${request_id}"
"""In a request header value: replaced by the request's ``x-request-id`` when it is sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSpec:
    """One kind of request in the traffic mix, chosen with probability proportional to weight."""

    YAML_KEYS: ClassVar[str] = "snake"

    method: str = "GET"
    path: str = "/"
    headers: FrozenMap[str, str] = field(default_factory=FrozenMap)
    body: str = ""
    weight: float = 1.0

    def headers_for(self, request_id: str) -> dict[str, str]:
        """The headers of one request with id ``request_id``: ``${request_id}`` in a value
        becomes that id, so ``Idempotency-Key: ${request_id}`` gives every request its own key
        (and every retry of it, which Envoy sends with the same headers, the same key)."""
        return {
            k: v.replace(REQUEST_ID_PLACEHOLDER, request_id) if "${" in v else v
            for k, v in self.headers.items()
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficSpec:
    """Load to drive during a step.

    Open loop: ``rate_rps`` Poisson arrivals. Closed loop: ``concurrency`` clients each sending the
    next request when the previous answers (like ``fortio load -c N``). Ends after ``duration_s``
    of simulated/real time or ``count`` requests, whichever comes first.

    ``protocol: tcp`` makes each "request" one TCP connection (no HTTP): the client sends
    ``send_bytes``, the server answers ``receive_bytes``, and the connection stays open for
    ``hold_s`` before the client closes it. ``to`` is then a Service name or an address
    ``IP:port`` (e.g. ``203.0.113.9:443``, a host outside the mesh).

    ``scheme: https`` (``from: ingress`` only): the client speaks TLS to the gateway with the
    Host as SNI, checking the server's certificate against the CA of the Secret
    ``ca_certificate`` names (``curl --cacert``; unset: the mesh's own CA only);
    ``client_certificate`` names a Secret whose certificate and key it presents (``curl --cert
    --key``: what a MUTUAL server asks for). ``sni`` (``protocol: tcp`` only): the
    connection opens with a TLS ClientHello naming that server (the app speaks TLS itself; its
    sidecar routes by SNI).
    """

    YAML_KEYS: ClassVar[str] = "snake"

    from_: str = "outside"
    to: str = "frontend"
    port: int | None = None
    requests: tuple[RequestSpec, ...] = ()
    rate_rps: float | None = None
    concurrency: int | None = None
    duration_s: float | None = None
    count: int | None = None
    warmup_s: float = 0.0
    timeout_s: float = 30.0
    protocol: str = "http"
    send_bytes: int = 0
    receive_bytes: int = 0
    hold_s: float = 0.0
    scheme: str = "http"
    ca_certificate: str = ""
    client_certificate: str = ""
    sni: str = ""

    @property
    def is_tcp(self) -> bool:
        """Each "request" is a TCP connection (``protocol: tcp``)."""
        return self.protocol == "tcp"

    @property
    def address(self) -> tuple[str, int] | None:
        """``(ip, port)`` when ``to`` is an ``IP:port`` address rather than a Service name."""
        return parse_address(self.to)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakAction:
    """Change a workload's behaviour (through the services' knobs on real runners)."""

    YAML_KEYS: ClassVar[str] = "snake"

    workload: str = ""
    """The Deployment name; empty with ``cluster``: every workload of that cluster."""
    cluster: str = ""
    """Only the pods placed in this cluster of a multi-cluster lesson (docs/multicluster.md)."""
    down: bool = False
    """Stop every selected pod (a whole cluster, or its east-west gateway, going away)."""
    latency_ms: float | None = None
    error_rate: float | None = None
    refuse: bool | None = None
    drop_trace_headers: bool | None = None
    """The app stops (true) or resumes (false) copying the trace headers onto its calls."""
    kill: int | None = None
    restore: bool = False

    @property
    def knobs(self) -> dict[str, float | bool]:
        """The services' knob settings this action sets (``latency_ms``, ``error_rate``,
        ``refuse``, ``drop_trace_headers``: the knob names are the field names); empty when it
        only kills or restores."""
        fields = {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "refuse": self.refuse,
            "drop_trace_headers": self.drop_trace_headers,
        }
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something that happens ``at_s`` seconds into a step's traffic."""

    YAML_KEYS: ClassVar[str] = "snake"

    at_s: float = 0.0
    apply: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    break_: tuple[BreakAction, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareTolerance:
    """How far two runners may differ on a step before ``meshplay compare`` calls it a
    disagreement, for a step whose numbers are not independent draws: e.g. a consistent hash
    pins each user to the pod their key hashes to, and which pod that is depends on the pods'
    addresses, which differ between runners. Each value is an absolute tolerance on that kind of
    proportion (0..1); unset keeps compare's default (binomial noise, at least 0.05)."""

    YAML_KEYS: ClassVar[str] = "snake"

    share: float | None = None
    success: float | None = None
    flag: float | None = None
    why: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LessonStep:
    """A step: change the mesh, drive traffic, check expectations."""

    YAML_KEYS: ClassVar[str] = "snake"

    name: str
    explain: str = ""
    apply: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    break_: tuple[BreakAction, ...] = ()
    events: tuple[Event, ...] = ()
    traffic: TrafficSpec | None = None
    expect: tuple[Expectation, ...] = ()
    runners: tuple[str, ...] = ()
    compare: CompareTolerance | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TracingSpec:
    """How the lesson's proxies trace (Istio's Telemetry ``tracing``: a provider and
    ``randomSamplingPercentage``). Only runners with real Envoys use it; the simulator derives
    spans from every request."""

    YAML_KEYS: ClassVar[str] = "snake"

    sampling: float = 100.0
    provider: str = "zipkin"


@dataclass(frozen=True, slots=True, kw_only=True)
class LessonSpec:
    """lesson.yaml as written."""

    YAML_KEYS: ClassVar[str] = "snake"

    title: str
    track: str = "traffic-management"
    level: str = "beginner"
    order: int = 0
    mirrors: str = ""
    """The Istio documentation page (task or concept) the lesson follows."""
    istio: str = ""
    """The Istio version whose behaviour the lesson's expectations are pinned to."""
    objectives: tuple[str, ...] = ()
    explanation: str = ""
    app: str = "ecommerce"
    runners: tuple[str, ...] = ("sim", "local", "kube")
    traffic: TrafficSpec | None = None
    steps: tuple[LessonStep, ...] = ()
    hints: tuple[str, ...] = ()
    alert_rules: tuple[str, ...] = ()
    """Prometheus rule files (relative to the lesson folder) whose alerts ``alert:``
    expectations name."""
    dashboards: tuple[str, ...] = ()
    """Dashboard files (Grafana's dashboard model) whose panels ``panel:`` expectations name."""
    tracing: TracingSpec | None = None
    install: tuple[str, ...] = ()
    """Files of resources installed with the mesh before the app starts (what ``istioctl
    install`` components add, e.g. an egress gateway): part of the app's starting state on every
    runner (the local runner starts their pods with the app's)."""
    clusters: tuple[MeshCluster, ...] = ()
    """Multi-cluster: the mesh's clusters and where the app's Deployments run
    (docs/multicluster.md); empty for the usual single cluster."""
    networks: tuple[NetworkLink, ...] = ()
    """Multi-cluster: the latency between the clusters' networks."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Lesson:
    """A loaded lesson: its spec, app, explanation text and the resources of every file it names."""

    id: str
    path: Path
    spec: LessonSpec
    app: App
    explanation: str
    files: FrozenMap[str, tuple[Resource, ...]]
    diagnostics: tuple[Diagnostic, ...] = ()
    rules: tuple[AlertRule, ...] = ()
    """The alerting rules of ``alert_rules``, in file order."""
    panels: tuple[Panel, ...] = ()
    """The panels of ``dashboards``, in file order."""
    rule_files: tuple[Path, ...] = ()
    """The files of ``alert_rules`` as loaded (an exercise's ``workspace/...`` in the learner's
    workspace): what a real Prometheus is given."""

    @property
    def title(self) -> str:
        """The lesson title."""
        return self.spec.title

    @property
    def steps(self) -> tuple[LessonStep, ...]:
        """The steps in order."""
        return self.spec.steps

    def traffic_of(self, step: LessonStep) -> TrafficSpec:
        """The step's traffic, falling back to the lesson's default."""
        traffic = step.traffic or self.spec.traffic
        if traffic is None:
            return TrafficSpec(requests=(RequestSpec(),), rate_rps=20.0, duration_s=10.0)
        return traffic

    def resources_of(self, file: str) -> tuple[Resource, ...]:
        """The resources of a file the lesson names (relative to the lesson folder)."""
        return self.files[file]
