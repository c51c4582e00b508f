"""``SimExecutor``: the simulator behind the lesson engine (``meshplay run LESSON --runner sim``).

The engine (:func:`mesh.engine.run_lesson`) decides what runs; this module only carries the
traffic. The pushed state goes through ``mesh.envoy.translate`` exactly as for the real runners
and the world executes that Envoy config. Each step's traffic runs in a fresh world starting at
t = 0, seeded with the step's own seed, with fresh connection pools (like a fresh load test).
What outlives a step is what outlives it on a real mesh: breaks persist into later steps until a
``restore``, as they do on the real services, and each proxy's outlier detectors (ejected hosts,
their back-off, the consecutive-error counts) carry over, as in a long-running Envoy, for every
cluster the push between the steps left unchanged (``sim.cluster``). The next step starts the
moment the last one's last request was answered: its t = 0 is that moment, so an ejection of
``baseEjectionTime: 1m`` that began 20 s before the end of a step ends 40 s into the next one.
A timed change at ``at_s`` is a config push (cluster state kept for clusters that still exist)
or breaks, at that simulated time.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence

import simpy

from mesh.engine import LessonRunner, step_seed
from mesh.envoy.memory import HEAP_MODEL
from mesh.envoy.translate import MeshEnvoyConfig, ProxyConfig, translate
from mesh.lesson import BreakAction, Lesson
from mesh.runner import DriveContext, RunEvent, StepPlan, StepTraffic, TimedChange
from mesh.state import MeshState
from mesh.topology import Topology, build_topology
from sim.accesslog import exchange_clusters
from sim.cluster import OutlierState
from sim.pool_timing import DEFAULT_POOL_TIMING, PoolTiming
from sim.traffic import TrafficDriver, drain
from sim.world import World

__all__ = ["SimExecutor", "SimRunner", "build_world", "configure", "step_seed"]

_TICKS = 40


def configure(state: MeshState) -> tuple[Topology, MeshEnvoyConfig]:
    """Topology and translated Envoy config of the applied resources."""
    resources = list(state.resources)
    topology = build_topology(resources)
    return topology, translate(resources, topology)


def build_world(
    lesson: Lesson, state: MeshState, seed: int, pool_timing: PoolTiming = DEFAULT_POOL_TIMING
) -> World:
    """A world running ``state`` for ``lesson``'s app."""
    topology, envoy = configure(state)
    return World(
        topology,
        lesson.app.behavior,
        envoy,
        seed=seed,
        resources=state.resources,
        pool_timing=pool_timing,
    )


class SimExecutor:
    """Carries a lesson's traffic through the simulated mesh."""

    name = "sim"

    def __init__(
        self,
        pool_timing: PoolTiming = DEFAULT_POOL_TIMING,
        step_timing: Mapping[int, PoolTiming] | None = None,
    ) -> None:
        self.pool_timing = pool_timing
        """How sized connection pools time Envoy's reconnect race (measured on a local run by
        ``playground.pool_calibration``; the fitted defaults otherwise)."""
        self.step_timing: Mapping[int, PoolTiming] = step_timing or {}
        """A step's own timing (by 0-based index), when its race was measured on its own: the
        delays depend on what else runs during the race (a third client slows the others)."""
        self.lesson: Lesson | None = None
        self.state = MeshState()
        self.breaks: list[BreakAction] = []
        self.events: list[RunEvent] = []
        self.outliers: dict[str, dict[str, OutlierState]] = {}
        """Each proxy's outlier detectors at the end of the last step, by pod and cluster."""

    def preflight(self, lesson: Lesson, steps: Sequence[StepPlan]) -> None:
        """The simulator runs every lesson the loader accepts."""

    def open(self, lesson: Lesson, state: MeshState, seed: int) -> None:
        """Nothing to start: a world is built per step."""
        self.lesson = lesson
        self.state = state
        self.breaks = []
        self.outliers = {}

    def push(self, state: MeshState) -> None:
        """The next step's world runs ``state``."""
        self.state = state

    def break_workload(self, action: BreakAction) -> None:
        """Kept, and applied to every later world (the knobs of the real services persist)."""
        self.breaks.append(action)

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """A fresh world at t = 0: breaks so far, the outlier detectors the last step left, the
        timeline as simpy processes, the traffic."""
        assert self.lesson is not None, "open() first"
        self.events = []
        timing = self.step_timing.get(plan.index, self.pool_timing)
        world = build_world(self.lesson, self.state, plan.seed, timing)
        for action in self.breaks:
            world.apply_break(action)
        world.restore_outliers(self.outliers)
        pending = list(timeline)
        for change in timeline:
            world.env.process(self._at(world, change, pending))
        driver = TrafficDriver(world, plan.traffic)
        driver.start()
        _run(world, driver, timeout_s=plan.traffic.timeout_s, ctx=ctx)
        # the proxies keep running: their detectors as they stand when the last answer came in
        self.outliers = world.outlier_states(driver.last_time)
        for change in pending:  # due after the traffic ended: they still happen, for later steps
            self._apply(None, change)
        duration = driver.end_time if driver.end_time != float("inf") else driver.last_time
        records = world.records
        if world.multicluster:
            records = exchange_clusters(records)
        return StepTraffic(tuple(records), 0.0, duration, tuple(self.events))

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

    def __init__(
        self,
        pool_timing: PoolTiming = DEFAULT_POOL_TIMING,
        step_timing: Mapping[int, PoolTiming] | None = None,
    ) -> None:
        super().__init__("sim", lambda: SimExecutor(pool_timing, step_timing))
