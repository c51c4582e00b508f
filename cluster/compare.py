"""Compare one lesson run on two runners (``sim`` vs ``local`` by default), metric by metric.

The simulator is only trustworthy if it agrees with the real data plane. For every step and every
edge (``client->service``, client-side records as :func:`mesh.metrics.client_side` picks them)
this module measures, on both runs, the traffic share per destination version, the success
rate, the share of each response flag, and p50/p99 latency, and gives each a verdict:

* shares, success rate and flag mix *agree* when the difference is within the tolerance: an
  absolute floor (``share_tolerance``, default 0.05) widened to three standard errors of the
  difference of two binomial proportions, so a small sample is not called a disagreement;
* latency is reported with the ratio b/a and judged against ``latency_ratio`` (default 3x)
  as ``info`` unless ``strict_latency`` is set: sim latencies are a model, local ones are what a
  2-core machine measures;
* every lesson expectation is evaluated on both runs and must get the same verdict.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from mesh.checks import Verdict
from mesh.metrics import client_side, edge_key, percentile
from mesh.records import RequestRecord
from mesh.runner import LessonRun

__all__ = [
    "AGREE",
    "DIFFER",
    "INFO",
    "Comparison",
    "MetricRow",
    "Tolerances",
    "compare_runs",
    "format_comparison",
]

AGREE = "agree"
DIFFER = "DIFFER"
INFO = "info"


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How far two runs may differ and still agree."""

    share_tolerance: float = 0.05
    sigmas: float = 3.0
    latency_ratio: float = 3.0
    strict_latency: bool = False
    min_samples: int = 20


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One metric of one step: both values, the difference and the verdict."""

    step: int
    metric: str
    subject: str
    a: float
    b: float
    n_a: int
    n_b: int
    tolerance: float
    verdict: str

    @property
    def delta(self) -> float:
        """b - a"""
        return self.b - self.a


@dataclass(frozen=True, slots=True)
class Comparison:
    """All rows; ``agrees`` when no row says DIFFER."""

    runner_a: str
    runner_b: str
    rows: tuple[MetricRow, ...]

    @property
    def agrees(self) -> bool:
        """No metric differs beyond its tolerance."""
        return all(r.verdict != DIFFER for r in self.rows)


def _by_edge(records: Iterable[RequestRecord]) -> dict[str, list[RequestRecord]]:
    out: dict[str, list[RequestRecord]] = {}
    for r in client_side(records):
        client, service = edge_key(r)
        out.setdefault(f"{client}->{service}", []).append(r)
    return out


def _proportion_tolerance(p_a: float, n_a: int, p_b: float, n_b: int, tol: Tolerances) -> float:
    pooled = (p_a * n_a + p_b * n_b) / max(n_a + n_b, 1)
    se = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / max(n_a, 1) + 1 / max(n_b, 1)))
    return max(tol.share_tolerance, tol.sigmas * se)


def _proportion(
    step: int,
    metric: str,
    subject: str,
    *,
    a: tuple[int, int],
    b: tuple[int, int],
    tol: Tolerances,
) -> MetricRow:
    (hits_a, n_a), (hits_b, n_b) = a, b
    p_a = hits_a / n_a if n_a else math.nan
    p_b = hits_b / n_b if n_b else math.nan
    if not n_a or not n_b:
        return MetricRow(step, metric, subject, p_a, p_b, n_a, n_b, math.nan, DIFFER)
    limit = _proportion_tolerance(p_a, n_a, p_b, n_b, tol)
    small = min(n_a, n_b) < tol.min_samples
    verdict = AGREE if abs(p_b - p_a) <= limit + 1e-12 else (INFO if small else DIFFER)
    return MetricRow(step, metric, subject, p_a, p_b, n_a, n_b, limit, verdict)


def _latency(
    step: int, q: float, subject: str, *, a: list[float], b: list[float], tol: Tolerances
) -> MetricRow:
    va, vb = percentile(a, q), percentile(b, q)
    ratio = vb / va if va > 0 else math.inf
    within = 1 / tol.latency_ratio <= ratio <= tol.latency_ratio if va > 0 else vb <= 1.0
    verdict = AGREE if within else (DIFFER if tol.strict_latency else INFO)
    return MetricRow(step, f"p{q:g} ms", subject, va, vb, len(a), len(b), tol.latency_ratio, verdict)


def compare_runs(a: LessonRun, b: LessonRun, tol: Tolerances | None = None) -> Comparison:
    """Every metric of every step that both runs executed."""
    tol = tol or Tolerances()
    rows: list[MetricRow] = []
    for sa, sb in zip(a.steps, b.steps, strict=False):
        step = sa.index
        edges_a, edges_b = _by_edge(sa.records), _by_edge(sb.records)
        for edge in sorted(set(edges_a) | set(edges_b)):
            ra, rb = edges_a.get(edge, []), edges_b.get(edge, [])
            na, nb = len(ra), len(rb)
            versions = sorted({r.destination_version for r in ra} | {r.destination_version for r in rb})
            va = Counter(r.destination_version for r in ra)
            vb = Counter(r.destination_version for r in rb)
            rows.extend(
                _proportion(step, "share", f"{edge} {v}", a=(va[v], na), b=(vb[v], nb), tol=tol)
                for v in versions
            )
            ok_a = sum(1 for r in ra if r.ok)
            ok_b = sum(1 for r in rb if r.ok)
            rows.append(_proportion(step, "success", edge, a=(ok_a, na), b=(ok_b, nb), tol=tol))
            fa = Counter(f for r in ra for f in r.response_flags)
            fb = Counter(f for r in rb for f in r.response_flags)
            rows.extend(
                _proportion(
                    step, "flag", f"{edge} {flag}", a=(fa[flag], na), b=(fb[flag], nb), tol=tol
                )
                for flag in sorted(set(fa) | set(fb))
            )
            if ra and rb:
                da = [r.duration_ms for r in ra]
                db = [r.duration_ms for r in rb]
                rows.append(_latency(step, 50, edge, a=da, b=db, tol=tol))
                rows.append(_latency(step, 99, edge, a=da, b=db, tol=tol))
        for ca, cb in zip(sa.checks, sb.checks, strict=False):
            if ca.verdict == cb.verdict:
                verdict = AGREE
            elif Verdict.NO_DATA in (ca.verdict, cb.verdict):
                verdict = INFO
            else:
                verdict = DIFFER
            rows.append(
                MetricRow(
                    step, "expect", ca.expectation.describe(),
                    ca.value, cb.value, ca.samples, cb.samples, math.nan, verdict,
                )
            )  # fmt: skip
    return Comparison(a.runner, b.runner, tuple(rows))


def _num(x: float, metric: str) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:.1f}" if metric.startswith("p") else f"{x:.3f}"


def format_comparison(cmp: Comparison, titles: dict[int, str] | None = None) -> str:
    """The human table, per step."""
    lines: list[str] = []
    head = (
        f"  {'METRIC':<8} {'SUBJECT':<52} {cmp.runner_a:>9} {cmp.runner_b:>9} "
        f"{'DELTA':>8} {'TOL':>7}  VERDICT"
    )
    current = -1
    for row in cmp.rows:
        if row.step != current:
            current = row.step
            title = (titles or {}).get(row.step, "")
            lines += ["", f"Step {row.step + 1}: {title}".rstrip(), head]
        delta = "-" if math.isnan(row.delta) else f"{row.delta:+.3f}"
        if row.metric.startswith("p") and not math.isnan(row.a) and row.a > 0:
            delta = f"x{row.b / row.a:.2f}"
        tol = "-" if math.isnan(row.tolerance) else f"{row.tolerance:.3f}"
        if row.metric == "expect":
            a = f"{_num(row.a, 'x')}"
            b = f"{_num(row.b, 'x')}"
        else:
            a, b = _num(row.a, row.metric), _num(row.b, row.metric)
        lines.append(
            f"  {row.metric:<8} {row.subject[:52]:<52} {a:>9} {b:>9} {delta:>8} {tol:>7}  "
            f"{row.verdict}"
        )
    differ = sum(1 for r in cmp.rows if r.verdict == DIFFER)
    lines += ["", f"{'AGREE' if cmp.agrees else 'DIFFER'}: {len(cmp.rows) - differ}/"
                  f"{len(cmp.rows)} metrics within tolerance"]  # fmt: skip
    return "\n".join(lines).lstrip("\n")
