"""Loading a lesson folder: lesson.yaml, its explanation, its app and every file it names.

Every problem is collected and reported once (MPY4xxx codes, see docs/diagnostics.md), at the
``file:line:col`` of the offending key.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from mesh.app import App, load_app
from mesh.diagnostics import Diagnostic, DiagnosticError, Level, did_you_mean
from mesh.lesson.check_steps import check_alerts, check_panels, check_references, check_step
from mesh.lesson.check_traffic import check_traffic
from mesh.lesson.model import Lesson, LessonSpec
from mesh.lesson.multicluster import declare_clusters
from mesh.lesson.positions import lesson_diagnostic as _at
from mesh.lesson.refs import load_dashboards, load_rules, missing_file, resolve_ref
from mesh.lesson.search import APP_PATH_ENV, BUNDLED_APPS, app_search_path, find_app, find_lessons
from mesh.model.common import FrozenMap, Resource, SourceMap
from mesh.model.gateway import ServiceEntry
from mesh.model.kubernetes import Service
from mesh.source.decode import MISSING, Decoder
from mesh.source.load import load_paths
from mesh.source.yaml_nodes import parse_documents

__all__ = [
    "APP_PATH_ENV",
    "BUNDLED_APPS",
    "app_search_path",
    "find_app",
    "find_lessons",
    "load_lesson",
]


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
        check_traffic(
            spec.traffic, ("traffic",), source, folder.name, services=services, out=diagnostics
        )
    files: dict[str, tuple[Resource, ...]] = {}
    namespace = loaded_app.behavior.namespace if loaded_app is not None else "default"

    def load_file(ref: str, where: tuple[str | int, ...]) -> tuple[Resource, ...] | None:
        """The resources of the YAML file ``ref`` names (kept in ``files``), or None and MPY4002
        when it is not there."""
        target = resolve_ref(folder, ref, workspace)
        if not target.exists():
            diagnostics.append(
                missing_file(ref, target, source, where, folder.name, workspace, folder=folder)
            )
            return None
        loaded = load_paths([target], default_namespace=namespace)
        diagnostics.extend(loaded.diagnostics)
        files[ref] = loaded.resources
        return loaded.resources

    installed: list[Resource] = []
    for j, ref in enumerate(spec.install):
        installed.extend(load_file(ref, ("install", j)) or ())
    if loaded_app is not None and installed:  # installed with the mesh: the app's starting state
        loaded_app = dataclasses.replace(loaded_app, resources=(*loaded_app.resources, *installed))
    for i, step in enumerate(spec.steps):
        if step.traffic is not None:
            where: tuple[str | int, ...] = ("steps", i, "traffic")
            check_traffic(
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
            if ref not in files:
                load_file(ref, where)
        check_step(step, i, source, folder.name, diagnostics)
    external = {
        host.split(".", 1)[0]
        for resources in files.values()
        for r in resources
        if isinstance(r, ServiceEntry)
        for host in r.hosts
    }
    for i, step in enumerate(spec.steps):
        if loaded_app is not None:
            check_references(
                step,
                i,
                source,
                folder.name,
                app=loaded_app,
                external=external,
                out=diagnostics,
                clusters=frozenset(c.name for c in spec.clusters),
            )
    rules = load_rules(spec, folder, source, diagnostics, workspace)
    check_alerts(spec, rules, source, folder.name, diagnostics)
    before = len(diagnostics)
    panels = load_dashboards(spec, folder, source, diagnostics, workspace)
    if len(diagnostics) == before:  # a file that did not load says why; no "no such panel"
        check_panels(spec, panels, source, folder.name, diagnostics)
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
