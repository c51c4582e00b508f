"""``SimRunner``: runs a lesson's steps on the simulator and grades its expectations.

Per step: the resources applied so far (``kubectl apply`` semantics, :mod:`mesh.state`) go
through ``mesh.envoy.translate`` exactly as for the real runners; the world executes that Envoy
config. Steps do not share simulated time (each starts at t = 0 with fresh connection pools
and outlier detectors, like a fresh load test) but lesson knobs set by ``break`` persist into
later steps until a ``restore``, as they do on the real services. Events at ``at_s`` apply or
delete resources (a config push; cluster state is kept for clusters that still exist) or break
workloads mid-run. Runs are deterministic for a seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence

import simpy

from mesh.checks import evaluate_all
from mesh.envoy.translate import MeshEnvoyConfig, translate
from mesh.lesson import BreakAction, Event, Lesson, LessonStep
from mesh.records import RequestRecord
from mesh.runner import LessonRun, Progress, RunOptions, StepResult
from mesh.state import MeshState, apply_event, step_state
from mesh.topology import Topology, build_topology
from sim.traffic import TrafficDriver, drain
from sim.world import World

__all__ = ["SimRunner", "build_world", "configure"]

_TICKS = 40


def configure(state: MeshState) -> tuple[Topology, MeshEnvoyConfig]:
    """Topology and translated Envoy config of the applied resources."""
    resources = list(state.resources)
    topology = build_topology(resources)
    return topology, translate(resources, topology)


def build_world(lesson: Lesson, state: MeshState, seed: int) -> World:
    """A world running ``state`` for ``lesson``'s app."""
    topology, envoy = configure(state)
    return World(topology, lesson.app.behavior, envoy, seed=seed, resources=state.resources)


def step_seed(seed: int, index: int) -> int:
    """Each step gets its own stream, stable when other steps change."""
    return (seed * 1_000_003 + index * 7919) & 0x7FFFFFFF


class SimRunner:
    """The simpy runner (``meshplay run LESSON --runner sim``)."""

    name = "sim"

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        """Run the lesson's steps (up to ``options.until_step``) and evaluate expectations."""
        steps = lesson.steps
        if options.until_step is not None:
            steps = steps[: options.until_step]
        state = MeshState(lesson.app.resources)
        breaks: list[BreakAction] = []
        results: list[StepResult] = []
        for index, step in enumerate(steps):
            if options.cancel.is_set():
                break
            state = step_state(lesson, state, step)
            breaks.extend(step.break_)
            result, state = self.run_step(
                lesson, index, step, state, total=len(steps), breaks=breaks, options=options
            )
            results.append(result)
            if options.on_records is not None:
                options.on_records(index, result.records)
        return LessonRun(lesson, self.name, options.seed, tuple(results))

    def run_step(
        self,
        lesson: Lesson,
        index: int,
        step: LessonStep,
        state: MeshState,
        *,
        total: int,
        breaks: list[BreakAction],
        options: RunOptions,
    ) -> tuple[StepResult, MeshState]:
        """One step: build the world, drive traffic, fire events, check expectations."""
        wall = time.perf_counter()
        world = build_world(lesson, state, step_seed(options.seed, index))
        for action in breaks:
            world.apply_break(action)
        traffic = lesson.traffic_of(step)
        driver = TrafficDriver(world, traffic)
        holder = [state]
        for event in sorted(step.events, key=lambda e: e.at_s):
            if event.at_s <= 0:
                holder[0] = _fire(lesson, world, holder[0], event, breaks, initial=True)
            else:
                world.env.process(_at(lesson, world, holder, event, breaks))
        driver.start()
        _drive(
            world, driver, timeout_s=traffic.timeout_s, index=index, total=total, options=options
        )
        duration = driver.end_time if driver.end_time != float("inf") else driver.last_time
        warm = traffic.warmup_s
        records = tuple(world.records)
        graded = [r for r in records if r.start_time >= warm] if warm > 0 else records
        checks = evaluate_all(step.expect, graded, max(0.0, duration - warm))
        result = StepResult(
            index=index,
            step=step,
            records=records,
            checks=checks,
            duration_s=duration,
            wall_s=time.perf_counter() - wall,
        )
        return result, holder[0]


def _drive(
    world: World,
    driver: TrafficDriver,
    *,
    timeout_s: float,
    index: int,
    total: int,
    options: RunOptions,
) -> None:
    env = world.env
    end = driver.end_time
    limit = driver.limit
    horizon = end if end != float("inf") else None
    hard_limit = (end if end != float("inf") else 3600.0) + max(timeout_s, 1.0)
    tick = (horizon or 10.0) / _TICKS
    report: Callable[[Progress], None] | None = options.on_progress
    while not driver.finished and env.now < hard_limit:
        if options.cancel.is_set():
            break
        env.run(until=min(hard_limit, env.now + tick))
        if report is not None:
            if horizon is not None:
                fraction = min(1.0, env.now / horizon)
            else:
                fraction = driver.completed / limit if limit else 0.0
            report(Progress(index, total, min(1.0, fraction), driver.completed))
    drain(env, hard_limit)
    if report is not None:
        report(Progress(index, total, 1.0, driver.completed))


def _fire(
    lesson: Lesson,
    world: World,
    state: MeshState,
    event: Event,
    breaks: list[BreakAction],
    *,
    initial: bool = False,
) -> MeshState:
    """An event: config changes (``initial`` events at t <= 0 are already part of the step's state,
    see ``mesh.state.step_state``), then breaks."""
    changed = not initial and bool(event.apply or event.delete)
    if changed:
        state = apply_event(lesson, state, event.apply, event.delete)
    if changed:
        topology, envoy = configure(state)
        world.load_config(topology, envoy, state.resources)
    for action in event.break_:
        world.apply_break(action)
        breaks.append(action)
    return state


def _at(
    lesson: Lesson,
    world: World,
    holder: list[MeshState],
    event: Event,
    breaks: list[BreakAction],
) -> Generator[simpy.Event, object, None]:
    yield world.env.timeout(event.at_s)
    holder[0] = _fire(lesson, world, holder[0], event, breaks)


def records_of(run: LessonRun) -> Sequence[RequestRecord]:
    """All records of a run (convenience for tests and benchmarks)."""
    return run.records
