"""``meshplay graph LESSON -o svg|dot|png FILE``: a lesson step's traffic graph as a picture.

Runs the lesson up to the step (``--step K``, default the last) on a runner (``sim`` by default,
or ``local`` with real Envoys) and draws what that step's records show, the way the TUI's
topology view does (Kiali's versioned-app graph): a box per app with its versioned workloads,
edges with share, rate, errors, p99, 🔒 for mutual TLS and response-flag badges, coloured by
Kiali's default health thresholds.

* ``-o svg``: the terminal drawing as an SVG picture (Rich's export of the same drawing);
* ``-o dot``: Graphviz's DOT language (``dot -Tsvg FILE`` draws it);
* ``-o png``: the DOT drawn by Graphviz's ``dot`` (Debian's ``graphviz`` package, which
  ``bin/setup --test`` installs).

``--hide-idle`` leaves out the app's declared calls that saw no traffic.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

FORMATS = ("svg", "dot", "png")


def register(sub: Any) -> None:
    """Add the ``graph`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "graph",
        help="draw a lesson step's traffic graph (SVG, DOT or PNG)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("lesson", metavar="LESSON", type=Path, help="lesson folder")
    p.add_argument("--runner", choices=("sim", "local"), default="sim")
    p.add_argument("--step", type=int, metavar="K", help="run steps 1..K; draw step K")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hide-idle", action="store_true", help="leave out edges without traffic")
    p.add_argument("-o", "--output", nargs=2, metavar=("FORMAT", "FILE"), required=True)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from mesh.observe.graph import build_mesh_graph
    from mesh.observe.graph_dot import to_dot
    from mesh.runner import RunnerError, RunOptions, StepSelectionError
    from playground.inputs import lesson_for_runner
    from playground.runners import get_runner
    from tui.graph import build_graph
    from tui.graph_canvas import draw, to_svg

    kind, file = args.output
    if kind not in FORMATS:
        print(f"error: -o {kind}: choose one of {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    dot_binary = shutil.which("dot")
    if kind == "png" and dot_binary is None:
        print(
            "error: -o png needs Graphviz's dot (apt-get install graphviz); -o svg needs nothing",
            file=sys.stderr,
        )
        return 2
    lesson = lesson_for_runner(args.lesson, args.runner)
    if lesson is None:
        return 2
    if args.step is not None and not 1 <= args.step <= len(lesson.steps):
        print(
            f"error: --step {args.step}: the lesson has steps 1..{len(lesson.steps)}",
            file=sys.stderr,
        )
        return 2
    try:
        run = get_runner(args.runner).run(lesson, RunOptions(seed=args.seed, until_step=args.step))
    except (RunnerError, StepSelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not run.steps:
        print("error: the run has no step", file=sys.stderr)
        return 1
    step = run.steps[-1]
    declared = [(e.client, e.service) for e in build_graph(lesson).edges]
    graph = build_mesh_graph(step.records, step.duration_s, declared)
    if args.hide_idle:
        graph = graph.filtered(hide_idle=True)
    title = f"{lesson.id} · step {step.index + 1}: {lesson.steps[step.index].name} ({run.runner})"
    out = Path(file)
    try:
        if kind == "svg":
            out.write_text(to_svg(draw(graph), title=title), encoding="utf-8")
        elif kind == "dot":
            out.write_text(to_dot(graph, title), encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 2
    if kind == "png":
        assert dot_binary is not None
        done = subprocess.run(
            [dot_binary, "-Tpng", "-o", str(out)],
            input=to_dot(graph, title),
            text=True,
            capture_output=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            print(f"error: dot failed: {done.stderr.strip()}", file=sys.stderr)
            return 1
    edges = sum(1 for e in graph.edges if e.requests)
    print(
        f"wrote {out} ({kind}): {len(graph.nodes)} nodes, {edges} edges with traffic",
        file=sys.stderr,
    )
    return 0
