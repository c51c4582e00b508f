"""The lesson browser: tracks and lessons with progress, and the chosen lesson's material.

Left, a tree of tracks and their lessons, each marked with the runners it has passed on. Right,
the lesson: objectives, the explanation (markdown), every step with the Istio YAML it applies
(highlighted), and hints on demand (``h``). ``enter`` makes the lesson the current one and opens
the run view.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Markdown, Tree

from mesh.lesson import Lesson
from tui.session import Session

__all__ = ["LessonsPane", "lesson_markdown"]


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
            parts += ["", f"breaks `{b.workload}`"]
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

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.show_hints = False
        self.shown: Lesson | None = None

    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree("lessons", id="lesson-tree")
        tree.show_root = False
        tree.guide_depth = 2
        yield tree
        with VerticalScroll(id="lesson-page"):
            yield Markdown("Select a lesson.", id="lesson-md")

    def on_mount(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        """Redraw the tree (after a run changed the progress marks)."""
        tree = self.query_one("#lesson-tree", Tree)
        tree.clear()
        tracks: dict[str, list[Lesson]] = defaultdict(list)
        for lesson in self.session.lessons:
            tracks[lesson.spec.track].append(lesson)
        cursor_line = -1
        for track, lessons in tracks.items():
            branch = tree.root.add(f"[b]{track}[/b]", expand=True)
            for lesson in lessons:
                passed = self.session.progress.passed_on(lesson.id)
                mark = "[green]✔[/green]" if passed else "[dim]·[/dim]"
                label = f"{mark} {lesson.spec.title}"
                if passed:
                    label += f" [dim]({', '.join(passed)})[/dim]"
                node = branch.add_leaf(label, data=lesson.id)
                if self.session.current is not None and lesson.id == self.session.current.id:
                    cursor_line = node.line
        if self.session.broken:
            branch = tree.root.add("[b red]does not load[/b red]", expand=True)
            for broken in self.session.broken:
                branch.add_leaf(f"[red]✘[/red] {broken.id}", data=f"!{broken.id}")
        if cursor_line < 0 and self.session.lessons:
            cursor_line = 1
        if cursor_line >= 0:
            self.call_after_refresh(self._move_cursor, cursor_line)

    def _move_cursor(self, line: int) -> None:
        tree = self.query_one("#lesson-tree", Tree)
        node = tree.get_node_at_line(line)
        if node is not None:
            tree.move_cursor(node)

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
        lesson = self.session.lesson(data)
        if lesson is not None and lesson is not self.shown:
            self.show(lesson)

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        data = event.node.data
        lesson = self.session.lesson(data) if data else None
        if lesson is not None:
            self.post_message(self.Chosen(lesson))

    def action_toggle_hints(self) -> None:
        """Show or hide the hints of the lesson on screen."""
        self.show_hints = not self.show_hints
        if self.shown is not None:
            self.show(self.shown)
