"""Loading a lesson folder: lesson.yaml, its explanation, its app and every file it names.

Every problem is collected and reported once (MPY4xxx codes, see docs/diagnostics.md), at the
``file:line:col`` of the offending key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from mesh.app import App, load_app
from mesh.diagnostics import Diagnostic, DiagnosticError, Level, did_you_mean
from mesh.lesson.model import (
    CONFIG_MEASURES,
    METRICS,
    OUTCOMES,
    PANEL_TRUTHS,
    SPECIAL_SERVICES,
    TRAFFIC_PROTOCOLS,
    TRAFFIC_SCHEMES,
    BreakAction,
    Lesson,
    LessonSpec,
    LessonStep,
    Selector,
    TrafficSpec,
)
from mesh.lesson.multicluster import check_breaks, declare_clusters
from mesh.lesson.positions import lesson_diagnostic as _at
from mesh.model.common import FrozenMap, Resource, SourceMap
from mesh.model.gateway import ServiceEntry
from mesh.model.kubernetes import Deployment, Service
from mesh.observe.panels import DashboardError, Panel, find_panel, parse_dashboard
from mesh.observe.rules import AlertRule, RuleError, parse_rules
from mesh.records import LOGGED_REQUEST_HEADERS
from mesh.source.decode import MISSING, Decoder
from mesh.source.load import load_paths
from mesh.source.yaml_nodes import parse_documents
from mesh.topology import INGRESS_GATEWAY

__all__ = [
    "APP_PATH_ENV",
    "BUNDLED_APPS",
    "app_search_path",
    "find_app",
    "find_lessons",
    "load_lesson",
]


def find_lessons(root: Path) -> list[Path]:
    """Lesson folders under ``root`` (folders with a lesson.yaml), sorted by name."""
    return sorted(p.parent for p in root.glob("*/lesson.yaml"))


APP_PATH_ENV = "MESHPLAY_APP_PATH"
"""Environment variable: more folders holding apps (``os.pathsep``-separated), searched after the
``apps/`` folders around a lesson."""

BUNDLED_APPS = Path(__file__).resolve().parents[2] / "lessons" / "apps"
"""The apps that come with meshplay (``lessons/apps`` of its source tree)."""


def app_search_path(lesson_dir: Path) -> tuple[Path, ...]:
    """Folders searched, in order, for the app a lesson names (``app: ecommerce`` is
    ``<folder>/ecommerce/behavior.yaml``): an ``apps/`` folder beside the lesson folder or beside
    any folder above it, each folder of ``$MESHPLAY_APP_PATH``, then the apps that come with
    meshplay. A lesson copied anywhere still finds the built-in apps."""
    chain = list(lesson_dir.parents)  # relative stays relative: diagnostics name files as given
    if not lesson_dir.is_absolute():
        chain += Path.cwd().parents
    out = [parent / "apps" for parent in chain]
    out = [folder for folder in out if folder.is_dir()]
    extra = os.environ.get(APP_PATH_ENV, "").split(os.pathsep)
    out += [Path(entry.strip()) for entry in extra if entry.strip()]
    if BUNDLED_APPS.is_dir():
        out.append(BUNDLED_APPS)
    unique: list[Path] = []
    for folder in out:
        if not any(_same(folder, seen) for seen in unique):
            unique.append(folder)
    return tuple(unique)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def find_app(name: str, search: tuple[Path, ...]) -> Path | None:
    """The first ``<folder>/<name>`` of ``search`` that holds a behavior.yaml."""
    for folder in search:
        if (folder / name / "behavior.yaml").is_file():
            return folder / name
    return None


WORKSPACE = "workspace"
"""First segment of a path in an exercise's lesson.yaml that names the learner's files."""


def resolve_ref(folder: Path, ref: str, workspace: Path | None = None) -> Path:
    """The file a lesson names: relative to the lesson folder, except ``workspace/...`` (an
    exercise's lesson naming the learner's files), which is under ``workspace`` when given and
    under the exercise's reference solution (``<folder>/solution``) otherwise."""
    head, sep, rest = ref.partition("/")
    if head == WORKSPACE and sep:
        return (workspace if workspace is not None else folder / "solution") / rest
    return folder / ref


