"""``meshplay query 'PROMQL' [LESSON]``: ask Prometheus about a lesson's run, or the running mesh.

With LESSON, the lesson's steps 1..K run (``--step K``, default all) on ``--runner`` and the
query is answered at the end of step K, with ``$__range`` standing for that step's traffic:

  meshplay query 'sum by (destination_version) (increase(istio_requests_total{reporter="source",
      destination_service_name="product"}[$__range]))' lessons/01-request-routing --step 2

On ``sim`` the run's records become a real TSDB (promtool) served by a real Prometheus; on
``local`` Prometheus scrapes the real Envoys while the lesson runs. The same query answers both.
Without LESSON, the query goes to the Prometheus of the mesh ``meshplay up`` left running, at
the current time (``$__range``: ``--range``, default 1m).

The answer is a table (one row per series, one column per label that differs), or with
``-o json`` Prometheus' own result. Exit code 0 with an answer, 1 when the query returned
nothing, 2 when it is refused or cannot run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mesh.observe.query import QueryError, QueryResult, parse_duration, substitute

__all__ = ["format_result", "register"]


def register(sub: Any) -> None:
    """Add the ``query`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "query",
        help="answer a PromQL query over a lesson's run (sim or local) or the running mesh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("promql", metavar="PROMQL", help="the PromQL expression ($__range: the step)")
    p.add_argument("lesson", metavar="LESSON", nargs="?", type=Path, help="lesson folder")
    p.add_argument("--runner", choices=("sim", "local"), default="sim")
    p.add_argument("--step", type=int, metavar="K", help="run steps 1..K, answer at K's end")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--range",
        dest="range_",
        default="1m",
        metavar="DURATION",
        help="what $__range stands for on the running mesh (default 1m)",
    )
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(handler=_run)


def format_result(result: QueryResult) -> str:
    """One row per series: the labels that differ between series, then the value."""
    if not result.samples:
        return "(no data)"
    if result.result_type in ("scalar", "string"):
        return f"{result.samples[0].value:g}"
    names = sorted({k for s in result.samples for k, _ in s.labels})
    varying = [n for n in names if len({s.label(n) for s in result.samples}) > 1]
    columns = varying or names[:3]
    rows = [[s.label(n) or "-" for n in columns] + [f"{s.value:g}"] for s in result.samples]
    header = [c.upper() for c in columns] + ["VALUE"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _print(result: QueryResult, output: str, meta: dict[str, Any]) -> int:
    if output == "json":
        print(json.dumps({**meta, "data": result.raw}, indent=1))
    else:
        print(format_result(result))
    return 0 if result.samples else 1


def _live(args: argparse.Namespace) -> int:
    from cluster.local.monitoring import MonitoringInfo
    from cluster.local.state import state_dir
    from cluster.prometheus import PrometheusClient

    info = MonitoringInfo.read(state_dir() / "monitoring.json")
    if info is None or not info.prometheus:
        print(
            "error: no LESSON given and no monitored mesh is up (meshplay up starts one)",
            file=sys.stderr,
        )
        return 2
    try:
        range_s = parse_duration(args.range_)
    except ValueError as exc:
        print(f"error: --range: {exc}", file=sys.stderr)
        return 2
    expr = substitute(args.promql, range_s)
    now = time.time()
    try:
        result = PrometheusClient(info.prometheus).query(expr, now)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _print(result, args.output, {"query": expr, "time": now, "prometheus": info.prometheus})


def _run(args: argparse.Namespace) -> int:
    if args.lesson is None:
        return _live(args)
    from mesh.engine import run_lesson
    from mesh.runner import RunnerError, RunOptions, StepSelectionError
    from playground.inputs import lesson_for_runner
    from playground.observed import AskingExecutor, metrics_executor

    lesson = lesson_for_runner(args.lesson, args.runner)
    if lesson is None:
        return 2
    try:
        asking = AskingExecutor(metrics_executor(args.runner), [args.promql])
        run = run_lesson(asking, lesson, RunOptions(seed=args.seed, until_step=args.step))
    except (RunnerError, StepSelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ran = [s for s in run.steps if not s.skipped]
    if not ran or not asking.answers:
        print("error: no step of this lesson drove traffic on this runner", file=sys.stderr)
        return 2
    answer = asking.answers[-1]
    step = run.steps[answer.step]
    print(
        f"# {lesson.id} on {args.runner}, end of step {answer.step + 1} "
        f"({step.step.name}); $__range = {substitute('$__range', answer.range_s)}",
        file=sys.stderr,
    )
    if answer.result is None:
        print(f"error: {answer.error}", file=sys.stderr)
        return 2
    meta = {
        "lesson": lesson.id,
        "runner": args.runner,
        "step": answer.step + 1,
        "query": substitute(args.promql, answer.range_s),
    }
    return _print(answer.result, args.output, meta)
