"""The lesson browser: the learning path with progress, and the chosen lesson's material.

Left, a tree of the learning path's phases (``path.yaml`` of the lessons folder; without one, the
lessons' tracks), each with its lessons (number and short title, so it reads at 80 columns)
marked with the runners they have passed on, then the phase's exercises; lessons off the path
follow under "more lessons". Right, the lesson: objectives, the explanation (markdown), every step
with the Istio YAML it applies (highlighted), and hints on demand (``h``). ``enter`` makes the
lesson the current one and opens the run view; on an exercise it opens the exercise screen on a
workspace kept in the data folder (started the first time).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Markdown, Tree

from mesh.diagnostics import DiagnosticError
from mesh.exercise import Exercise, goal_text, load_exercise
from mesh.lesson import Lesson
from mesh.path import LearningPath, path_of
from tui.session import Session

__all__ = ["LessonsPane", "lesson_markdown", "short_title"]


def short_title(lesson: Lesson, width: int = 24) -> str:
    """``02 Traffic shifting``: the lesson's number and its title up to the first " - " (then
    " with ", " and ", then cut), to fit a narrow tree; the page shows the whole title."""
    number = lesson.id.split("-", 1)[0]
    title = lesson.spec.title.split(" - ", 1)[0]
    for cut in (" with ", " and "):
        if len(title) > width:
            title = title.split(cut, 1)[0]
    if len(title) > width:
        title = title[: width - 1] + "…"
    return f"{number} {title}" if number.isdigit() else title


def _yaml_of(lesson: Lesson, file: str) -> str:
    try:
        return (lesson.path / file).read_text(encoding="utf-8").rstrip()
    except OSError as exc:
        return f"# cannot read {file}: {exc}"


def lesson_markdown(lesson: Lesson, passed_on: tuple[str, ...], show_hints: bool) -> str:
    """The lesson page as markdown."""
    spec = lesson.spec
    parts = [f"# {spec.title}", ""]
    progress = ", ".join(f"✔ {r}" for r in passed_on) or "not passed yet"
    parts.append(
        f"*{spec.track}* · {spec.level} · runs on {', '.join(spec.runners)} · **{progress}**"
    )
    if spec.objectives:
        parts += ["", "## Objectives", ""] + [f"- {o}" for o in spec.objectives]
    if lesson.explanation.strip():
        parts += ["", "## Explanation", "", lesson.explanation.strip().removeprefix("# ")]
    parts += ["", "## Steps"]
    for i, step in enumerate(lesson.steps, 1):
        parts += ["", f"### {i}. {step.name}"]
        if step.explain.strip():
            parts += ["", step.explain.strip()]
        for file in step.apply:
            parts += [
                "",
                f"`kubectl apply -f {file}`",
                "",
                "```yaml",
                _yaml_of(lesson, file),
                "```",
            ]
        for ref in step.delete:
            parts += ["", f"`kubectl delete {'-f ' if ref.endswith('.yaml') else ''}{ref}`"]
        for b in step.break_:
            where = f" in {b.cluster}" if b.cluster else ""
            parts += ["", f"breaks `{b.workload or 'every workload'}`{where}"]
        if step.expect:
            parts += ["", "Expectations:", ""]
            parts += [f"- `{e.describe()}`" + (f" — {e.why}" if e.why else "") for e in step.expect]
    if spec.hints:
        parts += ["", "## Hints", ""]
        if show_hints:
            parts += [f"- {h}" for h in spec.hints]
        else:
            parts.append(f"{len(spec.hints)} hint(s): press **h** to show them.")
    return "\n".join(parts) + "\n"


class LessonsPane(Horizontal):
    """Lesson tree and lesson page."""

    BINDINGS = [  # noqa: RUF012 (Textual's declaration style)
        Binding("h", "toggle_hints", "Hints"),
    ]

    @dataclass
    class Chosen(Message):
        """The learner picked a lesson to work on."""

        lesson: Lesson

    @dataclass
    class ExerciseChosen(Message):
        """The learner picked an exercise: open it on its workspace."""

        exercise: Exercise

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.show_hints = False
        self.shown: Lesson | None = None

    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree("lessons", id="lesson-tree")
        tree.show_root = False
        tree.guide_depth = 2
        tree.root.add_leaf("[dim]loading lessons…[/dim]")
        yield tree
        with VerticalScroll(id="lesson-page"):
            yield Markdown("Loading the lessons…", id="lesson-md")

    def on_mount(self) -> None:
        if self.session.loaded:
            self.rebuild()

    def show_loading(self, done: int, total: int) -> None:
        """The loader's progress, while the tree has nothing else to show."""
        if self.session.loaded:
            return
        tree = self.query_one("#lesson-tree", Tree)
        if tree.root.children:
            tree.root.children[0].set_label(f"[dim]loading lessons {done}/{total}…[/dim]")

    def rebuild(self) -> None:
        """Redraw the tree (the lessons were read, or a run changed the progress marks) and the
        page of the lesson on it (its progress line)."""
        tree = self.query_one("#lesson-tree", Tree)
        tree.clear()
        if not self.session.lessons and not self.session.broken:
            tree.root.add_leaf(f"[dim]no lessons under {self.session.lessons_root}[/dim]")
        for title, lessons, exercises in self._groups():
            branch = tree.root.add(f"[b]{title}[/b]", expand=True)
            for lesson in lessons:
                branch.add_leaf(self._label(lesson.id, short_title(lesson)), data=lesson.id)
            for exercise in exercises:
                label = self._label(f"exercise:{exercise.id}", f"✎ {exercise.id}")
                branch.add_leaf(label, data=f"ex:{exercise.id}")
        if self.session.broken:
            branch = tree.root.add("[b red]does not load[/b red]", expand=True)
            for broken in self.session.broken:
                branch.add_leaf(f"[red]✘[/red] {broken.id}", data=f"!{broken.id}")
        current = self.session.current or (
            self.session.lessons[0] if self.session.lessons else None
        )
        if current is not None:
            self.call_after_refresh(self._move_cursor, current.id)
            if self.shown is not None:
                self.show(self.shown)  # its progress line may have changed

    def _label(self, key: str, text: str) -> str:
        passed = self.session.progress.passed_on(key)
        mark = "[green]✔[/green]" if passed else "[dim]·[/dim]"
        return f"{mark} {text}" + (f" [dim]({', '.join(passed)})[/dim]" if passed else "")

    def _path(self) -> LearningPath | None:
        lessons = [lesson.id for lesson in self.session.lessons]
        try:
            return path_of(self.session.lessons_root, lessons)
        except DiagnosticError:
            return None  # `meshplay analyze` says why; the tree falls back to tracks

    def _groups(self) -> list[tuple[str, list[Lesson], list[Exercise]]]:
        """(title, lessons, exercises) per branch: the path's phases, then the rest by track."""
        by_id = {lesson.id: lesson for lesson in self.session.lessons}
        groups: list[tuple[str, list[Lesson], list[Exercise]]] = []
        path = self._path()
        placed: set[str] = set()
        for phase in path.phases if path is not None else ():
            lessons = [by_id[name] for name in phase.lessons if name in by_id]
            placed.update(lesson.id for lesson in lessons)
            root = self.session.lessons_root / "exercises"
            exercises = [load_exercise(root / name) for name in phase.exercises]
            groups.append((phase.title, lessons, exercises))
        tracks: dict[str, list[Lesson]] = defaultdict(list)
        for lesson in self.session.lessons:
            if lesson.id not in placed:
                tracks[lesson.spec.track].append(lesson)
        for track, lessons in tracks.items():
            groups.append((f"more: {track}" if path is not None else track, lessons, []))
        return groups

    def _move_cursor(self, lesson_id: str) -> None:
        """Put the cursor on a lesson's line (lines are numbered once the tree is laid out)."""
        tree = self.query_one("#lesson-tree", Tree)
        for line in range(tree.last_line + 1):
            node = tree.get_node_at_line(line)
            if node is not None and node.data == lesson_id:
                tree.move_cursor(node)
                return

    def select(self, lesson: Lesson) -> None:
        """Show ``lesson`` and put the cursor on it."""
        self.show(lesson)
        self._move_cursor(lesson.id)

    def show(self, lesson: Lesson) -> None:
        """Show a lesson's page."""
        self.shown = lesson
        md = lesson_markdown(lesson, self.session.progress.passed_on(lesson.id), self.show_hints)
        self.query_one("#lesson-md", Markdown).update(md)

    def _show_broken(self, lesson_id: str) -> None:
        broken = next(b for b in self.session.broken if b.id == lesson_id)
        text = f"# {broken.id}\n\nThis lesson does not load:\n\n```\n{broken.error}\n```\n"
        text += f"\nRun `meshplay analyze {broken.path}` for every diagnostic.\n"
        self.query_one("#lesson-md", Markdown).update(text)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        event.stop()
        data = event.node.data
        if data is None:
            return
        if data.startswith("!"):
            self._show_broken(data[1:])
            return
        if data.startswith("ex:"):
            exercise = self._exercise(data[3:])
            if exercise is not None:
                text = goal_text(exercise)
                text += "\n**enter** opens it here (a workspace in your data folder).\n"
                self.query_one("#lesson-md", Markdown).update(text)
                self.shown = None
            return
        lesson = self.session.lesson(data)
        if lesson is not None and lesson is not self.shown:
            self.show(lesson)

    def _exercise(self, exercise_id: str) -> Exercise | None:
        try:
            return load_exercise(self.session.lessons_root / "exercises" / exercise_id)
        except DiagnosticError:
            return None

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        data = event.node.data
        if data and data.startswith("ex:"):
            exercise = self._exercise(data[3:])
            if exercise is not None:
                self.post_message(self.ExerciseChosen(exercise))
            return
        lesson = self.session.lesson(data) if data else None
        if lesson is not None:
            self.post_message(self.Chosen(lesson))

    def action_toggle_hints(self) -> None:
        """Show or hide the hints of the lesson on screen."""
        self.show_hints = not self.show_hints
        if self.shown is not None:
            self.show(self.shown)
