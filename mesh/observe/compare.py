"""One PromQL query's answers on two runners, series by series (``meshplay compare --promql``).

Series are matched by their labels without the target labels that name processes, which differ
between runners by construction (``instance``, ``pod``: a simulated run reports per workload, a
local one per pod). Two values agree when they differ by at most ``absolute`` or ``relative``
times the larger one (defaults: 0.05, i.e. five points of a ratio, and 10 %); a series found on
one side only is a disagreement unless its value there is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mesh.observe.istio_metrics import Labels
from mesh.observe.query import QueryResult

__all__ = ["PROCESS_LABELS", "PromqlRow", "compare_answers", "format_rows"]

PROCESS_LABELS = frozenset({"instance", "pod"})


@dataclass(frozen=True, slots=True)
class PromqlRow:
    """One series of one query at the end of one step, on both runners."""

    step: int
    expr: str
    labels: Labels
    a: float
    b: float
    agrees: bool

    @property
    def subject(self) -> str:
        """``{destination_version="v1"}`` (or ``{}``)."""
        return "{" + ",".join(f'{k}="{v}"' for k, v in self.labels) + "}"


def _series(result: QueryResult | None) -> dict[Labels, float]:
    if result is None:
        return {}
    out: dict[Labels, float] = {}
    for s in result.samples:
        key = tuple((k, v) for k, v in s.labels if k not in PROCESS_LABELS)
        out[key] = out.get(key, 0.0) + s.value
    return out


def _close(a: float, b: float, absolute: float, relative: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(absolute, relative * max(abs(a), abs(b)))


def compare_answers(
    step: int,
    expr: str,
    a: QueryResult | None,
    b: QueryResult | None,
    *,
    absolute: float = 0.05,
    relative: float = 0.1,
) -> list[PromqlRow]:
    """The rows of one query at one step."""
    sa, sb = _series(a), _series(b)
    rows = []
    for key in sorted(set(sa) | set(sb)):
        va, vb = sa.get(key, math.nan), sb.get(key, math.nan)
        if key not in sa or key not in sb:
            present = vb if key not in sa else va
            agrees = present == 0
        else:
            agrees = _close(va, vb, absolute, relative)
        rows.append(PromqlRow(step, expr, key, va, vb, agrees))
    return rows


def format_rows(rows: Sequence[PromqlRow], runner_a: str, runner_b: str) -> str:
    """The rows as a table, grouped by step and query."""
    lines: list[str] = []
    current: tuple[int, str] | None = None
    for row in rows:
        if (row.step, row.expr) != current:
            current = (row.step, row.expr)
            lines += [
                "",
                f"step {row.step + 1}: {' '.join(row.expr.split())}",
                f"  {'SERIES':<52} {runner_a:>10} {runner_b:>10}  VERDICT",
            ]
        a = "-" if math.isnan(row.a) else f"{row.a:.4g}"
        b = "-" if math.isnan(row.b) else f"{row.b:.4g}"
        verdict = "agree" if row.agrees else "DIFFER"
        lines.append(f"  {row.subject[:52]:<52} {a:>10} {b:>10}  {verdict}")
    return "\n".join(lines).lstrip("\n")
