"""``meshplay explain LESSON --request 'GET /path -H name:value' [--from W] [--to S] [--step K]``.

Shows the path of one request through the simulated mesh in the state of a lesson step: listener,
virtual host, the matched route and the VirtualService rule it came from, cluster and subset,
the endpoint chosen and why, every filter that acted, retries, and the final status with its
response flags' long names and the chain of causes. Exit code 0, or 2 when the lesson or the
request cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mesh.diagnostics import DiagnosticError, render
from mesh.lesson import load_lesson
from mesh.runner import RunnerError

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``explain`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "explain",
        help="trace one request through the simulated mesh of a lesson",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("lesson", metavar="LESSON", help="lesson folder")
    p.add_argument(
        "--request",
        required=True,
        help="e.g. 'GET /api/products -H end-user:jason' (headers with -H name:value)",
    )
    p.add_argument("--from", dest="source", help="sending workload, ingress or outside")
    p.add_argument("--to", help="destination Service (default: the lesson's traffic target)")
    p.add_argument("--step", type=int, metavar="K", help="state after step K (default: last)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--app",
        metavar="DIR",
        help="the app to run the lesson on (a folder, or a name): replaces the lesson's own",
    )
    p.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace) -> int:
    from sim.explain import explain, parse_request

    try:
        lesson = load_lesson(args.lesson, app=args.app)
    except DiagnosticError as exc:
        print(render(exc.diagnostics), file=sys.stderr)
        return 2
    try:
        request = parse_request(args.request)
        result = explain(
            lesson, request, source=args.source, to=args.to, step=args.step, seed=args.seed
        )
    except (ValueError, RunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.render())
    return 0
