"""Sim versus real for the screen: ``mesh.compare``'s rows, laid out for the Compare view.

The comparison itself (traffic shares of the requests sent upstream, success rate, flag mix,
latency, expectation verdicts, and every tolerance) is :mod:`mesh.compare`, the same code
``meshplay compare`` prints, so the TUI and the CLI give the same verdict for the same runs. This
module only turns its rows into what one table line shows: a step header, a metric with its unit,
or an expectation with each runner's grade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mesh.checks import Verdict
from mesh.compare import AGREE, DIFFER, INFO, Comparison, MetricRow, Tolerances
from mesh.compare import compare_runs as compare_metrics
from mesh.runner import LessonRun

__all__ = ["SHARE_FOOTNOTE", "CompareRow", "compare_runs", "display_rows"]

SHARE_FOOTNOTE = "share: of requests sent upstream (local replies excluded)"
"""The table's last line: what a share row counts (see :data:`mesh.compare.SHARE_NOTE`)."""


@dataclass(frozen=True, slots=True)
class CompareRow:
    """One table line: a step header, an edge metric, an expectation or the footnote."""

    kind: str  # "step" | "metric" | "check" | "note"
    what: str
    a: float = math.nan
    b: float = math.nan
    verdict: str = AGREE  # mesh.compare's AGREE / INFO / DIFFER
    verdict_a: Verdict | None = None
    verdict_b: Verdict | None = None
    unit: str = ""

    @property
    def delta(self) -> float:
        """b - a (NaN when either is missing)."""
        return self.b - self.a

    @property
    def agree(self) -> bool:
        """Within tolerance, or only information (small or one-sided samples, latency)."""
        return self.verdict != DIFFER

    @property
    def info(self) -> bool:
        """Shown for information, not judged."""
        return self.verdict == INFO


def _what(row: MetricRow) -> str:
    """``api-gateway->product share v1``, ``... flag UO``, ``... p50``."""
    edge, _, rest = row.subject.partition(" ")
    label = row.metric.removesuffix(" ms")
    return f"{edge} {label} {rest}".rstrip()


def _metric(row: MetricRow) -> CompareRow:
    if row.metric == "expect":
        return CompareRow("check", row.subject, row.a, row.b, row.verdict,
                          row.verdict_a, row.verdict_b)  # fmt: skip
    unit = "ms" if row.is_latency else "%"
    return CompareRow("metric", _what(row), row.a, row.b, row.verdict, unit=unit)


def display_rows(cmp: Comparison) -> list[CompareRow]:
    """A step header before each step's rows, then the share footnote."""
    rows: list[CompareRow] = []
    current = -1
    for row in cmp.rows:
        if row.step != current:
            current = row.step
            rows.append(CompareRow("step", f"Step {row.step + 1}: {cmp.title(row.step)}"))
        rows.append(_metric(row))
    if any(r.metric == "share" for r in cmp.rows):
        rows.append(CompareRow("note", SHARE_FOOTNOTE))
    return rows


def compare_runs(a: LessonRun, b: LessonRun, tol: Tolerances | None = None) -> list[CompareRow]:
    """:func:`mesh.compare.compare_runs`, as table lines."""
    return display_rows(compare_metrics(a, b, tol))
