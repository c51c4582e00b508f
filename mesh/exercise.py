"""Exercises: the learner writes the Istio YAML, meshplay grades what the mesh then does.

A lesson applies configuration someone else wrote; an exercise asks for it. An exercise is a
folder under ``lessons/exercises/``::

    exercise.yaml   # what the learner sees: title, phase, goal, the files to write, hints
    lesson.yaml     # the hidden check: a lesson whose steps apply ``workspace/...`` (the learner's
                    # files) and whose expectations grade the behaviour, never the YAML text
    starter/        # copied into the learner's workspace by ``meshplay exercise start``
    solution/       # one reference solution, laid out like the workspace

Grading is behavioural: any configuration that makes the mesh do what the goal asks passes,
whatever its file layout, resource names or style. ``meshplay run lessons/exercises/ID`` runs the
check against the reference solution (``workspace/`` falls back to ``solution/``).

The workspace remembers the learner's progress in :data:`PROGRESS_FILE` (hints asked for, whether
the solution was shown, the runners the check passed on).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import yaml

from mesh.analyze import analyze
from mesh.checks import CheckResult
from mesh.diagnostics import Diagnostic, DiagnosticError, Level, render
from mesh.lesson import Lesson, load_lesson
from mesh.model.common import SourceMap
from mesh.runner import LessonRun, Runner, RunOptions
from mesh.source.decode import MISSING, Decoder
from mesh.source.yaml_nodes import parse_documents
from mesh.state import lesson_states

__all__ = [
    "EXERCISES",
    "GOAL_FILE",
    "PHASES",
    "PROGRESS_FILE",
    "CheckReport",
    "Exercise",
    "ExerciseSpec",
    "Progress",
    "analyze_workspace",
    "check_workspace",
    "find_exercises",
    "goal_text",
    "load_check",
    "load_exercise",
    "next_hint",
    "read_progress",
    "start_workspace",
    "with_pass",
    "write_progress",
    "write_solution",
]

EXERCISES = Path(__file__).resolve().parents[1] / "lessons" / "exercises"
"""The exercises that come with meshplay."""

PHASES = ("foundation", "traffic-management", "security", "advanced")
"""The learning path's phases, in order."""

GOAL_FILE = "GOAL.md"
"""The goal, written into the workspace."""

PROGRESS_FILE = ".meshplay-exercise.yaml"
"""The workspace's marker: which exercise it is, and the learner's progress."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExerciseSpec:
    """exercise.yaml as written."""

    YAML_KEYS: ClassVar[str] = "snake"

    title: str
    phase: str
    order: int = 0
    goal: str
    """What to achieve, in plain words (what the mesh must do, not which YAML to write)."""
    write: tuple[str, ...] = ()
    """The files or folders of the workspace the learner writes (``canary/``, ``alerts.yaml``)."""
    hints: tuple[str, ...] = ()
    """Given one at a time by ``meshplay exercise hint``, most general first."""
    mirrors: str = ""
    """The Istio documentation page the exercise follows."""
    istio: str = ""
    """The Istio version whose behaviour the check is pinned to."""


@dataclass(frozen=True, slots=True)
class Exercise:
    """A loaded exercise (its check lesson is loaded per workspace: :func:`load_check`)."""

    id: str
    path: Path
    spec: ExerciseSpec

    @property
    def starter(self) -> Path:
        """Files copied into a new workspace."""
        return self.path / "starter"

    @property
    def solution(self) -> Path:
        """The reference solution, laid out like a workspace."""
        return self.path / "solution"


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """What the learner has done in one workspace."""

    exercise: str
    hints_shown: int = 0
    solution_shown: bool = False
    passed: tuple[str, ...] = ()
    """Runners the check passed on."""

    def revealed(self, hints: int) -> bool:
        """The learner asked for every hint or the solution: failed checks are shown in full."""
        return self.solution_shown or self.hints_shown >= hints


def find_exercises(root: Path = EXERCISES) -> list[Path]:
    """Exercise folders under ``root`` (folders with an exercise.yaml), sorted by name."""
    return sorted(p.parent for p in root.glob("*/exercise.yaml"))


def load_exercise(path: Path | str) -> Exercise:
    """Load an exercise folder's exercise.yaml (positioned MPY6001 for a bad field)."""
    folder = Path(path)
    file = folder / "exercise.yaml"
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiagnosticError(
            [Diagnostic("MPY6001", f"cannot read exercise: {exc}", file=str(file))]
        ) from exc
    docs, diagnostics = parse_documents(text, str(file))
    if not docs:
        raise DiagnosticError(
            diagnostics or [Diagnostic("MPY6001", "empty exercise.yaml", file=str(file), line=1)]
        )
    source = SourceMap(docs[0].origin, docs[0].positions)
    decoder = Decoder(source, f"Exercise {folder.name}", "MPY6001")
    spec = decoder.dataclass(ExerciseSpec, docs[0].data, ())
    diagnostics.extend(decoder.diagnostics)
    if spec is not MISSING and spec.phase not in PHASES:
        pos = source.position(("phase",))
        diagnostics.append(
            Diagnostic(
                "MPY6001",
                f'phase "{spec.phase}" is not one of {", ".join(PHASES)}',
                file=pos.file,
                line=pos.line,
                column=pos.column,
                resource=f"Exercise {folder.name}",
                path="phase",
            )
        )
    if spec is MISSING or any(d.severity is Level.ERROR for d in diagnostics):
        raise DiagnosticError(diagnostics)
    return Exercise(folder.name, folder, spec)


