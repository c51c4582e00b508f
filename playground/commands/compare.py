"""``meshplay compare LESSON [--a sim --b local]``: run a lesson on two runners and diff them.

Per step and edge: traffic share per destination version (of the requests sent upstream: local
replies such as UO, NR, NC, UH, FI, RL, UAEX are left out), success rate, response-flag mix, p50
and p99 latency, each with both values, the difference, the tolerance and a verdict; then every
expectation's verdict on both runners. Exit code 0 when everything agrees, 1 when a metric
differs beyond its tolerance, 2 when the lesson or a runner cannot run.
``--calibrate`` (with a real runner as ``--b``) fits the simulator's per-hop latency and
per-endpoint service times from the real run and writes them into the app's behavior.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mesh.compare import Comparison, Tolerances, compare_runs, format_comparison
from mesh.diagnostics import DiagnosticError, render
from mesh.lesson import Lesson, load_lesson
from mesh.runner import LessonRun, Runner, RunnerError, RunOptions, StepSelectionError
from playground.runners import RUNNERS, get_runner

__all__ = ["compare", "register"]


def register(sub: Any) -> None:
    """Add the ``compare`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "compare",
        help="run a lesson on two runners and compare their metrics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("lesson", metavar="LESSON", type=Path)
    p.add_argument("--a", dest="runner_a", choices=tuple(RUNNERS), default="sim")
    p.add_argument("--b", dest="runner_b", choices=tuple(RUNNERS), default="local")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--app",
        metavar="DIR",
        help="the app to run the lesson on (a folder, or a name): replaces the lesson's own",
    )
    p.add_argument("--step", type=int, metavar="K", help="compare steps 1..K only")
    p.add_argument("--share-tolerance", type=float, default=0.05, metavar="X",
                   help="absolute floor of the tolerance on shares and rates (default 0.05)")  # fmt: skip
    p.add_argument("--strict-latency", action="store_true",
                   help="latency outside --latency-ratio counts as a disagreement")  # fmt: skip
    p.add_argument("--latency-ratio", type=float, default=3.0, metavar="R")
    p.add_argument("--context", default="", help="kubeconfig context of a kube runner")
    p.add_argument("--namespace", default="", help="app namespace of a kube runner")
    p.add_argument(
        "--promql",
        action="append",
        default=[],
        metavar="EXPR",
        help="also compare this PromQL query at the end of every step (repeatable; "
        "$__range: the step)",
    )
    p.add_argument("--calibrate", action="store_true",
                   help="fit sim latency parameters from runner b and write behavior.yaml")  # fmt: skip
    p.set_defaults(handler=_run)


def compare(
    lesson: Lesson, a: Runner, b: Runner, options: RunOptions, tolerances: Tolerances | None = None
) -> tuple[Comparison, LessonRun, LessonRun]:
    """Run ``lesson`` on both runners; return (comparison, run a, run b)."""
    run_a = a.run(lesson, options)
    run_b = b.run(lesson, options)
    return compare_runs(run_a, run_b, tolerances), run_a, run_b


def _run(args: argparse.Namespace) -> int:

    try:
        lesson = load_lesson(args.lesson, app=args.app)
    except DiagnosticError as exc:
        print(render(exc.diagnostics), file=sys.stderr)
        return 2
    try:
        kube = {"context": args.context, "namespace": args.namespace}
        a, b = (
            get_runner(name, **(kube if name == "kube" else {}))
            for name in (args.runner_a, args.runner_b)
        )
        tol = Tolerances(
            share_tolerance=args.share_tolerance,
            latency_ratio=args.latency_ratio,
            strict_latency=args.strict_latency,
        )
        options = RunOptions(seed=args.seed, until_step=args.step)
        if args.promql:
            result, run_b, promql = _compare_promql(lesson, args, options, tol)
        else:
            result, _run_a, run_b = compare(lesson, a, b, options, tol)
            promql = []
    except (RunnerError, StepSelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{lesson.title}: {args.runner_a} vs {args.runner_b} (seed {args.seed})")
    print(format_comparison(result))
    if promql:
        from mesh.observe.compare import format_rows

        print("\nPromQL at the end of each step:")
        print(format_rows(promql, args.runner_a, args.runner_b))
    if args.calibrate:
        from cluster.calibrate import calibrate, write_calibration

        fit = calibrate(run_b.records, lesson.app.behavior)
        path = lesson.app.path / "behavior.yaml"
        changed = write_calibration(path, fit)
        print(f"\ncalibrated from {args.runner_b}: {fit.describe()}")
        print(f"wrote {changed} values to {path}")
    return 0 if result.agrees and all(r.agrees for r in promql) else 1


def _compare_promql(
    lesson: Lesson, args: argparse.Namespace, options: RunOptions, tol: Tolerances
) -> tuple[Comparison, LessonRun, list[Any]]:
    """Both runs with metrics, the queries answered at the end of every step of each."""
    from mesh.engine import run_lesson
    from mesh.observe.compare import compare_answers
    from playground.observed import AskingExecutor, metrics_executor

    asking_a = AskingExecutor(metrics_executor(args.runner_a), args.promql)
    asking_b = AskingExecutor(metrics_executor(args.runner_b), args.promql)
    run_a = run_lesson(asking_a, lesson, options)
    run_b = run_lesson(asking_b, lesson, options)
    answers_b = {(x.step, x.expr): x for x in asking_b.answers}
    rows = []
    for x in asking_a.answers:
        y = answers_b.get((x.step, x.expr))
        rows += compare_answers(x.step, x.expr, x.result, y.result if y else None)
    return compare_runs(run_a, run_b, tol), run_b, rows