def load_lesson(
    path: Path | str, *, app: Path | str | None = None, workspace: Path | None = None
) -> Lesson:
    """Load a lesson folder (or its lesson.yaml), the app it names and every file it refers to.

    ``app`` (a command's ``--app``) replaces the app lesson.yaml names: a folder holding a
    behavior.yaml, or an app name looked up like lesson.yaml's ``app`` (see
    :func:`app_search_path`). ``workspace`` is where ``workspace/...`` paths point (an exercise
    checked against a learner's folder, see :func:`resolve_ref`). Raises DiagnosticError listing
    every error found; warnings are kept on ``Lesson.diagnostics``.
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
            diagnostics.append(
                _at(
                    "MPY4002",
                    f'explanation file "{explanation}" not found',
                    source,
                    ("explanation",),
                    folder.name,
                    path="",
                )
            )

    search = app_search_path(folder)
    wanted = spec.app if app is None else str(app)
    app_dir = Path(app) if app is not None and Path(app).is_dir() else find_app(wanted, search)
    loaded_app: App | None = None
    if app_dir is None or not (app_dir / "behavior.yaml").is_file():
        known = sorted({p.parent.name for f in search for p in f.glob("*/behavior.yaml")})
        if app_dir is not None:
            message = f'app "{wanted}" (--app) not found: no behavior.yaml in {app_dir}'
        else:
            looked = ", ".join(str(f) for f in search) or "no apps folder"
            flag = " (--app)" if app is not None else ""
            message = f'app "{wanted}"{flag} not found: no {wanted}/behavior.yaml in {looked}'
        diagnostics.append(
            _at(
                "MPY4002",
                message,
                source,
                ("app",),
                folder.name,
                hint=(did_you_mean(wanted, known) or f"apps found: {', '.join(known) or 'none'}")
                + "; apps are looked up in an apps/ folder beside the lesson folder or above it, "
                f"then in ${APP_PATH_ENV} ({os.environ.get(APP_PATH_ENV) or 'not set'}), then in "
                "meshplay's own lessons/apps; point at the app's folder with --app DIR",
                path="",
            )
        )
    else:
        try:
            loaded_app = load_app(app_dir)
        except DiagnosticError as exc:  # the app's own problems, at their own file:line
            diagnostics.extend(exc.diagnostics)

    if loaded_app is not None:
        loaded_app = declare_clusters(spec, loaded_app, source, folder.name, diagnostics)
    services = (
        {r.name for r in loaded_app.resources if isinstance(r, Service)}
        if loaded_app is not None
        else None
    )
    if spec.traffic is not None:
        _check_traffic(
            spec.traffic, ("traffic",), source, folder.name, services=services, out=diagnostics
        )
    files: dict[str, tuple[Resource, ...]] = {}
    installed: list[Resource] = []
    for j, ref in enumerate(spec.install):
        target = resolve_ref(folder, ref, workspace)
        if not target.exists():
            diagnostics.append(
                _missing(ref, target, source, ("install", j), folder.name, workspace, folder=folder)
            )
            continue
        namespace = loaded_app.behavior.namespace if loaded_app is not None else "default"
        loaded = load_paths([target], default_namespace=namespace)
        diagnostics.extend(loaded.diagnostics)
        files[ref] = loaded.resources
        installed.extend(loaded.resources)
    if loaded_app is not None and installed:  # installed with the mesh: the app's starting state
        loaded_app = dataclasses.replace(loaded_app, resources=(*loaded_app.resources, *installed))
    for i, step in enumerate(spec.steps):
        if step.traffic is not None:
            where: tuple[str | int, ...] = ("steps", i, "traffic")
            _check_traffic(
                step.traffic, where, source, folder.name, services=services, out=diagnostics
            )
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
            target = resolve_ref(folder, ref, workspace)
            if not target.exists():
                diagnostics.append(
                    _missing(ref, target, source, where, folder.name, workspace, folder=folder)
                )
                continue
            namespace = loaded_app.behavior.namespace if loaded_app is not None else "default"
            loaded = load_paths([target], default_namespace=namespace)
            diagnostics.extend(loaded.diagnostics)
            files[ref] = loaded.resources
        _check_step(step, i, source, folder.name, diagnostics)
    external = {
        host.split(".", 1)[0]
        for resources in files.values()
        for r in resources
        if isinstance(r, ServiceEntry)
        for host in r.hosts
    }
    for i, step in enumerate(spec.steps):
        if loaded_app is not None:
            _check_references(
                step,
                i,
                source,
                folder.name,
                app=loaded_app,
                external=external,
                out=diagnostics,
                clusters=frozenset(c.name for c in spec.clusters),
            )
    rules = _load_rules(spec, folder, source, diagnostics, workspace)
    _check_alerts(spec, rules, source, folder.name, diagnostics)
    before = len(diagnostics)
    panels = _load_dashboards(spec, folder, source, diagnostics, workspace)
    if len(diagnostics) == before:  # a file that did not load says why; no "no such panel"
        _check_panels(spec, panels, source, folder.name, diagnostics)
    if spec.tracing is not None and not 0.0 <= spec.tracing.sampling <= 100.0:
        message = f"tracing.sampling is a percentage: 0..100, got {spec.tracing.sampling:g}"
        diagnostics.append(_at("MPY4001", message, source, ("tracing", "sampling"), folder.name))
    if spec.tracing is not None and spec.tracing.provider not in ("zipkin", "opentelemetry"):
        message = (
            f'tracing.provider "{spec.tracing.provider}": meshplay configures "zipkin" or '
            '"opentelemetry" (OTLP/HTTP)'
        )
        diagnostics.append(_at("MPY4001", message, source, ("tracing", "provider"), folder.name))

    if loaded_app is None or any(d.severity is Level.ERROR for d in diagnostics):
        raise DiagnosticError(diagnostics)
    return Lesson(
        id=folder.name,
        path=folder,
        spec=spec,
        app=loaded_app,
        explanation=explanation,
        files=FrozenMap(files),
        diagnostics=tuple(sorted(diagnostics, key=Diagnostic.sort_key)),
        rules=rules,
        panels=panels,
        rule_files=tuple(resolve_ref(folder, r, workspace) for r in spec.alert_rules),
    )


def _missing(  # noqa: PLR0917 - one call shape for files and rule files
    ref: str,
    target: Path,
    source: SourceMap,
    where: tuple[str | int, ...],
    lesson: str,
    workspace: Path | None,
    what: str = "file",
    *,
    folder: Path,
) -> Diagnostic:
    """MPY4002 for a file a lesson names that is not there (in the learner's workspace, for an
    exercise's ``workspace/...`` paths)."""
    if ref.startswith(WORKSPACE + "/") and workspace is not None:
        shown = ref.partition("/")[2]
        message = f'{what} "{shown}" not found in your workspace {workspace}'
        hint = f"the exercise expects you to write {target}"
    else:
        message = f'{what} "{ref}" not found in {folder}'
        hint = "paths are relative to the lesson folder"
    return _at("MPY4002", message, source, where, lesson, hint=hint, path="")


def _load_rules(
    spec: LessonSpec,
    folder: Path,
    source: SourceMap,
    out: list[Diagnostic],
    workspace: Path | None = None,
) -> tuple[AlertRule, ...]:
    """The alerting rules of every file in ``alert_rules`` (Prometheus' rule file format)."""
    rules: list[AlertRule] = []
    for i, ref in enumerate(spec.alert_rules):
        where: tuple[str | int, ...] = ("alert_rules", i)
        target = resolve_ref(folder, ref, workspace)
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, ValueError):  # ValueError: a NUL in the name, undecodable bytes
            out.append(
                _missing(
                    ref, target, source, where, folder.name, workspace, "rule file", folder=folder
                )
            )
            continue
        try:
            rules.extend(parse_rules(text, str(target) if workspace is not None else ref))
        except RuleError as exc:
            out.append(_at("MPY4001", str(exc), source, where, folder.name, path=""))
    return tuple(rules)