def load_check(exercise: Exercise, workspace: Path | None) -> Lesson:
    """The exercise's check lesson with ``workspace/...`` read from the learner's folder (the
    reference solution when ``workspace`` is None). Raises DiagnosticError positioned in the
    learner's files when they do not load."""
    return load_lesson(exercise.path, workspace=workspace)


def analyze_workspace(lesson: Lesson, workspace: Path) -> list[Diagnostic]:
    """istioctl-analyze's findings on the mesh after each step of the check, as the learner's
    configuration makes it: only those about the learner's files (the app's own are not theirs
    to fix), de-duplicated and sorted."""
    mine = workspace.resolve()
    found: dict[tuple[str, str, int, int, str], Diagnostic] = {}
    for state in lesson_states(lesson):
        for d in analyze(state.resources):
            if d.file and _inside(Path(d.file), mine):
                found[(d.code, d.file, d.line, d.column, d.message)] = d
    return sorted(found.values(), key=Diagnostic.sort_key)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder)
    except OSError:
        return False


def start_workspace(exercise: Exercise, folder: Path) -> list[Path]:
    """Write a new workspace: the goal, the starter files and the progress marker. Refuses a
    folder that exists and is not empty (``FileExistsError``). Returns the files written."""
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not empty")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    goal = folder / GOAL_FILE
    goal.write_text(goal_text(exercise), encoding="utf-8")
    written.append(goal)
    if exercise.starter.is_dir():
        for src in sorted(p for p in exercise.starter.rglob("*") if p.is_file()):
            dst = folder / src.relative_to(exercise.starter)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            written.append(dst)
    for wanted in exercise.spec.write:  # the folders the learner writes into exist from the start
        if wanted.endswith("/"):
            (folder / wanted).mkdir(parents=True, exist_ok=True)
    write_progress(folder, Progress(exercise=exercise.id))
    return written


def goal_text(exercise: Exercise) -> str:
    """GOAL.md: the title, the goal, what to write, and the commands."""
    spec = exercise.spec
    lines = [f"# {spec.title}", "", spec.goal.strip(), ""]
    if spec.write:
        lines += ["## What you write", ""]
        lines += [f"- `{w}`" for w in spec.write]
        lines.append("")
    lines += [
        "## Commands",
        "",
        "- `meshplay exercise check` (here): analyze your YAML, run it, grade what the mesh does",
        "- `meshplay exercise hint`: the next hint; `meshplay exercise solution`: one answer",
        "",
    ]
    if spec.mirrors:
        lines += [f"Follows: {spec.mirrors}" + (f" (Istio {spec.istio})" if spec.istio else ""), ""]
    return "\n".join(lines)


def read_progress(folder: Path) -> Progress | None:
    """The workspace's progress, or None when ``folder`` is not an exercise workspace."""
    file = folder / PROGRESS_FILE
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("exercise"), str):
        return None
    passed = data.get("passed") or ()
    return Progress(
        exercise=data["exercise"],
        hints_shown=int(data.get("hints_shown") or 0),
        solution_shown=bool(data.get("solution_shown")),
        passed=tuple(str(p) for p in passed) if isinstance(passed, list) else (),
    )


def write_progress(folder: Path, progress: Progress) -> None:
    """Store ``progress`` in the workspace."""
    data = {
        "exercise": progress.exercise,
        "hints_shown": progress.hints_shown,
        "solution_shown": progress.solution_shown,
        "passed": list(progress.passed),
    }
    header = "# meshplay exercise progress (written by meshplay; safe to delete)\n"
    (folder / PROGRESS_FILE).write_text(header + yaml.safe_dump(data, sort_keys=False), "utf-8")


def next_hint(exercise: Exercise, folder: Path, progress: Progress) -> tuple[tuple[str, ...], bool]:
    """Give one more hint: (the hints shown so far, whether that was the last one). Records
    it in the workspace; once every hint is shown, asking again changes nothing."""
    hints = exercise.spec.hints
    shown = min(progress.hints_shown + 1, len(hints))
    if shown != progress.hints_shown:
        write_progress(folder, replace(progress, hints_shown=shown))
    return hints[:shown], shown >= len(hints)


def write_solution(exercise: Exercise, folder: Path, progress: Progress) -> list[Path]:
    """Copy the reference solution into ``folder/solution`` (never over an existing one:
    ``FileExistsError``) and record that it was shown. Returns the files written."""
    target = folder / "solution"
    if target.exists():
        raise FileExistsError(f"{target} exists; remove it to write the solution again")
    shutil.copytree(exercise.solution, target)
    write_progress(folder, replace(progress, solution_shown=True))
    return sorted(p for p in target.rglob("*") if p.is_file())


