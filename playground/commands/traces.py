"""``meshplay traces [LESSON]``: the traces of a lesson's run, or of the running mesh.

On ``local`` every sidecar runs Envoy's Zipkin tracer (sampling from the lesson's ``tracing``,
default 100 %, or ``--sampling``) and reports to the collector meshplay runs; on ``sim`` the
same spans are derived from the run's records. Either way the traces are shown as waterfalls,
the slowest first (``--slowest N``), each span with its own time (``self``: its duration minus
its children's) and the slowest hop marked; then where the time went per service over all
traces. Traces that broke into pieces (an app that did not propagate the trace headers) are
shown as Envoy reported them and, with ``--stitch``, put back together by timing.

``--export zipkin FILE`` writes every span as Zipkin v2 JSON (a list, what Zipkin's
``POST /api/v2/spans`` takes); ``--export otlp FILE`` as OTLP/JSON. Without LESSON the spans
come from the collector of the mesh ``meshplay up`` left running.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from mesh.observe.spans import Span, span_from_json, to_otlp
from mesh.observe.traces import (
    Trace,
    broken_request,
    build_traces,
    self_times,
    stitch,
    waterfall,
)

__all__ = ["format_traces", "register", "sim_spans"]


def register(sub: Any) -> None:
    """Add the ``traces`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "traces",
        help="show the traces of a lesson's run (real Envoy spans on local) or the running mesh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("lesson", metavar="LESSON", nargs="?", type=Path, help="lesson folder")
    p.add_argument("--runner", choices=("sim", "local"), default="sim")
    p.add_argument("--step", type=int, metavar="K", help="run steps 1..K; show step K's traces")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--sampling",
        type=float,
        metavar="PERCENT",
        help="local: Envoy's random sampling (default: the lesson's, else 100)",
    )
    p.add_argument("--slowest", type=int, default=3, metavar="N", help="waterfalls to show")
    p.add_argument("--stitch", action="store_true", help="put pieces of one request together")
    p.add_argument(
        "--export",
        nargs=2,
        metavar=("FORMAT", "FILE"),
        help="write every span: zipkin (v2 JSON) or otlp (OTLP/JSON)",
    )
    p.set_defaults(handler=_run)


def sim_spans(run: Any, step: int | None = None) -> list[Span]:
    """Spans of a simulated run, each step on the time axis its TSDB uses."""
    from mesh.observe.openmetrics import StepData, lay_out
    from mesh.observe.spans import spans_from_records

    steps = [s for s in run.steps if not s.skipped]
    data = [StepData(s.index, (*s.warmup_records, *s.records), s.duration_s) for s in steps]
    out: list[Span] = []
    for s, window in zip(steps, lay_out(data), strict=True):
        if step is None or s.index == step:
            out.extend(spans_from_records((*s.warmup_records, *s.records), window.origin))
    return out


def format_traces(traces: list[Trace], slowest: int, *, stitched: bool = False) -> str:
    """The slowest traces as waterfalls; when traces broke into pieces (and were not stitched),
    the slowest broken request as Envoy reported it beside its stitched tree; then self time
    per service over all traces."""
    if not traces:
        return "no traces"
    pieces = sum(1 for t in traces if t.piece)
    errors = sum(1 for t in traces if t.error)
    spans = sum(len(t.spans) for t in traces)
    lines = [
        f"{len(traces)} traces, {spans} spans, {errors} with an error at the root"
        + (f", {pieces} starting with a client span (pieces?)" if pieces else "")
    ]
    for trace in sorted(traces, key=lambda t: -t.duration_us)[:slowest]:
        root = trace.root
        lines += [
            "",
            f"trace {trace.trace_id}  {trace.duration_us / 1000:.1f} ms  "
            f"{root.tags.get('http.method', '')} {root.tags.get('http.url', root.name)}",
        ]
        lines += ["  " + line for line in waterfall(trace)]
    broken = None if stitched or not pieces else broken_request(traces)
    if broken is not None:
        lines += [
            "",
            f"one request in {len(broken.pieces)} pieces: an app did not propagate the trace "
            "headers, so its sidecar started a new trace for each call it made:",
        ]
        for piece in broken.pieces:
            lines += ["", f"  piece {piece.trace_id}"]
            lines += ["    " + line for line in waterfall(piece)]
        lines += ["", "  the same request stitched back by timing (--stitch does it for all):"]
        lines += ["    " + line for line in waterfall(broken.stitched)]
    own: dict[str, list[int]] = defaultdict(list)
    for trace in traces:
        times = self_times(trace)
        for t in trace.spans:
            if t.span.kind == "SERVER":
                own[t.span.service].append(times[t.span.id])
    if own:
        lines += ["", "self time of server spans per service (where requests spend their time):"]
        lines.append(f"  {'SERVICE':<32} {'SPANS':>6} {'MEAN MS':>9} {'MAX MS':>9}")
        for service, values in sorted(own.items(), key=lambda kv: -sum(kv[1]) / len(kv[1])):
            mean = sum(values) / len(values) / 1000
            lines.append(
                f"  {service:<32} {len(values):>6} {mean:>9.2f} {max(values) / 1000:>9.2f}"
            )
    return "\n".join(lines)


def _local_spans(path: Path) -> list[Span]:
    from cluster.local.collector import read_spans_file

    out = []
    for data in read_spans_file(path):
        try:
            out.append(span_from_json(data))
        except (ValueError, TypeError):
            continue
    return out


def _from_lesson(args: argparse.Namespace) -> list[Span] | int:
    from mesh.engine import run_lesson
    from mesh.runner import RunnerError, RunOptions, StepSelectionError
    from playground.inputs import lesson_for_runner
    from playground.observed import AskingExecutor, metrics_executor

    lesson = lesson_for_runner(args.lesson, args.runner)
    if lesson is None:
        return 2
    options = RunOptions(seed=args.seed, until_step=args.step)
    if args.runner == "sim":
        from sim import SimRunner

        try:
            run = SimRunner().run(lesson, options)
        except (RunnerError, StepSelectionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return sim_spans(run, None if args.step is None else args.step - 1)
    sampling = args.sampling
    if sampling is None:
        sampling = lesson.spec.tracing.sampling if lesson.spec.tracing else 100.0
    collected: list[Span] = []
    windows: dict[int, tuple[float, float]] = {}

    def read_spans(inner: Any) -> None:
        monitoring = inner.monitoring
        if monitoring is not None:
            monitoring.flush_spans()
            collected.extend(_local_spans(monitoring.spans_file))
            windows.update(inner.windows)

    executor = AskingExecutor(metrics_executor("local", tracing=sampling), [], on_close=read_spans)
    try:
        run = run_lesson(executor, lesson, options)
    except (RunnerError, StepSelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.step is not None and run.steps and run.steps[-1].index in windows:
        start, end = windows[run.steps[-1].index]  # the step's window, epoch seconds
        return [s for s in collected if start * 1e6 <= s.timestamp_us <= end * 1e6]
    return collected


def _run(args: argparse.Namespace) -> int:
    if args.lesson is None:
        from cluster.local.monitoring import MonitoringInfo
        from cluster.local.state import state_dir

        info = MonitoringInfo.read(state_dir() / "monitoring.json")
        if info is None or not info.spans_file:
            print(
                "error: no LESSON given and no traced mesh is up (meshplay up starts one)",
                file=sys.stderr,
            )
            return 2
        found: list[Span] | int = _local_spans(Path(info.spans_file))
    else:
        found = _from_lesson(args)
    if isinstance(found, int):
        return found
    spans = found
    if args.export:
        kind, file = args.export
        if kind not in ("zipkin", "otlp"):
            print(f"error: --export {kind}: choose zipkin or otlp", file=sys.stderr)
            return 2
        doc: Any = [s.to_json() for s in spans] if kind == "zipkin" else to_otlp(spans)
        Path(file).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        print(f"wrote {len(spans)} spans to {file} ({kind})", file=sys.stderr)
    traces = build_traces(spans)
    if args.stitch:
        traces = stitch(traces)
    print(format_traces(traces, args.slowest, stitched=args.stitch))
    return 0 if traces else 1
