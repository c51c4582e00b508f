"""``SimExecutor``: the simulator behind the lesson engine (``meshplay run LESSON --runner sim``).

The engine (:func:`mesh.engine.run_lesson`) decides what runs; this module only carries the
traffic. The pushed state goes through ``mesh.envoy.translate`` exactly as for the real runners
and the world executes that Envoy config. Steps do not share simulated time: each step's traffic
runs in a fresh world starting at t = 0, with fresh connection pools and outlier detectors (like a
fresh load test), seeded with the step's own seed, while breaks persist into later steps until a
``restore``, as they do on the real services. A timed change at ``at_s`` is a config push (cluster
state kept for clusters that still exist) or breaks, at that simulated time.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import simpy

from mesh.engine import LessonRunner, step_seed
from mesh.envoy.memory import HEAP_MODEL
from mesh.envoy.translate import MeshEnvoyConfig, ProxyConfig, translate
from mesh.lesson import BreakAction, Lesson
from mesh.runner import DriveContext, RunEvent, StepPlan, StepTraffic, TimedChange
from mesh.state import MeshState
from mesh.topology import Topology, build_topology
from sim.traffic import TrafficDriver, drain
from sim.world import World

__all__ = ["SimExecutor", "SimRunner", "build_world", "configure", "step_seed"]

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


class SimExecutor:
    """Carries a lesson's traffic through the simulated mesh."""

    name = "sim"

    def __init__(self) -> None:
        self.lesson: Lesson | None = None
        self.state = MeshState()
        self.breaks: list[BreakAction] = []
        self.events: list[RunEvent] = []

    def preflight(self, lesson: Lesson, steps: Sequence[StepPlan]) -> None:
        """The simulator runs every lesson the loader accepts."""

    def open(self, lesson: Lesson, state: MeshState, seed: int) -> None:
        """Nothing to start: a world is built per step."""
        self.lesson = lesson
        self.state = state
        self.breaks = []

    def push(self, state: MeshState) -> None:
        """The next step's world runs ``state``."""
        self.state = state

    def break_workload(self, action: BreakAction) -> None:
        """Kept, and applied to every later world (the knobs of the real services persist)."""
        self.breaks.append(action)

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """A fresh world at t = 0: breaks so far, the timeline as simpy processes, the traffic."""
        assert self.lesson is not None, "open() first"
        self.events = []
        world = build_world(self.lesson, self.state, plan.seed)
        for action in self.breaks:
            world.apply_break(action)
        pending = list(timeline)
        for change in timeline:
            world.env.process(self._at(world, change, pending))
        driver = TrafficDriver(world, plan.traffic)
        driver.start()
        _run(world, driver, timeout_s=plan.traffic.timeout_s, ctx=ctx)
        for change in pending:  # due after the traffic ended: they still happen, for later steps
            self._apply(None, change)
        duration = driver.end_time if driver.end_time != float("inf") else driver.last_time
        return StepTraffic(tuple(world.records), 0.0, duration, tuple(self.events))

    def _at(
        self, world: World, change: TimedChange, pending: list[TimedChange]
    ) -> Generator[simpy.Event, object, None]:
        yield world.env.timeout(change.at_s)
        pending.remove(change)
        self._apply(world, change)
        self.events.append(
            RunEvent(world.env.now, "event", f"at {change.at_s:g} s", change.description)
        )

    def _apply(self, world: World | None, change: TimedChange) -> None:
        if change.state is not None:
            self.state = change.state
            if world is not None:
                topology, envoy = configure(change.state)
                world.load_config(topology, envoy, change.state.resources)
        for action in change.breaks:
            if world is not None:
                world.apply_break(action)
            self.breaks.append(action)

    def close(self) -> None:
        """Nothing to stop."""

    def proxy_memory_mb(self, pod: str, config: ProxyConfig) -> float | None:
        """The simulator has no process to measure: Envoy's heap as the model fitted on real
        Envoy 1.40 gives it for ``config`` (:data:`mesh.envoy.memory.HEAP_MODEL`)."""
        return HEAP_MODEL.allocated_mb(config)


def _run(world: World, driver: TrafficDriver, *, timeout_s: float, ctx: DriveContext) -> None:
    """Advance simulated time in ticks (progress after each) until the traffic is done."""
    env = world.env
    end = driver.end_time
    limit = driver.limit
    horizon = end if end != float("inf") else None
    hard_limit = (end if end != float("inf") else 3600.0) + max(timeout_s, 1.0)
    tick = (horizon or 10.0) / _TICKS
    while not driver.finished and env.now < hard_limit:
        if ctx.cancel.is_set():
            break
        env.run(until=min(hard_limit, env.now + tick))
        if horizon is not None:
            fraction = env.now / horizon
        else:
            fraction = driver.completed / limit if limit else 0.0
        ctx.progress(fraction, driver.completed)
    drain(env, hard_limit)
    ctx.progress(1.0, driver.completed)


class SimRunner(LessonRunner):
    """The simpy runner (``meshplay run LESSON --runner sim``)."""

    def __init__(self) -> None:
        super().__init__("sim", SimExecutor)
