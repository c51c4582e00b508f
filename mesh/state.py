"""The configuration a runner has applied so far, with ``kubectl apply`` / ``delete`` semantics.

Steps of a lesson accumulate: applying a resource with the same kind, namespace and name replaces
the earlier one; deleting removes it. ``lesson_states`` gives the state after each step, which
``analyze`` checks and every runner starts from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from mesh.lesson import Lesson, LessonStep
from mesh.model.common import Resource

__all__ = ["MeshState", "ResourceKey", "apply_event", "lesson_states", "step_state"]

ResourceKey = tuple[str, str, str]


def key_of(resource: Resource) -> ResourceKey:
    """(kind, namespace, name)"""
    return (resource.KIND, resource.namespace, resource.name)


@dataclass(frozen=True)
class MeshState:
    """An immutable, ordered set of applied resources."""

    resources: tuple[Resource, ...] = ()

    def apply(self, items: Iterable[Resource]) -> MeshState:
        """``kubectl apply``: add new resources, replace same-key ones in place."""
        current = {key_of(r): r for r in self.resources}
        for r in items:
            current[key_of(r)] = r
        return MeshState(tuple(current.values()))

    def delete(self, items: Iterable[Resource]) -> MeshState:
        """``kubectl delete -f``: remove resources with the same keys."""
        gone = {key_of(r) for r in items}
        return MeshState(tuple(r for r in self.resources if key_of(r) not in gone))

    def delete_refs(self, refs: Iterable[str]) -> MeshState:
        """Delete by ``Kind/name`` or ``Kind/namespace/name`` references."""
        exact: set[ResourceKey] = set()
        anywhere: set[tuple[str, str]] = set()
        for ref in refs:
            parts = ref.split("/")
            if len(parts) == 2:
                anywhere.add((parts[0], parts[1]))
            elif len(parts) == 3:
                exact.add((parts[0], parts[1], parts[2]))
        return MeshState(
            tuple(
                r
                for r in self.resources
                if key_of(r) not in exact and (r.KIND, r.name) not in anywhere
            )
        )

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)


def step_state(lesson: Lesson, before: MeshState, step: LessonStep) -> MeshState:
    """The state after a step's ``apply`` and ``delete`` (events at t > 0 are the runner's job)."""
    state = apply_event(lesson, before, step.apply, step.delete)
    for event in step.events:
        if event.at_s <= 0:
            state = apply_event(lesson, state, event.apply, event.delete)
    return state


def apply_event(
    lesson: Lesson, state: MeshState, apply: Sequence[str], delete: Sequence[str]
) -> MeshState:
    """Apply files, then delete files or ``Kind/[ns/]name`` references, as a step or event does."""
    for file in apply:
        state = state.apply(lesson.resources_of(file))
    for ref in delete:
        if ref.endswith((".yaml", ".yml")):
            state = state.delete(lesson.resources_of(ref))
        else:
            state = state.delete_refs([ref])
    return state


def lesson_states(lesson: Lesson) -> list[MeshState]:
    """The state after each step, starting from the app's manifests."""
    state = MeshState(lesson.app.resources)
    out = []
    for step in lesson.steps:
        state = step_state(lesson, state, step)
        out.append(state)
    return out
