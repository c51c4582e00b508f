"""The lesson format's values: lesson.yaml decoded into frozen dataclasses.

A lesson is a folder. ``lesson.yaml`` names the app it runs on, explains the concept, and lists
steps; each step applies or deletes resources (files ``kubectl apply -f`` accepts unchanged),
changes traffic or breaks things, then states expectations with explicit bounds. Expectations are
the grader: a learner who edits the YAML is graded by the behaviour it produces.
The full format is documented in ``docs/lesson-format.md``; loading is in ``mesh.lesson.load``.
This module holds the lesson, its steps and breaks; expectations are in ``mesh.lesson.expectation``
and traffic in ``mesh.lesson.traffic`` (their names are re-exported here).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mesh.app import App
from mesh.diagnostics import Diagnostic
from mesh.lesson.expectation import (
    CONFIG_MEASURES,
    METRICS,
    OUTCOMES,
    PANEL_TRUTHS,
    ConfigSelector,
    Expectation,
    PanelSelector,
    Selector,
)
from mesh.lesson.traffic import (
    REQUEST_ID_PLACEHOLDER,
    SPECIAL_SERVICES,
    TRAFFIC_PROTOCOLS,
    TRAFFIC_SCHEMES,
    RequestSpec,
    TrafficSpec,
    parse_address,
)
from mesh.model.common import FrozenMap, Resource
from mesh.model.multicluster import MeshCluster, NetworkLink
from mesh.observe.panels import Panel
from mesh.observe.rules import AlertRule

__all__ = [
    "CONFIG_MEASURES",
    "METRICS",
    "OUTCOMES",
    "PANEL_TRUTHS",
    "REQUEST_ID_PLACEHOLDER",
    "SPECIAL_SERVICES",
    "TRAFFIC_PROTOCOLS",
    "TRAFFIC_SCHEMES",
    "BreakAction",
    "CompareTolerance",
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
