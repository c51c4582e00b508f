"""The files a lesson.yaml names: resolving their paths and reading the observability ones.

Paths are relative to the lesson folder, except ``workspace/...`` (an exercise naming the
learner's files). A named file that is missing is MPY4002 at the key that names it; alerting rule
files (Prometheus' format) and dashboards (Grafana's model) are read and parsed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mesh.diagnostics import Diagnostic
from mesh.lesson.model import LessonSpec
from mesh.lesson.positions import lesson_diagnostic as _at
from mesh.model.common import SourceMap
from mesh.observe.panels import DashboardError, Panel, parse_dashboard
from mesh.observe.rules import AlertRule, RuleError, parse_rules

__all__ = ["WORKSPACE", "load_dashboards", "load_rules", "missing_file", "resolve_ref"]

T = TypeVar("T")


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


def missing_file(  # noqa: PLR0917 - one call shape for files and rule files
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


def load_rules(
    spec: LessonSpec,
    folder: Path,
    source: SourceMap,
    out: list[Diagnostic],
    workspace: Path | None = None,
) -> tuple[AlertRule, ...]:
    """The alerting rules of every file in ``alert_rules`` (Prometheus' rule file format)."""
    context = _Context(folder, source, out, workspace)
    return _parse_files(
        "alert_rules", spec.alert_rules, "rule file", parse_rules, RuleError, context
    )


def load_dashboards(
    spec: LessonSpec,
    folder: Path,
    source: SourceMap,
    out: list[Diagnostic],
    workspace: Path | None = None,
) -> tuple[Panel, ...]:
    """The panels of every file in ``dashboards`` (Grafana's dashboard model)."""
    context = _Context(folder, source, out, workspace)
    return _parse_files(
        "dashboards", spec.dashboards, "dashboard", parse_dashboard, DashboardError, context
    )


@dataclass(frozen=True)
class _Context:
    """Where a lesson's files are and where their problems go."""

    folder: Path
    source: SourceMap
    out: list[Diagnostic]
    workspace: Path | None


def _parse_files(  # noqa: PLR0917 - the key, its files, how to read one and the lesson
    key: str,
    refs: tuple[str, ...],
    what: str,
    parse: Callable[[str, str], tuple[T, ...]],
    error: type[ValueError],
    context: _Context,
) -> tuple[T, ...]:
    """Every item ``parse`` finds in the files ``refs`` (listed under ``key``): MPY4002 for a
    file that cannot be read, MPY4001 (``error``'s message) for one that does not parse."""
    folder, source, workspace = context.folder, context.source, context.workspace
    items: list[T] = []
    for i, ref in enumerate(refs):
        where: tuple[str | int, ...] = (key, i)
        target = resolve_ref(folder, ref, workspace)
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, ValueError):  # ValueError: a NUL in the name, undecodable bytes
            context.out.append(
                missing_file(
                    ref, target, source, where, folder.name, workspace, what, folder=folder
                )
            )
            continue
        try:
            items.extend(parse(text, str(target) if workspace is not None else ref))
        except error as exc:
            context.out.append(_at("MPY4001", str(exc), source, where, folder.name, path=""))
    return tuple(items)
