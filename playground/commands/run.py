"""``meshplay run LESSON``: run a lesson's steps on a runner and grade its expectations.

Prints, per step, the traffic per edge and each expectation with its measured value and verdict.
Exit code 0 when every expectation passed, 1 when one failed, 2 when the lesson does not load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from mesh.analyze import analyze
from mesh.checks import Verdict
from mesh.diagnostics import Diagnostic, Level, render
from mesh.lesson import Lesson
from mesh.metrics import edge_stats
from mesh.records import RESPONSE_FLAGS
from mesh.runner import LessonRun, Progress, RunnerError, RunOptions, StepSelectionError
from mesh.state import lesson_states
from playground.inputs import lesson_for_runner
from playground.runners import RUNNERS, get_runner
from tui.progress import ProgressStore, default_data_dir

__all__ = ["ProgressBar", "format_run", "register"]


def register(sub: Any) -> None:
    """Add the ``run`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run a lesson on a runner and check its expectations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "lesson", metavar="LESSON", help="lesson folder (e.g. lessons/01-request-routing)"
    )
    p.add_argument("--runner", choices=tuple(RUNNERS), default="sim")
    p.add_argument("--seed", type=int, default=1, help="random seed (runs are repeatable per seed)")
    p.add_argument("--step", type=int, metavar="K", help="run steps 1..K only")
    p.add_argument(
        "--records", type=Path, metavar="FILE", help="write every RequestRecord as JSON lines"
    )
    p.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    p.add_argument(
        "--app",
        metavar="DIR",
        help="the app to run the lesson on (a folder, or a name): replaces the lesson's own",
    )
    kube = p.add_argument_group("kube runner")
    kube.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="[CLUSTER=]CONTEXT",
        help="kubeconfig context (default: the current one); a multi-cluster lesson needs one "
        "per cluster it declares: --context cluster1=kind-east --context cluster2=kind-west",
    )
    kube.add_argument(
        "--namespace", default="", help="namespace of the app (default: the app's own)"
    )
    kube.add_argument(
        "--prometheus-url",
        default="",
        metavar="URL",
        help="the Prometheus that grades promql/alert expectations (e.g. a port-forward; "
        "default: Service istio-system/prometheus through the API server)",
    )
    kube.add_argument("--dry-run", action="store_true",
                      help="print every apply, delete, wait and traffic command; contact no cluster")  # fmt: skip
    p.add_argument(
        "--monitoring",
        action="store_true",
        help="local: run Prometheus and the trace collector next to the mesh",
    )
    p.set_defaults(handler=_run)


def kube_options(args: argparse.Namespace, lesson: Lesson) -> dict[str, object]:
    """The kube runner's constructor options from ``--context``/``--namespace``/
    ``--prometheus-url``; ContextError (a RunnerError) when the contexts do not fit the lesson
    (a multi-cluster lesson needs ``--context CLUSTER=CONTEXT`` for each of its clusters)."""
    from cluster.kube.multicluster import cluster_contexts

    contexts = cluster_contexts(lesson, args.context)
    single = contexts.get("", None)
    return {
        "context": single or "",
        "contexts": {} if single is not None else contexts,
        "namespace": args.namespace,
        "prometheus_url": args.prometheus_url,
    }


def _dry_run(args: argparse.Namespace, lesson: Lesson) -> int:
    if args.runner != "kube":
        print(
            "error: --dry-run plans a run on a cluster: use it with --runner kube", file=sys.stderr
        )
        return 2
    from cluster.kube import dry_run_plan

    try:
        options = kube_options(args, lesson)
        contexts = options["contexts"]
        assert isinstance(contexts, dict)
        text = dry_run_plan(
            lesson, RunOptions(seed=args.seed, until_step=args.step), args.namespace, contexts
        )
    except (StepSelectionError, RunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


class ProgressBar:
    """A one-line progress bar on a terminal, drawn only once a run has lasted a second."""

    def __init__(self, out: TextIO, enabled: bool = True) -> None:
        self.out = out
        self.enabled = enabled and out.isatty()
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, p: Progress) -> None:
        if not self.enabled or time.monotonic() - self.started < 1.0:
            return
        width = 30
        done = max(0.0, min(1.0, p.fraction))
        bar = "#" * int(done * width) + "-" * (width - int(done * width))
        self.out.write(f"\rstep {p.step + 1}/{p.steps} [{bar}] {done:4.0%} {p.requests} requests ")
        self.out.flush()
        self.drawn = True

    def close(self) -> None:
        """Clear the bar's line."""
        if self.drawn:
            self.out.write("\r" + " " * 79 + "\r")
            self.out.flush()


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 100:.1f}%"


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def format_run(run: LessonRun) -> str:
    """The human report of a run: per step, edges then expectations with verdicts."""
    lines = [f"{run.lesson.title}  (runner {run.runner}, seed {run.seed})", ""]
    for s in run.steps:
        lines.append(f"Step {s.index + 1}: {s.step.name}")
        if s.skipped:
            lines.extend((f"  skipped: {s.skipped}", ""))
            continue
        rows = edge_stats(s.records, s.duration_s)
        if rows:
            lines.append(
                f"  {'EDGE':<34} {'REQS':>6} {'RPS':>7} {'SUCCESS':>8} {'P50 MS':>8} {'P99 MS':>8}  "
                "VERSIONS / FLAGS"
            )
            for row in rows:
                versions = " ".join(f"{v}:{n}" for v, n in row.versions)
                flags = " ".join(f"{f}:{n}" for f, n in row.flags)
                lines.append(
                    f"  {row.name:<34} {row.requests:>6} {row.rps:>7.1f} {_pct(row.success_rate):>8} "
                    f"{_ms(row.p50_ms):>8} {_ms(row.p99_ms):>8}  {versions}{'  ' + flags if flags else ''}"
                )
        lines.extend(f"  event {event.describe(s.started_at)}" for event in s.events)
        seen = sorted({f for row in rows for f, _ in row.flags})
        if seen:
            lines.append("  flags: " + ", ".join(f"{f} = {RESPONSE_FLAGS.get(f, f)}" for f in seen))
        for c in s.checks:
            mark = "\u2714" if c.verdict is Verdict.PASS else "\u2718"
            lines.append(f"  {mark} {c.describe()}")
            if c.verdict is not Verdict.PASS and c.expectation.why:
                lines.append(f"      why: {c.expectation.why}")
        lines.append("")
    total = sum(len(s.checks) for s in run.steps)
    passed = sum(1 for s in run.steps for c in s.checks if c.passed)
    verdict = "PASSED" if run.passed else "FAILED"
    if run.cancelled:
        verdict = "INTERRUPTED"
    lines.append(f"{verdict}: {passed}/{total} expectations met")
    return "\n".join(lines)


def _hints(lesson: Lesson) -> str:
    return "\n".join(f"  hint: {h}" for h in lesson.spec.hints)


def config_problems(lesson: Lesson, until_step: int | None) -> str:
    """What ``meshplay analyze`` reports (errors and warnings) for the configuration of the steps
    about to run, as a block to print before the run: the run still goes ahead (seeing what the
    mesh does with a broken config is part of learning), but the cause is named up front."""
    states = lesson_states(lesson)
    if until_step is not None and 1 <= until_step <= len(states):
        states = states[:until_step]
    found: dict[tuple[str, str, int, int, str], Diagnostic] = {}
    for state in states:
        for d in analyze(state.resources):
            if d.severity >= Level.WARNING:
                found.setdefault((d.code, d.file, d.line, d.column, d.message), d)
    if not found:
        return ""
    shown = sorted(found.values(), key=Diagnostic.sort_key)
    errors = sum(1 for d in shown if d.severity is Level.ERROR)
    head = (
        f"meshplay analyze finds {len(shown)} problem{'s' if len(shown) != 1 else ''} in this "
        f"lesson's configuration ({errors} error{'s' if errors != 1 else ''}); running it anyway:"
    )
    return f"{head}\n{render(shown)}\n"


def _unwritable(path: Path) -> str:
    """Why ``path`` cannot be written ("" when it can), checked before a run starts."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return "is a folder"
    if not folder.is_dir():
        return f"no such folder {folder}"
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "permission denied"
    return ""


def _run(args: argparse.Namespace) -> int:
    lesson = lesson_for_runner(args.lesson, args.runner, args.app)
    if lesson is None:
        return 2
    if args.dry_run:
        return _dry_run(args, lesson)
    if args.runner != "kube" and (args.context or args.namespace or args.prometheus_url):
        print(
            "error: --context, --namespace and --prometheus-url are options of --runner kube",
            file=sys.stderr,
        )
        return 2
    try:
        runner = get_runner(
            args.runner, **(kube_options(args, lesson) if args.runner == "kube" else {})
        )
        if args.monitoring and args.runner == "local":
            from cluster.local.monitored import MonitoredLocalRunner

            runner = MonitoredLocalRunner(monitoring=True)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.records is not None and (problem := _unwritable(args.records)):
        print(f"error: --records {args.records}: {problem}", file=sys.stderr)
        return 2
    problems = config_problems(lesson, args.step)
    if problems:
        print(problems, file=sys.stderr)
    bar = ProgressBar(sys.stderr, enabled=not args.no_progress)
    options = RunOptions(seed=args.seed, until_step=args.step, on_progress=bar)
    try:
        run = runner.run(lesson, options)
    except StepSelectionError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunnerError as exc:
        bar.close()
        print(f"error: runner {args.runner} failed: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(format_run(run))
    if args.step is None and not run.cancelled:  # a whole run counts towards the path
        ProgressStore(default_data_dir()).record(
            lesson.id, args.runner, passed=run.passed, seed=args.seed
        )
    if not run.passed and lesson.spec.hints:
        print(_hints(lesson))
    if not run.passed and problems:
        codes = sorted({line.split("[", 1)[1].split("]", 1)[0] for line in problems.splitlines()
                        if "error[" in line or "warning[" in line})  # fmt: skip
        print(f"  note: the configuration problems reported before the run ({', '.join(codes)}) "
              "may explain failed expectations")  # fmt: skip
    if args.records is not None:
        with args.records.open("w", encoding="utf-8") as fh:
            for s in run.steps:  # warm-up records too: every request the mesh saw
                for r in sorted((*s.warmup_records, *s.records), key=lambda r: r.start_time):
                    fh.write(json.dumps(r.to_json(), sort_keys=True) + "\n")
    return 0 if run.passed and not run.cancelled else 1
