"""The lesson format: ``lesson.yaml`` plus plain Istio/Kubernetes YAML files.

A lesson is a folder. ``lesson.yaml`` names the app it runs on, explains the concept, and lists
steps; each step applies or deletes resources (files ``kubectl apply -f`` accepts unchanged),
changes traffic or breaks things, then states expectations with explicit bounds. Expectations are
the grader: a learner who edits the YAML is graded by the behaviour it produces.
The full format is documented in ``docs/lesson-format.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mesh.app import App, load_app
from mesh.diagnostics import Diagnostic, DiagnosticError, Level, did_you_mean, format_path
from mesh.model.common import FrozenMap, Resource, SourceMap
from mesh.model.kubernetes import Deployment, Service
from mesh.source.decode import MISSING, Decoder
from mesh.source.load import load_paths
from mesh.source.yaml_nodes import parse_documents

__all__ = [
    "METRICS",
    "BreakAction",
    "Event",
    "Expectation",
    "Lesson",
    "LessonStep",
    "RequestSpec",
    "Selector",
    "TrafficSpec",
    "find_lessons",
    "load_lesson",
]

METRICS: dict[str, str] = {
    "share": "fraction of the selected requests that reached the given version/subset/workload",
    "success_rate": "fraction of requests answered with a non-5xx status",
    "error_rate": "fraction of requests answered with a 5xx status",
    "rate": "fraction of requests with the given status and/or response flag",
    "count": "number of matching requests",
    "rps": "matching requests per second of traffic",
    "latency_p50_ms": "median duration in milliseconds",
    "latency_p99_ms": "99th-percentile duration in milliseconds",
    "latency_mean_ms": "mean duration in milliseconds",
    "attempts_mean": "mean upstream attempts per request (1 = no retries)",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Which records an expectation looks at.

    ``edge`` is ``client->service`` (the client is a workload's ``app`` label, ``outside`` for the
    load generator or ``ingress`` for the ingress gateway). ``version``/``subset``/``workload``
    narrow the destination; ``status``/``flag`` define what ``rate`` counts; ``reporter`` picks the
    client (``source``, default) or server (``destination``) side record.
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
        """The selector of the metric."""
        value = getattr(self, self.metric)
        assert isinstance(value, Selector)
        return value

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
        parts = [p for p in (sel.edge, sel.service, sel.workload, sel.version, sel.subset) if p]
        if sel.status is not None:
            parts.append(f"status={sel.status}")
        if sel.status_class:
            parts.append(f"status={sel.status_class}")
        if sel.flag:
            parts.append(f"flag={sel.flag}")
        if sel.path:
            parts.append(sel.path)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSpec:
    """One kind of request in the traffic mix, chosen with probability proportional to weight."""

    YAML_KEYS: ClassVar[str] = "snake"

    method: str = "GET"
    path: str = "/"
    headers: FrozenMap[str, str] = field(default_factory=FrozenMap)
    body: str = ""
    weight: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficSpec:
    """Load to drive during a step.

    Open loop: ``rate_rps`` Poisson arrivals. Closed loop: ``concurrency`` clients each sending the
    next request when the previous answers (like ``fortio load -c N``). Ends after ``duration_s``
    of simulated/real time or ``count`` requests, whichever comes first.
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


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakAction:
    """Change a workload's behaviour (through the services' knobs on real runners)."""

    YAML_KEYS: ClassVar[str] = "snake"

    workload: str
    latency_ms: float | None = None
    error_rate: float | None = None
    refuse: bool | None = None
    kill: int | None = None
    restore: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something that happens ``at_s`` seconds into a step's traffic."""

    YAML_KEYS: ClassVar[str] = "snake"

    at_s: float = 0.0
    apply: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    break_: tuple[BreakAction, ...] = ()


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


@dataclass(frozen=True, slots=True, kw_only=True)
class LessonSpec:
    """lesson.yaml as written."""

    YAML_KEYS: ClassVar[str] = "snake"

    title: str
    track: str = "traffic-management"
    level: str = "beginner"
    order: int = 0
    objectives: tuple[str, ...] = ()
    explanation: str = ""
    app: str = "ecommerce"
    runners: tuple[str, ...] = ("sim", "local", "kube")
    traffic: TrafficSpec | None = None
    steps: tuple[LessonStep, ...] = ()
    hints: tuple[str, ...] = ()


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