def with_pass(progress: Progress, runner: str) -> Progress:
    """``progress`` with ``runner`` recorded as passed."""
    if runner in progress.passed:
        return progress
    return replace(progress, passed=(*progress.passed, runner))


@dataclass(frozen=True, slots=True)
class CheckReport:
    """A graded run of an exercise, as the learner may see it: checks not passed are hidden
    unless ``revealed`` (every hint asked for, or the solution shown)."""

    run: LessonRun
    revealed: bool
    folder: Path = Path(".")

    @property
    def where(self) -> str:
        """The workspace as a command argument (empty for the current folder)."""
        return "" if self.folder == Path(".") else f" {self.folder}"

    @property
    def passed(self) -> bool:
        """Every check of every step passed."""
        return self.run.passed and not self.run.cancelled

    def lines(self) -> list[str]:
        """Per step: its verdict, the checks passed, and the failed ones (hidden until
        revealed)."""
        out: list[str] = []
        steps = [s for s in self.run.steps if not s.skipped]
        for n, step in enumerate(steps, 1):
            verdict = "pass" if step.passed else "FAIL"
            out.append(f"step {n}/{len(steps)}  {step.step.name}  {verdict}")
            out.extend("  " + self._check_line(check) for check in step.checks)
            out.extend(f"  event: {e.kind} {e.subject} {e.detail}".rstrip() for e in step.events)
        good = sum(1 for s in steps if s.passed)
        if self.passed:
            which = "the step does" if len(steps) == 1 else f"all {len(steps)} steps do"
            out.append(f"PASSED: {which} what the goal asks")
        else:
            out.append(f"not yet: {good} of {len(steps)} steps pass")
            if not self.revealed:
                out.append(f"  hint: `meshplay exercise hint{self.where}` (failed checks show "
                           "once you have asked for every hint, or for the solution)")  # fmt: skip
        return out

    def _check_line(self, check: CheckResult) -> str:
        if check.passed:
            return f"ok    {check.describe()}"
        if not self.revealed:
            return "FAIL  a hidden check (what it measures shows after the hints)"
        why = f"  ({check.expectation.why})" if check.expectation.why else ""
        return f"FAIL  {check.describe()}{why}"


_MISSING_IN_WORKSPACE = {
    "no alerting rule": "alert_rules",
    "no dashboard panel titled": "dashboards",
}


def _in_learners_files(
    exercise: Exercise, folder: Path, diagnostics: tuple[Diagnostic, ...]
) -> list[Diagnostic]:
    """An alert or panel the check names but the learner's files lack is the learner's to add:
    report it once, at their rule or dashboard file (the goal names what it must hold), not at
    the hidden check's line with a hint meant for lesson authors."""
    check = str(exercise.path / "lesson.yaml")
    raw = yaml.safe_load((exercise.path / "lesson.yaml").read_text(encoding="utf-8"))
    out: dict[tuple[str, str, str], Diagnostic] = {}
    for d in diagnostics:
        key = next((k for m, k in _MISSING_IN_WORKSPACE.items() if d.message.startswith(m)), "")
        files = (
            [f for f in (raw or {}).get(key, []) if str(f).startswith("workspace/")] if key else []
        )
        named = f"{folder}/"
        if d.file == check and named in d.message:  # a problem inside one of the learner's files
            where, _, rest = d.message.split(named, 1)[1].partition(": ")
            moved = replace(d, file=str(folder / where), line=1, column=1, resource="", path="",
                            message=rest or d.message)  # fmt: skip
            out[(moved.file, moved.message, "")] = moved
            continue
        if d.code != "MPY4004" or d.file != check or not files:
            out[(d.file, d.message, str(d.line))] = d
            continue
        mine = folder / str(files[0]).removeprefix("workspace/")
        moved = replace(d, file=str(mine), line=1, column=1, resource="", path="",
                        hint=f"the goal asks for it in {mine.name}")  # fmt: skip
        out[(moved.file, moved.message, "")] = moved
    return sorted(out.values(), key=Diagnostic.sort_key)


def check_workspace(
    exercise: Exercise, folder: Path, runner: Runner, seed: int = 1, revealed: bool = False
) -> tuple[CheckReport | None, list[str]]:
    """Load, analyze and run the learner's workspace on ``runner``. Returns the report (None
    when the YAML could not be loaded, or the exercise does not run on that runner) and the
    diagnostics' lines (the learner's load warnings and the analyzer's findings on their files;
    the load errors when there is no report)."""
    try:
        lesson = load_check(exercise, folder)
    except DiagnosticError as exc:
        return None, render(_in_learners_files(exercise, folder, exc.diagnostics)).splitlines()
    if runner.name not in lesson.spec.runners:
        runs_on = ", ".join(lesson.spec.runners)
        return None, [f"error: this exercise runs on {runs_on}, not {runner.name}"]
    found = [d for d in lesson.diagnostics if d.file and _inside(Path(d.file), folder.resolve())]
    found += analyze_workspace(lesson, folder)
    lines = render(found).splitlines() if found else []
    run = runner.run(lesson, RunOptions(seed=seed))
    return CheckReport(run, revealed, folder), lines
