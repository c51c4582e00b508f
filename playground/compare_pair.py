"""Run a lesson on the two runners of a comparison, as ``meshplay compare`` and the TUI's Compare
view both do: with the simulator's connection-pool race calibrated from a local run.

Sim against local (in either order, unless calibration is turned off), the local side runs first,
in a work folder this function owns, so its sidecars' access logs outlive the run. When a step's
client sidecar answered 503 ``UO`` (a circuit breaker overflowed: Istio's circuit-breaking task
races a client's turnaround against Envoy's reconnect and TLS handshake, whose timing moves with
the machine's load), :func:`playground.pool_calibration.calibrate_from_local` measures the delays
that decide the race and the upstream's service time, and the sim side runs the lesson with them.
Every other pair runs A then B, as given.

How a side is run is the caller's (the CLI builds runners and may ask PromQL; the TUI shows
progress, reuses finished runs and cancels): ``run_side(index, name, lesson, options)`` runs
``lesson`` on runner ``name`` (``index`` 0 for A, 1 for B) built with ``options``: ``workdir``
for the local side, ``pool_timing`` and ``step_timing`` for a calibrated sim side, nothing
otherwise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mesh.lesson import Lesson
from mesh.runner import LessonRun
from playground.pool_calibration import PoolCalibration, calibrate_from_local

__all__ = ["ComparedRuns", "RunSide", "calibration_note", "run_pair"]

RunSide = Callable[[int, str, Lesson, Mapping[str, object]], LessonRun]
"""Run one side: its index (0: A, 1: B), runner name, the lesson to run, the runner's options."""


@dataclass(frozen=True, slots=True)
class ComparedRuns:
    """Both sides' runs and what the pool calibration did."""

    a: LessonRun
    b: LessonRun
    calibration: PoolCalibration | None
    """What the local run measured (``None``: no calibration, or nothing to measure)."""
    note: str
    """One line on the calibration (what was measured and that the sim used it, or why not);
    empty when it does not apply (not sim against local)."""


def run_pair(
    lesson: Lesson, names: tuple[str, str], run_side: RunSide, *, calibrate: bool = True
) -> ComparedRuns:
    """Run ``lesson`` on runners ``names`` (A, B) through ``run_side``: the local side first and
    the sim side calibrated from it when ``calibrate`` and the pair is sim and local."""
    sim_and_local = sorted(names) == ["local", "sim"]
    if not (calibrate and sim_and_local):
        a, b = (run_side(i, names[i], lesson, {}) for i in (0, 1))
        off = "pool calibration off: the sim ran with its default pool timing"
        note = off if sim_and_local else ""
        return ComparedRuns(a, b, None, note)
    local, sim = names.index("local"), names.index("sim")
    with tempfile.TemporaryDirectory(prefix="meshplay-compare-") as tmp:
        workdir = Path(tmp)
        local_run = run_side(local, "local", lesson, {"workdir": workdir})
        calibration = calibrate_from_local(lesson, local_run, workdir)
    simulated, options = lesson, dict[str, object]()
    if calibration is not None and calibration.timing is not None:
        simulated = calibration.lesson
        options = {"pool_timing": calibration.timing, "step_timing": calibration.step_timing}
    sim_run = run_side(sim, "sim", simulated, options)
    a, b = (local_run, sim_run) if local == 0 else (sim_run, local_run)
    return ComparedRuns(a, b, calibration, calibration_note(local_run, calibration))


def calibration_note(local: LessonRun, calibration: PoolCalibration | None) -> str:
    """The line that says what the pool calibration measured on ``local`` and that the sim used
    it, or why the sim kept its default timing."""
    if calibration is not None:
        return f"pool calibration: {calibration.describe()}"
    from cluster.pool_calibration import race_steps

    races = race_steps(local)
    if not races:
        return (
            "pool calibration: no client sidecar answered 503 UO on local (no pool race to "
            "measure), sim used its default pool timing"
        )
    workloads = ", ".join(sorted(races))
    return (
        f"pool calibration: no access log of {workloads}'s sidecar in the local run's folder, "
        "sim used its default pool timing"
    )