def _load_dashboards(
    spec: LessonSpec,
    folder: Path,
    source: SourceMap,
    out: list[Diagnostic],
    workspace: Path | None = None,
) -> tuple[Panel, ...]:
    """The panels of every file in ``dashboards`` (Grafana's dashboard model)."""
    panels: list[Panel] = []
    for i, ref in enumerate(spec.dashboards):
        where: tuple[str | int, ...] = ("dashboards", i)
        target = resolve_ref(folder, ref, workspace)
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, ValueError):
            out.append(
                _missing(
                    ref, target, source, where, folder.name, workspace, "dashboard", folder=folder
                )
            )
            continue
        try:
            panels.extend(parse_dashboard(text, str(target) if workspace is not None else ref))
        except DashboardError as exc:
            out.append(_at("MPY4001", str(exc), source, where, folder.name, path=""))
    return tuple(panels)


def _check_panels(
    spec: LessonSpec,
    panels: tuple[Panel, ...],
    source: SourceMap,
    lesson: str,
    out: list[Diagnostic],
) -> None:
    """A ``panel:`` expectation names a panel of the lesson's ``dashboards`` and takes its truth
    from a record metric."""
    titles = [p.title for p in panels]
    for i, step in enumerate(spec.steps):
        for j, exp in enumerate(step.expect):
            if exp.panel is None:
                continue
            where = ("steps", i, "expect", j, "panel")
            if find_panel(panels, exp.panel.title) is None:
                hint = did_you_mean(exp.panel.title, titles) or (
                    f"panels: {', '.join(titles)}"
                    if titles
                    else "list dashboard files in dashboards"
                )
                message = f'no dashboard panel titled "{exp.panel.title}"'
                out.append(_at("MPY4004", message, source, (*where, "title"), lesson, hint=hint))
            if exp.panel.truth not in PANEL_TRUTHS:
                message = f'truth "{exp.panel.truth}" is not one of {", ".join(PANEL_TRUTHS)}'
                hint = did_you_mean(exp.panel.truth, PANEL_TRUTHS)
                out.append(_at("MPY4004", message, source, (*where, "truth"), lesson, hint=hint))


