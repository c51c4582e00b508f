"""Sim versus real: one lesson's metrics on two runners, side by side, with deltas and verdicts.

The simulator is only useful while it tells the truth; comparing it with the real data plane
(``local``: real Envoys) is how meshplay checks it. Per step, every edge's success rate and
latency percentiles are compared with stated tolerances (success within 2 points; latency within
50 % or 2 ms, whichever is looser: the simulator models service times, not the machine), and
every expectation's verdict is shown for both runners: the lesson must grade the same on both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mesh.checks import Verdict
from mesh.metrics import EdgeStats, edge_stats
from mesh.runner import LessonRun, StepResult

__all__ = ["SUCCESS_TOLERANCE", "CompareRow", "compare_runs"]

SUCCESS_TOLERANCE = 0.02
LATENCY_RELATIVE = 0.5
LATENCY_ABSOLUTE_MS = 2.0


@dataclass(frozen=True, slots=True)
class CompareRow:
    """One compared quantity: a step header, an edge metric or an expectation."""

    kind: str  # "step" | "metric" | "check"
    what: str
    a: float = math.nan
    b: float = math.nan
    agree: bool = True
    verdict_a: Verdict | None = None
    verdict_b: Verdict | None = None
    unit: str = ""

    @property
    def delta(self) -> float:
        """b - a (NaN when either is missing)."""
        return self.b - self.a


def _close(metric: str, a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if metric == "success":
        return abs(b - a) <= SUCCESS_TOLERANCE
    return abs(b - a) <= max(LATENCY_ABSOLUTE_MS, LATENCY_RELATIVE * max(abs(a), abs(b)))


def _stats(step: StepResult | None) -> dict[str, EdgeStats]:
    if step is None:
        return {}
    return {row.name: row for row in edge_stats(step.records, step.duration_s)}


def compare_runs(a: LessonRun, b: LessonRun) -> list[CompareRow]:
    """Rows for every step both runs have (or either has)."""
    rows: list[CompareRow] = []
    steps = a.lesson.steps
    for index, spec in enumerate(steps):
        sa = a.steps[index] if index < len(a.steps) else None
        sb = b.steps[index] if index < len(b.steps) else None
        if sa is None and sb is None:
            continue
        rows.append(CompareRow("step", f"Step {index + 1}: {spec.name}"))
        ea, eb = _stats(sa), _stats(sb)
        for edge in sorted(set(ea) | set(eb)):
            ra, rb = ea.get(edge), eb.get(edge)
            for metric, unit, attr in (
                ("success", "%", "success_rate"),
                ("p50", "ms", "p50_ms"),
                ("p99", "ms", "p99_ms"),
            ):
                va = float(getattr(ra, attr)) if ra is not None else math.nan
                vb = float(getattr(rb, attr)) if rb is not None else math.nan
                rows.append(
                    CompareRow(
                        "metric", f"{edge} {metric}", va, vb, _close(metric, va, vb), unit=unit
                    )
                )
        checks_a = sa.checks if sa is not None else ()
        checks_b = sb.checks if sb is not None else ()
        for i, exp in enumerate(spec.expect):
            ca = checks_a[i] if i < len(checks_a) else None
            cb = checks_b[i] if i < len(checks_b) else None
            va_ = ca.value if ca is not None else math.nan
            vb_ = cb.value if cb is not None else math.nan
            verdict_a = ca.verdict if ca is not None else None
            verdict_b = cb.verdict if cb is not None else None
            rows.append(
                CompareRow(
                    "check",
                    exp.describe(),
                    va_,
                    vb_,
                    agree=verdict_a is verdict_b,
                    verdict_a=verdict_a,
                    verdict_b=verdict_b,
                )
            )
    return rows
