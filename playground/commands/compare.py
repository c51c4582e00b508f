"""``meshplay compare LESSON [--a sim --b local]``: run a lesson on two runners and diff them.

Per step and edge: traffic share per destination version (of the requests sent upstream: local
replies such as UO, NR, NC, UH, FI, RL, UAEX are left out), success rate, response-flag mix, p50
and p99 latency, each with both values, the difference, the tolerance and a verdict; then every
expectation's verdict on both runners. Exit code 0 when everything agrees, 1 when a metric
differs beyond its tolerance, 2 when the lesson or a runner cannot run.
``--calibrate`` (with a real runner as ``--b``) fits the simulator's per-hop latency and
per-endpoint service times from the real run and writes them into the app's behavior.yaml.

Pool calibration (sim against local, on unless ``--no-pool-calibration``): the local side runs
first; when a step's client sidecar answered 503 UO (a circuit breaker overflowed: Istio's
circuit-breaking task races a client's turnaround against Envoy's reconnect and TLS handshake,
whose timing moves with the machine's load), the delays that decide the race are measured from
that run's access logs, with the upstream's service time, and the sim runs the lesson with them.
One line says what was measured and that the sim used it.

A kube side takes ``--context CONTEXT``, or for a multi-cluster lesson one
``--context CLUSTER=CONTEXT`` per cluster it declares (as ``meshplay run --runner kube``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mesh.compare import Comparison, Tolerances, compare_runs, format_comparison
from mesh.diagnostics import DiagnosticError, render
from mesh.lesson import Lesson, load_lesson
from mesh.runner import LessonRun, Runner, RunnerError, RunOptions, StepSelectionError
from playground.compare_pair import ComparedRuns, run_pair
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
    p.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="[CLUSTER=]CONTEXT",
        help="kubeconfig context of a kube runner (default: the current one); a multi-cluster "
        "lesson needs one per cluster: --context cluster1=kind-east --context cluster2=kind-west",
    )
    p.add_argument("--namespace", default="", help="app namespace of a kube runner")
    p.add_argument("--prometheus-url", default="", metavar="URL",
                   help="the Prometheus of a kube runner (default: istio-system/prometheus)")  # fmt: skip
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
    p.add_argument("--no-pool-calibration", action="store_true",
                   help="sim vs local: run the sim with its default connection-pool timing, not "
                   "the delays measured on the local run")  # fmt: skip
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
    names = (args.runner_a, args.runner_b)
    if "kube" not in names and (args.context or args.namespace or args.prometheus_url):
        print(
            "error: --context, --namespace and --prometheus-url are options of a kube runner "
            "(--a kube or --b kube)",
            file=sys.stderr,
        )
        return 2
    tol = Tolerances(
        share_tolerance=args.share_tolerance,
        latency_ratio=args.latency_ratio,
        strict_latency=args.strict_latency,
    )
    options = RunOptions(seed=args.seed, until_step=args.step)
    try:
        if "kube" in names:  # refuse contexts that do not fit the lesson before any run
            from playground.commands.run import kube_options

            kube_options(args, lesson)
        pair, promql = _run_both(lesson, args, options)
    except (RunnerError, StepSelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = compare_runs(pair.a, pair.b, tol)
    print(f"{lesson.title}: {args.runner_a} vs {args.runner_b} (seed {args.seed})")
    if pair.calibration is not None:
        print(pair.note)
    print(format_comparison(result))
    if promql:
        from mesh.observe.compare import format_rows

        print("\nPromQL at the end of each step:")
        print(format_rows(promql, args.runner_a, args.runner_b))
    if args.calibrate:
        from cluster.calibrate import calibrate, write_calibration

        fit = calibrate(pair.b.records, lesson.app.behavior)
        path = lesson.app.path / "behavior.yaml"
        changed = write_calibration(path, fit)
        print(f"\ncalibrated from {args.runner_b}: {fit.describe()}")
        print(f"wrote {changed} values to {path}")
    return 0 if result.agrees and all(r.agrees for r in promql) else 1


def _run_both(
    lesson: Lesson, args: argparse.Namespace, options: RunOptions
) -> tuple[ComparedRuns, list[Any]]:
    """Run a and b through :func:`playground.compare_pair.run_pair` (the local side first when
    the sim side is pool-calibrated from it); the PromQL rows when ``--promql`` asks."""
    asked: dict[int, list[Any]] = {}

    def run_side(i: int, name: str, subject: Lesson, built: Mapping[str, object]) -> LessonRun:
        run, asked[i] = _run_one(name, subject, args, options, built)
        return run

    names: tuple[str, str] = (args.runner_a, args.runner_b)
    pair = run_pair(lesson, names, run_side, calibrate=not args.no_pool_calibration)
    rows: list[Any] = []
    if args.promql:
        from mesh.observe.compare import compare_answers

        answers_b = {(x.step, x.expr): x for x in asked[1]}
        for x in asked[0]:
            y = answers_b.get((x.step, x.expr))
            rows += compare_answers(x.step, x.expr, x.result, y.result if y else None)
    return pair, rows


def _run_one(
    name: str,
    lesson: Lesson,
    args: argparse.Namespace,
    options: RunOptions,
    built: Mapping[str, object],
) -> tuple[LessonRun, list[Any]]:
    """One side's run on runner ``name`` built with ``built`` (local: its ``workdir``; a
    calibrated sim: ``pool_timing``, ``step_timing``); with ``--promql``: its answers at the end
    of every step."""
    if args.promql:
        from mesh.engine import run_lesson
        from playground.observed import AskingExecutor, metrics_executor

        # run_pair's runner options (workdir; pool_timing, step_timing) are keywords of both
        executor = metrics_executor(name, **built)  # type: ignore[arg-type]
        asking = AskingExecutor(executor, args.promql)
        return run_lesson(asking, lesson, options), list(asking.answers)
    if name == "kube":
        from playground.commands.run import kube_options

        return get_runner(name, **kube_options(args, lesson)).run(lesson, options), []
    return get_runner(name, **built).run(lesson, options), []