def find_lessons(root: Path) -> list[Path]:
    """Lesson folders under ``root`` (folders with a lesson.yaml), sorted by name."""
    return sorted(p.parent for p in root.glob("*/lesson.yaml"))


def _apps_root(lesson_dir: Path) -> Path:
    for parent in (lesson_dir.parent, *lesson_dir.parents):
        if (parent / "apps").is_dir():
            return parent / "apps"
    return lesson_dir.parent / "apps"


def load_lesson(path: Path | str) -> Lesson:
    """Load a lesson folder (or its lesson.yaml), the app it names and every file it refers to.

    Raises DiagnosticError listing every error found; warnings are kept on ``Lesson.diagnostics``.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    file = folder / "lesson.yaml"
    shown = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiagnosticError(
            [Diagnostic("MPY4002", f"cannot read lesson: {exc}", file=shown)]
        ) from exc
    docs, diagnostics = parse_documents(text, shown)
    if not docs:
        if not diagnostics:
            diagnostics.append(
                Diagnostic("MPY4001", "empty lesson.yaml", file=shown, line=1, column=1)
            )
        raise DiagnosticError(diagnostics)
    doc = docs[0]
    source = SourceMap(doc.origin, doc.positions)
    decoder = Decoder(source, f"Lesson {folder.name}", "MPY4001")
    spec = decoder.dataclass(LessonSpec, doc.data, ())
    diagnostics.extend(decoder.diagnostics)
    if spec is MISSING:
        raise DiagnosticError(diagnostics)

    explanation = spec.explanation
    if explanation.endswith(".md") and "\n" not in explanation:
        md = folder / explanation
        if md.is_file():
            explanation = md.read_text(encoding="utf-8")
        else:
            pos = source.position(("explanation",))
            diagnostics.append(
                Diagnostic(
                    "MPY4002",
                    f'explanation file "{explanation}" not found',
                    file=pos.file,
                    line=pos.line,
                    column=pos.column,
                    resource=f"Lesson {folder.name}",
                )
            )

    app_dir = _apps_root(folder) / spec.app
    app: App | None = None
    if not (app_dir / "behavior.yaml").is_file():
        pos = source.position(("app",))
        known = sorted(p.name for p in app_dir.parent.glob("*/behavior.yaml"))
        diagnostics.append(
            Diagnostic(
                "MPY4002",
                f'app "{spec.app}" not found: no {app_dir}/behavior.yaml',
                file=pos.file,
                line=pos.line,
                column=pos.column,
                resource=f"Lesson {folder.name}",
                hint=did_you_mean(spec.app, known) or f"apps: {', '.join(known) or 'none'}",
            )
        )
    else:
        try:
            app = load_app(app_dir)
        except DiagnosticError as exc:  # the app's own problems, at their own file:line
            diagnostics.extend(exc.diagnostics)

    files: dict[str, tuple[Resource, ...]] = {}
    for i, step in enumerate(spec.steps):
        refs: list[tuple[tuple[str | int, ...], str]] = []
        refs += [(("steps", i, "apply", j), f) for j, f in enumerate(step.apply)]
        refs += [
            (("steps", i, "delete", j), f)
            for j, f in enumerate(step.delete)
            if f.endswith((".yaml", ".yml"))
        ]
        for k, event in enumerate(step.events):
            refs += [(("steps", i, "events", k, "apply", j), f) for j, f in enumerate(event.apply)]
            refs += [
                (("steps", i, "events", k, "delete", j), f)
                for j, f in enumerate(event.delete)
                if f.endswith((".yaml", ".yml"))
            ]
        for where, ref in refs:
            if ref in files:
                continue
            target = folder / ref
            if not target.exists():
                pos = source.position(where)
                diagnostics.append(
                    Diagnostic(
                        "MPY4002",
                        f'file "{ref}" not found in {folder}',
                        file=pos.file,
                        line=pos.line,
                        column=pos.column,
                        resource=f"Lesson {folder.name}",
                        hint="paths are relative to the lesson folder",
                    )
                )
                continue
            namespace = app.behavior.namespace if app is not None else "default"
            loaded = load_paths([target], default_namespace=namespace)
            diagnostics.extend(loaded.diagnostics)
            files[ref] = loaded.resources
        _check_step(step, i, source, folder.name, diagnostics)
        if app is not None:
            _check_references(step, i, source, folder.name, app=app, out=diagnostics)

    if app is None or any(d.severity is Level.ERROR for d in diagnostics):
        raise DiagnosticError(diagnostics)
    return Lesson(
        id=folder.name,
        path=folder,
        spec=spec,
        app=app,
        explanation=explanation,
        files=FrozenMap(files),
        diagnostics=tuple(sorted(diagnostics, key=Diagnostic.sort_key)),
    )


def _check_step(
    step: LessonStep, index: int, source: SourceMap, lesson: str, out: list[Diagnostic]
) -> None:
    for j, exp in enumerate(step.expect):
        path = ("steps", index, "expect", j)
        pos = source.position(path)
        problem = ""
        if not any(getattr(exp, m) is not None for m in METRICS):
            problem = f"no metric: use one of {', '.join(METRICS)}"
        elif exp.between and len(exp.between) != 2:
            problem = "between takes two numbers: [low, high]"
        elif exp.between and exp.between[0] > exp.between[1]:
            problem = f"between [{exp.between[0]:g}, {exp.between[1]:g}] is empty"
        elif (
            not exp.between and exp.at_least is None and exp.at_most is None and exp.equals is None
        ):
            problem = "no bound: add between, at_least, at_most or equals (with tolerance)"
        elif (
            exp.metric == "rate"
            and exp.selector.status is None
            and not exp.selector.flag
            and not exp.selector.status_class
        ):
            problem = "rate needs a status, status_class or flag to count"
        elif exp.metric == "share" and not (
            exp.selector.version or exp.selector.subset or exp.selector.workload
        ):
            problem = "share needs a version, subset or workload"
        if problem:
            out.append(
                Diagnostic(
                    "MPY4004",
                    problem,
                    file=pos.file,
                    line=pos.line,
                    column=pos.column,
                    resource=f"Lesson {lesson}",
                    path=f"steps[{index}].expect[{j}]",
                )
            )


_CLIENTS = {"outside", "ingress"}


def _check_references(
    step: LessonStep, index: int, source: SourceMap, lesson: str, *, app: App, out: list[Diagnostic]
) -> None:
    """MPY4003: services, clients and workloads a step names must exist in the app."""
    services = {r.name for r in app.resources if isinstance(r, Service)}
    workloads = {r.name for r in app.resources if isinstance(r, Deployment)}
    apps = {
        r.spec.template.metadata.labels.get("app", "")
        for r in app.resources
        if isinstance(r, Deployment)
    }

    def report(path: tuple[str | int, ...], message: str, candidates: set[str]) -> None:
        pos = source.position(path)
        out.append(
            Diagnostic(
                "MPY4003",
                message,
                file=pos.file,
                line=pos.line,
                column=pos.column,
                resource=f"Lesson {lesson}",
                path=format_path(path),
                hint=did_you_mean(message.split('"')[1], candidates),
            )
        )

    for j, exp in enumerate(step.expect):
        sel = (
            getattr(exp, exp.metric) if any(getattr(exp, m) is not None for m in METRICS) else None
        )
        if not isinstance(sel, Selector):
            continue
        path: tuple[str | int, ...] = ("steps", index, "expect", j, exp.metric)
        if sel.edge:
            client, _, service = (p.strip() for p in sel.edge.partition("->"))
            if client not in _CLIENTS and client not in apps:
                report(
                    (*path, "edge"),
                    f'edge client "{client}" is not an app of the lesson',
                    apps | _CLIENTS,
                )
            if service not in services:
                report(
                    (*path, "edge"),
                    f'edge service "{service}" is not a Service of the app',
                    services,
                )
        if sel.service and sel.service not in services:
            report(
                (*path, "service"), f'service "{sel.service}" is not a Service of the app', services
            )
        if sel.workload and sel.workload not in workloads:
            report(
                (*path, "workload"),
                f'workload "{sel.workload}" is not a Deployment of the app',
                workloads,
            )
    breaks: list[tuple[tuple[str | int, ...], BreakAction]] = [
        (("steps", index, "break", k), b) for k, b in enumerate(step.break_)
    ]
    breaks += [
        (("steps", index, "events", e, "break", k), b)
        for e, event in enumerate(step.events)
        for k, b in enumerate(event.break_)
    ]
    for path, b in breaks:
        if b.workload not in workloads:
            report(
                (*path, "workload"),
                f'workload "{b.workload}" is not a Deployment of the app',
                workloads,
            )