def _check_alerts(
    spec: LessonSpec,
    rules: tuple[AlertRule, ...],
    source: SourceMap,
    lesson: str,
    out: list[Diagnostic],
) -> None:
    """An ``alert:`` expectation names a rule of the lesson's ``alert_rules``."""
    names = sorted({r.name for r in rules})
    for i, step in enumerate(spec.steps):
        for j, exp in enumerate(step.expect):
            if exp.alert is not None and exp.alert not in names:
                hint = did_you_mean(exp.alert, names) or (
                    f"alerts: {', '.join(names)}" if names else "list rule files in alert_rules"
                )
                where = ("steps", i, "expect", j, "alert")
                message = f'no alerting rule "{exp.alert}"'
                out.append(_at("MPY4004", message, source, where, lesson, hint=hint))


def _check_step(
    step: LessonStep, index: int, source: SourceMap, lesson: str, out: list[Diagnostic]
) -> None:
    if step.compare is not None:
        for key in ("share", "success", "flag"):
            value = getattr(step.compare, key)
            if value is not None and not 0.0 <= value <= 1.0:
                message = f"compare.{key} is a tolerance on a proportion: 0..1, got {value:g}"
                out.append(
                    _at("MPY4001", message, source, ("steps", index, "compare", key), lesson)
                )
    for j, exp in enumerate(step.expect):
        problem = ""
        if not any(getattr(exp, m) is not None for m in METRICS):
            problem = f"no metric: use one of {', '.join(METRICS)}"
        elif exp.between and len(exp.between) != 2:
            problem = "between takes two numbers: [low, high]"
        elif exp.between and exp.between[0] > exp.between[1]:
            problem = f"between [{exp.between[0]:g}, {exp.between[1]:g}] is empty"
        elif exp.panel is not None:  # bounded by the truth from the records
            if exp.between or exp.at_least is not None or exp.at_most is not None:
                problem = "a panel is compared with its truth: use tolerance (and ratio), no bounds"
            elif exp.equals is not None:
                problem = "a panel is compared with its truth: use tolerance (and ratio), no equals"
        elif (
            not exp.between and exp.at_least is None and exp.at_most is None and exp.equals is None
        ):
            problem = "no bound: add between, at_least, at_most or equals (with tolerance)"
        elif exp.promql is not None and not exp.promql.strip():
            problem = "promql is empty: write a PromQL expression"
        elif (
            exp.metric == "rate"
            and exp.selector.status is None
            and not exp.selector.flag
            and not exp.selector.status_class
            and not exp.selector.outcome
        ):
            problem = "rate needs a status, status_class, flag or outcome to count"
        elif exp.metric == "share" and not (
            exp.selector.version or exp.selector.subset or exp.selector.workload
        ):
            problem = "share needs a version, subset or workload"
        if problem:
            out.append(_at("MPY4004", problem, source, ("steps", index, "expect", j), lesson))
        elif not exp.on_metrics:
            _check_selector(
                exp.selector, ("steps", index, "expect", j, exp.metric), source, lesson, out
            )
            if exp.baseline is not None:
                where = ("steps", index, "expect", j, "baseline")
                _check_selector(exp.baseline, where, source, lesson, out)


def _check_selector(
    sel: Selector,
    path: tuple[str | int, ...],
    source: SourceMap,
    lesson: str,
    out: list[Diagnostic],
) -> None:
    """MPY4001 for a ``header`` the access logs do not record and an unknown ``outcome``."""
    for name in sel.header:
        if name.lower() not in LOGGED_REQUEST_HEADERS:
            message = (
                f'header "{name}" is not in the access log, so no record can be selected by it'
            )
            hint = f"the logged request headers are {', '.join(LOGGED_REQUEST_HEADERS)}"
            out.append(_at("MPY4001", message, source, (*path, "header", name), lesson, hint=hint))
    if sel.outcome and sel.outcome not in OUTCOMES:
        message = f'invalid outcome "{sel.outcome}": expected one of {", ".join(OUTCOMES)}'
        hint = did_you_mean(sel.outcome, list(OUTCOMES))
        out.append(_at("MPY4001", message, source, (*path, "outcome"), lesson, hint=hint))


def _check_traffic(
    traffic: TrafficSpec,
    path: tuple[str | int, ...],
    source: SourceMap,
    lesson: str,
    *,
    services: set[str] | None,
    out: list[Diagnostic],
) -> None:
    """MPY4001 for traffic fields that contradict each other (``protocol: tcp`` with HTTP
    requests, TCP-only fields on HTTP traffic, an address target without ``protocol: tcp``),
    MPY4003 for a TCP target that is neither a Service of the app nor an ``IP:port``."""

    def report(key: str, message: str, hint: str = "", code: str = "MPY4001") -> None:
        out.append(_at(code, message, source, (*path, key), lesson, hint=hint))

    if traffic.protocol not in TRAFFIC_PROTOCOLS:
        report(
            "protocol",
            f'invalid protocol "{traffic.protocol}": expected one of {", ".join(TRAFFIC_PROTOCOLS)}',
            did_you_mean(traffic.protocol, list(TRAFFIC_PROTOCOLS)),
        )
        return
    if traffic.scheme not in TRAFFIC_SCHEMES:
        report(
            "scheme",
            f'invalid scheme "{traffic.scheme}": expected one of {", ".join(TRAFFIC_SCHEMES)}',
            did_you_mean(traffic.scheme, list(TRAFFIC_SCHEMES)),
        )
    elif traffic.scheme == "https" and (traffic.from_ != "ingress" or traffic.is_tcp):
        report(
            "scheme",
            "only HTTP traffic from ingress can speak TLS to the gateway (scheme: https)",
            "use from: ingress, or scheme: http",
        )
    for key in ("ca_certificate", "client_certificate"):
        if getattr(traffic, key) and traffic.scheme != "https":
            report(key, f"{key} is a TLS client setting", "add scheme: https")
    if traffic.sni and not traffic.is_tcp:
        report("sni", "sni names the server of a TLS connection the app opens itself",
               "add protocol: tcp, or use scheme: https from ingress")  # fmt: skip
    for key in ("send_bytes", "receive_bytes", "hold_s"):
        value = getattr(traffic, key)
        if value < 0:
            report(key, f"{key} must not be negative, got {value:g}")
        elif value and not traffic.is_tcp:
            report(key, f"{key} describes a TCP connection", "add protocol: tcp")
    if not traffic.is_tcp:
        if traffic.address is not None:
            report(
                "to",
                f'"{traffic.to}" is an address: only TCP traffic goes to an IP:port',
                "add protocol: tcp, or name a Service",
            )
        return
    if traffic.requests:
        report(
            "requests",
            "a TCP connection carries no HTTP requests",
            "remove requests (use send_bytes / receive_bytes), or use protocol: http",
        )
    if traffic.from_ == "ingress":
        report(
            "from",
            "the ingress gateway only has HTTP listeners: TCP traffic cannot enter through it",
            "send it from a workload or from outside",
        )
    if traffic.address is not None:
        if traffic.from_ == "outside":
            report(
                "to",
                f'a connection from outside to "{traffic.to}" never meets a sidecar',
                "send it from a workload (from: <Deployment>)",
            )
    elif services is not None and traffic.to not in services:
        report(
            "to",
            f'traffic target "{traffic.to}" is not a Service of the app nor an IP:port',
            did_you_mean(traffic.to, sorted(services)),
            code="MPY4003",
        )


_CLIENTS = {"outside", "ingress"}


def _check_references(
    step: LessonStep,
    index: int,
    source: SourceMap,
    lesson: str,
    *,
    app: App,
    external: set[str],
    out: list[Diagnostic],
    clusters: frozenset[str] = frozenset(),
) -> None:
    """MPY4003: services, clients and workloads a step names must exist in the app (an edge may
    also end at a ServiceEntry host of the lesson's files, by its first label, as Istio's
    ``destination_service_name``, or at ``PassthroughCluster`` / ``BlackHoleCluster``)."""
    services = {r.name for r in app.resources if isinstance(r, Service)}
    workloads = {r.name for r in app.resources if isinstance(r, Deployment)}
    apps = {
        r.spec.template.metadata.labels.get("app", "")
        for r in app.resources
        if isinstance(r, Deployment)
    }

    def report(path: tuple[str | int, ...], message: str, candidates: set[str]) -> None:
        hint = did_you_mean(message.split('"')[1], candidates)
        out.append(_at("MPY4003", message, source, path, lesson, hint=hint))

    for j, exp in enumerate(step.expect):
        config = exp.proxy_config
        if config is not None:
            where: tuple[str | int, ...] = ("steps", index, "expect", j, "proxy_config")
            if config.workload not in workloads | {INGRESS_GATEWAY}:
                report(
                    (*where, "workload"),
                    f'workload "{config.workload}" is not a Deployment of the app',
                    workloads | {INGRESS_GATEWAY},
                )
            if config.measure not in CONFIG_MEASURES:
                message = f'measure "{config.measure}" is not one of {", ".join(CONFIG_MEASURES)}'
                hint = did_you_mean(config.measure, CONFIG_MEASURES)
                out.append(_at("MPY4004", message, source, (*where, "measure"), lesson, hint=hint))
        sel = (
            getattr(exp, exp.metric) if any(getattr(exp, m) is not None for m in METRICS) else None
        )
        if exp.baseline is not None and not isinstance(sel, Selector):
            message = f"baseline subtracts a record metric's value; {exp.metric} is not one"
            where = ("steps", index, "expect", j, "baseline")
            out.append(_at("MPY4001", message, source, where, lesson))
        if not isinstance(sel, Selector):
            continue
        selectors: list[tuple[tuple[str | int, ...], Selector]] = [
            (("steps", index, "expect", j, exp.metric), sel)
        ]
        if exp.baseline is not None:
            selectors.append((("steps", index, "expect", j, "baseline"), exp.baseline))
        for path, sel in selectors:
            _check_selector_names(path, sel, apps, services, external, workloads, report)
    breaks: list[tuple[tuple[str | int, ...], BreakAction]] = [
        (("steps", index, "break", k), b) for k, b in enumerate(step.break_)
    ]
    breaks += [
        (("steps", index, "events", e, "break", k), b)
        for e, event in enumerate(step.events)
        for k, b in enumerate(event.break_)
    ]
    check_breaks(
        breaks,
        clusters=set(clusters),
        deployments=workloads,
        source=source,
        lesson=lesson,
        out=out,
    )


def _check_selector_names(  # noqa: PLR0917
    path: tuple[str | int, ...],
    sel: Selector,
    apps: set[str],
    services: set[str],
    external: set[str],
    workloads: set[str],
    report: Callable[[tuple[str | int, ...], str, set[str]], None],
) -> None:
    """MPY4003 for one expectation selector's edge, service and workload (an edge may also end
    at a ServiceEntry host of the lesson, by its first label: ``external``)."""
    if sel.edge:
        client, _, service = (p.strip() for p in sel.edge.partition("->"))
        if client not in _CLIENTS and client not in apps:
            report(
                (*path, "edge"),
                f'edge client "{client}" is not an app of the lesson',
                apps | _CLIENTS,
            )
        if service not in services | external and service not in SPECIAL_SERVICES:
            report(
                (*path, "edge"),
                f'edge service "{service}" is not a Service of the app',
                services,
            )
    if sel.service and sel.service not in services:
        report((*path, "service"), f'service "{sel.service}" is not a Service of the app', services)
    if sel.workload and sel.workload not in workloads:
        report(
            (*path, "workload"),
            f'workload "{sel.workload}" is not a Deployment of the app',
            workloads,
        )
